"""The official Ego4D feature time grid, pooling onto it, and the baselines' index arithmetic.

Why this module exists: the Ego4D NLQ / MQ baselines never look at timestamps of individual
features.  They assume feature ``i`` of a video stands for a fixed slot of time and convert
seconds to row indices with their own formulas.  Our frame embeddings are sampled at whatever
rate ingest used (often 1-2 fps), so to be a drop-in replacement for the official features we
must (1) produce exactly as many rows as the official extractor would for the same video, each
row describing the same stretch of time, and (2) never emit a row without content.

Official facts used here (read from the public sources named):

* Extraction grid -- ``facebookresearch/Ego4d``, ``ego4d/features/config.py``
  (``InferenceConfig``: ``fps = 30``, ``frame_window = 32``, ``stride = 16``) and
  ``ego4d/features/dataset.py`` (``create_dset``: pytorchvideo ``UniformClipSampler`` with
  ``clip_duration = Fraction(32, 30)``, ``stride = Fraction(16, 30)``, ``backpad_last=True``).
  The Ego4D docs page "Features" (``EGO4D/docs``, ``data/features/index.html``): canonical
  videos are 30 fps; "at frame i the model sees frames [i, i + W)"; "the last window may extend
  past the video. In this case, the extraction point is backed up such that a window with W
  frames from the video is used"; example: 39 frames -> windows [0, 31] and [7, 38].
* Number of features -- ``facebookresearch/Ego4d``, ``ego4d/features/extract_features.py``,
  ``_num_fvs`` (the count the extractor asserts against what the sampler produced)::

      N = num_frames - window_size_frames
      if N < 0: return 1
      result = N // stride_frames + 1
      if backpad_last and N % stride_frames != 0: result += 1

  where ``num_frames`` is the manifest's ``canonical_num_frames`` (``ego4d/features/config.py``,
  ``_uid_to_info``).  So a 480 s video (14400 frames) has 899 features; the published MQ
  ``clip_annotations_split.json`` (``EGO4D/episodic-memory``, ``MQ/Evaluation/ego4d/annot/``)
  agrees: ``v_duration 1563.13, fps 1.8744442240888473`` -> T = 2930 = ``_num_fvs(46894)``.
* Features per second -- ``EGO4D/episodic-memory``, ``NLQ/VSLNet/utils/prepare_ego4d_dataset.py``:
  ``FEATURES_PER_SEC = CANONICAL_VIDEO_FPS / FEATURE_WINDOW_SIZE = 30.0 / 16.0 = 1.875``.
* ``time_to_index`` -- ``EGO4D/episodic-memory``, ``NLQ/VSLNet/utils/data_util.py``
  (``compute_overlap`` and ``time_to_index``, lines ~84-123 at commit 0480698).
* VSGN slicing -- ``EGO4D/episodic-memory``, ``MQ/Utils/dataset.py``, ``_get_video_data``:
  ``fps_v = num_frms_v / v_duration`` (newer versions read the same number from
  ``clip_info['fps']``), ``clip_start = int(parent_start_sec * fps_v)``,
  ``clip_end = min(int(parent_end_sec * fps_v), num_frms_v - 1)``, rows
  ``[clip_start : clip_end + 1]``, then zero-padded / truncated to ``temporal_scale`` (928).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "encode_windows",
    "window_members",
    "OFFICIAL_FPS",
    "OFFICIAL_WINDOW",
    "OFFICIAL_STRIDE",
    "FEATURE_RATE",
    "VSGN_TEMPORAL_SCALE",
    "num_frames",
    "num_features_from_frames",
    "num_features",
    "feature_windows",
    "pool_windows",
    "time_to_index",
    "index_to_time",
    "vslnet_clip_slice",
    "mq_slice",
]

#: Canonical Ego4D videos are 30 fps (Ego4D docs, "Features").
OFFICIAL_FPS = 30
#: Frames seen by the video model per feature (``InferenceConfig.frame_window``).
OFFICIAL_WINDOW = 32
#: Frames between consecutive feature windows (``InferenceConfig.stride``).
OFFICIAL_STRIDE = 16
#: Features per second on the official grid: 30 / 16 = 1.875 (``FEATURES_PER_SEC`` in VSLNet).
FEATURE_RATE = OFFICIAL_FPS / OFFICIAL_STRIDE
#: VSGN's default ``temporal_scale``: clips are padded / truncated to this many feature rows.
VSGN_TEMPORAL_SCALE = 928


def _check_grid(fps: float, window: int, stride: int) -> None:
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive whole number of frames, got {window!r}")
    if int(stride) != stride or stride < 1 or stride > window:
        # pytorchvideo's UniformClipSampler asserts 0 < stride <= clip_duration as well.
        raise ValueError(f"stride must be a whole number of frames in [1, window], got {stride!r}")


def num_frames(duration_s: float, fps: float = OFFICIAL_FPS) -> int:
    """Frames in a ``duration_s`` video at ``fps``, as Ego4D counts them (``canonical_num_frames``).

    Ego4D's metadata gives ``duration_sec`` as the frame count / 30 rounded to two decimals, so
    rounding half up inverts it exactly (1563.13 s -> 46894 frames; truncating would give 46893,
    i.e. 1563.10 s).  At least one frame, because a video that exists has a first frame.
    """
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration_s!r}")
    _check_grid(fps, OFFICIAL_WINDOW, OFFICIAL_STRIDE)
    return max(1, int(math.floor(duration_s * fps + 0.5)))


def num_features_from_frames(frames: int, window: int = OFFICIAL_WINDOW, stride: int = OFFICIAL_STRIDE) -> int:
    """``_num_fvs`` of ``ego4d/features/extract_features.py`` with ``backpad_last=True``.

    Kept separate from :func:`num_features` so tests can check it against a frame-exact
    simulation of pytorchvideo's sampler for every frame count.
    """
    if int(frames) != frames or frames < 1:
        raise ValueError(f"frames must be a positive whole number, got {frames!r}")
    _check_grid(1.0, window, stride)
    n = int(frames) - int(window)
    if n < 0:
        return 1  # one (over-long) window; the official count says 1 as well
    result = n // int(stride) + 1
    if n % int(stride) != 0:
        result += 1  # the back-padded last window that covers the tail
    return result


def num_features(
    duration_s: float, fps: float = OFFICIAL_FPS, window: int = OFFICIAL_WINDOW, stride: int = OFFICIAL_STRIDE
) -> int:
    """How many feature rows the official extractor writes for a ``duration_s`` video.

    ``frames = round_half_up(duration_s * fps)`` (:func:`num_frames`), then
    ``N = frames - window``; ``1 if N < 0 else N // stride + 1 + (N % stride != 0)``
    (``_num_fvs``, ``facebookresearch/Ego4d`` ``ego4d/features/extract_features.py``).
    Examples at 30 fps / 32 / 16: 32 frames -> 1, 33 -> 2, 39 -> 2, 8 s -> 14, 480 s -> 899.

    ``fps`` is the *grid's* frame rate (30 for the official grid), not the rate our own frames
    were sampled at: the grid only defines which stretch of time each row stands for.
    """
    _check_grid(fps, window, stride)
    return num_features_from_frames(num_frames(duration_s, fps), window, stride)


def feature_windows(
    duration_s: float, fps: float = OFFICIAL_FPS, window: int = OFFICIAL_WINDOW, stride: int = OFFICIAL_STRIDE
) -> np.ndarray:
    """``[N, 2]`` float64 (start_s, end_s) of the video stretch each official feature row sees.

    Row ``i`` covers frames ``[i * stride, i * stride + window)``; when the frame count leaves a
    remainder the last row is backed up to ``[frames - window, frames)`` (Ego4D docs: 39 frames
    -> [0, 31], [7, 38]).  Seconds are frame numbers / ``fps``, clipped to ``[0, duration_s]``,
    and the last row always ends exactly at ``duration_s`` so the tail of the video is covered
    even when ``duration_s * fps`` is not a whole number of frames.
    """
    n_rows = num_features(duration_s, fps, window, stride)
    frames = num_frames(duration_s, fps)
    starts = np.arange(n_rows, dtype=np.float64) * stride
    ends = starts + window
    if frames - window >= 0 and (frames - window) % stride != 0:
        starts[-1] = frames - window
        ends[-1] = frames
    out = np.stack([starts, ends], axis=1) / float(fps)
    out = np.clip(out, 0.0, float(duration_s))
    out[-1, 1] = float(duration_s)
    return out


def _nearest(times_sorted: np.ndarray, t: float) -> int:
    """Index of the sorted time closest to ``t`` (ties go to the earlier frame)."""
    j = int(np.searchsorted(times_sorted, t, side="left"))
    if j <= 0:
        return 0
    if j >= len(times_sorted):
        return len(times_sorted) - 1
    return j - 1 if (t - times_sorted[j - 1]) <= (times_sorted[j] - t) else j


def pool_windows(
    frame_times: np.ndarray,
    frame_vecs: np.ndarray,
    windows: np.ndarray,
    frames_per_window: int | None = None,
) -> np.ndarray:
    """Pool per-frame embeddings onto feature windows: ``[N, D]`` float32, every row unit length.

    Row ``i`` is the mean of the embeddings of the frames with ``start_i <= t < end_i`` (the
    window that ends last also takes a frame lying exactly on its end), L2-normalised.  With
    ``frames_per_window`` set, a window holding more frames uses that many evenly spaced ones
    (first and last included), which mimics a video model that sees a fixed number of frames.

    Why the fallbacks: our frames are often sparser than the grid (1 fps frames vs 1.875
    features/s), so some windows contain no frame at all; such a window takes the frame nearest
    to its centre.  A mean that cancels to zero also falls back to that frame.  Zero rows are
    never returned -- they are what the EgoVLP extractor's ``N mod 4`` defect leaves behind and
    they silently poison training -- and this is asserted.

    Raises ``ValueError`` on empty or mismatched inputs, non-finite values, or zero frame
    embeddings (no window could be described by one).
    """
    t = np.asarray(frame_times, dtype=np.float64)
    v = np.asarray(frame_vecs)
    w = np.asarray(windows, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"frame_times must be a non-empty 1-D array, got shape {t.shape}")
    if v.ndim != 2 or v.shape[0] != t.shape[0] or v.shape[1] == 0:
        raise ValueError(f"frame_vecs must be [F={t.shape[0]}, D>0], got shape {v.shape}")
    if w.ndim != 2 or w.shape[1] != 2 or w.shape[0] == 0:
        raise ValueError(f"windows must be a non-empty [N, 2] array, got shape {w.shape}")
    if frames_per_window is not None and (int(frames_per_window) != frames_per_window or frames_per_window < 1):
        raise ValueError(f"frames_per_window must be a positive integer or None, got {frames_per_window!r}")
    v = v.astype(np.float64)
    if not (np.isfinite(t).all() and np.isfinite(v).all() and np.isfinite(w).all()):
        raise ValueError("frame_times, frame_vecs and windows must be finite")
    if np.any(w[:, 1] < w[:, 0]):
        raise ValueError("every window needs start <= end")
    if np.any(np.linalg.norm(v, axis=1) == 0):
        raise ValueError("frame_vecs has all-zero rows; a zero embedding cannot describe a window")

    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    starts, ends = w[:, 0], w[:, 1]
    lo, hi = _member_bounds(t, w)
    counts = hi - lo

    csum = np.vstack([np.zeros((1, v.shape[1])), np.cumsum(v, axis=0)])
    out = (csum[hi] - csum[lo]) / np.maximum(counts, 1)[:, None]
    if frames_per_window is not None:
        k = int(frames_per_window)
        for i in np.flatnonzero(counts > k):
            idx = lo[i] + np.round(np.linspace(0, counts[i] - 1, k)).astype(np.int64)
            out[i] = v[idx].mean(axis=0)

    norms = np.linalg.norm(out, axis=1)
    for i in np.flatnonzero((counts == 0) | (norms <= 1e-12)):
        out[i] = v[_nearest(t, 0.5 * (starts[i] + ends[i]))]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    result = out.astype(np.float32)
    assert np.isfinite(result).all() and (np.linalg.norm(result, axis=1) > 0).all(), "pool_windows made a zero row"
    return result


def _member_bounds(sorted_times: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one membership rule of feature windows: window i holds the sorted frames ``lo[i]:hi[i]``,
    ``start <= t < end``, and the window that ends last also takes a frame on its end."""
    starts, ends = windows[:, 0], windows[:, 1]
    lo = np.searchsorted(sorted_times, starts, side="left")
    hi = np.searchsorted(sorted_times, ends, side="left")
    last = ends >= ends.max()
    hi[last] = np.searchsorted(sorted_times, ends[last], side="right")
    return lo, hi


def window_members(frame_times: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The frames :func:`pool_windows` pools per window, for a clip-level encoder: (the time order
    of ``frame_times``, then per window the indices into the *sorted* frames).

    Same membership as :func:`pool_windows`: ``start <= t < end`` (the window that ends last also
    takes a frame on its end), and a window without frames takes the frame nearest its centre, so
    no row is left undescribed. A clip model then sees ``num_frames`` of the members (its
    segment middles, ``Embedder.encode_windows``) instead of their mean."""
    t = np.asarray(frame_times, dtype=np.float64)
    w = np.asarray(windows, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"frame_times must be a non-empty 1-D array, got shape {t.shape}")
    if w.ndim != 2 or w.shape[1] != 2 or w.shape[0] == 0:
        raise ValueError(f"windows must be a non-empty [N, 2] array, got shape {w.shape}")
    order = np.argsort(t, kind="stable")
    ts = t[order]
    starts, ends = w[:, 0], w[:, 1]
    lo, hi = _member_bounds(ts, w)
    members = [np.arange(a, b, dtype=np.int64) if b > a else np.array([_nearest(ts, 0.5 * (s + e))], np.int64)
               for a, b, s, e in zip(lo, hi, starts, ends)]
    return order, members


def encode_windows(embedder: Any, frame_times: np.ndarray, frame_vecs: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Feature rows ``[N, D]`` from a clip-level encoder: each window's member frames
    (:func:`window_members`) through ``embedder.encode_windows`` (a clip model's temporal head over
    ``num_frames`` of them). The store's clips table is made the same way, so exported features
    and the store's clips come from one encoder."""
    v = np.asarray(frame_vecs, dtype=np.float32)
    if v.ndim != 2 or v.shape[0] != np.asarray(frame_times).shape[0]:
        raise ValueError(f"frame_vecs must be [F={np.asarray(frame_times).shape[0]}, D], got shape {v.shape}")
    order, members = window_members(frame_times, windows)
    out = np.asarray(embedder.encode_windows(v[order], members), np.float32)
    assert np.isfinite(out).all() and (np.linalg.norm(out, axis=1) > 0).all(), "encode_windows made a zero row"
    return out


def _compute_overlap(pred: np.ndarray, gt_start: float, gt_end: float) -> np.ndarray:
    """VSLNet's ``compute_overlap(pred, gt)`` for a list of [s, e] predictions and one [s, e] gt."""
    inter_left = np.maximum(pred[:, 0], gt_start)
    inter_right = np.minimum(pred[:, 1], gt_end)
    inter = np.maximum(0.0, inter_right - inter_left)
    union_left = np.minimum(pred[:, 0], gt_start)
    union_right = np.maximum(pred[:, 1], gt_end)
    union = np.maximum(1e-12, union_right - union_left)
    return 1.0 * inter / union


def time_to_index(start_time: float, end_time: float, num_units: int, duration: float) -> tuple[int, int, np.ndarray]:
    """VSLNet's ``time_to_index`` (``NLQ/VSLNet/utils/data_util.py``), same arithmetic and dtypes.

    ``[0, duration]`` is cut into ``num_units`` equal units (unit ``i`` = ``[i, i+1] * duration /
    num_units``, computed in float32 as the original does); every (start unit, end unit) pair
    is scored by temporal IoU with ``[start_time, end_time]`` (union floored at 1e-12) and the
    first best pair in row-major order wins.  Returns ``(start_index, end_index, overlaps)`` with
    ``overlaps`` the ``[num_units, num_units]`` IoU matrix.  In VSLNet ``num_units`` is the
    clip's ``feature_shapes.json`` entry and ``duration = num_frames / fps`` from the dataset
    JSON, which is why a writer must keep those two consistent with the features.
    """
    n = int(num_units)
    if n < 1:
        raise ValueError(f"num_units must be >= 1, got {num_units!r}")
    s_times = np.arange(0, n).astype(np.float32) / float(n) * duration
    e_times = np.arange(1, n + 1).astype(np.float32) / float(n) * duration
    candidates = np.stack(
        [np.repeat(s_times[:, None], repeats=n, axis=1), np.repeat(e_times[None, :], repeats=n, axis=0)],
        axis=2,
    ).reshape((-1, 2))
    # The original goes through .tolist() -> np.array, i.e. float32 values compared as float64.
    overlaps = _compute_overlap(candidates.astype(np.float64), float(start_time), float(end_time)).reshape(n, n)
    best = int(np.argmax(overlaps))
    return best // n, best % n, overlaps


def index_to_time(start_index: int, end_index: int, num_units: int, duration: float) -> tuple[float, float]:
    """VSLNet's ``index_to_time`` (same file): the seconds a predicted (start, end) unit pair means."""
    n = int(num_units)
    s_times = np.arange(0, n).astype(np.float32) * duration / float(n)
    e_times = np.arange(1, n + 1).astype(np.float32) * duration / float(n)
    return float(s_times[start_index]), float(e_times[end_index])


def vslnet_clip_slice(video_start_sec: float, video_end_sec: float, rate: float = FEATURE_RATE) -> slice:
    """Rows of a per-video feature file that VSLNet's preparation keeps for one clip.

    ``prepare_ego4d_dataset.py``: ``get_nearest_frame(t, f) = f(int(t * 30 / 16))`` with
    ``clip_start = get_nearest_frame(start, floor)``, ``clip_end = get_nearest_frame(end, ceil)``
    and ``feature[clip_start : clip_end + 1]``.  Because ``int()`` truncates before
    ``floor``/``ceil`` run, both are plain truncation for non-negative times; reproduced as is.
    """
    if video_start_sec < 0 or video_end_sec < video_start_sec:
        raise ValueError(f"need 0 <= start <= end, got [{video_start_sec}, {video_end_sec}]")
    return slice(math.floor(int(video_start_sec * rate)), math.ceil(int(video_end_sec * rate)) + 1)


def mq_slice(T: int, duration: float, start: float, end: float) -> slice:
    """Rows VSGN takes from a ``[T, D]`` video feature file for a clip ``[start, end]`` (seconds).

    ``MQ/Utils/dataset.py``: ``fps = T / duration``; ``[int(start * fps) :
    min(int(end * fps), T - 1) + 1]``.  VSGN then zero-pads or truncates the slice to
    ``temporal_scale`` (:data:`VSGN_TEMPORAL_SCALE`) rows.
    """
    if int(T) != T or T < 1:
        raise ValueError(f"T must be a positive number of feature rows, got {T!r}")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be positive, got {duration!r}")
    fps = T / duration
    return slice(int(start * fps), min(int(end * fps), int(T) - 1) + 1)
