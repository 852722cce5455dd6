"""open_clip models for egoindex: the project's small configs, creation, and checkpoint files.

Every model is an ordinary open_clip model chosen by its open_clip name (RN50, RN101, ViT-B-32,
ViT-B-16, ViT-L-14, ...). Three small configs ship in ``egoindex/model/configs`` and are
registered with ``open_clip.add_model_config`` when this module is imported, because no built-in
open_clip config is small enough to learn anything on a CPU in minutes:

* ``ego-tiny-rn``: open_clip's ModifiedResNet at 64 px, width 32, one block per stage (5.3M image
  weights, attention pooling); text context 32, width 192, 4 layers; 128-d embeddings. The demo's
  model: a convolutional tower finds a small coloured object anywhere in a busy frame from a few
  thousand frames, where a ViT from scratch needs far more data; on unseen demo videos it reaches
  3-5x chance retrieval (docs/benchmarks.md, "Learning on the demo corpus").
* ``ego-tiny-vit``: 64 px images, 8 px patches, width 192, 4 layers; same text tower. The tests'
  model (fits the demo corpus' training split in a few CPU minutes); generalises less than
  ``ego-tiny-rn`` to unseen videos.
* ``ego-small-vit``: 128 px images, 16 px patches, width 384, 6 layers; same text shape at
  width 384, 6 layers; 256-d embeddings. A step up for small real corpora on one GPU.

Checkpoints are open_clip-compatible: ``open_clip.create_model_and_transforms(name,
pretrained=PATH)`` loads them (after ``import egoindex.model.openclip`` for the ego-* names). The file is a
dict of plain types only, so ``torch.load(PATH, weights_only=True)`` works::

    {"epoch": completed epochs, "step": optimizer steps, "name": open_clip model name,
     "state_dict": model weights (no "module." prefix), "optimizer": AdamW state,
     "scaler": GradScaler state (fp16 AMP only), "config": the run's config (JSON types),
     "egoindex_version": str}

Runs with the SigLIP loss add a ``logit_bias`` weight; open_clip loads those with
``create_model_and_transforms(name, pretrained=PATH, init_logit_bias=-10)`` and
:func:`load_model` does it by itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch

from egoindex.version import __version__
from egoindex.core.fsutil import atomic_open, tmp_name
from egoindex.errors import ModelError

CONFIG_DIR = Path(__file__).parent / "configs"
PROJECT_MODELS = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
#: Models the project documents and tests by name (any other open_clip name works too).
RECOMMENDED_MODELS = ("RN50", "RN101", "ViT-B-32", "ViT-B-16", "ViT-L-14", *PROJECT_MODELS)
#: SigLIP's initial logit scale and bias (Zhai et al. 2023): log(10) and -10.
SIGLIP_INIT = {"init_logit_scale": 2.302585092994046, "init_logit_bias": -10.0}

_registered = False




def register_configs() -> None:
    """Make the ``ego-*`` configs known to open_clip (idempotent; done on import)."""
    global _registered
    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


register_configs()


def check_model_name(name: str) -> None:
    if name not in open_clip.list_models():
        raise ModelError(
            f"unknown model {name!r}. Use an open_clip name such as {', '.join(RECOMMENDED_MODELS)} "
            f"(all: python -c 'import open_clip; print(open_clip.list_models())')."
        )


def pretrained_tag_error(name: str, tag: str) -> ModelError:
    """The message for ``--pretrained TAG``: egoindex never downloads, so say where to get the file."""
    cfg = open_clip.get_pretrained_cfg(name, tag) if name in open_clip.list_models() else {}
    if cfg.get("hf_hub"):
        where = f"https://huggingface.co/{cfg['hf_hub'].rstrip('/')} (file open_clip_pytorch_model.bin)"
    elif cfg.get("url"):
        where = cfg["url"]
    else:
        tags = open_clip.list_pretrained_tags_by_model(name) if name in open_clip.list_models() else []
        where = f"the open_clip model zoo (known tags for {name}: {', '.join(tags) or 'none'})"
    return ModelError(
        f"--pretrained {tag} would download weights, and egoindex works offline. Download them on a "
        f"machine with internet from {where}, copy the file here and pass it with --init PATH "
        f"(e.g. --model {name} --init ViT-weights.bin)."
    )


@dataclass
class Created:
    """A model with what it needs around it: transforms and tokenizer."""

    model: torch.nn.Module
    preprocess_train: Callable[[Any], torch.Tensor]
    preprocess_val: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    name: str


class _NoRandomInitNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextlib.contextmanager
def _weights_follow() -> Any:
    """Silence open_clip's "initialized randomly" warning where weights are loaded right after
    creation (a checkpoint, ``--init``): there it is false and users read it as a failure."""
    notice = _NoRandomInitNotice()
    logging.getLogger().addFilter(notice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(notice)


def create(
    name: str,
    *,
    init: Path | None = None,
    siglip: bool = False,
    device: str | torch.device = "cpu",
    aug_cfg: dict[str, Any] | None = None,
) -> Created:
    """A trainable open_clip model (fp32 weights; mixed precision is done by autocast).

    ``init`` loads a local open_clip checkpoint or weights file; a file for another architecture
    fails with the differing shapes instead of torch's long key dump.
    """
    check_model_name(name)
    kwargs: dict[str, Any] = dict(SIGLIP_INIT) if siglip else {}
    with _weights_follow() if init is not None else contextlib.nullcontext():
        model, pre_train, pre_val = open_clip.create_model_and_transforms(
            name, pretrained=None, device=device, output_dict=True, aug_cfg=aug_cfg, **kwargs
        )
    if init is not None:
        load_weights(model, Path(init), name)
    return Created(model, pre_train, pre_val, open_clip.get_tokenizer(name), name)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel (or the model itself)."""
    return getattr(model, "module", model)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint or weights file on the CPU with ``weights_only=True`` (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for corrupt or foreign files
        globals_ = [line.strip() for line in str(e).splitlines() if "GLOBAL" in line]
        if globals_:  # pickled objects (classes, functions) beyond weights: unpickling could run code
            raise ModelError(f"cannot read {path} as a torch checkpoint: it holds pickled Python objects, not only "
                             f"weights ({globals_[0]}); egoindex loads checkpoints with weights_only=True and "
                             "refuses them. Use a checkpoint of tensors and plain data.") from None
        raise ModelError(f"cannot read {path} as a torch checkpoint: {e}") from e
    if not isinstance(obj, dict):
        raise ModelError(f"{path} is not a state dict or an open_clip checkpoint ({type(obj).__name__})")
    return obj


def state_dict_of(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint dict or a bare state dict, without DDP's ``module.`` prefix."""
    sd = ckpt["state_dict"] if "state_dict" in ckpt else ckpt
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def weight_differences(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], limit: int = 8) -> list[str]:
    """Human-readable differences between a model's weights and a state dict (empty if they fit)."""
    have = model.state_dict()
    lines = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(have[k].shape)}"
        for k, v in state_dict.items() if k in have and tuple(v.shape) != tuple(have[k].shape)
    ]
    missing = sorted(set(have) - set(state_dict))
    extra = sorted(set(state_dict) - set(have))
    if missing:
        lines.append(f"{len(missing)} weights missing from the checkpoint, e.g. {', '.join(missing[:3])}")
    if extra:
        lines.append(f"{len(extra)} weights the model does not have, e.g. {', '.join(extra[:3])}")
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def load_weights(model: torch.nn.Module, path: Path, name: str) -> None:
    """Load ``path`` into ``model`` through open_clip (which converts OpenAI/timm layouts)."""
    try:
        open_clip.load_checkpoint(model, str(path), strict=True)
    except (RuntimeError, KeyError, ValueError, AssertionError, pickle.UnpicklingError) as e:
        # open_clip asserts some shapes; an unreadable file fails in read_checkpoint just below, clearly
        ckpt = read_checkpoint(path)
        diffs = weight_differences(model, state_dict_of(ckpt))
        trained = f" (it was trained as {ckpt['name']})" if isinstance(ckpt.get("name"), str) else ""
        detail = "\n  ".join(diffs) if diffs else str(e)
        raise ModelError(f"{path} does not fit model {name}{trained}:\n  {detail}") from e


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a kill leaves the previous file, never half of one)."""
    with atomic_open(Path(path), "wb") as f:
        torch.save(checkpoint, f)


def link_or_copy(src: Path, dst: Path) -> None:
    """Publish ``src`` also as ``dst`` atomically: a hard link (no extra disk) or else a copy."""
    tmp = tmp_name(dst)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def make_checkpoint(model: torch.nn.Module, name: str, *, epoch: int, step: int, config: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None,
                    scaler: torch.amp.GradScaler | None = None) -> dict[str, Any]:
    """The checkpoint dict described in the module docstring (tensors moved to the CPU)."""
    ckpt: dict[str, Any] = {
        "epoch": epoch,
        "step": step,
        "name": name,
        "state_dict": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "config": config,
        "egoindex_version": __version__,
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scaler is not None:
        ckpt["scaler"] = scaler.state_dict()
    return ckpt


@dataclass
class Loaded:
    """An inference-ready model from a checkpoint (eval mode)."""

    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    name: str
    checkpoint: dict[str, Any]  # everything but the weights: epoch, step, config, ...


def load_model(checkpoint_path: Path, model_name: str | None = None, device: str | torch.device = "cpu") -> Loaded:
    """Load a trained (or downloaded) checkpoint for inference.

    The model name comes from the checkpoint unless given; a bare weights file needs it. A given
    name that disagrees with the checkpoint's, or weights that do not fit, fail with the
    differing shapes.
    """
    ckpt = read_checkpoint(Path(checkpoint_path))
    stored = ckpt.get("name") if isinstance(ckpt.get("name"), str) else None
    name = model_name or stored
    if name is None:
        raise ModelError(f"{checkpoint_path} does not record its model name; pass the open_clip name (e.g. ViT-B-32)")
    check_model_name(name)
    if stored and stored != name:
        raise ModelError(f"{checkpoint_path} was trained as {stored}, not {name}; leave out the model name to use {stored}")
    sd = state_dict_of(ckpt)
    kwargs: dict[str, Any] = dict(SIGLIP_INIT) if "logit_bias" in sd else {}
    with _weights_follow():
        model, _, preprocess = open_clip.create_model_and_transforms(name, device="cpu", output_dict=True, **kwargs)
    if weight_differences(model, sd):
        load_weights(model, Path(checkpoint_path), name)  # open_clip may convert it, else a clear error
    else:
        model.load_state_dict(sd)
    model.to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer", "scaler")}
    return Loaded(model, preprocess, open_clip.get_tokenizer(name), name, meta)
