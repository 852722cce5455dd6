"""A folder-per-class video dataset derived from the demo scene renderer, for linear probes.

Why: ``egoindex probe`` and ``egoindex finetune`` need labelled videos, and the demo corpus's
videos mix several scenes each. This writes short single-scene, silent clips sorted by one
attribute (object, action or colour) into ``OUT/<class>/<name>.mp4``, the layout both read.
Everything that is *not* the class varies from clip to clip (room and its look, the other
attributes, object size and motion, camera path and sensor noise), so a classifier can only
succeed by seeing the class-defining content, not a background shared by one class.

``by="motion"`` is the set whose classes differ in motion, not appearance: the four directions
of :data:`egoindex.demo.scenes.MOTION_ACTIONS` (slides left / right, rises, sinks). Clip ``j`` of
every class is the SAME scene (room, object, colour, size, camera path, noise) with only the
direction changed, and "slides left" is exactly "slides right" played backwards (likewise rises /
sinks: :meth:`egoindex.demo.scenes.SceneRenderer.pose`). A model that sees frames one at a time
and averages them cannot tell a direction from its opposite; only frame order can. (The two
axes, horizontal and vertical, do differ in the positions a frame shows.) Motion clips default
to 160x120 at 8 fps, like the motion corpus.

Deterministic (every choice comes from ``default_rng([seed, ...])`` per clip, encoders are
single-threaded and bit-exact) and idempotent: a clip is written to a hidden temporary name and
renamed into place, existing clips are kept, and ``classes.json`` (written last, atomically)
records every clip's attributes. Re-running with more ``per_class`` only adds clips.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.core.fsutil import read_json, write_json
from egoindex.core.progress import progress_bar
from egoindex.demo.scenes import ACTIONS, COLOURS, MOTION_ACTIONS, OBJECTS, ROOMS, Scene, VideoRenderer
from egoindex.errors import ConfigError

__all__ = ["BY", "MANIFEST", "class_names", "write_demo_classes"]

GENERATOR = "egoindex demo-classes"
#: Bump when rendering changes so that folders made by an older version are not mixed with new clips.
FORMAT_VERSION = 1
MANIFEST = "classes.json"
BY: tuple[str, ...] = ("object", "action", "colour", "motion")


def class_names(by: str) -> list[str]:
    """The classes of one attribute, in the demo vocabulary's order."""
    vocab = {"object": list(OBJECTS), "action": list(ACTIONS), "colour": list(COLOURS), "motion": list(MOTION_ACTIONS)}
    if by not in vocab:
        raise ConfigError(f"by must be one of {', '.join(BY)}, not {by!r}")
    return vocab[by]


def _plan(by: str, label: str, j: int, seconds: float, seed: int) -> tuple[Scene, int, dict[str, str]]:
    """Clip ``j`` of class ``label``: its scene, camera seed and attributes (the class fixed,
    everything else drawn at random; for ``motion`` drawn once per ``j``, shared by every direction)."""
    if by == "motion":
        rng = np.random.default_rng([seed, BY.index(by), j, 77])
        attrs = {"room": ROOMS[int(rng.integers(len(ROOMS)))], "object": OBJECTS[int(rng.integers(len(OBJECTS)))],
                 "colour": list(COLOURS)[int(rng.integers(len(COLOURS)))], "action": label}
        variant, room_seed, cam_seed = (int(x) for x in rng.integers(0, 2**31 - 1, size=3))
        scene = Scene(attrs["room"], attrs["object"], attrs["colour"], label, seconds, variant, room_seed)
        return scene, cam_seed, {**attrs, "motion": label}
    rng = np.random.default_rng([seed, BY.index(by), class_names(by).index(label), j, 77])
    attrs = {
        "room": ROOMS[int(rng.integers(len(ROOMS)))],
        "object": OBJECTS[int(rng.integers(len(OBJECTS)))],
        "colour": list(COLOURS)[int(rng.integers(len(COLOURS)))],
        "action": ACTIONS[int(rng.integers(len(ACTIONS)))],
    }
    attrs[by] = label
    variant, room_seed, cam_seed = (int(x) for x in rng.integers(0, 2**31 - 1, size=3))
    scene = Scene(attrs["room"], attrs["object"], attrs["colour"], attrs["action"], seconds, variant, room_seed)
    return scene, cam_seed, attrs


def _encode(path: Path, scene: Scene, cam_seed: int, seconds: float, fps: int, size: tuple[int, int]) -> None:
    """Render and encode one silent H.264 MP4 (the corpus's video settings, no audio track)."""
    import av

    renderer = VideoRenderer(cam_seed, size, duration_hint=seconds)
    n_frames = max(1, int(round(seconds * fps)))
    with av.open(str(path), mode="w", format="mp4", options={"fflags": "+bitexact"}) as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "superfast", "crf": "25", "threads": "1"})
        vs.width, vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.codec_context.thread_count = 1
        vs.codec_context.flags |= av.codec.context.Flags.bitexact
        for f in range(n_frames):
            t = f / fps
            frame = av.VideoFrame.from_image(renderer.render_image(scene, t, t))
            frame.pts = f
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))


def _file_name(label: str, j: int) -> str:
    return f"{label.replace(' ', '_')}_{j:03d}.mp4"


def write_demo_classes(
    out_dir: str | Path,
    *,
    by: str = "object",
    per_class: int = 8,
    seconds: float = 4.0,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    fps: int | None = None,
    size: tuple[int, int] | None = None,
    progress: bool = False,
) -> Path:
    """Write ``per_class`` clips of ``seconds`` for every class of ``by`` (or only ``classes``)
    into ``out_dir/<class>/``; return the path of ``classes.json``. Existing complete clips are
    kept (a killed run resumes); a folder written with other settings (seed, seconds, fps, size,
    ``by``) is refused rather than mixed. ``fps`` / ``size`` default to 15 and 320x240 (8 and
    160x120 for ``motion``)."""
    fps = (8 if by == "motion" else 15) if fps is None else fps
    size = ((160, 120) if by == "motion" else (320, 240)) if size is None else size
    out = Path(out_dir)
    names = class_names(by)
    chosen = list(names) if classes is None else list(dict.fromkeys(classes))
    unknown = [c for c in chosen if c not in names]
    if unknown or not chosen:
        raise ConfigError(f"unknown {by} class(es) {', '.join(unknown) or '(none given)'}; known: {', '.join(names)}")
    if per_class < 1:
        raise ConfigError("per_class must be >= 1")
    if not 0.5 <= seconds <= 600:
        raise ConfigError("seconds must be between 0.5 and 600")
    w, h = int(size[0]), int(size[1])
    if w < 64 or h < 64 or w % 2 or h % 2 or fps < 1:
        raise ConfigError("size must be even and at least 64x64, fps >= 1")
    args: dict[str, Any] = {"generator": GENERATOR, "format_version": FORMAT_VERSION, "by": by, "seed": int(seed),
                            "seconds": round(float(seconds), 3), "fps": int(fps), "size": [w, h]}
    manifest = out / MANIFEST
    old: dict[str, Any] = {}
    if manifest.is_file():
        old = read_json(manifest)
        diff = {k: old.get(k) for k, v in args.items() if old.get(k) != v}
        if diff:
            raise ConfigError(f"{out} holds demo classes made with other settings ({diff}); use another folder")
    out.mkdir(parents=True, exist_ok=True)

    entries = {e["path"]: e for e in old.get("videos", []) if (out / e["path"]).is_file()}
    jobs = [(c, j) for c in chosen for j in range(per_class)]
    with progress_bar("demo classes", enabled=progress) as bar:
        task = bar.add_task(f"{len(jobs)} clips by {by} -> {out}", total=len(jobs))
        for label, j in jobs:
            scene, cam_seed, attrs = _plan(by, label, j, float(seconds), int(seed))
            rel = f"{label}/{_file_name(label, j)}"
            final = out / rel
            if not (final.is_file() and final.stat().st_size > 0):
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp = final.with_name(f".{final.name}.part")
                try:
                    _encode(tmp, scene, cam_seed, float(seconds), int(fps), (w, h))
                    os.replace(tmp, final)
                finally:
                    tmp.unlink(missing_ok=True)
            entries[rel] = {"path": rel, "class": label, **attrs}
            bar.advance(task)
    write_json(manifest, {**args, "videos": [entries[k] for k in sorted(entries)]})
    return manifest
