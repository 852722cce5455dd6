"""A TensorBoard Embedding Projector folder (one owner of its layout here).

What ``tensorboard --logdir OUT/projector`` reads (``tensorboard/plugins/projector``: the plugin looks
for ``projector_config.pbtxt`` in the log directory and, with ``tensor_path`` set, needs no TF
checkpoint)::

    OUT/projector/projector_config.pbtxt   a ProjectorConfig in protobuf text format, paths relative to it
    OUT/projector/vectors.tsv              one point per line, D tab-separated floats (no header)
    OUT/projector/metadata.tsv             a header line (video, time, end, split, level, text), then one
                                           line per point in the same order
    OUT/projector/sprite.png               thumbnails in a square grid, row-major in point order, each
                                           ``single_image_dim`` pixels (absent when no frames could be read)

The projector's WebGL sprite texture is at most 8192 x 8192 pixels, so a sprite holds at most
``(8192 // thumb) ** 2`` thumbnails: :func:`max_points_for` is the cap the export enforces.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from egoindex.core.fsutil import atomic_open
from egoindex.errors import ExportError

CONFIG_FILE, VECTORS_FILE, METADATA_FILE, SPRITE_FILE = (
    "projector_config.pbtxt", "vectors.tsv", "metadata.tsv", "sprite.png")
METADATA_COLUMNS = ("video", "time", "end", "split", "level", "text")
#: The largest sprite (either side, pixels) the projector's WebGL texture takes.
MAX_SPRITE_PX = 8192
#: A missing thumbnail's tile colour (mid grey: visible on the projector's white background).
BLANK = (128, 128, 128)


def max_points_for(thumb: int) -> int:
    """How many thumbnails of ``thumb`` pixels fit in the largest sprite."""
    if thumb < 1 or thumb > MAX_SPRITE_PX:
        raise ExportError(f"--thumb-size must be 1..{MAX_SPRITE_PX} pixels, not {thumb}")
    return (MAX_SPRITE_PX // thumb) ** 2


def _cell(value: Any) -> str:
    """A TSV cell: tabs and line breaks would split the row, so they become spaces."""
    s = f"{value:.10g}" if isinstance(value, float) else str(value)
    return " ".join(s.split()) if any(c in s for c in "\t\r\n") else s


def sprite(images: list[Image.Image | None], thumb: int) -> Image.Image:
    """Thumbnails in a ``ceil(sqrt(n))``-wide grid, each centre-cropped square and resized to ``thumb``."""
    cols = max(1, math.ceil(math.sqrt(len(images))))
    rows = max(1, math.ceil(len(images) / cols))
    if cols * thumb > MAX_SPRITE_PX:
        raise ExportError(f"{len(images)} thumbnails of {thumb} px exceed the projector's "
                          f"{MAX_SPRITE_PX} px sprite; at most {max_points_for(thumb)}")
    sheet = Image.new("RGB", (cols * thumb, rows * thumb), BLANK)
    for i, im in enumerate(images):
        if im is None:
            continue
        w, h = im.size
        s = min(w, h)
        tile = im.convert("RGB").crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        sheet.paste(tile.resize((thumb, thumb), Image.Resampling.BILINEAR), ((i % cols) * thumb, (i // cols) * thumb))
    return sheet


def config_text(n: int, dim: int, tensor_name: str, thumb: int | None) -> str:
    """``projector_config.pbtxt`` (protobuf text format of tensorboard's ProjectorConfig)."""
    lines = ["embeddings {", f'  tensor_name: "{tensor_name}"', f'  tensor_path: "{VECTORS_FILE}"',
             f'  metadata_path: "{METADATA_FILE}"', f"  tensor_shape: {n}", f"  tensor_shape: {dim}"]
    if thumb is not None:
        lines += ["  sprite {", f'    image_path: "{SPRITE_FILE}"', f"    single_image_dim: {thumb}",
                  f"    single_image_dim: {thumb}", "  }"]
    return "\n".join(lines + ["}", ""])


def write_projector(out: Path, vectors: np.ndarray, metadata: list[dict[str, Any]], tensor_name: str,
                    images: list[Image.Image | None] | None, thumb: int) -> dict[str, Any]:
    """Write the folder; ``images`` (one per point, None for a missing one) or None for no sprite.
    Returns what was written (paths relative to ``out``)."""
    n, dim = vectors.shape
    if len(metadata) != n or (images is not None and len(images) != n):
        raise ExportError(f"{n} vectors but {len(metadata)} metadata rows"
                          + ("" if images is None else f" and {len(images)} thumbnails"))
    if n == 0:
        raise ExportError("no points to project")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / VECTORS_FILE, "w") as f:
        np.savetxt(f, np.asarray(vectors, np.float32), fmt="%.7g", delimiter="\t")
    with atomic_open(out / METADATA_FILE, "w") as f:
        f.write("\t".join(METADATA_COLUMNS) + "\n")
        for r in metadata:
            f.write("\t".join(_cell(r[c]) for c in METADATA_COLUMNS) + "\n")
    files = {"config": CONFIG_FILE, "vectors": VECTORS_FILE, "metadata": METADATA_FILE, "sprite": None}
    if images is not None:
        with atomic_open(out / SPRITE_FILE, "wb") as f:
            sprite(images, thumb).save(f, format="PNG")
        files["sprite"] = SPRITE_FILE
    else:
        (out / SPRITE_FILE).unlink(missing_ok=True)  # an earlier export's sprite would not match these points
    with atomic_open(out / CONFIG_FILE, "w") as f:
        f.write(config_text(n, dim, tensor_name, thumb if images is not None else None))
    return {"points": n, "dim": dim, "files": files,
            "thumbnails": None if images is None else sum(im is not None for im in images)}
