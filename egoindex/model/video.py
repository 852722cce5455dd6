"""The one path from a raw video to frame embeddings at given times.

Why one path: a video that is not in the store (EgoMCQ and EPIC clips, an upload to classify, an
export whose store frames are too sparse) must still give vectors comparable with the store's, and
that holds only when the pixels and the encoder are those of ``egoindex ingest`` + ``egoindex build``:

* each time ``t`` is decoded with :func:`egoindex.media.sample.frames_at`: the JPEG of the frame on
  screen at ``t``, byte-for-byte what the ingest stores for that moment (default short side 256,
  JPEG quality 90: the ingest's defaults);
* each JPEG goes through :func:`egoindex.model.embed.crop_jpeg` and ``Embedder.encode_crops`` in
  batches of ``batch_size`` frames (bounds memory on hour-long videos), as ``egoindex build`` does.

:func:`embed_video` is the same path on the ingest's sampling grid ``t_k = k / fps``
(:func:`sample_times`), for callers that want "every frame at ``fps``" of a whole video or a segment.

Errors: a missing file, a file without a decodable video stream, a damaged file that fails in a
seek, all raise :class:`~egoindex.errors.VideoError` (``kind`` says which); callers wrap it in their
own error with their context (video uid, command).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from egoindex.errors import VideoError
from egoindex.media.frames import iter_frames, probe
from egoindex.media.sample import frames_at
from egoindex.model.embed import crop_jpeg

__all__ = [
    "DEFAULT_BATCH",
    "INGEST_SHORT_SIDE",
    "INGEST_JPEG_QUALITY",
    "STALE_FRAME_S",
    "VideoFrames",
    "sample_times",
    "embed_jpegs",
    "embed_frames_at",
    "embed_video",
]

#: Frames per forward pass: bounds memory on hour-long videos without slowing short ones.
DEFAULT_BATCH = 64
#: The ingest's frame geometry and JPEG quality (``egoindex ingest`` defaults).
INGEST_SHORT_SIDE = 256
INGEST_JPEG_QUALITY = 90
#: A time served by a frame shown this long before it (and 2 % of the time) is past the decodable
#: end of the video: the file is truncated or its header overstates its length.
STALE_FRAME_S = 1.0

Progress = Callable[[int], None]


@dataclass
class VideoFrames:
    """Embeddings of one video at the asked times, in the caller's order (not sorted)."""

    times: np.ndarray  # [N] float64: the asked times, seconds from the start of the video
    pts: np.ndarray  # [N] float64: presentation time of the frame shown at each time
    vectors: np.ndarray  # [N, D] float32, L2-normalised rows
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.times.shape[0])

    @property
    def decoded_until(self) -> float:
        """Presentation time of the last frame used (0 for no frames)."""
        return float(self.pts.max()) if self.pts.size else 0.0

    @property
    def stale(self) -> int:
        """Times past the decodable end of the video (served by a frame :data:`STALE_FRAME_S`+ older)."""
        lag = self.times - self.pts
        return int(np.sum(lag > np.maximum(STALE_FRAME_S, 0.02 * self.times)))


def sample_times(start: float, end: float, fps: float) -> np.ndarray:
    """The ingest's sample times ``k / fps`` that fall in ``[start, end)``; at least the first one
    at or after ``start`` (a segment shorter than one frame interval still gets its frame).
    For ``start = 0`` this is the ingest's :func:`~egoindex.media.frames.n_samples` grid."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    k0 = int(np.ceil(start * fps - 1e-6))
    k1 = max(k0 + 1, int(np.ceil(end * fps - 1e-6)))
    return np.arange(k0, k1, dtype=np.float64) / fps


def embed_jpegs(embedder: Any, jpegs: Iterable[tuple[int, bytes]], n: int, *, batch_size: int = DEFAULT_BATCH,
                progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embed ``(index, jpeg)`` pairs into rows ``index`` of a [n, D] float32 array, ``batch_size`` per
    forward pass; returns (vectors, mask of the rows filled). ``progress(k)`` after each batch of k."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    vecs = np.zeros((n, int(embedder.dim)), np.float32)
    seen = np.zeros(n, bool)
    batch: list[np.ndarray] = []
    owner: list[int] = []

    def flush() -> None:
        if batch:
            vecs[owner] = embedder.encode_crops(torch.from_numpy(np.stack(batch)))
            seen[owner] = True
            if progress is not None:
                progress(len(batch))
            batch.clear()
            owner.clear()

    for i, jpeg in jpegs:
        batch.append(crop_jpeg(jpeg, embedder.pp))
        owner.append(i)
        if len(batch) >= batch_size:
            flush()
    flush()
    return vecs, seen


def embed_frames_at(
    embedder: Any,
    path: str | Path,
    times: Sequence[float] | np.ndarray,
    *,
    short_side: int = INGEST_SHORT_SIDE,
    jpeg_quality: int = INGEST_JPEG_QUALITY,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> VideoFrames:
    """Decode ``path`` at ``times`` (any order, repeats allowed; decoded once in time order) and
    embed each frame with ``embedder`` (an :class:`~egoindex.model.embed.Embedder`).

    Raises :class:`VideoError` for a missing file (kind ``not-found``), a file without a decodable
    video stream (``empty``, ``unreadable``, ``no-video-stream``, ``no-frames``), or one that fails
    while decoding (``undecodable``)."""
    path = Path(path)
    t = np.asarray(times, np.float64).reshape(-1)
    if not path.is_file():
        raise VideoError("not-found", f"{path}: no such file")
    pts = np.zeros(t.shape[0], np.float64)

    def decoded() -> Iterable[tuple[int, bytes]]:
        for i, pts_time, jpeg in frames_at(path, t.tolist(), short_side=short_side, jpeg_quality=jpeg_quality):
            pts[i] = pts_time
            yield i, jpeg

    try:
        vecs, seen = embed_jpegs(embedder, decoded(), len(t), batch_size=batch_size, progress=progress)
    except av.error.FFmpegError as e:  # a damaged file can fail in a seek, not only in a decode
        raise VideoError("undecodable", f"{path}: {e}") from e
    except OSError as e:  # the file vanished or shrank under us
        raise VideoError("unreadable", f"{path}: {e}") from e
    if not seen.all():
        raise VideoError("no-frames", f"{path}: {int((~seen).sum())} of {len(t)} frames missing")
    out = VideoFrames(t, pts, vecs)
    if out.stale:
        out.warnings.append(f"truncated: {out.stale} of {len(out)} time(s) past the last decodable frame "
                            f"({out.decoded_until:.1f} s)")
    return out


def embed_video(
    embedder: Any,
    path: str | Path,
    fps: float,
    *,
    start: float = 0.0,
    end: float | None = None,
    duration: float | None = None,
    short_side: int = INGEST_SHORT_SIDE,
    jpeg_quality: int = INGEST_JPEG_QUALITY,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> VideoFrames:
    """Embed ``path`` at the ingest's grid ``k / fps`` over ``[start, min(end, duration))``.

    ``duration``: the video's length when the caller knows it (a store's record); otherwise read
    from the headers (:func:`~egoindex.media.frames.probe`).  A container without a duration (a live
    Matroska stream) is decoded whole with :func:`~egoindex.media.frames.iter_frames` -- the same
    timing rule and JPEG encoder, so the same bytes -- and its decoded length is the duration.
    A negative ``start``, one past the end, or an empty segment raise :class:`VideoError` kind
    ``bad-segment``. Other errors as :func:`embed_frames_at`."""
    path = Path(path)
    if not path.is_file():
        raise VideoError("not-found", f"{path}: no such file")
    if start < 0:
        raise VideoError("bad-segment", f"start must be >= 0 seconds, got {start!r}")
    if duration is None:
        try:
            duration = float(probe(path).duration)
        except VideoError as e:
            if e.kind != "no-duration":
                raise
            return _embed_whole(embedder, path, fps, start, end, short_side, jpeg_quality, batch_size, progress)
    stop = _segment_end(start, end, float(duration))
    return embed_frames_at(embedder, path, sample_times(start, stop, fps), short_side=short_side,
                           jpeg_quality=jpeg_quality, batch_size=batch_size, progress=progress)


def _segment_end(start: float, end: float | None, duration: float) -> float:
    stop = duration if end is None else min(float(end), duration)
    if start >= duration:
        raise VideoError("bad-segment", f"start {start:.2f} s is past the end of the video ({duration:.2f} s)")
    if stop <= start:
        raise VideoError("bad-segment", f"empty segment: end {stop:.2f} s is not after start {start:.2f} s")
    return stop


def _embed_whole(embedder: Any, path: Path, fps: float, start: float, end: float | None, short_side: int,
                 jpeg_quality: int, batch_size: int, progress: Progress | None) -> VideoFrames:
    """:func:`embed_video` for a container without a duration: the decoded timestamps are the truth."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    kept: list[tuple[float, float, bytes]] = []
    count = 0
    try:
        for f in iter_frames(path, fps, short_side, jpeg_quality):
            count += 1
            if f.t >= start - 1e-9 and (end is None or f.t < end - 1e-9 or not kept):
                kept.append((f.t, f.pts_time, f.jpeg))
    except av.error.FFmpegError as e:
        raise VideoError("undecodable", f"{path}: {e}") from e
    stop = _segment_end(start, end, count / fps)
    kept = [k for i, k in enumerate(kept) if i == 0 or k[0] < stop - 1e-9]
    vecs, _ = embed_jpegs(embedder, ((i, k[2]) for i, k in enumerate(kept)), len(kept), batch_size=batch_size,
                          progress=progress)
    return VideoFrames(np.array([k[0] for k in kept], np.float64), np.array([k[1] for k in kept], np.float64), vecs)
