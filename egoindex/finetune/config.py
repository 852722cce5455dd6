"""What a fine-tune is (:class:`FinetuneConfig`) and how this process runs it (:class:`RunOptions`).

Why two: the config decides the result (the checkpoint records it, and ``--resume`` refuses a
different one, so a resumed run is the same run); the options only decide how it runs (device,
workers, threads, progress bar, how often to save), and may change between a run and its resume.
Defaults live here; ``egoindex finetune`` reads them from these classes and restates none.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from egoindex.errors import ConfigError
from egoindex.media.clip_sampling import MODES

__all__ = ["FinetuneConfig", "PRECISIONS", "RunOptions"]

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tune. ``None`` for frames / size / short side: the backbone's own (short side:
    ``image_size * 9 / 8``, the 256/224 ratio of the usual test resize)."""

    backbone: str = "videomae-tiny"
    weights: str | None = None  # a local file or folder (model.backbones); None: random init
    num_frames: int | None = None
    image_size: int | None = None
    sampling: str = "random"  # training: uniform | random | dense (evaluation: uniform, or centred dense)
    stride: int = 2  # dense: decoded frames between samples
    fps: float = 8.0  # decode rate
    short_side: int | None = None
    splits: str | None = None  # UCF101's ucfTrainTestlist/ (default: DATASET/ucfTrainTestlist when present)
    split: int = 1
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # folder per class: train, val, test (the probe's)
    seed: int = 0
    epochs: int = 10
    batch_size: int = 8  # per process and micro-batch
    accum: int = 1  # micro-batches per optimizer step
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    dropout: float = 0.0
    grad_clip: float = 1.0  # max global gradient norm (0: none)
    patience: int = 5  # early stopping: epochs without a better val top-1 (0: never stop early)
    crop_scale: float = 0.5  # random resized crop: smallest area fraction (1: no crop)
    flip: float = 0.5  # horizontal flip probability (0 for classes that are directions)
    jitter: float = 0.2  # colour jitter strength (brightness, contrast, saturation)
    test_clips: int = 3  # multi-view test: clips x crops, softmax averaged
    test_crops: int = 1
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU

    def check(self) -> FinetuneConfig:
        if self.sampling not in MODES:
            raise ConfigError(f"--sampling must be one of {', '.join(MODES)}, not {self.sampling!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        ints = {"--epochs": (self.epochs, 1), "--batch-size": (self.batch_size, 1), "--accum": (self.accum, 1),
                "--stride": (self.stride, 1), "--test-clips": (self.test_clips, 1), "--patience": (self.patience, 0)}
        for opt, (v, lo) in ints.items():
            if v < lo:
                raise ConfigError(f"{opt} must be >= {lo}, not {v}")
        if self.test_crops not in (1, 3):
            raise ConfigError(f"--test-crops must be 1 or 3, not {self.test_crops}")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ConfigError("--lr must be > 0, --weight-decay and --warmup-epochs >= 0")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.dropout < 1:
            raise ConfigError("--label-smoothing and --dropout must be in [0, 1)")
        if not 0 < self.crop_scale <= 1 or not 0 <= self.flip <= 1 or self.jitter < 0:
            raise ConfigError("--crop-scale must be in (0, 1], --flip in [0, 1], --jitter >= 0")
        return self

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fractions"] = list(self.fractions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "fractions" in kw:
            kw["fractions"] = tuple(kw["fractions"])
        return cls(**kw)

    def differences(self, other: FinetuneConfig) -> dict[str, tuple[Any, Any]]:
        a, b = self.as_dict(), other.as_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


@dataclass(frozen=True)
class RunOptions:
    """How this process runs a fine-tune (never recorded as identity)."""

    device: str = "auto"  # auto | cpu | cuda
    workers: int = 0  # DataLoader worker processes (0: decode in this process)
    threads: int = 0  # torch CPU threads (0: this process' share of the CPUs)
    progress: bool = True
    resume: bool = False
    cache_mb: int = 1024  # decoded-clip cache per process, split among its workers
    save_every_steps: int = 0  # also save last.pt every N optimizer steps (0: at epoch ends only)
    tensorboard: bool = True
    report: bool = True  # write OUT/report/ at the end
