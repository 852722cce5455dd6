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

Checkpoints egoindex writes are open_clip-compatible: ``open_clip.create_model_and_transforms(name,
pretrained=PATH)`` loads them (after ``import egoindex.model.openclip`` for the ego-* names). The file is a
dict of plain types only, so ``torch.load(PATH, weights_only=True)`` works::

    {"epoch": completed epochs, "step": optimizer steps, "name": open_clip model name,
     "state_dict": model weights (no "module." prefix), "optimizer": AdamW state,
     "scaler": GradScaler state (fp16 AMP only), "config": the run's config (JSON types),
     "preprocess_cfg": {"mean", "std", "interpolation", "resize_mode"} the model was trained with
                       (from its --init; absent before egoindex 0.2.0: the model's defaults),
     "egoindex_version": str}

Runs with the SigLIP loss add a ``logit_bias`` weight; open_clip loads those with
``create_model_and_transforms(name, pretrained=PATH, init_logit_bias=-10)`` and
:func:`load_model` does it by itself.

Checkpoint forms (:data:`FORMS`; docs/formats.md "Checkpoints"). Every command that takes a model
goes through :func:`resolve_checkpoint` (``load_model`` for inference, ``create(init=...)`` for
``train --init``), the one copy of these rules:

* ``egoindex``: the dict above. Its ``name`` is the model; a different ``--model`` is refused.
* ``open_clip_train``: ``python -m open_clip_train.main``'s ``epoch_N.pt``/``epoch_latest.pt``:
  ``{"epoch", "name", "state_dict" ("module." prefixed under DDP), "optimizer"[, "scaler"]}``
  where ``name`` is the RUN name (``2026_12_01-20_23_22-model_ViT-B-32-lr_0.0005-b_64-j_4-p_amp``).
  A ``name`` that is no open_clip model is a run name, never a model: ``--model`` wins; without
  it the model is read from the run name's ``model_<NAME>-`` part when that is an open_clip
  model, else the load fails naming the run name and asking for ``--model``.
* ``state_dict``: bare weights (``.pt``/``.bin`` via torch, ``.safetensors`` via safetensors); needs ``--model``.
* ``hf_folder``: a Hugging Face folder as open_clip saves it (:mod:`egoindex.model.sources`), or
  a cached ``hf-hub:ORG/REPO``. Its ``open_clip_config.json`` gives the architecture
  (``model_cfg``) AND the preprocessing (``preprocess_cfg``); both are used, never open_clip's
  defaults. The model name is the registered open_clip config equal to ``model_cfg``, else
  ``local-dir:FOLDER`` (open_clip's own spelling for a folder's architecture).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import re
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
from egoindex.model.sources import CONFIG_FILE, Source, locate

CONFIG_DIR = Path(__file__).parent / "configs"
PROJECT_MODELS = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
#: Models the project documents and tests by name (any other open_clip name works too).
RECOMMENDED_MODELS = ("RN50", "RN101", "ViT-B-32", "ViT-B-16", "ViT-L-14", *PROJECT_MODELS)
#: SigLIP's initial logit scale and bias (Zhai et al. 2023): log(10) and -10.
SIGLIP_INIT = {"init_logit_scale": 2.302585092994046, "init_logit_bias": -10.0}

#: The checkpoint forms (module docstring), as recorded in a store's ``checkpoint_form``.
FORMS = ("egoindex", "open_clip_train", "state_dict", "hf_folder")
#: The inference preprocessing :mod:`egoindex.model.embed` reproduces (its crops resize the short
#: side and centre-crop, with bicubic or bilinear resampling); anything else is refused, not approximated.
EMBEDDER_INTERPOLATIONS = ("bicubic", "bilinear")
EMBEDDER_RESIZE_MODES = ("shortest",)
#: The preprocessing keys a checkpoint or hub folder can set (open_clip's PreprocessCfg, less the size,
#: which is the model's).
PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
LOCAL_DIR_PREFIX = "local-dir:"

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
    init: Path | str | None = None,
    siglip: bool = False,
    device: str | torch.device = "cpu",
    aug_cfg: dict[str, Any] | None = None,
) -> Created:
    """A trainable open_clip model (fp32 weights; mixed precision is done by autocast).

    ``init`` (``train --init``) is any checkpoint form (:data:`FORMS`). ``name`` is the model
    (``--model`` wins over what a file records: the shapes decide whether the weights fit, so a
    file for another architecture fails with the differing shapes instead of torch's long key
    dump). A hub folder's config must describe ``name``, and its preprocessing (and that recorded
    in an egoindex checkpoint) becomes the model's, so training and the checkpoint it writes use it.
    """
    check_model_name(name)
    kwargs: dict[str, Any] = dict(SIGLIP_INIT) if siglip else {}
    contents = None
    if init is not None:
        contents = read_contents(locate(init))
        if contents.model_cfg is not None and name not in registered_names(contents.model_cfg):
            raise ModelError(f"{init}: {contents.source.config} describes {describe_architecture(contents.model_cfg)}, "
                             f"not {name}; pass the model it describes with --model")
    pp = contents.preprocess_cfg if contents is not None else {}
    with _weights_follow() if init is not None else contextlib.nullcontext():
        model, pre_train, pre_val = open_clip.create_model_and_transforms(
            name, pretrained=None, device=device, output_dict=True, aug_cfg=aug_cfg, **preprocess_kwargs(pp), **kwargs
        )
    check_embeddable(model, str(init or name))
    if contents is not None:
        fit(model, contents, name)
    return Created(model, pre_train, pre_val, open_clip.get_tokenizer(name), name)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel (or the model itself)."""
    return getattr(model, "module", model)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint or weights file on the CPU: ``.safetensors`` with safetensors, anything
    else with ``torch.load(weights_only=True)`` (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelError(f"cannot read {path} as a safetensors file: {e}") from e
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
    # BatchNorm step counters: a tower locked with frozen BN stats (--lock-image) saves none, and
    # they do nothing in eval or with a set momentum, so their absence is not a difference
    missing = sorted(k for k in set(have) - set(state_dict) if not k.endswith(".num_batches_tracked"))
    extra = sorted(set(state_dict) - set(have))
    if missing:
        lines.append(f"{len(missing)} weights missing from the checkpoint, e.g. {', '.join(missing[:3])}")
    if extra:
        lines.append(f"{len(extra)} weights the model does not have, e.g. {', '.join(extra[:3])}")
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def load_weights(model: torch.nn.Module, path: Path, name: str) -> None:
    """Load the weights file ``path`` into ``model`` through open_clip (which converts OpenAI/timm
    layouts); weights that do not fit fail with the differing shapes."""
    try:
        open_clip.load_checkpoint(model, str(path), strict=True)
    except (RuntimeError, KeyError, ValueError, AssertionError, pickle.UnpicklingError) as e:
        # open_clip asserts some shapes; an unreadable file fails in read_checkpoint just below, clearly
        ckpt = read_checkpoint(path)
        diffs = weight_differences(model, state_dict_of(ckpt))
        stored = ckpt.get("name") if isinstance(ckpt.get("name"), str) else None
        trained = ("" if stored is None else f" (it was trained as {stored})" if stored in open_clip.list_models()
                   else f" (its run name is {stored})")
        detail = "\n  ".join(diffs) if diffs else str(e)
        raise ModelError(f"{path} does not fit model {name}{trained}:\n  {detail}") from e


def fit(model: torch.nn.Module, contents: Contents, name: str) -> None:
    """Put ``contents``' weights into ``model``: directly when they fit, else through open_clip's
    converting loader (:func:`load_weights`), which also gives the clear error."""
    if weight_differences(model, contents.state_dict):
        load_weights(model, contents.source.weights, name)
    else:
        model.load_state_dict(contents.state_dict)


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


def preprocess_of(model: torch.nn.Module) -> dict[str, Any]:
    """The model's inference preprocessing (:data:`PREPROCESS_KEYS`) as JSON types."""
    cfg = getattr(getattr(unwrap(model), "visual", None), "preprocess_cfg", None) or {}
    return {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in cfg.items() if k in PREPROCESS_KEYS}


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
        "preprocess_cfg": preprocess_of(model),
        "egoindex_version": __version__,
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scaler is not None:
        ckpt["scaler"] = scaler.state_dict()
    return ckpt


# ---- checkpoint forms: the one resolver ---------------------------------------------------------


def preprocess_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``create_model_and_transforms`` arguments that force a preprocessing config (empty: the model's)."""
    names = {"mean": "image_mean", "std": "image_std", "interpolation": "image_interpolation",
             "resize_mode": "image_resize_mode"}
    return {names[k]: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in names and v is not None}


def check_embeddable(model: torch.nn.Module, what: str) -> None:
    """Refuse a preprocessing that :mod:`egoindex.model.embed` would not reproduce (it would
    embed every frame with the wrong geometry, silently)."""
    pp = preprocess_of(model)
    interp, mode = pp.get("interpolation", "bicubic"), pp.get("resize_mode", "shortest")
    if interp not in EMBEDDER_INTERPOLATIONS or mode not in EMBEDDER_RESIZE_MODES:
        raise ModelError(f"{what} asks for preprocessing interpolation={interp!r}, resize_mode={mode!r}; egoindex "
                         f"embeds with interpolation {' or '.join(EMBEDDER_INTERPOLATIONS)} and resize_mode "
                         f"{' or '.join(EMBEDDER_RESIZE_MODES)} only, and refuses to approximate it")


def registered_names(model_cfg: Mapping[str, Any]) -> list[str]:
    """The open_clip model names whose registered config is exactly ``model_cfg`` (sorted)."""
    want = json.loads(json.dumps(model_cfg))
    return [n for n in open_clip.list_models() if open_clip.get_model_config(n) == want]


def describe_architecture(model_cfg: Mapping[str, Any]) -> str:
    names = registered_names(model_cfg)
    if names:
        return f"model {names[0]}"
    vision = model_cfg.get("vision_cfg") or {}
    return (f"an architecture open_clip has no name for (embed_dim {model_cfg.get('embed_dim')}, image_size "
            f"{vision.get('image_size')}, {vision.get('layers')} vision layers)")


def model_from_run_name(run_name: str) -> str | None:
    """The open_clip model in an open_clip_train run name, or None.

    open_clip_train names a run ``{date}-model_{MODEL with / as -}-lr_{lr}-b_{batch}-j_{workers}-p_{precision}``
    (open_clip_train/main.py); model names contain dashes, so the longest dash-separated prefix
    after ``model_`` that open_clip knows is the model. ``--name`` runs have no such part.
    """
    m = re.search(r"(?:^|-)model_(.+)$", run_name)
    if m is None:
        return None
    known = set(open_clip.list_models())
    parts = m.group(1).split("-")
    for n in range(len(parts), 0, -1):
        if "-".join(parts[:n]) in known:
            return "-".join(parts[:n])
    return None


@dataclass
class Contents:
    """What a checkpoint's files hold, before any rule about names is applied."""

    source: Source
    form: str
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]  # everything but weights and optimizer state: epoch, step, name, config, ...
    preprocess_cfg: dict[str, Any]  # the checkpoint's own preprocessing ({}: the model's defaults)
    model_cfg: dict[str, Any] | None = None  # a hub folder's architecture
    stored_name: str | None = None  # the file's "name" (a model or a run name)


def read_contents(source: Source) -> Contents:
    """Read a located checkpoint (one read of the weights) and tell its form."""
    obj = read_checkpoint(source.weights)
    if obj.get("kind") == "clip_video":  # egoindex.model.clip_video.KIND: towers + temporal head, not a frame model
        raise ModelError(f"{source.given} is a clip-level video checkpoint (kind 'clip_video', model "
                         f"{obj.get('name')!r} on frame model {obj.get('frame_model')!r}), not a frame model; load it "
                         "with egoindex.model.clip_video.load_clip_video(PATH)")
    if obj.get("kind") == "video_classifier":  # egoindex.model.video_checkpoint.KIND: a fine-tuned classifier
        raise ModelError(f"{source.given} is a fine-tuned video classifier (kind 'video_classifier', backbone "
                         f"{(obj.get('info') or {}).get('backbone')!r}), not an open_clip model; use it with "
                         "`egoindex classify --model PATH VIDEO` or egoindex.model.video_checkpoint.load_classifier")
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "optimizer", "scaler")} if "state_dict" in obj else {}
    stored = meta.get("name") if isinstance(meta.get("name"), str) else None
    if source.config is not None:
        try:
            cfg = json.loads(source.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelError(f"{source.given}: cannot read {source.config}: {e}") from e
        if not isinstance(cfg, dict) or not isinstance(cfg.get("model_cfg"), dict):
            raise ModelError(f"{source.given}: {source.config} has no 'model_cfg' (the architecture); it is not a "
                             f"{CONFIG_FILE} as open_clip writes it")
        pp = cfg.get("preprocess_cfg") or {}
        if not isinstance(pp, dict):
            raise ModelError(f"{source.given}: 'preprocess_cfg' in {source.config} is not an object")
        return Contents(source, "hf_folder", state_dict_of(obj), meta,
                        {k: v for k, v in pp.items() if k in PREPROCESS_KEYS}, cfg["model_cfg"], stored)
    if "state_dict" not in obj:
        return Contents(source, "state_dict", state_dict_of(obj), {}, {})
    form = "egoindex" if "egoindex_version" in obj else "open_clip_train"
    pp = obj.get("preprocess_cfg") if isinstance(obj.get("preprocess_cfg"), dict) else {}
    return Contents(source, form, state_dict_of(obj), meta, {k: v for k, v in pp.items() if k in PREPROCESS_KEYS},
                    None, stored)


@dataclass
class Resolved:
    """A checkpoint with its model decided: what :func:`load_model` creates and loads."""

    contents: Contents
    name: str  # the open_clip model name (``local-dir:FOLDER`` for a folder's unnamed architecture)
    run_name: str | None = None  # open_clip_train's run name

    @property
    def create_from(self) -> str:
        """What open_clip creates the model from: a hub folder's own config, else the name."""
        folder = self.contents.source.folder
        return f"{LOCAL_DIR_PREFIX}{folder}" if folder is not None else self.name


def resolve_checkpoint(checkpoint: str | Path, model_name: str | None = None) -> Resolved:
    """Locate and read a checkpoint of any form and decide its model (module docstring rules)."""
    contents = read_contents(locate(checkpoint))
    if contents.model_cfg is not None:  # a hub folder: its config is the architecture
        names = registered_names(contents.model_cfg)
        own = f"{LOCAL_DIR_PREFIX}{contents.source.folder}"
        if model_name and model_name not in names and model_name != own:
            raise ModelError(f"{checkpoint}: {contents.source.config} describes "
                             f"{describe_architecture(contents.model_cfg)}, not {model_name}; leave out the model name "
                             "to use the folder's own")
        return Resolved(contents, model_name or (names[0] if names else own))
    stored, run_name = contents.stored_name, None
    if stored is not None and stored not in open_clip.list_models():
        stored, run_name = None, stored  # a run name (open_clip_train), never a model
    if stored is not None:
        if model_name and model_name != stored:
            raise ModelError(f"{checkpoint} was trained as {stored}, not {model_name}; leave out the model name to "
                             f"use {stored}")
        return Resolved(contents, stored)
    if model_name:
        check_model_name(model_name)
        return Resolved(contents, model_name, run_name)
    if run_name is not None:
        recovered = model_from_run_name(run_name)
        if recovered is None:
            raise ModelError(
                f"{checkpoint}: its 'name' {run_name!r} is no open_clip model (unknown model {run_name!r}), so it is "
                "a run name (open_clip_train stores the run name there) and no 'model_<NAME>-' part of it names an "
                "open_clip model. Pass the model the run trained with --model (e.g. --model ViT-B-32).")
        return Resolved(contents, recovered, run_name)
    raise ModelError(f"{checkpoint} does not record its model name; pass the open_clip name with --model "
                     "(e.g. --model ViT-B-32)")


@dataclass
class Loaded:
    """An inference-ready model from a checkpoint (eval mode)."""

    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    name: str
    checkpoint: dict[str, Any]  # everything but the weights: epoch, step, config, ...
    form: str = ""  # one of FORMS
    path: Path | None = None  # the file or folder to record and re-load (a hf-hub: id's cached folder)
    run_name: str | None = None  # open_clip_train's run name
    #: the clip-level video model (egoindex.model.clip_video.ClipVideoModel) when the checkpoint is one
    #: (kind ``clip_video``); then ``model`` is its open_clip towers and ``name`` the clip model's name.
    #: None for a frame model. Loaded by egoindex.model.clip_video.load_embedding_model.
    video: torch.nn.Module | None = None


def load_model(checkpoint_path: Path | str, model_name: str | None = None,
               device: str | torch.device = "cpu") -> Loaded:
    """Load a checkpoint of any form (:data:`FORMS`) for inference.

    The model is decided by :func:`resolve_checkpoint`; the preprocessing is the checkpoint's own
    (a hub folder's ``preprocess_cfg``, an egoindex checkpoint's record), else the model's
    defaults. Weights that do not fit fail with the differing shapes.
    """
    r = resolve_checkpoint(checkpoint_path, model_name)
    sd = r.contents.state_dict
    kwargs: dict[str, Any] = dict(SIGLIP_INIT) if "logit_bias" in sd else {}
    with _weights_follow():
        model, _, preprocess = open_clip.create_model_and_transforms(
            r.create_from, pretrained=None, load_weights=False, device="cpu", output_dict=True,
            **preprocess_kwargs(r.contents.preprocess_cfg), **kwargs)
    check_embeddable(model, str(checkpoint_path))
    fit(model, r.contents, r.name)
    model.to(device).eval()
    return Loaded(model, preprocess, open_clip.get_tokenizer(r.create_from), r.name, r.contents.meta,
                  form=r.contents.form, path=r.contents.source.path, run_name=r.run_name)
