"""Which frames make a clip: the sampling modes of video backbones, as pure index rules (numpy only).

:class:`ClipSampling` is recorded in every fine-tune checkpoint; decoding is
:mod:`egoindex.media.clips`, the tensors :mod:`egoindex.model.video_input`. Together they are
the one rule fine-tuning, evaluation, ``egoindex classify --model``, the server and the export
apply, so they agree on what a clip is.

Frame sampling (:func:`sample_indices`) picks ``num_frames`` of the N decoded frames:

* ``uniform``: the clip cut into ``num_frames`` equal segments, the middle frame of each
  (TSN's test rule); views shift the pick inside each segment (``(v + 0.5) / views``). The frames
  always span the whole clip.
* ``random``: one frame drawn uniformly inside each of the equal segments (TSN's training rule):
  also spans the whole clip, with random offsets.
* ``dense``: ``num_frames`` consecutive frames ``stride`` apart (a window of
  ``(num_frames - 1) * stride + 1`` frames): at a random start in training, centred for one view,
  at evenly spaced starts from the first to the last possible window for several. A clip
  shorter than the window repeats its last frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from egoindex.errors import ConfigError

__all__ = ["MODES", "ClipSampling", "sample_indices"]

MODES = ("uniform", "random", "dense")


@dataclass(frozen=True)
class ClipSampling:
    """How a video becomes a clip (recorded in a fine-tune checkpoint as ``sampling``)."""

    num_frames: int = 8
    mode: str = "uniform"
    stride: int = 2  # dense: decoded frames between two samples
    fps: float = 8.0  # decode rate
    short_side: int = 72  # decoded short side (crops are taken from this)
    image_size: int = 64  # the backbone's input side

    def check(self) -> ClipSampling:
        if self.mode not in MODES:
            raise ConfigError(f"sampling mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.num_frames < 1 or self.stride < 1:
            raise ConfigError(f"--num-frames and --stride must be >= 1 (got {self.num_frames}, {self.stride})")
        if not 0 < self.fps <= 60:
            raise ConfigError(f"--fps must be in (0, 60], not {self.fps}")
        if self.image_size < 16 or self.short_side < self.image_size:
            raise ConfigError(f"--short-side ({self.short_side}) must be >= --image-size ({self.image_size}) >= 16")
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipSampling:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known}).check()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_eval(self) -> ClipSampling:
        """The sampling of evaluation views: random training offsets become uniform (dense stays dense)."""
        return ClipSampling(**{**self.as_dict(), "mode": "dense" if self.mode == "dense" else "uniform"})


def sample_indices(n: int, s: ClipSampling, rng: np.random.Generator | None = None, view: int = 0,
                   views: int = 1) -> np.ndarray:
    """``s.num_frames`` indices into ``n`` decoded frames (module docstring). ``rng`` given: the
    training draw (random offsets / a random dense start); else view ``view`` of ``views``."""
    if n < 1:
        raise ValueError("a video without frames has no clip")
    t = s.num_frames
    if s.mode == "dense":
        span = (t - 1) * s.stride + 1
        last = max(0, n - span)
        if rng is not None:
            start = int(rng.integers(0, last + 1))
        elif views == 1:
            start = last // 2
        else:
            start = int(round(view * last / (views - 1)))
        return np.minimum(start + np.arange(t) * s.stride, n - 1)
    seg = n / t
    if s.mode == "random" and rng is not None:
        offsets = rng.random(t)
    else:
        offsets = np.full(t, (view + 0.5) / views)
    return np.minimum(np.floor((np.arange(t) + offsets) * seg).astype(np.int64), n - 1)
