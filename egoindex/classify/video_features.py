"""Frame, clip and whole-video vectors of one raw video, computed exactly the way the store's are.

Why recompute instead of reading the store: classification runs on videos that are *not* in the
store (an upload, a labelled dataset). For the vectors to be comparable with the store's (and
with what the model was trained on), the pixels and pooling must match the ingest + build path:

* frames are sampled at ``fps`` on the grid ``t_k = k / fps``, decoded byte-for-byte as the
  ingest stores them (short side 256, quality 90) and embedded as ``egoindex build`` does: the one
  raw-video path, :func:`egoindex.model.video.embed_video`;
* clips are the build's sliding windows and membership rule (both call
  :func:`egoindex.model.pooling.pool_clips`), pooled by the store's clip encoder: the L2-normalised
  mean of the member frames, or a clip checkpoint's temporal head over ``num_frames`` of them
  (``Embedder.encode_windows``, as the build does);
* the whole video (or segment) is the L2-normalised mean of its clip vectors: every window counts
  once, whatever its number of frames, and it is the same feature the linear probe trains on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from egoindex.errors import ClassifyError, ModelError, VideoError
from egoindex.media.frames import probe
from egoindex.model.embed import encode_clip_windows
from egoindex.model.pooling import normalised_mean
from egoindex.model.video import DEFAULT_BATCH, embed_video

__all__ = ["VideoFeatures", "clip_pool", "normalised_mean", "features_of_images", "features_of_video"]


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


def clip_pool(times: np.ndarray, vecs: np.ndarray, start: float, end: float, seconds: float,
              stride: float, embedder: Any = None) -> tuple[list[tuple[float, float]], np.ndarray]:
    """The build's clip windows over ``[start, end]`` (offset to ``start``) and their vectors;
    windows without frames are dropped, as ``egoindex build`` does (:func:`egoindex.model.pooling.pool_clips`).

    Vectors: the normalised frame mean, or, when ``embedder`` is a clip model's
    (``embedder.video``), its temporal head over ``num_frames`` of each window's frames, exactly
    as the build makes a clip checkpoint's clips table (both call
    :func:`egoindex.model.embed.encode_clip_windows`)."""
    if seconds <= 0 or stride <= 0:
        raise ClassifyError("clip seconds and stride must be positive")
    try:
        pooled = encode_clip_windows(embedder, times, vecs, start, end, seconds, stride)
    except ModelError as e:
        raise ClassifyError(str(e)) from e
    return pooled.windows, pooled.vectors


def _finish(times: np.ndarray, frames: np.ndarray, start: float, end: float, seconds: float,
            stride: float, embedder: Any = None) -> VideoFeatures:
    if len(times) == 0:
        raise ClassifyError("the video has no frame to classify (shorter than one frame?)")
    windows, clips = clip_pool(times, frames, start, end, seconds, stride, embedder)
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
    vecs = [embedder.encode_pil(list(images[i:i + DEFAULT_BATCH])) for i in range(0, len(images), DEFAULT_BATCH)]
    times = np.arange(len(images), dtype=np.float64) / fps
    return _finish(times, np.concatenate(vecs).astype(np.float32), 0.0, len(images) / fps, clip_seconds, clip_stride,
                   embedder)


def _classify_error(err: VideoError, path: Path) -> ClassifyError:
    """The user's sentence for a video that :func:`embed_video` could not use."""
    if err.kind == "bad-segment":  # start past the end, empty segment: the message says it all
        return ClassifyError(str(err))
    if err.kind == "unreadable":  # the file vanished, PIL cannot read a frame ...
        return ClassifyError(f"cannot read {path.name}: {err}")
    return ClassifyError(f"cannot decode {path.name}: {err}")


def features_of_video(embedder: Any, path: str | Path, *, fps: float, clip_seconds: float, clip_stride: float,
                      start: float | None = None, end: float | None = None) -> VideoFeatures:
    """Decode ``path`` at ``fps`` (optionally only ``[start, end)`` seconds) and embed it
    (:func:`egoindex.model.video.embed_video`, the one raw-video path).

    Raises :class:`ClassifyError` for a missing or undecodable file, an empty segment, or a
    video without a single frame."""
    path = Path(path)
    if fps <= 0:
        raise ClassifyError("fps must be positive")
    if not path.is_file():
        raise ClassifyError(f"video not found (no such file): {path}")
    if start is not None and start < 0:
        raise ClassifyError("start must be >= 0 seconds")
    s = float(start or 0.0)
    try:
        try:
            duration: float | None = float(probe(path).duration)
        except VideoError as err:
            if err.kind != "no-duration":
                raise
            duration = None  # embed_video decodes the whole stream and measures it
        got = embed_video(embedder, path, fps, start=s, end=end, duration=duration)
    except VideoError as err:
        raise _classify_error(err, path) from err
    if duration is None:
        # embed_video's length of a stream without a header duration: its frame count / fps, i.e.
        # one frame interval past the last frame on the k / fps grid (kept when end is None).
        duration = float(got.times.max()) + 1.0 / fps if len(got) else s
    e = float(duration if end is None else min(end, duration))
    return _finish(got.times, got.vectors, s, e, clip_seconds, clip_stride, embedder)
