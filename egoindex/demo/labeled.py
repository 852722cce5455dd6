"""A labeled image set from the demo corpus' ground truth (``egoindex demo-labeled DIR --from VIDEOS``),
for ``egoindex bench forced-choice``.

Every scene of ``ground_truth.json`` shows one object of one colour in one room over ``[start,
end]``; ``per_scene`` frames at the midpoints of equal intervals inside the scene (away from the
cuts) are decoded and saved as ``DIR/<category>/<stem>-<uid8>_<t>.jpg``, the category being the
scene's ``by`` field (``object`` by default, as CVCL's object categories; ``colour``, ``room`` or
``action`` ask what else the model learned: a frame model cannot know the action from one frame,
so ``action`` is a built-in at-chance check), and every one is also a row ``video_uid,time,category``
of ``DIR/labels.csv``, so the same labels work as images (the folder form, embedded by the
store's image tower) and as store frames (the CSV form, the frames' stored vectors).

Frames are decoded by :func:`egoindex.media.sample.frames_at`, which writes the JPEG the ingest
would have stored for that moment (same scaling, same quality), so the folder's images and the
store's frames of the same times agree up to the ingest's frame grid.

With ``shards`` (a SHARDS_DIR) only the videos of its manifest's ``split`` (default val) are
used, and ``video_uid`` is the manifest's: a model trained on the train videos has seen their
frames. Without it every video is used and ``video_uid`` is egoindex's uid of the video's path
(what a plain ``egoindex ingest`` of the corpus folder gives).

Deterministic (same ground truth and arguments, same files), idempotent (an existing image is
kept, not decoded again); ``labels.csv`` is rewritten atomically each run.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import atomic_open, read_json
from egoindex.core.progress import counting
from egoindex.dataset.layout import read_manifest
from egoindex.errors import ConfigError, VideoError
from egoindex.media.discover import video_uid
from egoindex.media.sample import frames_at
from egoindex.metrics.egomcq import clip_frame_times

__all__ = ["CATEGORY_FIELDS", "LABELS_CSV", "scene_times", "write_labeled_set"]

LABELS_CSV = "labels.csv"
#: The ground-truth scene fields a labeled set can be made of.
CATEGORY_FIELDS = ("object", "colour", "room", "action")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def scene_times(start: float, end: float, per_scene: int) -> list[float]:
    """``per_scene`` times at the midpoints of equal intervals over ``[start, end]``
    (:func:`egoindex.metrics.egomcq.clip_frame_times`, the evaluation's rule), ms-rounded for file names."""
    return [round(t, 3) for t in clip_frame_times(float(start), float(end), per_scene)]


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_") or "video"


def _chosen_videos(gt: dict[str, Any], shards: Path | None, split: str) -> list[tuple[dict[str, Any], str]]:
    """(ground-truth video, its store video_uid) of the videos to use."""
    videos = list(gt.get("videos") or [])
    if shards is None:
        return [(v, video_uid(str(v["path"]))) for v in videos]
    rows = read_manifest(shards)
    by_source = {r["source"]: r for r in rows if split == "all" or r.get("split") == split}
    return [(v, by_source[str(v["path"])]["video_uid"]) for v in videos if str(v["path"]) in by_source]


def write_labeled_set(out_dir: str | Path, videos_dir: str | Path, *, shards: str | Path | None = None,
                      split: str = "val", per_scene: int = 2, short_side: int = 256, by: str = "object",
                      progress: bool = False) -> tuple[Path, int, int]:
    """Write the labeled set (see the module doc); returns (labels.csv, images in it, images
    decoded by this run). Raises ConfigError when ``videos_dir`` has no demo ground truth, or
    when no video is left (``--shards`` without a video of ``split``)."""
    if per_scene < 1:
        raise ConfigError(f"--per-scene must be at least 1, got {per_scene}")
    if by not in CATEGORY_FIELDS:
        raise ConfigError(f"--by must be one of {', '.join(CATEGORY_FIELDS)}, got {by!r}")
    vdir = Path(videos_dir)
    gt_path = vdir / "ground_truth.json"
    if not gt_path.is_file():
        raise ConfigError(f"{vdir} has no ground_truth.json (is it an `egoindex demo-data` folder?)")
    gt = read_json(gt_path)
    try:
        chosen = _chosen_videos(gt, Path(shards) if shards is not None else None, split)
        plan: list[tuple[Path, str, list[tuple[float, str, Path]]]] = []
        for v, uid in chosen:
            stem = f"{_safe(Path(str(v['path'])).stem)}-{uid[:8]}"
            todo = []
            for s in v["scenes"]:
                cat = str(s[by]).strip()
                if not cat or "/" in cat or cat.startswith("."):
                    continue
                for t in scene_times(float(s["start"]), float(s["end"]), per_scene):
                    todo.append((t, cat, Path(out_dir) / cat / f"{stem}_{t:.3f}.jpg"))
            plan.append((vdir / str(v["path"]), uid, todo))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{gt_path}: not a demo-corpus ground truth ({type(e).__name__}: {e})") from None
    if not plan:
        raise ConfigError(f"no video of {gt_path} is in the {split} split of {shards}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    decoded = 0
    with counting("labeled frames", len(plan), enabled=progress) as advance:
        for path, _, todo in plan:
            missing = [(t, p) for t, _, p in todo if not p.is_file()]
            if missing:
                try:
                    for i, _, jpeg in frames_at(path, [t for t, _ in missing], short_side=short_side):
                        target = missing[i][1]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with atomic_open(target, "wb") as f:
                            f.write(jpeg)
                        decoded += 1
                except VideoError as e:
                    raise ConfigError(f"{path}: cannot decode the frames ({e})") from None
            advance()
    labels = out / LABELS_CSV
    n = 0
    with atomic_open(labels, "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["video_uid", "time", "category"])
        for _, uid, todo in plan:
            for t, cat, _ in todo:
                w.writerow([uid, f"{t:.3f}", cat])
                n += 1
    return labels, n, decoded
