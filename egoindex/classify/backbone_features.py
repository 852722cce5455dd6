"""Video features from any backbone, so the linear probe and zero-shot are not tied to a store.

Two kinds of source stand in for a :class:`~egoindex.store.Store` in :func:`egoindex.classify.run_probe`
and :func:`egoindex.classify.classify_video` (they read ``embedder`` or ``video_vector``,
``meta.clip_seconds`` / ``meta.clip_stride``, ``model_name``, ``checkpoint_sha256``, ``root``):

* :class:`TextModelSource`: an open_clip frame model (``clip-frames:NAME``) or the clip-level
  video-text model (``clip-video:NAME``) loaded from a local checkpoint. It has a text tower, so
  zero-shot works, and the probe embeds videos exactly as with a store of that checkpoint (clip
  windows of the frame vectors, mean-pooled).
* :class:`BackboneFeatures`: any backbone of :mod:`egoindex.model.backbones` (VideoMAE,
  TimeSformer, the 3D CNNs, Swin3D, ...), random (seeded) or from local weights, or the encoder of
  a fine-tuned classifier (``egoindex finetune`` OUT/best.pt). A video's feature is the
  backbone's pooled pre-classifier output (``VideoClassifier.features``) of ``clips`` uniform
  views spread over the video, decoded and sampled by the fine-tune's own rule
  (:mod:`egoindex.media.clips`, :func:`egoindex.model.video_input.eval_views`), averaged and
  L2-normalised. No text tower: zero-shot refuses it with a :class:`ClassifyError`.

Why the fingerprint (``checkpoint_sha256``) covers random weights too: the probe's feature cache
is keyed by it and the sampling, so ``random:SEED`` features are never reused for another seed
or for trained weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egoindex.core.fsutil import sha256_file
from egoindex.errors import ClassifyError, ModelError, VideoError
from egoindex.media.clip_sampling import ClipSampling
from egoindex.media.clips import decode_video
from egoindex.model.backbones import CLIP_FRAMES, CLIP_VIDEO, create_classifier
from egoindex.model.video_checkpoint import load_classifier
from egoindex.model.video_input import eval_views
from egoindex.model.video_nets import VideoClassifier

__all__ = ["BackboneFeatures", "TextModelSource", "feature_source", "has_text_tower"]

#: Uniform views per video (the fine-tune's default number of test clips).
DEFAULT_VIEWS = 3
#: Decode rate of a raw backbone's clips (the fine-tune's default).
DEFAULT_FPS = 8.0


@dataclass(frozen=True)
class _Meta:
    clip_seconds: float
    clip_stride: float


def has_text_tower(backbone: str) -> bool:
    """Whether zero-shot can use ``backbone``: only the open_clip towers and the clip-level
    video-text model have one."""
    return backbone.startswith((CLIP_FRAMES, CLIP_VIDEO))


def weights_fingerprint(path: Path | None, seed: int) -> str:
    """sha256 of a weights file, of a folder's files (names and contents), or ``random:SEED``."""
    if path is None:
        return f"random:{seed}"
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(p.relative_to(path).as_posix().encode() + b"\0" + sha256_file(p).encode())
    return h.hexdigest()


class TextModelSource:
    """An open_clip or clip-video checkpoint as a store-less model source (module docstring)."""

    def __init__(self, backbone: str, weights: str | Path | None, *, device: str = "cpu", clip_seconds: float = 4.0,
                 clip_stride: float = 2.0) -> None:
        if not has_text_tower(backbone):
            raise ClassifyError(no_text_tower_message(backbone))
        if weights is None:
            raise ClassifyError(f"--backbone {backbone}: give --weights CHECKPOINT (zero-shot with random towers "
                                "would mean nothing)")
        from egoindex.model.clip_video import load_embedding_model
        from egoindex.model.embed import Embedder
        from egoindex.model.sources import checkpoint_sha256

        name = backbone.partition(":")[2] or None
        self.embedder = Embedder(load_embedding_model(weights, name), device=device)
        self.model_name = self.embedder.loaded.name
        self.checkpoint_sha256 = checkpoint_sha256(weights)
        self.meta = _Meta(float(clip_seconds), float(clip_stride))
        self.root = Path(weights)
        self.location = str(weights)


def no_text_tower_message(backbone: str) -> str:
    return (f"backbone {backbone} has no text tower, so it cannot classify zero-shot: use `egoindex probe "
            f"--backbone {backbone} DATASET --out OUT` (a linear head on its features) or `egoindex finetune`; "
            f"zero-shot needs clip-frames:NAME or clip-video:NAME with --weights")


class BackboneFeatures:
    """Pooled features of a video backbone (module docstring)."""

    def __init__(self, model: VideoClassifier, sampling: ClipSampling, fingerprint: str, source: dict[str, Any], *,
                 views: int = DEFAULT_VIEWS, device: str = "cpu") -> None:
        if views < 1:
            raise ClassifyError("views must be >= 1")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.sampling, self.views = sampling, views
        self.model_name = f"backbone:{model.info['backbone']}"
        self.checkpoint_sha256 = fingerprint
        self.source = {**source, "weights_sha256": fingerprint, "sampling": sampling.as_dict(), "views": views}
        seconds = sampling.num_frames / sampling.fps
        self.meta = _Meta(seconds, seconds)  # recorded in the report; the views span the whole video
        self.root = Path(source.get("weights") or ".")
        self.location = str(source.get("weights") or f"{model.info['backbone']} (random)")

    @classmethod
    def from_backbone(cls, name: str, weights: str | Path | None = None, *, seed: int = 0,
                      num_frames: int | None = None, image_size: int | None = None, fps: float = DEFAULT_FPS,
                      views: int = DEFAULT_VIEWS, device: str = "cpu") -> BackboneFeatures:
        """A registered backbone (random with ``seed``, or local ``weights``), its head unused."""
        try:
            torch.manual_seed(seed)  # random init is part of the features: seeded, and in the fingerprint
            model = create_classifier(name, 2, weights=weights, num_frames=num_frames, image_size=image_size)
        except ModelError as e:
            raise ClassifyError(str(e)) from e
        path = Path(model.info["weights"]) if model.info.get("weights") else None
        size = model.image_size
        sampling = ClipSampling(num_frames=model.num_frames, mode="uniform", fps=fps,
                                short_side=int(round(size * 9 / 8)), image_size=size).check()
        return cls(model, sampling, weights_fingerprint(path, seed),
                   {"kind": "backbone", "backbone": name, "weights": str(path) if path else None,
                    "seed": None if path else seed}, views=views, device=device)

    @classmethod
    def from_finetuned(cls, path: str | Path, *, views: int = DEFAULT_VIEWS, device: str = "cpu") -> BackboneFeatures:
        """The encoder of a fine-tuned classifier (its features, not its logits), sampled as it was tested."""
        try:
            loaded = load_classifier(path)
        except ModelError as e:
            raise ClassifyError(str(e)) from e
        return cls(loaded.model, loaded.sampling.for_eval(), loaded.sha256,
                   {"kind": "finetuned", "backbone": loaded.name, "weights": str(loaded.path)},
                   views=views, device=device)

    @torch.no_grad()
    def video_vector(self, path: str | Path) -> tuple[np.ndarray, int, int]:
        """(feature, decoded frames, views) of one video file; ClassifyError when it cannot be decoded."""
        s = self.sampling
        try:
            decoded = decode_video(path, s.fps, s.short_side)
        except VideoError as e:
            raise ClassifyError(f"cannot decode {Path(path).name}: {e}") from e
        x = eval_views(decoded, s, self.model.info["mean"], self.model.info["std"], self.views, 1)
        feats = self.model.features(x.to(self.device)).float()
        feats = torch.nn.functional.normalize(feats, dim=-1).mean(0)
        vec = torch.nn.functional.normalize(feats, dim=0).cpu().numpy().astype(np.float32)
        return vec, int(len(decoded.frames)), self.views


def feature_source(*, backbone: str | None = None, weights: str | Path | None = None, model: str | Path | None = None,
                   seed: int = 0, num_frames: int | None = None, device: str = "cpu") -> Any:
    """What ``--backbone NAME [--weights W]`` or ``--model OUT/best.pt`` names, for the probe: a
    :class:`TextModelSource` for an open_clip / clip-video checkpoint (the store's own features),
    else :class:`BackboneFeatures`."""
    if (backbone is None) == (model is None):
        raise ClassifyError("give exactly one of --backbone NAME (with --weights for trained weights) or "
                            "--model OUT/best.pt")
    if model is not None:
        return BackboneFeatures.from_finetuned(model, device=device)
    assert backbone is not None
    if has_text_tower(backbone) and weights is not None:
        return TextModelSource(backbone, weights, device=device)
    return BackboneFeatures.from_backbone(backbone, weights, seed=seed, num_frames=num_frames, device=device)
