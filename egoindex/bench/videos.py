"""Clip vectors from raw videos, for benchmark clips that are not in the store (official EgoMCQ,
EPIC-Kitchens MIR), and where the benchmarks find those videos on disk.

A clip's vector: ``num_frames`` frames at the midpoints of equal intervals over [start, end]
(:func:`egoindex.metrics.egomcq.clip_frame_times`), each decoded exactly as ``egoindex ingest``
stores frames and embedded with the store's image tower by the one raw-video path
(:func:`egoindex.model.video.embed_frames_at`); the clip vector is the embedder's clip encoder over
those frames (``Embedder.encode_clips``: a clip checkpoint's temporal head, else the L2-normalised
mean), the same encoder the store's clips table was made with.
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

__all__ = ["clip_frames_for", "embed_clips_from_videos", "epic_video_resolver", "normalise_rows", "store_video_resolver"]


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


def clip_frames_for(embedder: Any, num_frames: int | None) -> int:
    """Frames per clip for ``embedder``: ``num_frames``, else the clip model's own (4 for a frame
    model). A clip model sees at most its ``num_frames`` (its position embeddings), so more is refused."""
    own = getattr(embedder, "num_frames", None)
    n = int(num_frames if num_frames is not None else (own or 4))
    if n < 1:
        raise BenchError(f"num_frames must be >= 1, got {n}")
    if own is not None and n > own:
        raise BenchError(f"the store's clip model pools at most {own} frames per clip; asked for {n} "
                         f"(use --num-frames {own} or fewer)")
    return n


def embed_clips_from_videos(
    embedder: Any,
    clips: Sequence[tuple[str, float, float]],
    resolve: Callable[[str], Path],
    num_frames: int | None = 4,
    short_side: int = 256,
    batch_size: int = 64,
    progress: bool = False,
    reverse: bool = False,
) -> np.ndarray:
    """Clip vectors [len(clips), D] for (video key, start, end) triples: ``num_frames`` frames at
    the midpoints of equal intervals over [start, end] (None: the clip model's own number), decoded
    like the ingest does, embedded with ``embedder``'s image tower and pooled by its clip encoder
    (``Embedder.encode_clips``: a clip model's temporal head, else the normalised mean), so they are
    comparable with the store's clips table. ``reverse`` pools each clip's frames in reverse time
    order (motion-direction probes: a temporal head can tell the two apart, a mean cannot).
    Each video is decoded once (its frames in time order, seeking over long gaps); identical clips
    are embedded once."""
    n_frames = clip_frames_for(embedder, num_frames)
    unique: dict[tuple[str, float, float], int] = {}
    for c in clips:
        unique.setdefault((str(c[0]), float(c[1]), float(c[2])), len(unique))
    by_video: dict[str, list[tuple[int, float, float]]] = {}
    for (vid, s, e), j in unique.items():
        by_video.setdefault(vid, []).append((j, s, e))
    dim = int(embedder.dim)
    frames = np.zeros((len(unique), n_frames, dim), np.float32)  # each clip's frame vectors, time order
    paths = {vid: resolve(vid) for vid in sorted(by_video)}  # fail before any decoding

    with counting("decode + embed clips", len(unique), enabled=progress) as advance:
        for vid in sorted(by_video):
            times: list[float] = []
            for _j, s, e in by_video[vid]:
                times += clip_frame_times(s, e, n_frames)
            try:
                got = embed_frames_at(embedder, paths[vid], times, short_side=short_side, batch_size=batch_size)
            except VideoError as e:
                raise BenchError(f"cannot decode {paths[vid]} (video {vid}): {e}") from e
            owners = np.asarray([j for j, _s, _e in by_video[vid]], np.int64)
            frames[owners] = np.asarray(got.vectors, np.float32).reshape(len(owners), n_frames, dim)
            advance(len(by_video[vid]))
    if reverse:
        frames = frames[:, ::-1]
    vecs = normalise_rows(embedder.encode_clips(np.ascontiguousarray(frames)))
    return vecs[[unique[(str(c[0]), float(c[1]), float(c[2]))] for c in clips]]
