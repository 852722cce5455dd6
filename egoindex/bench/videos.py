"""Clip vectors from raw videos, for benchmark clips that are not in the store (official EgoMCQ,
EPIC-Kitchens MIR), and where the benchmarks find those videos on disk.

A clip's vector: ``num_frames`` frames at the midpoints of equal intervals over [start, end]
(:func:`egoindex.metrics.egomcq.clip_frame_times`), each decoded exactly as ``egoindex ingest``
stores frames and embedded with the store's image tower by the one raw-video path
(:func:`egoindex.model.video.embed_frames_at`); the clip vector is the L2-normalised mean of the
frame vectors, the same pooling the store uses for its clips table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.core.progress import counting
from egoindex.errors import BenchError, VideoError
from egoindex.media.discover import VIDEO_SUFFIXES
from egoindex.metrics.egomcq import clip_frame_times
from egoindex.model.video import embed_frames_at

__all__ = ["embed_clips_from_videos", "epic_video_resolver", "normalise_rows", "store_video_resolver"]


def normalise_rows(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    v = np.asarray(v, np.float32)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def store_video_resolver(store: Any | None, videos_dir: str | Path | None) -> Callable[[str], Path]:
    """``video_uid -> file``: ``DIR/{video_uid}.mp4`` (Ego4D's layout; other usual suffixes too),
    else, for a uid in the store's videos table, its source path under ``videos_dir``, else under
    the store's ``videos_root``. Raises BenchError naming the places tried."""
    vdir = Path(videos_dir) if videos_dir else None

    def resolve(uid: str) -> Path:
        tried: list[Path] = []
        if vdir is not None:
            tried += [vdir / f"{uid}{ext}" for ext in VIDEO_SUFFIXES]
        row = store.videos.get(uid) if store is not None else None
        if row is not None and row.get("source"):
            if vdir is not None:
                tried.append(vdir / row["source"])
            root = store.meta.videos_root
            if root:
                tried.append(Path(root) / row["source"])
        for p in tried:
            if p.is_file():
                return p
        raise BenchError(f"no video file for {uid}: tried {', '.join(str(p) for p in tried) or 'nothing (no --videos)'}")

    return resolve


def epic_video_resolver(videos_dir: str | Path, participants: Mapping[str, str]) -> Callable[[str], Path]:
    """``video_id -> file``: ``DIR/{video_id}.MP4`` (any usual suffix), or EPIC's download layouts
    ``DIR/{participant}/{video_id}.MP4`` and ``DIR/{participant}/videos/{video_id}.MP4``."""
    vdir = Path(videos_dir)

    def resolve(video_id: str) -> Path:
        pid = participants.get(video_id) or video_id.split("_")[0]
        tried = []
        for base in (vdir, vdir / pid, vdir / pid / "videos"):
            for ext in VIDEO_SUFFIXES:
                p = base / f"{video_id}{ext}"
                tried.append(p)
                if p.is_file():
                    return p
        raise BenchError(f"no video file for {video_id}: tried {tried[0]}, {tried[len(VIDEO_SUFFIXES)]} and "
                         f"{tried[2 * len(VIDEO_SUFFIXES)]} (and other suffixes)")

    return resolve


def embed_clips_from_videos(
    embedder: Any,
    clips: Sequence[tuple[str, float, float]],
    resolve: Callable[[str], Path],
    num_frames: int = 4,
    short_side: int = 256,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Clip vectors [len(clips), D] for (video key, start, end) triples: ``num_frames`` frames at
    the midpoints of equal intervals over [start, end], decoded like the ingest does, embedded
    with ``embedder``'s image tower, mean-pooled and L2-normalised. Each video is decoded once
    (its frames in time order, seeking over long gaps); identical clips are embedded once."""
    unique: dict[tuple[str, float, float], int] = {}
    for c in clips:
        unique.setdefault((str(c[0]), float(c[1]), float(c[2])), len(unique))
    by_video: dict[str, list[tuple[int, float, float]]] = {}
    for (vid, s, e), j in unique.items():
        by_video.setdefault(vid, []).append((j, s, e))
    dim = int(embedder.dim)
    sums = np.zeros((len(unique), dim), np.float64)
    paths = {vid: resolve(vid) for vid in sorted(by_video)}  # fail before any decoding

    with counting("decode + embed clips", len(unique), enabled=progress) as advance:
        for vid in sorted(by_video):
            owners: list[int] = []
            times: list[float] = []
            for j, s, e in by_video[vid]:
                for t in clip_frame_times(s, e, num_frames):
                    owners.append(j)
                    times.append(t)
            try:
                got = embed_frames_at(embedder, paths[vid], times, short_side=short_side, batch_size=batch_size)
            except VideoError as e:
                raise BenchError(f"cannot decode {paths[vid]} (video {vid}): {e}") from e
            np.add.at(sums, np.asarray(owners), got.vectors.astype(np.float64))
            advance(len(by_video[vid]))
    vecs = normalise_rows(sums)
    return vecs[[unique[(str(c[0]), float(c[1]), float(c[2]))] for c in clips]]
