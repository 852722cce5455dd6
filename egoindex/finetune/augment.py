"""Training augmentation of a clip: random resized crop, horizontal flip, colour jitter.

Every frame of a clip gets the SAME crop, flip and jitter (one draw per clip): a crop that
jumped between frames would be motion the video does not have. Draws come from the numpy
``Generator`` the caller passes (seeded per sample and epoch in :mod:`egoindex.finetune.data`),
so a resumed run sees exactly the clips the killed one would have seen.

* random resized crop (Inception / torchvision ``RandomResizedCrop``): an area fraction in
  ``[crop_scale, 1]`` of the frame and an aspect ratio in ``[3/4, 4/3]`` (log-uniform), placed
  uniformly, resized to ``size``; after 10 misses, the centre square;
* horizontal flip with probability ``flip``. Off (0) for classes that ARE directions: a flipped
  "slides left" is "slides right";
* colour jitter: brightness and contrast factors in ``[1 - j, 1 + j]`` and saturation blended
  with the frame's grey by a factor in ``[1 - j, 1 + j]``, in a random order, clamped to [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["augment_clip", "crop_box"]


def crop_box(h: int, w: int, scale_min: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random resized crop of an ``h x w`` frame."""
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(scale_min, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def augment_clip(frames: torch.Tensor, size: int, rng: np.random.Generator, *, crop_scale: float = 0.5,
                 flip: float = 0.5, jitter: float = 0.2) -> torch.Tensor:
    """(T, C, H, W) float frames in [0, 1] -> the augmented (T, C, size, size) clip (module docstring)."""
    h, w = frames.shape[-2:]
    top, left, ch, cw = crop_box(h, w, crop_scale, rng) if crop_scale < 1 else ((h - min(h, w)) // 2,
                                                                                 (w - min(h, w)) // 2, min(h, w), min(h, w))
    x = frames[..., top:top + ch, left:left + cw]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if rng.random() < flip:
        x = x.flip(-1)
    if jitter > 0:
        for op in rng.permutation(3):
            f = float(rng.uniform(1 - jitter, 1 + jitter))
            if op == 0:  # brightness
                x = x * f
            elif op == 1:  # contrast: around the clip's mean grey
                x = (x - _grey(x).mean()) * f + _grey(x).mean()
            else:  # saturation
                g = _grey(x)
                x = (x - g) * f + g
            x = x.clamp(0.0, 1.0)
    return x
