"""Classify a video with a store's model: zero-shot from label names, or with a trained linear head.

Why through a store: the store pins the model, the checkpoint (by sha256) and the clip windows,
so a classification is reproducible and comparable with searches of that store, and a head
trained by ``egoindex probe`` on one store is refused on another.

The video is decoded and embedded like the ingest + build would (see
:mod:`egoindex.classify.video_features`); the video-level answer scores the pooled video vector
and, per clip window, the clip vector, against the same classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from egoindex.errors import ClassifyError
from egoindex.classify.linear_head import LinearHead, load_head
from egoindex.classify.video_features import VideoFeatures, features_of_images, features_of_video
from egoindex.classify.zero_shot import (DEFAULT_TEMPLATES, check_templates, logit_scale_of, parse_labels, softmax,
                                         text_classifier)

__all__ = ["DEFAULT_FPS", "ClassifyResult", "classify_video", "classify_features"]

#: Frames per second sampled from the video (the rate ``egoindex ingest`` is usually run at).
DEFAULT_FPS = 2.0


def _top(probs: np.ndarray, labels: Sequence[str], k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": labels[i], "prob": round(float(probs[i]), 5)} for i in order]


@dataclass
class ClassifyResult:
    """What :func:`classify_video` found. ``probs`` [C] and ``clip_probs`` [M, C] are in ``labels``
    order; ``as_dict`` is the JSON the CLI and the server print."""

    video: str
    labels: list[str]
    model: str
    checkpoint_sha256: str
    probs: np.ndarray
    windows: list[tuple[float, float]]
    clip_probs: np.ndarray
    top_k: int
    mode: str  # "zero-shot" or "head"
    head: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> str:
        return self.labels[int(np.argmax(self.probs))]

    @property
    def top(self) -> list[dict[str, Any]]:
        return _top(self.probs, self.labels, self.top_k)

    def as_dict(self, per_clip: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "video": self.video, "labels": list(self.labels), "model": self.model,
            "checkpoint_sha256": self.checkpoint_sha256, "mode": self.mode, "head": self.head,
            "top": self.top,
        }
        d["clips"] = [{"start": round(s, 3), "end": round(e, 3), "top": _top(p, self.labels, self.top_k)}
                      for (s, e), p in zip(self.windows, self.clip_probs)] if per_clip else []
        d.update(self.info)
        return d


def _head_of(head: str | Path | LinearHead, store: Any) -> tuple[LinearHead, str]:
    h = head if isinstance(head, LinearHead) else load_head(head)
    h.check_store(store)
    return h, (str(head) if not isinstance(head, LinearHead) else "(in memory)")


def classify_features(feats: VideoFeatures, weights: np.ndarray, bias: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Video and per-clip probabilities ``softmax(scale * (x @ W.T) + b)``."""
    w, b = weights.astype(np.float64), bias.astype(np.float64)
    video = softmax(scale * (feats.video.astype(np.float64) @ w.T) + b)
    clips = softmax(scale * (feats.clips.astype(np.float64) @ w.T) + b) if len(feats.clips) else np.zeros((0, len(b)))
    return video, clips


def classify_video(
    store: Any,
    video_path: str | Path | Sequence[Image.Image],
    labels: str | Sequence[str] | None = None,
    *,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    head: str | Path | LinearHead | None = None,
    top_k: int = 5,
    clip_seconds: float | None = None,
    clip_stride: float | None = None,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
) -> ClassifyResult:
    """Classify a video file (or already-decoded frames) with ``store``'s model.

    Zero-shot (no ``head``): ``labels`` (a list, or one comma-separated string) become text
    classifiers through ``templates``; probabilities are ``softmax(logit_scale * cosine)`` with the
    model's learned logit scale. With ``head`` (a saved linear probe: folder, ``head.npz`` or
    ``head.json``) its classes and weights are used instead; then ``labels`` may be left out, or
    name a subset of the head's classes to choose among.

    ``video_path`` may also be a list of PIL images taken ``1 / fps`` seconds apart. ``start`` /
    ``end`` (seconds) classify only that part of a file. Frames are sampled at ``fps`` (default
    :data:`DEFAULT_FPS`, the demo ingest's rate) and clip windows default to the store's
    (``clip_seconds`` / ``clip_stride``); with a head, both default to what it was trained with.
    Raises :class:`ClassifyError` for bad labels, an undecodable or empty video, or a head
    trained for another model or checkpoint.
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise ClassifyError("top_k must be a positive integer")
    linear: LinearHead | None = None
    head_name: str | None = None
    if head is not None:
        linear, head_name = _head_of(head, store)
        if labels is None or (isinstance(labels, str) and not labels.strip()) or (not isinstance(labels, str) and len(labels) == 0):
            chosen = list(linear.classes)
        else:
            chosen = parse_labels(labels)
            unknown = [x for x in chosen if x not in linear.classes]
            if unknown:
                raise ClassifyError(f"label(s) {', '.join(unknown)} are not classes of the head "
                                    f"({', '.join(linear.classes)})")
        rows = [linear.classes.index(x) for x in chosen]
        weights, bias, scale = linear.weights[rows], linear.bias[rows], 1.0
        fps = linear.fps if fps is None else fps
        clip_seconds = linear.clip_seconds if clip_seconds is None else clip_seconds
        clip_stride = linear.clip_stride if clip_stride is None else clip_stride
    else:
        chosen = parse_labels(labels)
        templates = check_templates(templates)
    fps = DEFAULT_FPS if fps is None else float(fps)
    clip_seconds = float(store.meta.clip_seconds if clip_seconds is None else clip_seconds)
    clip_stride = float(store.meta.clip_stride if clip_stride is None else clip_stride)
    if fps <= 0 or fps > 60:
        raise ClassifyError("fps must be in (0, 60]")

    embedder = store.embedder
    if isinstance(video_path, (str, Path)):
        feats = features_of_video(embedder, video_path, fps=fps, clip_seconds=clip_seconds, clip_stride=clip_stride,
                                  start=start, end=end)
        name = str(video_path)
    else:
        frames = list(video_path)
        if frames and not all(isinstance(f, Image.Image) for f in frames):
            raise ClassifyError("video_path must be a file path or a list of PIL images")
        feats = features_of_images(embedder, frames, fps=fps, clip_seconds=clip_seconds, clip_stride=clip_stride)
        name = f"<{len(frames)} frames>"
    if linear is None:
        weights = text_classifier(embedder, chosen, templates)
        bias = np.zeros(len(chosen), np.float32)
        scale = logit_scale_of(embedder.model)
    video_p, clip_p = classify_features(feats, weights, bias, scale)
    info = {"n_frames": feats.n_frames, "fps": fps, "clip_seconds": clip_seconds, "clip_stride": clip_stride,
            "start": round(feats.start, 3), "end": round(feats.end, 3)}
    if linear is None:
        info.update(logit_scale=round(scale, 4), templates=list(templates))
    return ClassifyResult(name, chosen, store.model_name, store.checkpoint_sha256, video_p, feats.windows, clip_p,
                          min(top_k, len(chosen)), "head" if linear is not None else "zero-shot", head_name, info)
