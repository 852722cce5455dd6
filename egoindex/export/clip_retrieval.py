"""The embeddings folder layout of rom1504/clip-retrieval's ``clip_inference`` (one owner of it here).

What ``clip_inference`` writes (``clip_retrieval/clip_inference/writer.py`` and ``mapper.py``), and so
what ``autofaiss build_index --file_format npy`` and ``clip_retrieval index`` read::

    OUT/img_emb/img_emb_{i}.npy            float16 [n_i, D], L2-normalised image embeddings
    OUT/text_emb/text_emb_{i}.npy          float16 [n_i, D], the paired captions' text embeddings
    OUT/metadata/metadata_{i}.parquet      n_i rows, row j describing row j of both npy files:
                                           image_path, caption, then the samples' own metadata columns

``{i}`` is the part number zero-padded to ``int(log10(number of parts)) + 1`` digits (``img_emb_0``
for one part, ``img_emb_00`` .. ``img_emb_11`` for twelve), so that the readers' sorted listing is the
row order. A text-only export has no ``img_emb`` folder and no ``image_path`` column, as clip-retrieval's
``--enable_image False``.

The writer streams: each part's npy files are memory-mapped with their final shape (the row count
is known up front) and its parquet file gets one row group per written batch, so a table of any size
passes through in batch-sized pieces. Each file is written under a hidden name and renamed into
place when complete; files of an earlier export (other part counts) are removed first, since a reader
globs the folders and would mix them in.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from egoindex.core.fsutil import tmp_name
from egoindex.errors import ExportError

IMG_DIR, TEXT_DIR, META_DIR = "img_emb", "text_emb", "metadata"
#: clip-retrieval's mapper casts its embeddings to float16 before writing.
DTYPE = np.float16


def part_names(n_parts: int) -> list[str]:
    """Part suffixes as clip-retrieval pads them: ``str(i).zfill(int(log10(n_parts)) + 1)``."""
    if n_parts < 1:
        raise ExportError("a clip-retrieval export needs at least one part")
    width = int(math.log10(n_parts)) + 1
    return [str(i).zfill(width) for i in range(n_parts)]


def part_sizes(total: int, rows_per_file: int) -> list[int]:
    """Rows of each part: full parts of ``rows_per_file`` and a shorter last one."""
    if rows_per_file < 1:
        raise ExportError(f"--rows-per-file must be at least 1, not {rows_per_file}")
    n = max(1, math.ceil(total / rows_per_file))
    return [min(rows_per_file, total - i * rows_per_file) for i in range(n)]


def clear_previous(out: Path) -> None:
    """Remove the npy/parquet parts of an earlier export into ``out`` (nothing else)."""
    for sub, prefix, ext in ((IMG_DIR, "img_emb_", ".npy"), (TEXT_DIR, "text_emb_", ".npy"),
                             (META_DIR, "metadata_", ".parquet")):
        for p in (out / sub).glob(f"{prefix}*{ext}"):
            p.unlink()


class ClipRetrievalWriter:
    """Writes rows (image vectors, text vectors, metadata) in order into the parts of the layout."""

    def __init__(self, out: Path, total: int, dim: int, rows_per_file: int, *, image: bool, text: bool) -> None:
        if not (image or text):
            raise ExportError("a clip-retrieval export needs image or text embeddings")
        self.out, self.dim, self.image, self.text = Path(out), dim, image, text
        self.sizes = part_sizes(total, rows_per_file)
        self.names = part_names(len(self.sizes))
        clear_previous(self.out)
        for sub, on in ((IMG_DIR, image), (TEXT_DIR, text), (META_DIR, True)):
            if on:
                (self.out / sub).mkdir(parents=True, exist_ok=True)
        self.part = -1
        self.filled = 0
        self.written: list[dict[str, Any]] = []
        self._open: dict[str, Any] = {}
        self._tmp: dict[str, tuple[Path, Path]] = {}

    def _paths(self, i: int) -> dict[str, Path]:
        name = self.names[i]
        p = {"meta": self.out / META_DIR / f"metadata_{name}.parquet"}
        if self.image:
            p["img"] = self.out / IMG_DIR / f"img_emb_{name}.npy"
        if self.text:
            p["text"] = self.out / TEXT_DIR / f"text_emb_{name}.npy"
        return p

    def _start_part(self, schema: pa.Schema) -> None:
        self.part += 1
        self.filled = 0
        n = self.sizes[self.part]
        for kind, final in self._paths(self.part).items():
            tmp = tmp_name(final)
            self._tmp[kind] = (tmp, final)
            if kind == "meta":
                self._open[kind] = pq.ParquetWriter(str(tmp), schema)
            else:
                self._open[kind] = np.lib.format.open_memmap(str(tmp), mode="w+", dtype=DTYPE, shape=(n, self.dim))

    def _finish_part(self) -> None:
        for kind, handle in self._open.items():
            if kind == "meta":
                handle.close()
            else:
                handle.flush()
                del handle
        self._open.clear()
        for tmp, final in self._tmp.values():
            os.replace(tmp, final)
        self.written.append({k: str(final.relative_to(self.out)) for k, (_, final) in self._tmp.items()}
                            | {"rows": self.sizes[self.part]})
        self._tmp.clear()

    def write(self, meta: pa.Table, img: np.ndarray | None = None, text: np.ndarray | None = None) -> None:
        """Append rows: ``meta`` (one row each) and their float32 vectors, split across parts."""
        n = meta.num_rows
        for name, vecs, on in (("image", img, self.image), ("text", text, self.text)):
            if on and (vecs is None or vecs.shape != (n, self.dim)):
                got = None if vecs is None else vecs.shape
                raise ExportError(f"{name} vectors of shape {got} for {n} metadata rows of dim {self.dim}")
        done = 0
        while done < n:
            if self.part < 0 or self.filled == self.sizes[self.part]:
                if self.part + 1 >= len(self.sizes):
                    raise ExportError(f"more rows than the {sum(self.sizes)} the export was sized for")
                self._start_part(meta.schema)
            take = min(n - done, self.sizes[self.part] - self.filled)
            sl = slice(self.filled, self.filled + take)
            if self.image:
                self._open["img"][sl] = img[done:done + take]  # type: ignore[index]
            if self.text:
                self._open["text"][sl] = text[done:done + take]  # type: ignore[index]
            self._open["meta"].write_table(meta.slice(done, take))
            self.filled += take
            done += take
            if self.filled == self.sizes[self.part]:
                self._finish_part()

    def close(self) -> list[dict[str, Any]]:
        """Check every row came, and return the parts written ({img, text, meta: relative path, rows})."""
        if self._open or len(self.written) != len(self.sizes):
            self.abort()
            raise ExportError(f"the export wrote {len(self.written)} of {len(self.sizes)} parts: rows went missing")
        return self.written

    def abort(self) -> None:
        """Drop the unfinished part's hidden files (finished parts stay; a rerun replaces them)."""
        for kind, handle in self._open.items():
            with contextlib.suppress(Exception):
                handle.close() if kind == "meta" else handle.flush()
        self._open.clear()
        for tmp, _ in self._tmp.values():
            tmp.unlink(missing_ok=True)
        self._tmp.clear()
