"""The tensors a video backbone sees: crops, normalisation, multi-view test batches.

The decoding and frame-sampling half (which frames make a clip) is :mod:`egoindex.media.clips`;
this module turns those uint8 frames into normalised float clips. Spatial: training crops are
the augmentation's (``egoindex.finetune.augment``); evaluation resizes the short side to
``image_size`` and takes the centre square, or for 3 crops the two ends and the centre of the
long side (the standard 3-crop test). Normalisation: ``(x / 255 - mean) / std`` per channel, the
backbone's mean/std.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from egoindex.errors import ConfigError
from egoindex.media.clip_sampling import ClipSampling, sample_indices
from egoindex.media.clips import DecodedVideo

__all__ = ["eval_views", "normalise", "resize_short", "spatial_crops", "to_float"]


def resize_short(frames: torch.Tensor, side: int) -> torch.Tensor:
    """(T, C, H, W) float frames with the short side scaled to ``side`` (bilinear, antialiased)."""
    h, w = frames.shape[-2:]
    if min(h, w) == side:
        return frames
    scale = side / min(h, w)
    size = (max(side, round(h * scale)), max(side, round(w * scale)))
    return F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False)


def spatial_crops(frames: torch.Tensor, size: int, crops: int = 1) -> list[torch.Tensor]:
    """The evaluation crops of (T, C, H, W) frames: short side to ``size``, then the centre square
    (``crops`` 1) or the start, centre and end of the long side (``crops`` 3)."""
    if crops not in (1, 3):
        raise ConfigError(f"--test-crops must be 1 or 3, not {crops}")
    x = resize_short(frames, size)
    h, w = x.shape[-2:]
    long_h = h > w
    extent = (h if long_h else w) - size
    starts = [extent // 2] if crops == 1 else [0, extent // 2, extent]
    out = []
    for s0 in starts:
        top, left = (s0, (w - size) // 2) if long_h else ((h - size) // 2, s0)
        out.append(x[..., top:top + size, left:left + size])
    return out


def normalise(frames: torch.Tensor, mean: Any, std: Any) -> torch.Tensor:
    """(T, C, H, W) frames in [0, 1] -> ``(x - mean) / std`` per channel."""
    m = torch.as_tensor(mean, dtype=frames.dtype).view(1, -1, 1, 1)
    sd = torch.as_tensor(std, dtype=frames.dtype).view(1, -1, 1, 1)
    return (frames - m) / sd


def to_float(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def eval_views(video: DecodedVideo, s: ClipSampling, mean: Any, std: Any, clips: int = 1,
               crops: int = 1) -> torch.Tensor:
    """The ``clips x crops`` test views of a decoded video as one ``(V, T, C, H, W)`` batch,
    normalised: their softmax outputs are averaged (multi-view test-time averaging)."""
    out = []
    for v in range(clips):
        idx = sample_indices(len(video.frames), s, view=v, views=clips)
        x = to_float(video.frames[idx])
        out += [normalise(c, mean, std) for c in spatial_crops(x, s.image_size, crops)]
    return torch.stack(out)
