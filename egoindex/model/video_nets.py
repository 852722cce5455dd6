"""The networks behind :mod:`egoindex.model.backbones`: one encoder contract for every family.

Every encoder maps a clip ``(B, T, C, H, W)`` (frames normalised with the backbone's mean/std)
to pooled features ``(B, D)``; :class:`VideoClassifier` adds dropout and one linear head. Why
one contract: the fine-tuning loop, the multi-view evaluation, the export and ``egoindex
classify --model`` then never ask which family a model is; only saliency does (attention
rollout needs a ViT's attentions, Grad-CAM a convolutional feature map).

How each family becomes an encoder (its own classifier replaced by the identity, so its output
IS the pooled feature the classifier read):

* transformers' ``VideoMAEForVideoClassification`` / ``TimesformerForVideoClassification``
  (``classifier = Identity``): VideoMAE's mean-pooled tokens through ``fc_norm``, TimeSformer's
  CLS token after the last LayerNorm. Input is already ``(B, T, C, H, W)``.
* torchvision's video models (``fc`` / ``head`` / ``classifier`` = Identity): input permuted to
  ``(B, C, T, H, W)``. :func:`tiny_video_resnet` is torchvision's ``VideoResNet`` (its blocks,
  convolutions and forward) at a width of our choosing: torchvision fixes the width at 64, which
  is far too slow to fine-tune on a CPU in minutes.
* open_clip frame towers (:class:`FrameTower`): each frame through the image tower, the
  L2-normalised frame vectors averaged over time (the store's clip rule, without time order).
* the clip-level video-text model (:class:`ClipVideoTower`): :class:`egoindex.model.clip_video.ClipVideoModel`'s
  clip vector (frames through its temporal head).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClipVideoTower", "FrameTower", "HFVideoEncoder", "TorchvisionEncoder", "VideoClassifier",
           "tiny_video_resnet"]


class HFVideoEncoder(nn.Module):
    """A transformers video classifier whose ``classifier`` is the identity: ``(B,T,C,H,W) -> (B, D)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        net.classifier = nn.Identity()
        self.net = net

    @property
    def dim(self) -> int:
        return int(self.net.config.hidden_size)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=video).logits

    def attentions(self, video: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every layer's attention probabilities (eager attention; sdpa returns none)."""
        out = self.net(pixel_values=video, output_attentions=True)
        if not out.attentions:
            raise RuntimeError("the transformers model returned no attentions (set attn_implementation='eager')")
        return tuple(out.attentions)


class TorchvisionEncoder(nn.Module):
    """A torchvision video model with its last linear layer replaced by the identity."""

    #: the attribute path of each architecture's classifier, and the feature width it reads
    HEADS = {"VideoResNet": "fc", "S3D": "classifier", "MViT": "head", "SwinTransformer3d": "head"}

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        kind = type(net).__name__
        if kind not in self.HEADS:
            raise TypeError(f"no encoder rule for torchvision {kind}")
        head = getattr(net, self.HEADS[kind])
        if kind == "S3D":  # Sequential(Dropout, Conv3d(1024, C, 1)); forward then averages over T, H, W
            self._dim = int(head[1].in_channels)
            # its fixed 2x7x7 pool is the global average at 16 x 224 px and fails on smaller clips
            net.avgpool = nn.AdaptiveAvgPool3d(1)
        elif kind == "MViT":  # Sequential(Dropout, Linear)
            self._dim = int(head[1].in_features)
        else:
            self._dim = int(head.in_features)
        setattr(net, self.HEADS[kind], nn.Identity())
        self.net = net
        self.arch = kind

    @property
    def dim(self) -> int:
        return self._dim

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.net(video.transpose(1, 2))  # (B, T, C, H, W) -> (B, C, T, H, W)

    def cam_layer(self) -> nn.Module | None:
        """The last convolutional feature map (Grad-CAM's layer), or None for the transformers."""
        if self.arch == "VideoResNet":
            return self.net.layer4
        if self.arch == "S3D":
            return self.net.features
        return None


def tiny_video_resnet(conv: str = "3d", width: int = 16, layers: tuple[int, ...] = (1, 1, 1, 1),
                      num_classes: int = 400) -> nn.Module:
    """torchvision's ``VideoResNet`` at stage widths ``w, 2w, 4w, 8w`` (torchvision: 64 ... 512).

    The stem is R3D's (3x7x7, spatial stride 2) or R(2+1)D's (1x7x7 then 3x1x1) at width ``w``;
    the stages are torchvision's ``_make_layer`` with its blocks, so the state-dict layout and the
    forward are torchvision's and the result is a ``VideoResNet`` to every rule that asks (its
    ``__init__`` is skipped only because it hard-codes the width).
    """
    from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, Conv3DSimple, VideoResNet

    maker = Conv3DSimple if conv == "3d" else Conv2Plus1D
    net = VideoResNet.__new__(VideoResNet)
    nn.Module.__init__(net)
    net.inplanes = width
    if conv == "3d":
        net.stem = nn.Sequential(nn.Conv3d(3, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                                 nn.BatchNorm3d(width), nn.ReLU(inplace=True))
    else:
        mid = max(8, (width * 45) // 64)
        net.stem = nn.Sequential(nn.Conv3d(3, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
                                 nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                                 nn.Conv3d(mid, width, (3, 1, 1), 1, (1, 0, 0), bias=False),
                                 nn.BatchNorm3d(width), nn.ReLU(inplace=True))
    for i, n in enumerate(layers):
        setattr(net, f"layer{i + 1}", net._make_layer(BasicBlock, maker, width * 2 ** i, n, stride=1 if i == 0 else 2))
    net.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
    net.fc = nn.Linear(width * 8, num_classes)
    for m in net.modules():  # VideoResNet's own initialisation
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)
    return net


class FrameTower(nn.Module):
    """An open_clip image tower applied per frame; features: the mean of L2-normalised frame vectors."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.visual = clip.visual

    @property
    def dim(self) -> int:
        return int(self.visual.output_dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        f = F.normalize(self.visual(video.flatten(0, 1)), dim=-1)
        return f.view(b, t, -1).mean(dim=1)


class ClipVideoTower(nn.Module):
    """The clip-level video-text model's video side: its (unnormalised) clip vector."""

    def __init__(self, video_model: nn.Module) -> None:
        super().__init__()
        self.video = video_model  # its text tower gets no gradient: the optimizer skips it

    @property
    def dim(self) -> int:
        return int(self.video.width)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.video.encode_video(video, normalize=True)


class VideoClassifier(nn.Module):
    """An encoder, dropout and a linear head: ``(B, T, C, H, W) -> (B, num_classes)`` logits.

    ``info`` is what rebuilds the network without the original weights file (recorded in every
    fine-tune checkpoint): backbone name, family, architecture record, frames, size, mean, std.
    """

    def __init__(self, encoder: nn.Module, dim: int, num_classes: int, info: dict[str, Any], dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_classes)
        nn.init.normal_(self.head.weight, 0, 0.01)
        nn.init.zeros_(self.head.bias)
        self.info = dict(info)

    @property
    def num_frames(self) -> int:
        return int(self.info["num_frames"])

    @property
    def image_size(self) -> int:
        return int(self.info["image_size"])

    @property
    def kind(self) -> str:
        """``vit`` (attention rollout), ``cnn`` (Grad-CAM) or ``other`` (input-gradient saliency)."""
        return str(self.info["kind"])

    def features(self, video: torch.Tensor) -> torch.Tensor:
        return self.encoder(video)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encoder(video)))
