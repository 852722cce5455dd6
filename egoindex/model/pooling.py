"""The one clip-window rule: which windows a video has, which frames each holds, and its vector.

The store's ``clips`` table (``egoindex build``) and the features of a raw video
(``egoindex.classify.video_features``) must pool frames into clips the same way, or a probe trained
on one would be evaluated on something else. Both call :func:`pool_clips`.

The rule:

* **windows** (:func:`clip_windows`): ``[k*stride, k*stride + seconds)`` for k = 0, 1, ... until one
  reaches the end of the span; the last one is cut at the end. A span shorter than ``seconds`` has
  one window. Bounds are rounded to the microsecond (they are stored as table values).
* **membership** (:func:`window_mask`): a frame at time ``t`` belongs to ``[s, e)`` when
  ``s <= t < e``; the span's *last* window is closed, ``s <= t <= e``, so the final frame of a video
  is always counted. Comparisons carry a tolerance of ``EPS`` = 1 ns: window bounds are rounded to
  1 µs, so a real frame is never within 1 ns of a bound unless it sits *on* it, and then float noise
  (``start + k/fps`` versus a rounded bound) must not move it across. (The build used exact
  comparisons and closed every window ending at the manifest duration; the classifier used 1 ns
  and closed the window ending at the span. Both now use this rule.)
* **pooling** (:func:`normalised_mean`): the mean of the member vectors, accumulated in float64 and
  scaled to unit length (a zero mean stays zero); windows without frames are dropped.

Pure numpy: no model, no store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from egoindex.errors import ConfigError

#: Tolerance of the membership comparisons (seconds); see the module docstring.
EPS = 1e-9


def clip_windows(duration: float, seconds: float, stride: float) -> list[tuple[float, float]]:
    """Windows ``[k*stride, k*stride + seconds)`` from 0 until one reaches ``duration`` (the last
    is cut at ``duration``); a video shorter than ``seconds`` gives one window."""
    if seconds <= 0 or stride <= 0:
        raise ConfigError("clip seconds and stride must be positive")
    n = 1 + max(0, int(np.ceil((duration - seconds) / stride - 1e-9)))
    return [(round(k * stride, 6), round(min(k * stride + seconds, duration), 6)) for k in range(n)]


def window_mask(times: np.ndarray, start: float, end: float, last: bool) -> np.ndarray:
    """Which of ``times`` belong to the window ``[start, end)`` (``[start, end]`` for the last one)."""
    times = np.asarray(times, np.float64)
    upper = times <= end + EPS if last else times < end - EPS
    return (times >= start - EPS) & upper


def normalised_mean(vecs: np.ndarray) -> np.ndarray:
    """Mean of the rows (accumulated in float64), scaled to unit length (a zero mean stays zero)."""
    v = np.asarray(vecs, np.float64).mean(axis=0)
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)


@dataclass(frozen=True)
class PooledClips:
    """The windows that hold at least one frame, their member frames (indices into the ``times``
    given to :func:`pool_clips`, in index order) and their vectors."""

    windows: list[tuple[float, float]]
    members: list[np.ndarray]
    vectors: np.ndarray  # [M, D] float32, L2-normalised

    @property
    def n_frames(self) -> list[int]:
        """How many frames each window holds."""
        return [len(m) for m in self.members]


def pool_clips(times: np.ndarray, vecs: np.ndarray, start: float, end: float, seconds: float,
               stride: float) -> PooledClips:
    """Clips of the span ``[start, end]`` (windows offset to ``start``) pooled from frames at ``times``.

    The span reaches the last frame when a frame lies past ``end`` (a header duration shorter than
    the decoded stream), so no frame is left out."""
    times = np.asarray(times, np.float64)
    dim = vecs.shape[1]
    span = max(end - start, float(times.max()) - start if len(times) else 0.0)
    grid = clip_windows(span, seconds, stride)
    windows: list[tuple[float, float]] = []
    members: list[np.ndarray] = []
    out: list[np.ndarray] = []
    for i, (s, e) in enumerate(grid):
        s, e = round(start + s, 6), round(start + e, 6)
        m = window_mask(times, s, e, last=i == len(grid) - 1)
        if m.any():
            windows.append((s, e))
            members.append(np.flatnonzero(m))
            out.append(normalised_mean(vecs[m]))
    return PooledClips(windows, members, np.asarray(out, np.float32).reshape(len(out), dim))


# ----------------------------------------------------------------------------------------------
# Frame sampling for clip-level models (one rule for training, validation, build and benchmarks)


def segment_indices(n_available: int, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Which of ``n_available`` time-ordered frames a clip model sees: ``num_frames`` indices.

    TSN-style segments, as EgoVLP, LaViLa and AVION sample: the frames are cut into ``num_frames``
    equal segments; evaluation (``rng`` None) takes each segment's middle frame, training
    (``rng`` given) a uniformly random frame of each segment (a random offset per segment).
    With fewer frames than ``num_frames`` some frames repeat (in time order), so a 1-frame
    utterance still gives a clip of ``num_frames``. Returns int64 indices, non-decreasing.
    """
    if n_available < 1 or num_frames < 1:
        raise ConfigError(f"segment_indices needs n_available >= 1 and num_frames >= 1, got {n_available}, "
                          f"{num_frames}")
    edges = np.arange(num_frames + 1, dtype=np.float64) * (n_available / num_frames)
    if rng is None:
        pos = (edges[:-1] + edges[1:]) / 2
    else:
        pos = edges[:-1] + rng.random(num_frames) * (edges[1:] - edges[:-1])
    return np.minimum(np.floor(pos).astype(np.int64), n_available - 1)


def window_frames(times: np.ndarray, start: float, end: float) -> np.ndarray:
    """Indices (into time-sorted ``times``) of the frames of the moment ``[start, end]`` (closed),
    or, when no frame falls inside (a moment shorter than the frame interval), the one frame
    nearest to its middle. Empty only when ``times`` is."""
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0:
        return np.zeros(0, dtype=np.int64)
    inside = np.flatnonzero((times >= start - EPS) & (times <= end + EPS))
    if inside.size:
        return inside
    return np.array([int(np.argmin(np.abs(times - (start + end) / 2)))], dtype=np.int64)


def clip_frame_indices(times: np.ndarray, start: float, end: float, num_frames: int,
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """``num_frames`` indices into time-sorted ``times`` for the moment ``[start, end]``:
    :func:`window_frames`, then :func:`segment_indices` over them (middles, or random with ``rng``)."""
    members = window_frames(times, start, end)
    if members.size == 0:
        raise ConfigError(f"no frames to sample for the moment {start:.3f}-{end:.3f} s")
    return members[segment_indices(members.size, num_frames, rng)]
