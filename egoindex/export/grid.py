"""The feature grid of an export and the rule that says whether a video's store frames are dense enough for it.

The grid
--------
``FeatureGrid(rate)`` is the official grid scaled in time: windows of 32 and a stride of 16 frames
of a ``16 * rate`` fps timeline, so ``rate = 1.875`` *is* the official grid (30 fps, 32/16 frames,
back-padded last window) and any other rate keeps its shape (a window spans two strides).  A video
of ``duration`` seconds gets :func:`~egoindex.export.windows.num_features` rows, as the official
extractor counts them, each the L2-normalised mean of the frame embeddings inside its window
(:func:`~egoindex.export.windows.pool_windows`; at most ``frames_per_window`` evenly spaced ones;
an empty window takes the nearest frame, so no row is ever zero).

The "dense enough" rule (``source="auto"``)
------------------------------------------
A video's store frames are used when **both** hold:

1. their frame rate (1 / median gap between consecutive frame times) is at least the feature
   rate -- so every feature row has frames of its own at the grid's time resolution; and
2. at most one grid window holds no store frame at all (a single gap is tolerated: a frame lost
   to a decoding hiccup, or a duration header a little longer than the last sampled frame).

Otherwise the video is decoded (:func:`egoindex.model.video.embed_video`, same short side and JPEG
quality as the store's ingest when known) at ``decode_fps`` (default
``max(rate, frames_per_window / window_seconds)``, 3.75 fps for the official grid and 4 frames per
window) and embedded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from egoindex.errors import ExportError
from egoindex.export.windows import FEATURE_RATE, OFFICIAL_STRIDE, OFFICIAL_WINDOW, feature_windows, num_features

__all__ = ["DEFAULT_FRAMES_PER_WINDOW", "DENSE_RULE", "FeatureGrid", "Density", "store_density"]

DEFAULT_FRAMES_PER_WINDOW = 4
DENSE_RULE = (
    "store frames are used when their frame rate (1 / median gap) >= the feature rate and at most one "
    "feature window holds no store frame; otherwise the video is decoded and embedded"
)


@dataclass(frozen=True)
class FeatureGrid:
    """The official Ego4D feature grid at ``rate`` features per second (see module docstring)."""

    rate: float = FEATURE_RATE
    window: int = OFFICIAL_WINDOW
    stride: int = OFFICIAL_STRIDE

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not math.isfinite(self.rate) \
                or not 0 < self.rate <= 1000:
            raise ExportError(f"rate must be a positive number of features per second, got {self.rate!r}")

    @property
    def fps(self) -> float:
        """Frame rate of the timeline the window/stride are counted on (30 for 1.875 features/s)."""
        return float(self.rate) * self.stride

    @property
    def window_seconds(self) -> float:
        return self.window / self.fps

    def count(self, duration: float) -> int:
        return num_features(duration, self.fps, self.window, self.stride)

    def windows(self, duration: float) -> np.ndarray:
        return feature_windows(duration, self.fps, self.window, self.stride)

    def decode_fps(self, frames_per_window: int | None) -> float:
        """Default decoding rate: ``frames_per_window`` frames per window, never below the feature rate."""
        k = DEFAULT_FRAMES_PER_WINDOW if frames_per_window is None else int(frames_per_window)
        return max(float(self.rate), k / self.window_seconds)

    def as_dict(self) -> dict[str, Any]:
        return {"rate": float(self.rate), "timeline_fps": self.fps, "window_frames": self.window,
                "stride_frames": self.stride, "window_seconds": self.window_seconds,
                "stride_seconds": self.stride / self.fps, "backpad_last": True}


@dataclass(frozen=True)
class Density:
    """How well a video's store frames cover the grid."""

    frame_rate: float  # 1 / median gap between consecutive frame times (0 for fewer than 2 frames)
    empty_windows: int  # grid windows without any store frame
    windows: int
    dense: bool
    reason: str


def store_density(times: np.ndarray, duration: float, grid: FeatureGrid) -> Density:
    """Apply the "dense enough" rule (module docstring) to one video's store frame times."""
    w = grid.windows(duration)
    t = np.unique(np.asarray(times, dtype=np.float64))
    if t.size == 0:
        return Density(0.0, len(w), len(w), False, "the store has no frames of this video")
    gaps = np.diff(t)
    rate = float(1.0 / np.median(gaps)) if gaps.size else 0.0
    lo = np.searchsorted(t, w[:, 0], side="left")
    hi = np.searchsorted(t, w[:, 1], side="left")
    hi[-1] = np.searchsorted(t, w[-1, 1], side="right")  # the last window also takes a frame on its end
    empty = int(np.sum(hi <= lo))
    if rate < grid.rate * (1 - 1e-6):
        return Density(rate, empty, len(w), False,
                       f"store frames at {rate:.3g} fps are sparser than {grid.rate:g} features/s")
    if empty > 1:
        return Density(rate, empty, len(w), False, f"{empty} of {len(w)} feature windows hold no store frame")
    return Density(rate, empty, len(w), True,
                   f"store frames at {rate:.3g} fps >= {grid.rate:g} features/s, {empty} empty window(s)")
