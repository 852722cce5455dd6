"""The fine-tuned video classifier's checkpoint (kind ``video_classifier``): the one writer and reader.

``egoindex finetune`` writes it (``OUT/best.pt``, ``OUT/last.pt``); ``egoindex classify --model``,
the server, the export and the report read it, each through :func:`load_classifier`, so a
checkpoint is always rebuilt the same way. A dict of plain types (``torch.load(weights_only=True)``)::

    {"kind": "video_classifier", "info": the network record (backbone, family, kind, num_frames,
     image_size, mean, std, weights, and hf_config for transformers backbones),
     "classes": [names, in logit order], "sampling": ClipSampling as a dict,
     "state_dict": VideoClassifier weights, "epoch", "step", "metrics": {...} at save time,
     "config": the run's config (JSON types), "egoindex_version"
     [, "trainer": optimizer, scheduler and RNG state: ``last.pt`` only, for --resume]}

Why the network record and not the weights file's path: the state dict holds every weight, so a
checkpoint loads on another machine without the backbone's original files; the record says
which architecture to create around it (:func:`egoindex.model.backbones.rebuild`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from egoindex.version import __version__
from egoindex.core.fsutil import sha256_file
from egoindex.errors import ModelError
from egoindex.model.backbones import rebuild
from egoindex.model.openclip import read_checkpoint, save_checkpoint, unwrap
from egoindex.media.clip_sampling import ClipSampling
from egoindex.model.video_nets import VideoClassifier

__all__ = ["KIND", "LoadedClassifier", "is_classifier_checkpoint", "load_classifier", "make_checkpoint",
           "save_checkpoint"]

KIND = "video_classifier"


def make_checkpoint(model: torch.nn.Module, classes: list[str], sampling: ClipSampling, *, epoch: int, step: int,
                    metrics: dict[str, Any], config: dict[str, Any], trainer: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint dict (module docstring), tensors on the CPU."""
    inner = unwrap(model)
    ckpt: dict[str, Any] = {
        "kind": KIND, "info": dict(inner.info), "classes": list(classes), "sampling": sampling.as_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in inner.state_dict().items()},
        "epoch": int(epoch), "step": int(step), "metrics": dict(metrics), "config": dict(config),
        "egoindex_version": __version__,
    }
    if trainer is not None:
        ckpt["trainer"] = trainer
    return ckpt


@dataclass
class LoadedClassifier:
    """An inference-ready fine-tuned classifier (eval mode) and what it was trained with."""

    model: VideoClassifier
    classes: list[str]
    sampling: ClipSampling
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)  # epoch, step, metrics, config (no weights)
    sha256: str = ""

    @property
    def name(self) -> str:
        return str(self.model.info["backbone"])


def is_classifier_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a fine-tune checkpoint, read memory-mapped (no full read of a big file)."""
    p = Path(path)
    if not p.is_file() or p.suffix == ".safetensors":
        return False
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # legacy, corrupt or foreign files are not ours
        return False
    return isinstance(obj, dict) and obj.get("kind") == KIND


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> LoadedClassifier:
    """Load ``OUT/best.pt`` (or ``last.pt``) for inference; anything else fails with a ModelError."""
    p = Path(path)
    if p.is_dir():
        p = p / "best.pt"
    obj = read_checkpoint(p)
    if obj.get("kind") != KIND:
        raise ModelError(f"{p} is not a fine-tuned video classifier (kind {KIND!r}, written by `egoindex finetune`); "
                         f"its kind is {obj.get('kind')!r}")
    classes = obj.get("classes")
    if not isinstance(classes, list) or len(classes) < 2:
        raise ModelError(f"{p}: 'classes' must list at least 2 class names")
    model = rebuild(obj.get("info") or {}, len(classes))
    try:
        model.load_state_dict(obj["state_dict"])
    except (RuntimeError, KeyError) as e:
        raise ModelError(f"{p}: its weights do not fit the {model.info.get('backbone')} it records: {e}") from e
    model.to(device).eval()
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "trainer")}
    return LoadedClassifier(model, [str(c) for c in classes], ClipSampling.from_dict(obj.get("sampling") or {}), p,
                            meta, sha256_file(p))
