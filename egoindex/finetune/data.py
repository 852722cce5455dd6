"""Clips for fine-tuning: which videos each step sees, and the tensors made from them.

Why the order is a pure function of (seed, epoch): every process of a DDP run computes the same
epoch plan and takes its own slice (``plan[rank::world]``), and a resumed run recomputes the plan
of the epoch it stopped in and skips the steps already taken, so it trains on exactly the clips
the killed run would have. Each sample's randomness (its frames, crop, flip, jitter) comes from
``default_rng([seed, epoch, position])``, never from a worker's RNG, so neither the number of
DataLoader workers nor a restart changes a clip.

An epoch is ``steps_per_epoch = ceil(N / (batch * accum * world))`` optimizer steps; its plan is a
seeded permutation of the N training videos, wrapped around to fill the last step (so every
rank takes the same number of steps, as DDP requires).

With ``--workers N`` the DataLoader's workers are persistent (:class:`MicroBatches`): each keeps
its decoded-clip cache from one epoch to the next, so the second epoch decodes nothing either.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from egoindex.errors import TrainError, VideoError
from egoindex.finetune.augment import augment_clip
from egoindex.media.labelled import LabelledVideo
from egoindex.media.clip_sampling import ClipSampling, sample_indices
from egoindex.media.clips import ClipCache
from egoindex.model.video_input import normalise, to_float

__all__ = ["ClipDataset", "EpochPlan", "MicroBatches", "collate", "epoch_plan", "steps_per_epoch"]


def steps_per_epoch(n_videos: int, batch: int, accum: int, world: int) -> int:
    return max(1, math.ceil(n_videos / (batch * accum * world)))


@dataclass(frozen=True)
class EpochPlan:
    """This rank's (video index, position, epoch) per micro-batch slot of one epoch, in order."""

    items: list[tuple[int, int, int]]

    def micro_batches(self, batch: int) -> list[list[tuple[int, int, int]]]:
        return [self.items[i:i + batch] for i in range(0, len(self.items), batch)]


def epoch_plan(n_videos: int, epoch: int, seed: int, batch: int, accum: int, rank: int, world: int) -> EpochPlan:
    """The epoch's samples for ``rank`` (module docstring): ``steps * accum`` micro-batches of ``batch``."""
    steps = steps_per_epoch(n_videos, batch, accum, world)
    total = steps * batch * accum * world
    order = np.random.default_rng([seed, epoch, 11]).permutation(n_videos)
    order = np.resize(order, total)  # wraps around
    positions = np.arange(total)
    mine = slice(rank, total, world)
    return EpochPlan([(int(v), int(p), int(epoch)) for v, p in zip(order[mine], positions[mine])])


class ClipDataset(Dataset):
    """Item ``(video index, position, epoch)`` -> ``(clip (T, C, H, W), label)``; training clips are
    sampled and augmented with the sample's own RNG."""

    def __init__(self, videos: Sequence[LabelledVideo], classes: Sequence[str], sampling: ClipSampling,
                 mean: Sequence[float], std: Sequence[float], cache: ClipCache, *, seed: int,
                 augment: dict[str, float] | None = None) -> None:
        self.videos = list(videos)
        self.index = {c: i for i, c in enumerate(classes)}
        self.sampling, self.mean, self.std, self.cache = sampling, list(mean), list(std), cache
        self.seed, self.augment = seed, augment or {}

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, item: tuple[int, int, int]) -> tuple[torch.Tensor, int]:
        vi, position, epoch = item
        v = self.videos[vi]
        try:
            decoded = self.cache.get(v.path, self.sampling.fps, self.sampling.short_side)
        except VideoError as e:
            raise TrainError(f"cannot decode training video {v.rel}: {e}; remove or re-encode it") from e
        rng = np.random.default_rng([self.seed, epoch, position, 29])
        idx = sample_indices(len(decoded.frames), self.sampling, rng=rng)
        x = augment_clip(to_float(decoded.frames[idx]), self.sampling.image_size, rng, **self.augment)
        return normalise(x, self.mean, self.std), self.index[v.label]


def collate(samples: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([s[0] for s in samples]), torch.tensor([s[1] for s in samples], dtype=torch.long)


class _PlanSampler:
    """The batch sampler of :class:`MicroBatches`: yields whatever batches the current epoch set."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class MicroBatches:
    """Each epoch's micro-batches in order, collated: decoded in this process (``workers`` 0) or by
    persistent DataLoader workers, which keep their decoded-clip caches across epochs."""

    def __init__(self, ds: ClipDataset, workers: int) -> None:
        self.ds = ds
        self.sampler = _PlanSampler()
        self.loader = (DataLoader(ds, batch_sampler=self.sampler, num_workers=workers, collate_fn=collate,
                                  persistent_workers=True) if workers > 0 else None)

    def epoch(self, batches: list[list[tuple[int, int, int]]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.loader is None:
            return (collate([self.ds[it] for it in b]) for b in batches)
        self.sampler.batches = batches
        return iter(self.loader)
