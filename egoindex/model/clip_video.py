"""Clip-level video models: an open_clip CLIP model plus a small temporal transformer.

egoindex's frame model sees one frame; its clip vector (:mod:`egoindex.model.pooling`) is the
normalised mean of frame vectors, which is the same for a sequence and its reversal, so "the cup
falls" and "the cup rises" cannot differ. :class:`ClipVideoModel` keeps the frame model's towers
(the image tower embeds every frame, the text tower is unchanged) and adds a temporal transformer
over the per-frame embeddings, pooled to one clip vector.

Why frame-level embeddings and not frame tokens: EgoVLP/Frozen put divided space-time attention
inside the ViT and LaViLa/AVION use TimeSformer-style blocks; both need a ViT, cost T times the
tokens in every layer, and change the image tower so it no longer is the frame model. A temporal
transformer over one embedding per frame (CLIP4Clip's "seqTransf") works on any open_clip tower
(ModifiedResNet included), costs next to nothing beside the image tower (T tokens of width
``embed_dim``), keeps the frame tower exact, and can run on frame vectors a store already holds.

The temporal head (:class:`TemporalHead`), on L2-normalised frame embeddings ``x`` (B, T, D),
``T == num_frames``::

    h = x + pos[:T]                    # learned temporal position embeddings
    h = TransformerEncoder(h)          # pre-LN blocks, width D
    y = mean_t x + proj(concat_t ln(h_t))   # proj: T*D -> D, zero-initialised
    clip = normalise(y)

``proj`` starts at zero, so at initialisation the clip vector is exactly the normalised mean of
the frame vectors: the model STARTS AS THE FRAME MODEL (the CLIP4Clip way of zero-initialising
the residual output). Its gradient is not zero (its input ``ln(h)`` is not), so training moves it
off the frame mean.

Why ``proj`` reads the concatenation and not the mean of the tokens (CLIP4Clip's seqTransf
averages them): averaging after a near-linear residual branch is nearly order-blind, since the
mean of ``W ln(x_t + pos_t)`` over t changes little when the frames swap places. Measured on the
motion corpus: after 180 training steps with the averaged head (also with a 10x learning rate on
it), random frame sequences and their reversals pooled to cosine > 0.997, and the reversed-clip
questions of the training videos were at chance (50.3 %).
One output matrix per frame position (the concatenation) makes frame order a first-order
effect. A clip shorter than ``num_frames`` is resampled to ``num_frames`` by the one sampling
rule (:func:`egoindex.model.pooling.segment_indices`, frames repeat in order).

Frame order needs more than the head (docs/training.md, "Frame order"): frame vectors that say
where things are (``spatial_grid``, a zero-initialised adapter from the tower's feature grid,
:mod:`egoindex.model.spatial`) and a loss that asks for order (``forward(..., reverse=True)`` gives
the reversed clip's vector for :func:`egoindex.train.loss.time_order_loss`).

``forward(video, text)`` returns open_clip's output dict (``image_features`` = the video features,
``text_features``, ``logit_scale`` [, ``logit_bias``]), so open_clip's and egoindex's losses apply
unchanged. Video input is ``(B, T, C, H, W)`` with ``1 <= T <= num_frames``.

Checkpoint (docs/formats.md "Checkpoints", kind ``clip_video``): a dict of plain types::

    {"kind": "clip_video", "name": the clip model's name (a preset or FRAME-video),
     "frame_model": the open_clip name of the frame towers, "video_config": VideoConfig as a dict,
     "state_dict": ClipVideoModel weights ("clip.*" = the open_clip model, "temporal.*"),
     "preprocess_cfg": as a frame checkpoint's, "epoch", "step", "config", "egoindex_version"
     [, "optimizer", "scaler"]}

:func:`load_clip_video` reads it; egoindex's frame loader (:mod:`egoindex.model.openclip`)
refuses it with a ModelError naming :func:`load_clip_video`. :func:`load_embedding_model` is the
loader of everything that embeds (build, ``Store.embedder``, export, bench): frame checkpoints as
``openclip.load_model`` gives them, clip checkpoints as a ``Loaded`` of their towers with the clip
model as ``.video`` (``Embedder.encode_clips`` pools with it; docs/store.md, ``encoders``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as grad_checkpoint

from egoindex.errors import ModelError
from egoindex.model import openclip, spatial
from egoindex.model.pooling import segment_indices
from egoindex.model.sources import locate

#: The ``kind`` of a clip-model checkpoint (frame checkpoints have none).
KIND = "clip_video"


@dataclass(frozen=True)
class VideoConfig:
    """The temporal part of a clip model (recorded as ``video_config`` in its checkpoint)."""

    num_frames: int = 4
    temporal_layers: int = 1
    temporal_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    #: cells per side of the frame tower's spatial adapter (:mod:`egoindex.model.spatial`); 0 = none
    spatial_grid: int = 0

    def check(self, width: int) -> None:
        if self.num_frames < 1 or self.temporal_layers < 1 or self.temporal_heads < 1:
            raise ModelError(f"video config {self}: num_frames, temporal_layers and temporal_heads must be >= 1")
        if width % self.temporal_heads:
            raise ModelError(f"video config: temporal_heads={self.temporal_heads} does not divide the embedding "
                             f"width {width}")
        if self.spatial_grid < 0:
            raise ModelError(f"video config {self}: spatial_grid must be >= 0 (0 = no spatial adapter)")
        if not 0.0 <= self.dropout < 1.0 or self.mlp_ratio <= 0:
            raise ModelError(f"video config {self}: dropout must be in [0, 1) and mlp_ratio > 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> VideoConfig:
        known = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or set(d) - known:
            raise ModelError(f"{where}: 'video_config' must be an object with keys from {sorted(known)}, got {d!r}")
        return cls(**d)  # a checkpoint of egoindex 0.4.0 has no spatial_grid: 0, no adapter


@dataclass(frozen=True)
class VideoPreset:
    """A registered clip model: frame towers + temporal defaults (:data:`VIDEO_PRESETS`)."""

    frame_model: str
    temporal_layers: int
    temporal_heads: int


#: Registered clip models. Parameters at 4 frames, measured with :func:`count_parameters` (docs/training.md,
#: "Clip-level video models"): ego-tiny-rn-video 16.81M (head 0.22M), ViT-B-32-video 164.15M (head 12.88M),
#: ViT-B-16-video 162.50M (12.88M), ViT-L-14-video 470.74M (43.12M).
VIDEO_PRESETS: dict[str, VideoPreset] = {
    "ego-tiny-rn-video": VideoPreset("ego-tiny-rn", 1, 4),
    "ViT-B-32-video": VideoPreset("ViT-B-32", 4, 8),
    "ViT-B-16-video": VideoPreset("ViT-B-16", 4, 8),
    "ViT-L-14-video": VideoPreset("ViT-L-14", 6, 12),
}


class TemporalHead(nn.Module):
    """Position embeddings + pre-LN transformer over frame embeddings + zero-init residual output."""

    def __init__(self, width: int, cfg: VideoConfig) -> None:
        super().__init__()
        cfg.check(width)
        self.cfg = cfg
        self.pos = nn.Parameter(torch.randn(cfg.num_frames, width) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, cfg.temporal_heads, int(width * cfg.mlp_ratio), cfg.dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(cfg.temporal_layers)
        )
        self.ln = nn.LayerNorm(width)
        self.proj = nn.Linear(cfg.num_frames * width, width)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_frames, D) normalised frame embeddings -> (B, D) clip vectors (not normalised)."""
        h = x + self.pos[: x.shape[1]].to(x.dtype)
        for layer in self.layers:
            if self.grad_checkpointing and torch.is_grad_enabled():
                h = grad_checkpoint(layer, h, use_reentrant=False)
            else:
                h = layer(h)
        return x.mean(dim=1) + self.proj(self.ln(h).flatten(1))


class ClipVideoModel(nn.Module):
    """An open_clip CLIP model whose image side embeds a clip of T frames (module docstring)."""

    def __init__(self, clip: nn.Module, cfg: VideoConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or VideoConfig()
        self.clip = clip
        width = getattr(getattr(clip, "visual", None), "output_dim", None)
        if not isinstance(width, int):
            raise ModelError(f"{type(clip).__name__} has no image tower with an output_dim; a clip model needs an "
                             "open_clip CLIP model")
        self.width = width
        self.temporal = TemporalHead(self.width, cfg)
        self.cfg = cfg
        if cfg.spatial_grid:  # clip.visual.spatial, run by every encode_image (egoindex.model.spatial)
            spatial.attach(clip.visual, width, cfg.spatial_grid)

    @property
    def num_frames(self) -> int:
        return self.cfg.num_frames

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.clip.logit_scale

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint activations in the open_clip towers and the temporal layers (memory for compute)."""
        self.clip.set_grad_checkpointing(enable)
        self.temporal.grad_checkpointing = enable

    def check_video(self, video: torch.Tensor) -> None:
        if video.dim() != 5 or not 1 <= video.shape[1] <= self.num_frames:
            raise ModelError(f"video input must be (B, T, C, H, W) with 1 <= T <= {self.num_frames}; got shape "
                             f"{tuple(video.shape)}")

    def encode_frames(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T, D) L2-normalised frame embeddings (the frame model's vectors)."""
        self.check_video(video)
        b, t = video.shape[:2]
        feats = self.clip.encode_image(video.flatten(0, 1))
        return F.normalize(feats, dim=-1).view(b, t, -1)

    def pool(self, frames: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, T, D) normalised frame embeddings -> (B, D) clip vectors (unit length if ``normalize``).

        Takes frame vectors from anywhere (e.g. a store's frames table), which is how a build can
        make clip vectors without decoding again. At initialisation the result is the direction
        of the frame mean.
        """
        if frames.dim() != 3 or not 1 <= frames.shape[1] <= self.num_frames or frames.shape[2] != self.width:
            raise ModelError(f"frame embeddings must be (B, T, {self.width}) with 1 <= T <= {self.num_frames}; got "
                             f"shape {tuple(frames.shape)}")
        if frames.shape[1] < self.num_frames:  # resample to num_frames, frames repeating in time order
            idx = torch.as_tensor(segment_indices(frames.shape[1], self.num_frames), device=frames.device)
            frames = frames.index_select(1, idx)
        clip = self.temporal(frames)
        return F.normalize(clip, dim=-1) if normalize else clip

    def encode_video(self, video: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, D) clip vectors."""
        return self.pool(self.encode_frames(video), normalize=normalize)

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.clip.encode_text(text, normalize=normalize)

    def forward(self, video: torch.Tensor | None = None, text: torch.Tensor | None = None,
                reverse: bool = False) -> dict[str, Any]:
        """open_clip's output dict with the video features as ``image_features``; with ``reverse``
        also ``reversed_features``: the same frame embeddings played backwards through the temporal
        head (the time-order negatives of ``train --reverse-negatives``; no second image-tower pass)."""
        frames = self.encode_frames(video) if video is not None else None
        out: dict[str, Any] = {
            "image_features": self.pool(frames, normalize=True) if frames is not None else None,
            "text_features": self.encode_text(text, normalize=True) if text is not None else None,
            "logit_scale": self.clip.logit_scale.exp(),
        }
        if reverse and frames is not None:
            out["reversed_features"] = self.pool(frames.flip(1), normalize=True)
        if getattr(self.clip, "logit_bias", None) is not None:
            out["logit_bias"] = self.clip.logit_bias
        return out


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass
class CreatedVideo:
    """A clip model with its frame transforms (applied per frame) and tokenizer."""

    model: ClipVideoModel
    preprocess_train: Callable[[Any], torch.Tensor]
    preprocess_val: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    name: str  # the clip model's name
    frame_model: str


def video_name(frame_model: str) -> str:
    """The name of a clip model on the frame towers ``frame_model`` that is no preset: ``FRAME-video``."""
    return f"{frame_model}-video"


def resolve_video_name(name: str) -> tuple[str, VideoPreset | None]:
    """``name`` as (frame model, preset): a preset name (``ViT-B-32-video``) or an open_clip frame name."""
    if name in VIDEO_PRESETS:
        return VIDEO_PRESETS[name].frame_model, VIDEO_PRESETS[name]
    if name.endswith("-video") and name[: -len("-video")] in open_clip.list_models():
        return name[: -len("-video")], None
    openclip.check_model_name(name)
    return name, None


def peek_clip_checkpoint(init: Path | str) -> dict[str, Any] | None:
    """The checkpoint dict if ``init`` is a clip-model file, else None (frame forms, hub folders);
    a frame checkpoint is only opened memory-mapped (:func:`checkpoint_kind`), never read whole."""
    if checkpoint_kind(init) != KIND:
        return None
    return openclip.read_checkpoint(locate(init).weights)


def create_clip_video(
    frame_model_name: str,
    *,
    init: Path | str | None = None,
    num_frames: int = 4,
    temporal_layers: int | None = None,
    temporal_heads: int | None = None,
    mlp_ratio: float = 4.0,
    dropout: float = 0.0,
    spatial_grid: int = VideoConfig.spatial_grid,
    siglip: bool = False,
    device: str | torch.device = "cpu",
    aug_cfg: dict[str, Any] | None = None,
) -> CreatedVideo:
    """A trainable clip model (fp32 weights; mixed precision is autocast's).

    ``frame_model_name`` is an open_clip frame name (``ego-tiny-rn``) or a preset
    (:data:`VIDEO_PRESETS`, whose temporal layers/heads are the defaults). ``init`` is any frame
    checkpoint form (:data:`egoindex.model.openclip.FORMS`, through ``openclip.create`` and its
    resolver rules): the towers get its weights and the temporal head starts as the identity, so
    the model is the frame model. A clip checkpoint as ``init`` (fine-tuning a clip model) loads
    everything and must match the asked video config.
    """
    frame, preset = resolve_video_name(frame_model_name)
    layers = temporal_layers if temporal_layers is not None else (preset.temporal_layers if preset else 1)
    heads = temporal_heads if temporal_heads is not None else (preset.temporal_heads if preset else 4)
    cfg = VideoConfig(num_frames, layers, heads, mlp_ratio, dropout, spatial_grid)
    name = frame_model_name if preset else video_name(frame)
    clip_ckpt = peek_clip_checkpoint(init) if init is not None else None
    if clip_ckpt is not None:
        stored = clip_ckpt.get("frame_model")
        if stored != frame:
            raise ModelError(f"{init} is a clip model on {stored}, not {frame}; pass {clip_ckpt.get('name')}")
        ccfg = VideoConfig.from_dict(clip_ckpt.get("video_config"), str(init))
        if ccfg != cfg:
            raise ModelError(f"{init} has video config {ccfg}, not the asked {cfg}")
        created = openclip.create(frame, siglip=siglip, device=device, aug_cfg=aug_cfg)
        model = ClipVideoModel(created.model, cfg).to(device)
        _load_state(model, clip_ckpt, str(init))
    else:
        created = openclip.create(frame, init=init, siglip=siglip, device=device, aug_cfg=aug_cfg)
        model = ClipVideoModel(created.model, cfg).to(device)
    return CreatedVideo(model, created.preprocess_train, created.preprocess_val, created.tokenizer, name, frame)


def _load_state(model: ClipVideoModel, ckpt: dict[str, Any], where: str) -> None:
    sd = openclip.state_dict_of(ckpt)
    diffs = openclip.weight_differences(model, sd)
    if diffs:
        raise ModelError(f"{where} does not fit clip model {ckpt.get('name')}:\n  " + "\n  ".join(diffs))
    model.load_state_dict(sd, strict=False)  # weight_differences checked everything but BN step counters


def make_clip_video_checkpoint(model: ClipVideoModel, name: str, frame_model: str, *, epoch: int = 0, step: int = 0,
                               config: dict[str, Any] | None = None,
                               optimizer: torch.optim.Optimizer | None = None,
                               scaler: torch.amp.GradScaler | None = None) -> dict[str, Any]:
    """The clip checkpoint dict (module docstring), tensors on the CPU; write it with
    :func:`egoindex.model.openclip.save_checkpoint`."""
    inner = openclip.unwrap(model)
    ckpt = openclip.make_checkpoint(inner, name, epoch=epoch, step=step, config=config or {},
                                    optimizer=optimizer, scaler=scaler)
    # the frame tower's preprocessing (the wrapper has no .visual of its own) and what makes it a clip model
    ckpt.update(kind=KIND, frame_model=frame_model, video_config=asdict(inner.cfg),
                preprocess_cfg=openclip.preprocess_of(inner.clip))
    return ckpt


@dataclass
class LoadedVideo:
    """An inference-ready clip model (eval mode)."""

    model: ClipVideoModel
    preprocess: Callable[[Any], torch.Tensor]  # per frame
    tokenizer: Callable[[list[str]], torch.Tensor]
    name: str
    frame_model: str
    checkpoint: dict[str, Any]  # everything but weights and optimizer state
    path: Path


def load_clip_video(path: Path | str, device: str | torch.device = "cpu") -> LoadedVideo:
    """Load a clip checkpoint (kind ``clip_video``) for inference; a frame checkpoint is refused."""
    obj = peek_clip_checkpoint(path)
    if obj is None:
        raise ModelError(f"{path} is not a clip-level video checkpoint (no kind {KIND!r}); it is a frame model: load "
                         "it with egoindex.model.openclip.load_model, or start a clip model from it with "
                         "egoindex.model.clip_video.create_clip_video(FRAME_MODEL, init=PATH)")
    return _loaded_video(obj, path, locate(path).path, device)


def _loaded_video(obj: dict[str, Any], path: Path | str, where: Path, device: str | torch.device) -> LoadedVideo:
    frame = obj.get("frame_model")
    if not isinstance(frame, str):
        raise ModelError(f"{path}: clip checkpoint without a 'frame_model' name")
    openclip.check_model_name(frame)
    cfg = VideoConfig.from_dict(obj.get("video_config"), str(path))
    sd = openclip.state_dict_of(obj)
    pp = obj.get("preprocess_cfg") if isinstance(obj.get("preprocess_cfg"), dict) else {}
    kwargs: dict[str, Any] = dict(openclip.SIGLIP_INIT) if "clip.logit_bias" in sd else {}
    clip, _, preprocess = open_clip.create_model_and_transforms(
        frame, pretrained=None, load_weights=False, device="cpu", output_dict=True,
        **openclip.preprocess_kwargs(pp), **kwargs)
    openclip.check_embeddable(clip, str(path))
    model = ClipVideoModel(clip, cfg)
    _load_state(model, obj, str(path))
    model.to(device).eval()
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "optimizer", "scaler")}
    return LoadedVideo(model, preprocess, open_clip.get_tokenizer(frame), str(obj.get("name")), frame, meta, where)


def checkpoint_kind(path: Path | str) -> str | None:
    """A checkpoint's ``kind`` (:data:`KIND` for a clip model, None for every frame form) without
    reading its weights: hub folders and safetensors files are frame forms; a torch file is
    opened memory-mapped (``torch.load(mmap=True)``), so a multi-GB frame checkpoint costs no
    second full read before :func:`egoindex.model.openclip.load_model` reads it. A file that
    cannot be opened that way is treated as a frame form: the frame loader then gives its error."""
    src = locate(path)
    if src.config is not None or src.weights.suffix == ".safetensors" or not src.weights.is_file():
        return None
    try:
        obj = torch.load(src.weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # legacy (non-zip) files, corrupt or foreign ones: the frame loader reports them
        return None
    kind = obj.get("kind") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) else None


def load_embedding_model(path: Path | str, model_name: str | None = None,
                         device: str | torch.device = "cpu") -> openclip.Loaded:
    """The one loader of every consumer that embeds (build, ``Store.embedder``, export, bench):
    any checkpoint, frame or clip, as :class:`egoindex.model.openclip.Loaded`.

    A frame checkpoint (any of :data:`egoindex.model.openclip.FORMS`) is
    :func:`egoindex.model.openclip.load_model`'s. A clip checkpoint (kind ``clip_video``) gives a
    Loaded whose ``model`` is the clip model's own open_clip towers (``ClipVideoModel.clip``:
    the image tower embeds the store's frames and image queries, the text tower the texts, both
    exactly as in the clip model) and whose ``video`` is the :class:`ClipVideoModel`, which pools
    frame vectors into clip vectors (``Embedder.encode_clips``). Why one Loaded and not a second
    type: every frame-level use (frames table, text queries, the ONNX text export) works unchanged
    on ``.model``, and only the few places that make clip vectors look at ``.video``.

    ``model_name`` (``--model``) must be the clip model's name when given (``ego-tiny-rn-video``),
    as a frame checkpoint's must be its recorded name.
    """
    obj = peek_clip_checkpoint(path)
    if obj is None:
        return openclip.load_model(path, model_name, device=device)
    lv = _loaded_video(obj, path, locate(path).path, device)
    if model_name and model_name != lv.name:
        raise ModelError(f"{path} is the clip model {lv.name} (on frame model {lv.frame_model}), not {model_name}; "
                         f"leave out the model name to use {lv.name}")
    return openclip.Loaded(lv.model.clip, lv.preprocess, lv.tokenizer, lv.name, lv.checkpoint, form="egoindex",
                           path=lv.path, video=lv.model)
