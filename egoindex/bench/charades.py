"""Zero-shot multi-label action recognition, Charades-Ego style (``egoindex bench charades``).

EgoVLP's protocol (``run/test_charades.py``): every class name of ``Charades_v1_classes.txt`` is
a text prompt (the raw name; ``--template`` gives others, e.g. ``"a person {}"``, ensembled by
:func:`egoindex.model.prompts.class_embeddings`, the one rule ``egoindex classify`` uses too),
every video one vector, ``scores = cosine(video, prompt)``, and the metric is Charades'
``charades_map`` (:mod:`egoindex.metrics.charades`) over the videos' multi-hot labels.

* ``level="video"``: one vector per csv row, labels = every class in its ``actions`` (EgoVLP's
  number). ``level="segment"``: one vector per distinct annotated window (video, start, end),
  labels = the classes annotated with exactly that window.
* Vectors: from the store (the L2-normalised mean of the clip vectors of the video, or of its
  clips overlapping the segment) or, with ``videos_dir``, embedded from the raw files
  (:func:`egoindex.bench.videos.embed_clips_from_videos`, ``num_frames`` over the whole video or
  the segment).
* ``generate_demo_files`` writes the demo corpus' files in the Charades format.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.bench.charades_files import (CharadesVideo, demo_charades, read_charades_classes,
                                           read_charades_csv, samples_of, write_charades_classes, write_charades_csv)
from egoindex.bench.mcq import GROUND_TRUTH_FILE
from egoindex.bench.result import BenchResult, report_meta
from egoindex.bench.store_rows import read_vectors
from egoindex.bench.videos import embed_clips_from_videos, normalise_rows, store_video_resolver
from egoindex.core.fsutil import sha256_file
from egoindex.core.report import new_figure, save_figure, write_report
from egoindex.errors import BenchError, ModelError
from egoindex.media.discover import video_uid
from egoindex.metrics.charades import charades_metrics
from egoindex.model.prompts import NAME_ONLY_TEMPLATES, check_templates, class_embeddings
from egoindex.store.filters import in_list

__all__ = ["DEFAULT_TEMPLATES", "generate_demo_files", "run_charades"]

#: EgoVLP's prompt: the raw class name (:data:`egoindex.model.prompts.NAME_ONLY_TEMPLATES`).
DEFAULT_TEMPLATES: tuple[str, ...] = NAME_ONLY_TEMPLATES


def store_sample_vectors(store: Any, samples: Sequence[tuple[str, float | None, float | None]]) -> np.ndarray:
    """Each sample's vector from the store's clips: the normalised mean of the video's clips
    (whole video) or of its clips overlapping [start, end] (containing it, for a zero-length one)."""
    vids = sorted({s[0] for s in samples})
    clips: dict[str, list[tuple[float, float, np.ndarray]]] = {}
    for i in range(0, len(vids), 256):
        rows, vecs = read_vectors(store, "clips", ["video_uid", "start", "end"], in_list("video_uid", vids[i:i + 256]))
        for r, v in zip(rows, vecs):
            clips.setdefault(r["video_uid"], []).append((float(r["start"]), float(r["end"]), v))
    missing = [v for v in vids if v not in clips]
    if missing:
        raise BenchError(f"{len(missing)} of the {len(vids)} videos are not in the store (e.g. {missing[0]!r}; the csv "
                         "id must be the store's video_uid); embed them from the raw files with --videos DIR")
    out = np.zeros((len(samples), store.dim), np.float32)
    for i, (vid, s, e) in enumerate(samples):
        cs = clips[vid]
        if s is not None and e is not None:
            cs = [c for c in cs if max(c[0], s) < min(c[1], e) or (s == e and c[0] <= s <= c[1])]
            if not cs:
                raise BenchError(f"no store clip of video {vid} overlaps its segment {s:.2f}-{e:.2f} s")
        out[i] = np.mean([c[2] for c in cs], axis=0)
    return normalise_rows(out)


def raw_sample_vectors(store: Any, samples: Sequence[tuple[str, float | None, float | None]],
                       videos: Sequence[CharadesVideo], videos_dir: str | Path, **embed: Any) -> np.ndarray:
    """Each sample's vector embedded from ``DIR/{id}.mp4``: frames over [0, length] (the csv's
    ``length``, else the store's duration) or over the segment."""
    lengths = {v.id: v.length for v in videos}
    windows = []
    for vid, s, e in samples:
        if s is None or e is None:
            length = lengths.get(vid)
            if length is None:
                row = store.videos.get(vid)
                length = row.get("duration") if row else None
            if not length or length <= 0:
                raise BenchError(f"video {vid} has no length in the csv (column 'length') and is not in the store")
            s, e = 0.0, float(length)
        windows.append((vid, float(s), float(e)))
    return embed_clips_from_videos(store.embedder, windows, store_video_resolver(store, videos_dir), **embed)


def _plot_ap(ids: Sequence[str], aps: np.ndarray, m_ap: float, chance: float) -> Any:
    def draw(path: Path) -> None:
        fig = new_figure((max(6.0, 0.12 * len(ids)), 4.0))
        ax = fig.subplots()
        vals = np.nan_to_num(100.0 * np.asarray(aps, np.float64), nan=0.0)
        ax.bar(range(len(ids)), vals, color=["tab:blue" if np.isfinite(a) else "lightgrey" for a in aps])
        step = max(1, len(ids) // 40)
        ax.set_xticks(range(0, len(ids), step), [ids[i] for i in range(0, len(ids), step)], rotation=90, fontsize=6)
        ax.axhline(m_ap, color="tab:orange", label=f"mAP {m_ap:.1f}")
        ax.axhline(chance, color="tab:green", linestyle="--", label=f"chance {chance:.1f}")
        ax.set_ylabel("AP (%)")
        ax.set_title("per-class AP (grey: no positive, not counted)")
        ax.legend()
        save_figure(fig, path)
    return draw


def run_charades(store: Any, annotations: str | Path, classes: str | Path, out_dir: str | Path, *,
                 level: str = "video", templates: Sequence[str] = DEFAULT_TEMPLATES,
                 videos_dir: str | Path | None = None, num_frames: int = 4, short_side: int = 256,
                 batch_size: int = 64, name: str | None = None, progress: bool = False) -> BenchResult:
    """Zero-shot Charades(-Ego) mAP of the store's model (see the module doc); writes NAME.json,
    NAME.md and NAME_ap.png (per-class AP) to ``out_dir``."""
    try:  # before any video is embedded
        templates = check_templates(templates)
    except ModelError as e:
        raise BenchError(f"--template: {e}") from None
    videos = read_charades_csv(annotations)
    cls = read_charades_classes(classes)
    if not videos:
        raise BenchError(f"{annotations} has no rows")
    ids, names = [c for c, _ in cls], [n for _, n in cls]
    samples, gt = samples_of(videos, ids, level)
    if not samples:
        raise BenchError(f"{annotations} has no annotated segments")
    if videos_dir is not None:
        v = raw_sample_vectors(store, samples, videos, videos_dir, num_frames=num_frames, short_side=short_side,
                               batch_size=batch_size, progress=progress)
        source = "raw video"
    else:
        v = store_sample_vectors(store, samples)
        source = "store clips (normalised mean)"
    try:
        t = class_embeddings(store.embedder, names, templates)
    except ModelError as e:
        raise BenchError(f"{classes}: {e}") from None
    scores = v @ t.T
    try:
        metrics, aps = charades_metrics(scores, gt)
    except ValueError as e:
        raise BenchError(f"{annotations}: {e}") from e
    name = name or f"charades_{level}"
    settings: dict[str, Any] = {"num_frames": num_frames, "short_side": short_side,
                                "videos": str(Path(videos_dir).resolve())} if videos_dir is not None else {}
    meta = report_meta(store, "charades", level=level, annotations=str(Path(annotations).resolve()),
                       annotations_sha256=sha256_file(annotations), classes=str(Path(classes).resolve()),
                       classes_sha256=sha256_file(classes), templates=list(templates), vectors=source,
                       metric="charades_map: per-class AP over samples, mean over classes with a positive; "
                              "ties in file order; chance = exact expected mAP of random scores", **settings)
    n_pos = gt.sum(axis=0)
    table = [{"class": c, "name": n, "positives": int(p), "AP": 100.0 * a if np.isfinite(a) else None}
             for c, n, p, a in zip(ids, names, n_pos, aps)]
    written = write_report(out_dir, name, metrics, meta, tables={"classes": table},
                           plots={"ap": _plot_ap(ids, aps, float(metrics["mAP"]), float(metrics["chance_mAP"]))})
    return BenchResult(name, metrics, meta, written)


def generate_demo_files(store: Any, out_dir: str | Path, objects: Sequence[str], actions: Sequence[str], *,
                        split: str = "val", name: str = "charades_demo") -> tuple[Path, Path]:
    """Write ``{name}_{split}.csv`` and ``{name}_classes.txt`` for the store's ``split`` videos
    (``all``: every video) from the demo ground truth in the store's videos root; returns both paths."""
    root = store.meta.videos_root
    gt_path = Path(root) / GROUND_TRUTH_FILE if root else None
    if gt_path is None or not gt_path.is_file():
        raise BenchError(f"--generate needs the demo corpus' {GROUND_TRUTH_FILE} in the store's videos root "
                         f"({root or 'none recorded'})")
    try:
        gt = json.loads(gt_path.read_text(encoding="utf-8"))
        paths = [v["path"] for v in gt["videos"]]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise BenchError(f"{gt_path}: not a readable demo ground truth ({type(e).__name__}: {e})") from None
    chosen = {}
    for p in paths:
        row = store.videos.get(video_uid(p))
        if row is not None and (split == "all" or row.get("split") == split):
            chosen[p] = video_uid(p)
    if not chosen:
        raise BenchError(f"the store has no {split} video of the demo ground truth")
    rows, classes = demo_charades(gt, chosen, objects, actions)
    out = Path(out_dir)
    return (write_charades_csv(out / f"{name}_{split}.csv", rows),
            write_charades_classes(out / f"{name}_classes.txt", classes))
