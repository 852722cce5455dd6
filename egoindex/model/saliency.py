"""Where a video classifier looks: attention rollout for ViTs, Grad-CAM for CNNs, input gradients otherwise.

:func:`saliency` returns a ``(T, H, W)`` map in [0, 1] over the clip's frames and the method used,
chosen by the classifier's ``kind`` (:mod:`egoindex.model.video_nets`):

* ``vit`` — attention rollout (Abnar & Zuidema 2020): per layer the head-averaged attention
  ``A``, with the residual as ``0.5 * A + 0.5 * I`` (rows renormalised), multiplied from the
  first layer to the last. VideoMAE has no CLS token and mean-pools its tokens, so a token's
  importance is its rollout column averaged over all tokens, one value per tubelet (spread
  over its ``tubelet_size`` frames). TimeSformer's transformers implementation returns each
  frame's spatial attention (with the CLS token): the map is the CLS row of that rollout per
  frame (the temporal attention is not in it).
* ``cnn`` — Grad-CAM (Selvaraju et al. 2017) on the last convolutional feature map (``layer4``
  of the ResNets, ``features`` of S3D): channels weighted by their mean gradient of the class
  logit, summed, ReLU'd, upsampled trilinearly to the clip.
* ``other`` — the absolute gradient of the class logit with respect to the input pixels (max
  over colour channels), for Swin, MViT and the open_clip towers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from egoindex.model.video_nets import HFVideoEncoder, TorchvisionEncoder, VideoClassifier

__all__ = ["attention_rollout", "grad_cam", "input_gradient", "saliency"]


def _unit(x: torch.Tensor) -> np.ndarray:
    x = x.detach().float()
    x = x - x.min()
    return (x / x.max().clamp_min(1e-12)).cpu().numpy()


@contextlib.contextmanager
def _eager(net: Any) -> Iterator[None]:
    """transformers' eager attention for the duration (sdpa returns no attention probabilities)."""
    before = getattr(net.config, "_attn_implementation", "eager")
    if before != "eager":
        net.set_attn_implementation("eager")
    try:
        yield
    finally:
        if before != "eager":
            net.set_attn_implementation(before)


def _rollout(attentions: tuple[torch.Tensor, ...]) -> torch.Tensor:
    r = None
    for a in attentions:
        a = a.float().mean(dim=1)  # (B, N, N) over heads
        eye = torch.eye(a.shape[-1], device=a.device).expand_as(a)
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(dim=-1, keepdim=True)
        r = a if r is None else a @ r
    assert r is not None
    return r


@torch.no_grad()
def attention_rollout(model: VideoClassifier, clip: torch.Tensor) -> np.ndarray:
    """(1, T, C, H, W) -> (T, H, W) rollout map of a VideoMAE or TimeSformer classifier."""
    enc = model.encoder
    if not isinstance(enc, HFVideoEncoder):
        raise TypeError("attention rollout needs a transformers (VideoMAE / TimeSformer) backbone")
    cfg = enc.net.config
    t, h, w = clip.shape[1], clip.shape[3], clip.shape[4]
    side = cfg.image_size // cfg.patch_size
    with _eager(enc.net):
        attns = enc.attentions(clip)
    r = _rollout(attns)
    if cfg.model_type == "videomae":
        tub = cfg.tubelet_size
        m = r[0].mean(dim=0).view(t // tub, side, side).repeat_interleave(tub, dim=0)
    else:  # timesformer: (T, 1 + side^2, 1 + side^2) per frame; the CLS row
        m = r[:, 0, 1:].reshape(t, side, side)
    up = F.interpolate(m[None, None], size=(t, h, w), mode="trilinear", align_corners=False)[0, 0]
    return _unit(up)


def grad_cam(model: VideoClassifier, clip: torch.Tensor, target: int) -> np.ndarray:
    """(1, T, C, H, W) -> (T, H, W) Grad-CAM map of class ``target`` on the CNN's last feature map."""
    enc = model.encoder
    layer = enc.cam_layer() if isinstance(enc, TorchvisionEncoder) else None
    if layer is None:
        raise TypeError("Grad-CAM needs a convolutional backbone (a ResNet-style or S3D torchvision model)")
    store: dict[str, torch.Tensor] = {}

    def keep(_m: Any, _i: Any, out: torch.Tensor) -> None:
        store["act"] = out
        out.register_hook(lambda g: store.__setitem__("grad", g))

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            model.zero_grad(set_to_none=True)
            logits = model(clip)
            logits[0, target].backward()
    finally:
        handle.remove()
    act, grad = store["act"][0], store["grad"][0]  # (C, T', h, w)
    cam = F.relu((grad.mean(dim=(1, 2, 3), keepdim=True) * act).sum(dim=0))
    t, h, w = clip.shape[1], clip.shape[3], clip.shape[4]
    up = F.interpolate(cam[None, None], size=(t, h, w), mode="trilinear", align_corners=False)[0, 0]
    model.zero_grad(set_to_none=True)
    return _unit(up)


def input_gradient(model: VideoClassifier, clip: torch.Tensor, target: int) -> np.ndarray:
    """(1, T, C, H, W) -> (T, H, W): |d logit_target / d pixel|, max over colour channels."""
    x = clip.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        model.zero_grad(set_to_none=True)
        model(x)[0, target].backward()
    model.zero_grad(set_to_none=True)
    assert x.grad is not None
    return _unit(x.grad[0].abs().amax(dim=1))


def saliency(model: VideoClassifier, clip: torch.Tensor, target: int) -> tuple[np.ndarray, str]:
    """The map the module docstring describes for ``model.kind``, and the method's name."""
    was = model.training
    model.eval()
    try:
        if model.kind == "vit":
            return attention_rollout(model, clip), "attention rollout"
        if model.kind == "cnn":
            return grad_cam(model, clip, target), "Grad-CAM"
        return input_gradient(model, clip, target), "input gradient"
    finally:
        model.train(was)
