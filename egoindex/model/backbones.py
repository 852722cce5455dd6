"""Video backbones behind one interface: a name -> a :class:`~egoindex.model.video_nets.VideoClassifier`.

``create_classifier(NAME, num_classes, weights=...)`` builds any backbone of :data:`BACKBONES`
(or ``clip-frames:OPEN_CLIP_NAME`` / ``clip-video:CLIP_MODEL``) with a fresh linear head;
``rebuild(info, num_classes)`` makes the same network again from the ``info`` a fine-tune
checkpoint records, without the original weights file (:mod:`egoindex.model.video_checkpoint`).

Families (``egoindex finetune --list-backbones`` prints the table):

* ``videomae-*`` / ``timesformer-*``: transformers' VideoMAE (Tong et al. 2022) and TimeSformer
  (Bertasius et al. 2021). ``-tiny`` are small random configs for CPU tests and the demo;
  ``-base`` is each paper's base config (224 px, 16 / 8 frames), normally with ``--weights`` a
  local Hugging Face folder (``config.json`` + weights); the folder's ``config.json`` is then the
  architecture.
* torchvision's 3D CNNs and video transformers: ``r3d_18``, ``mc3_18``, ``r2plus1d_18``,
  ``s3d``, ``mvit_v1_b``, ``mvit_v2_s``, ``swin3d_t/s/b``, each random or from ``--weights`` a
  torchvision ``.pth`` state dict (its Kinetics head is dropped); ``r3d-tiny`` /
  ``r2plus1d-tiny`` (width 16, one block per stage) and ``swin3d-tiny`` are the CPU configs.
  **I3D**: no maintained I3D installs from the registry (pytorchvideo's last release is from 2022
  and pins old fvcore/iopath), so ``s3d`` stands in for it: S3D (Xie et al. 2018) is I3D's
  inflated Inception-v1 with separable 3D convolutions, the same authors' successor, and
  torchvision keeps it.
* ``clip-frames:NAME``: an open_clip image tower per frame (``--weights`` any open_clip
  checkpoint form), mean-pooled over time: the frame-CLIP baseline as a trainable backbone.
* ``clip-video:NAME``: the clip-level video-text model (:mod:`egoindex.model.clip_video`, e.g.
  ``clip-video:ego-tiny-rn-video``), ``--weights`` a frame or clip checkpoint.

Weights come from local files or folders only (:func:`egoindex.model.sources.local_weights`, the
rule open_clip checkpoints follow): a hub id without network fails with the ``hf download``
line; a torchvision weights name (``R3D_18_Weights.KINETICS400_V1``) fails with its URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from egoindex.errors import ModelError
from egoindex.model.sources import local_weights
from egoindex.model.video_nets import (ClipVideoTower, FrameTower, HFVideoEncoder, TorchvisionEncoder, VideoClassifier,
                                       tiny_video_resnet)

__all__ = ["BACKBONES", "BackboneSpec", "CPU_BACKBONES", "count_parameters", "create_classifier", "describe", "dummy_clip",
           "get_spec", "rebuild"]

#: The normalisation of torchvision's Kinetics video models (their weights' transforms).
KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)
#: ImageNet's, which VideoMAE's and TimeSformer's image processors use.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_FRAMES, CLIP_VIDEO = "clip-frames:", "clip-video:"


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: its family, default clip shape and normalisation."""

    name: str
    family: str  # videomae | timesformer | torchvision | openclip | clip_video
    kind: str  # vit (attention rollout) | cnn (Grad-CAM) | other (input-gradient saliency)
    num_frames: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    cpu: bool  # small enough to fine-tune on a CPU in minutes
    summary: str
    arch: dict[str, Any]  # family-specific: the transformers config kwargs, the torchvision builder ...


def _hf_tiny(**kw: Any) -> dict[str, Any]:
    return {"image_size": 64, "patch_size": 16, "num_frames": 8, "hidden_size": 96, "num_hidden_layers": 4,
            "num_attention_heads": 4, "intermediate_size": 192, **kw}


_SPECS = [
    BackboneSpec("videomae-tiny", "videomae", "vit", 8, 64, IMAGENET_MEAN, IMAGENET_STD, True,
                 "VideoMAE, 4 layers x 96 wide, 2x16x16 tubelets (random init)", _hf_tiny(tubelet_size=2)),
    BackboneSpec("videomae-base", "videomae", "vit", 16, 224, IMAGENET_MEAN, IMAGENET_STD, False,
                 "VideoMAE ViT-B (the paper's base config; --weights an HF folder)", {}),
    BackboneSpec("timesformer-tiny", "timesformer", "vit", 8, 64, IMAGENET_MEAN, IMAGENET_STD, True,
                 "TimeSformer divided space-time, 4 layers x 96 wide (random init)", _hf_tiny()),
    BackboneSpec("timesformer-base", "timesformer", "vit", 8, 224, IMAGENET_MEAN, IMAGENET_STD, False,
                 "TimeSformer ViT-B (the paper's base config; --weights an HF folder)", {}),
    BackboneSpec("r3d-tiny", "torchvision", "cnn", 8, 64, KINETICS_MEAN, KINETICS_STD, True,
                 "torchvision R3D blocks, widths 16-128, one block per stage", {"tiny": "3d"}),
    BackboneSpec("r2plus1d-tiny", "torchvision", "cnn", 8, 64, KINETICS_MEAN, KINETICS_STD, True,
                 "torchvision R(2+1)D blocks, widths 16-128, one block per stage", {"tiny": "2plus1d"}),
    BackboneSpec("swin3d-tiny", "torchvision", "other", 8, 64, KINETICS_MEAN, KINETICS_STD, True,
                 "torchvision Video Swin, embed 24, one block per stage", {"swin_tiny": True}),
    *[BackboneSpec(n, "torchvision", kind, frames, size, KINETICS_MEAN, KINETICS_STD, False, summary, {"builder": n})
      for n, kind, frames, size, summary in (
          ("r3d_18", "cnn", 16, 112, "torchvision R3D-18"),
          ("mc3_18", "cnn", 16, 112, "torchvision MC3-18"),
          ("r2plus1d_18", "cnn", 16, 112, "torchvision R(2+1)D-18"),
          ("s3d", "cnn", 16, 224, "torchvision S3D (stands in for I3D: module docstring)"),
          ("mvit_v1_b", "other", 16, 224, "torchvision MViT v1 B"),
          ("mvit_v2_s", "other", 16, 224, "torchvision MViT v2 S"),
          ("swin3d_t", "other", 16, 224, "torchvision Video Swin T"),
          ("swin3d_s", "other", 16, 224, "torchvision Video Swin S"),
          ("swin3d_b", "other", 16, 224, "torchvision Video Swin B"),
      )],
]
#: Every registered backbone by name (``clip-frames:*`` / ``clip-video:*`` are resolved on demand).
BACKBONES: dict[str, BackboneSpec] = {s.name: s for s in _SPECS}
CPU_BACKBONES = tuple(s.name for s in _SPECS if s.cpu)


def get_spec(name: str) -> BackboneSpec:
    """The spec of ``name``; unknown names fail listing the registered ones."""
    if name in BACKBONES:
        return BACKBONES[name]
    if name.startswith(CLIP_FRAMES) or name.startswith(CLIP_VIDEO):
        family = "openclip" if name.startswith(CLIP_FRAMES) else "clip_video"
        inner = name.split(":", 1)[1]
        if not inner:
            raise ModelError(f"{name}: name the model after the colon, e.g. {CLIP_FRAMES}ego-tiny-rn or "
                             f"{CLIP_VIDEO}ego-tiny-rn-video")
        return BackboneSpec(name, family, "other", 4 if family == "clip_video" else 8, 0, (), (), True,
                            f"open_clip {'frame tower' if family == 'openclip' else 'clip-level video model'} {inner}",
                            {"model": inner})
    raise ModelError(f"unknown backbone {name!r}. Registered: {', '.join(BACKBONES)}; or {CLIP_FRAMES}OPEN_CLIP_NAME / "
                     f"{CLIP_VIDEO}CLIP_MODEL (see `egoindex finetune --list-backbones`)")


def describe() -> list[dict[str, Any]]:
    """The registry as rows (name, family, frames, size, cpu, summary) for ``--list-backbones`` and the docs."""
    return [{"name": s.name, "family": s.family, "frames": s.num_frames, "size": s.image_size,
             "cpu": s.cpu, "summary": s.summary} for s in _SPECS]


# ---- weights ------------------------------------------------------------------------------------


def _torchvision_weights_hint(given: str) -> ModelError | None:
    """A torchvision weights name (``R3D_18_Weights.KINETICS400_V1``) would download: say from where."""
    if "_Weights." not in given:
        return None
    try:
        from torchvision.models import get_weight

        url = get_weight(given).url
    except (ValueError, KeyError, AttributeError):
        return ModelError(f"{given} is no torchvision weights name; pass a local .pth file with --weights")
    return ModelError(f"--weights {given} would download {url}, and egoindex works offline. Download that file on a "
                      f"machine with internet, copy it here and pass --weights {url.rsplit('/', 1)[-1]}")


def _load_state(net: nn.Module, path: Path, drop: tuple[str, ...], what: str) -> None:
    """Load a torch state dict into ``net``, ignoring the classifier keys ``drop`` (their class count
    is another dataset's); any other difference fails with the differing names and shapes."""
    from egoindex.model.openclip import read_checkpoint, state_dict_of

    sd = {k: v for k, v in state_dict_of(read_checkpoint(path)).items() if not k.startswith(drop)}
    have = {k: v for k, v in net.state_dict().items() if not k.startswith(drop)}
    diffs = [f"{k}: file {tuple(v.shape)} vs model {tuple(have[k].shape)}" for k, v in sd.items()
             if k in have and tuple(v.shape) != tuple(have[k].shape)]
    missing, extra = sorted(set(have) - set(sd)), sorted(set(sd) - set(have))
    if missing:
        diffs.append(f"{len(missing)} weights missing from the file, e.g. {', '.join(missing[:3])}")
    if extra:
        diffs.append(f"{len(extra)} weights {what} does not have, e.g. {', '.join(extra[:3])}")
    if diffs:
        raise ModelError(f"{path} does not fit {what}:\n  " + "\n  ".join(diffs[:8]))
    net.load_state_dict(sd, strict=False)


def _hf_classes(family: str) -> tuple[Any, Any]:
    # transformers and torchvision's video models are imported where a network is built: importing
    # them costs seconds, and the checkpoint reader, the server and `classify` import this module
    import transformers

    if family == "videomae":
        return transformers.VideoMAEConfig, transformers.VideoMAEForVideoClassification
    return transformers.TimesformerConfig, transformers.TimesformerForVideoClassification


def _build_hf(spec: BackboneSpec, weights: Path | None, frames: int | None, size: int | None,
              hf_config: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    config_cls, model_cls = _hf_classes(spec.family)
    if weights is not None:
        folder = weights if weights.is_dir() else weights.parent
        if not (folder / "config.json").is_file():
            raise ModelError(f"{weights}: a {spec.family} backbone loads a Hugging Face model folder (config.json + "
                             "model.safetensors or pytorch_model.bin); this has no config.json")
        config = config_cls.from_pretrained(str(folder), local_files_only=True)
        if getattr(config, "model_type", None) != config_cls.model_type:
            raise ModelError(f"{folder}/config.json is a {config.model_type!r} model, not {config_cls.model_type!r}; "
                             f"use the backbone of its family")
        for key, want in (("num_frames", frames), ("image_size", size)):
            if want is not None and int(getattr(config, key)) != int(want):
                raise ModelError(f"{folder} was trained with {key}={getattr(config, key)}; --{key.replace('_', '-')} "
                                 f"{want} would need its position embeddings resampled: leave it out")
        net = model_cls.from_pretrained(str(folder), config=config, local_files_only=True, ignore_mismatched_sizes=True)
    else:
        kw = dict(hf_config) if hf_config is not None else {**spec.arch}
        if hf_config is None:
            kw.update({k: v for k, v in (("num_frames", frames), ("image_size", size)) if v is not None})
        config = config_cls(**kw) if hf_config is None else config_cls.from_dict(kw)
        net = model_cls(config)
    enc = HFVideoEncoder(net)
    record = {k: v for k, v in net.config.to_dict().items() if k not in ("id2label", "label2id", "architectures")}
    return enc, {"hf_config": record, "num_frames": int(net.config.num_frames), "image_size": int(net.config.image_size)}


def _build_torchvision(spec: BackboneSpec, weights: Path | None, frames: int, size: int) -> nn.Module:
    import torchvision.models.video as tvv

    if "tiny" in spec.arch:
        net = tiny_video_resnet(spec.arch["tiny"])
    elif spec.arch.get("swin_tiny"):
        net = tvv.SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=24, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                                    window_size=[4, 4, 4], stochastic_depth_prob=0.0)
    else:
        if spec.arch["builder"].startswith("mvit") and (frames, size) != (spec.num_frames, spec.image_size):
            raise ModelError(f"{spec.name} is built for {spec.num_frames} frames of {spec.image_size} px (torchvision "
                             "fixes its position grid); leave out --num-frames / --image-size")
        net = getattr(tvv, spec.arch["builder"])(weights=None)
    if weights is not None:
        if weights.is_dir():
            raise ModelError(f"{weights} is a folder; a torchvision backbone loads a .pth state dict file")
        _load_state(net, weights, ("fc.", "head.", "classifier."), spec.name)
    return TorchvisionEncoder(net)


def _build_openclip(spec: BackboneSpec, weights: Path | None, frames: int) -> tuple[nn.Module, dict[str, Any]]:
    from egoindex.model import openclip

    name = spec.arch["model"]
    if spec.family == "openclip":
        created = openclip.create(name, init=weights)
        enc: nn.Module = FrameTower(created.model)
        pp = openclip.preprocess_of(created.model)
        visual = created.model.visual
    else:
        from egoindex.model.clip_video import create_clip_video

        cv = create_clip_video(name, init=weights, num_frames=frames)
        enc = ClipVideoTower(cv.model)
        pp = openclip.preprocess_of(cv.model.clip)
        visual = cv.model.clip.visual
    size = visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = tuple(pp.get("mean") or (0.48145466, 0.4578275, 0.40821073))  # open_clip's OPENAI defaults
    std = tuple(pp.get("std") or (0.26862954, 0.26130258, 0.27577711))
    return enc, {"image_size": size, "mean": mean, "std": std}


def _resolve_weights(spec: BackboneSpec, weights: str | Path | None) -> Path | None:
    if weights is None:
        return None
    hint = _torchvision_weights_hint(str(weights))
    if hint is not None:
        raise hint
    example = {"videomae": "a Hugging Face VideoMAE folder", "timesformer": "a Hugging Face TimeSformer folder",
               "torchvision": "a torchvision .pth file"}.get(spec.family, "an open_clip checkpoint file or folder")
    config_file = "open_clip_config.json" if spec.family in ("openclip", "clip_video") else "config.json"
    return local_weights(weights, config_file, example)


def _check_shape(frames: int, size: int) -> None:
    if frames < 1 or size < 16:
        raise ModelError(f"a clip needs num_frames >= 1 and image_size >= 16 (got {frames} frames of {size} px)")


def create_classifier(name: str, num_classes: int, *, weights: str | Path | None = None, num_frames: int | None = None,
                      image_size: int | None = None, dropout: float = 0.0) -> VideoClassifier:
    """Backbone ``name`` with a new ``num_classes`` head; ``weights`` a local file or folder (module docstring).

    ``num_frames`` / ``image_size`` override the backbone's defaults where the architecture allows
    it (random transformers configs, CNNs, Swin; an open_clip tower's size is its own, a weights
    folder's config is fixed).
    """
    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, not {num_classes}")
    spec = get_spec(name)
    path = _resolve_weights(spec, weights)
    info: dict[str, Any] = {"backbone": spec.name, "family": spec.family, "kind": spec.kind,
                            "mean": list(spec.mean), "std": list(spec.std), "weights": str(path) if path else None}
    if spec.family in ("videomae", "timesformer"):
        enc, extra = _build_hf(spec, path, num_frames, image_size)
        info.update(extra)
    elif spec.family == "torchvision":
        frames, size = num_frames or spec.num_frames, image_size or spec.image_size
        _check_shape(frames, size)
        enc = _build_torchvision(spec, path, frames, size)
        info.update(num_frames=frames, image_size=size)
    else:
        frames = num_frames or spec.num_frames
        enc, extra = _build_openclip(spec, path, frames)
        if image_size is not None and image_size != extra["image_size"]:
            raise ModelError(f"{name}'s image tower takes {extra['image_size']} px frames, not --image-size {image_size}")
        info.update(num_frames=frames, **{k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()})
    _check_shape(int(info["num_frames"]), int(info["image_size"]))
    return VideoClassifier(enc, int(enc.dim), num_classes, info, dropout)


def rebuild(info: dict[str, Any], num_classes: int) -> VideoClassifier:
    """The network a checkpoint's ``info`` describes, randomly initialised (its state dict follows)."""
    try:
        spec = get_spec(str(info["backbone"]))
        frames, size = int(info["num_frames"]), int(info["image_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"a video classifier record without {e}: not written by egoindex finetune") from e
    if spec.family in ("videomae", "timesformer"):
        enc, _ = _build_hf(spec, None, None, None, hf_config=info.get("hf_config"))
    elif spec.family == "torchvision":
        enc = _build_torchvision(spec, None, frames, size)
    else:
        enc, _ = _build_openclip(spec, None, frames)
    return VideoClassifier(enc, int(enc.dim), num_classes, info)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def dummy_clip(model: VideoClassifier, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A random normalised clip of the model's shape (exports, benchmarks, shape checks)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.num_frames, 3, model.image_size, model.image_size, generator=g)
