"""Frame, clip and whole-video vectors of one raw video, computed exactly the way the store's are.

Why recompute instead of reading the store: classification runs on videos that are *not* in the
store (an upload, a labelled dataset). For the vectors to be comparable with the store's (and
with what the model was trained on), the pixels and pooling must match the ingest + build path:

* frames are sampled at ``fps`` on the grid ``t_k = k / fps`` and decoded with
  :func:`egoindex.media.sample.frames_at`, which returns byte-for-byte the JPEG the ingest stores
  for that moment (short side 256, quality 90);
* each JPEG goes through :func:`egoindex.model.embed.crop_jpeg` and ``Embedder.encode_crops``, as in
  ``egoindex build``;
* clips are the build's sliding windows (:func:`egoindex.build.run.clip_windows`, same membership
  rule as ``clip_rows``) with vector = L2-normalised mean of the member frames;
* the whole video (or segment) is the L2-normalised mean of its clip vectors: every window counts
  once, whatever its number of frames, and it is the same feature the linear probe trains on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from egoindex.errors import ClassifyError

__all__ = ["VideoFeatures", "clip_pool", "normalised_mean", "sample_times", "features_of_images", "features_of_video"]

#: Frames per forward pass: bounds memory on hour-long videos without slowing short ones.
EMBED_BATCH = 64
#: The ingest's frame geometry and JPEG quality (``egoindex ingest`` defaults).
INGEST_SHORT_SIDE = 256
INGEST_JPEG_QUALITY = 90


@dataclass
class VideoFeatures:
    """Vectors of one video (or one segment of it). All vectors are float32 and L2-normalised."""

    times: np.ndarray  # [N] sample times in seconds from the start of the video
    frames: np.ndarray  # [N, D]
    windows: list[tuple[float, float]]  # [M] clip windows (start, end) that hold at least one frame
    clips: np.ndarray  # [M, D]
    video: np.ndarray  # [D]
    start: float
    end: float

    @property
    def n_frames(self) -> int:
        return int(self.times.shape[0])


def normalised_mean(vecs: np.ndarray) -> np.ndarray:
    """Mean of the rows, scaled to unit length (a zero mean stays zero)."""
    v = np.asarray(vecs, np.float64).mean(axis=0)
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)


def sample_times(start: float, end: float, fps: float) -> np.ndarray:
    """The ingest's sample times ``k / fps`` that fall in ``[start, end)``; at least the first one
    at or after ``start`` (a segment shorter than one frame interval still gets its frame)."""
    k0 = int(np.ceil(start * fps - 1e-6))
    k1 = max(k0 + 1, int(np.ceil(end * fps - 1e-6)))
    return np.arange(k0, k1, dtype=np.float64) / fps


def clip_pool(times: np.ndarray, vecs: np.ndarray, start: float, end: float, seconds: float,
              stride: float) -> tuple[list[tuple[float, float]], np.ndarray]:
    """The build's clip windows over ``[start, end]`` (offset to ``start``) and their vectors;
    windows without frames are dropped, as ``egoindex build`` does."""
    from egoindex.build.run import clip_windows

    if seconds <= 0 or stride <= 0:
        raise ClassifyError("clip seconds and stride must be positive")
    dim = vecs.shape[1]
    span = max(end - start, float(times.max() - start) if len(times) else 0.0)
    windows: list[tuple[float, float]] = []
    out: list[np.ndarray] = []
    for s, e in clip_windows(span, seconds, stride):
        s, e = round(start + s, 6), round(start + e, 6)
        last = e >= start + span - 1e-6
        m = (times >= s - 1e-9) & ((times <= e + 1e-9) if last else (times < e - 1e-9))
        if m.any():
            windows.append((s, e))
            out.append(normalised_mean(vecs[m]))
    return windows, np.asarray(out, np.float32).reshape(len(out), dim)


def _finish(times: np.ndarray, frames: np.ndarray, start: float, end: float, seconds: float,
            stride: float) -> VideoFeatures:
    if len(times) == 0:
        raise ClassifyError("the video has no frame to classify (shorter than one frame?)")
    windows, clips = clip_pool(times, frames, start, end, seconds, stride)
    return VideoFeatures(times, frames, windows, clips, normalised_mean(clips), start, end)


def features_of_images(embedder: Any, images: Sequence[Image.Image], *, fps: float, clip_seconds: float,
                       clip_stride: float) -> VideoFeatures:
    """Features of frames that are already decoded (PIL images ``1 / fps`` apart from t = 0):
    for callers that hold pixels rather than a file. Geometry as for query images
    (``Embedder.encode_pil``), so results match a file's only up to JPEG rounding."""
    if fps <= 0:
        raise ClassifyError("fps must be positive")
    if not images:
        raise ClassifyError("no frames given")
    vecs = [embedder.encode_pil(list(images[i:i + EMBED_BATCH])) for i in range(0, len(images), EMBED_BATCH)]
    times = np.arange(len(images), dtype=np.float64) / fps
    return _finish(times, np.concatenate(vecs).astype(np.float32), 0.0, len(images) / fps, clip_seconds, clip_stride)


def _decoded(path: Path, times: np.ndarray) -> Iterator[tuple[int, bytes]]:
    from egoindex.media.sample import frames_at

    for i, _pts, jpeg in frames_at(path, times.tolist(), short_side=INGEST_SHORT_SIDE, jpeg_quality=INGEST_JPEG_QUALITY):
        yield i, jpeg


def _duration(path: Path) -> float | None:
    """Header duration, or None when the container does not say (then every frame is decoded)."""
    from egoindex.media.frames import VideoError, probe

    try:
        return probe(path).duration
    except VideoError as e:
        if e.kind == "no-duration":
            return None
        raise


def features_of_video(embedder: Any, path: str | Path, *, fps: float, clip_seconds: float, clip_stride: float,
                      start: float | None = None, end: float | None = None) -> VideoFeatures:
    """Decode ``path`` at ``fps`` (optionally only ``[start, end)`` seconds) and embed it.

    Raises :class:`ClassifyError` for a missing or undecodable file, an empty segment, or a
    video without a single frame."""
    import av
    import torch

    from egoindex.model.embed import crop_jpeg
    from egoindex.media.frames import VideoError, iter_frames

    path = Path(path)
    if fps <= 0:
        raise ClassifyError("fps must be positive")
    if not path.is_file():
        raise ClassifyError(f"video not found (no such file): {path}")
    if start is not None and start < 0:
        raise ClassifyError("start must be >= 0 seconds")
    try:
        duration = _duration(path)
        if duration is None:  # no header duration: the decoded timestamps are the truth
            frames = list(iter_frames(path, fps, INGEST_SHORT_SIDE, INGEST_JPEG_QUALITY))
            duration = len(frames) / fps
            all_times = np.array([f.t for f in frames], np.float64)
            jpeg_of = {round(f.t, 6): f.jpeg for f in frames}
        else:
            jpeg_of = None
        s = float(start or 0.0)
        e = float(duration if end is None else min(end, duration))
        if s >= duration:
            raise ClassifyError(f"start {s:.2f} s is past the end of the video ({duration:.2f} s)")
        if e <= s:
            raise ClassifyError(f"empty segment: end {e:.2f} s is not after start {s:.2f} s")
        if jpeg_of is not None:
            times = all_times[(all_times >= s - 1e-9) & (all_times < e - 1e-9)]
            if len(times) == 0:
                times = all_times[all_times >= s - 1e-9][:1]
            pairs: Iterator[tuple[int, bytes]] = ((i, jpeg_of[round(float(t), 6)]) for i, t in enumerate(times))
        else:
            times = sample_times(s, e, fps)
            pairs = _decoded(path, times)
        vecs = np.zeros((len(times), int(embedder.dim)), np.float32)
        seen = np.zeros(len(times), bool)
        batch: list[np.ndarray] = []
        owner: list[int] = []

        def flush() -> None:
            if batch:
                vecs[owner] = embedder.encode_crops(torch.from_numpy(np.stack(batch)))
                seen[owner] = True
                batch.clear()
                owner.clear()

        for i, jpeg in pairs:
            batch.append(crop_jpeg(jpeg, embedder.pp))
            owner.append(i)
            if len(batch) >= EMBED_BATCH:
                flush()
        flush()
    except VideoError as err:
        raise ClassifyError(f"cannot decode {path.name}: {err}") from err
    except av.error.FFmpegError as err:  # a damaged file can fail in a seek, not only in a decode
        raise ClassifyError(f"cannot decode {path.name}: {err}") from err
    except OSError as err:  # PIL cannot read a frame, file vanished ...
        raise ClassifyError(f"cannot read {path.name}: {err}") from err
    if not seen.all():
        raise ClassifyError(f"cannot decode {path.name}: {int((~seen).sum())} of {len(times)} frames missing")
    return _finish(times, vecs, s, e, clip_seconds, clip_stride)
