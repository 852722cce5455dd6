"""Classify a video with a fine-tuned video backbone (``egoindex classify --model OUT/best.pt VIDEO``).

No store is involved: the checkpoint (:mod:`egoindex.model.video_checkpoint`) carries the
classes, the network and the sampling it was trained with, and the video is decoded and sampled
by the same rule (:mod:`egoindex.media.clips`, :mod:`egoindex.model.video_input`).

* the whole video (or ``[start, end)``): the softmax averaged over ``clips x crops`` views spread
  over it, as the fine-tune's test split was scored;
* per window: windows of ``window`` seconds every ``window_stride`` seconds (default: the median
  length of the training videos, half of it), the last one ending at the video's end, each
  scored on one view.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from egoindex.classify.predict import ClassifyResult
from egoindex.errors import ClassifyError, VideoError
from egoindex.media.clip_sampling import ClipSampling
from egoindex.media.clips import DecodedVideo, decode_video
from egoindex.model.video_checkpoint import LoadedClassifier, load_classifier
from egoindex.model.video_input import eval_views

__all__ = ["DEFAULT_WINDOW_S", "classify_with_model", "window_bounds"]

#: Window length when the checkpoint records no median training-video length.
DEFAULT_WINDOW_S = 4.0


def window_bounds(seconds: float, window: float, stride: float) -> list[tuple[float, float]]:
    """Windows ``[s, s + window)`` every ``stride`` s over ``[0, seconds)``; one more ending at the end
    when the last start leaves a tail; one window when the video is shorter than ``window``."""
    if window <= 0 or stride <= 0:
        raise ClassifyError("--window and --window-stride must be positive")
    if seconds <= window:
        return [(0.0, seconds)]
    out = [(s, s + window) for s in np.arange(0.0, seconds - window + 1e-9, stride)]
    if out[-1][1] < seconds - 1e-9:
        out.append((seconds - window, seconds))
    return [(round(float(a), 3), round(float(b), 3)) for a, b in out]


@torch.no_grad()
def _probs(loaded: LoadedClassifier, video: DecodedVideo, s: ClipSampling, clips: int, crops: int,
           device: torch.device) -> np.ndarray:
    views = eval_views(video, s, loaded.model.info["mean"], loaded.model.info["std"], clips, crops)
    return torch.softmax(loaded.model(views.to(device)).float(), dim=-1).mean(0).cpu().numpy()


def classify_with_model(model: str | Path | LoadedClassifier, video_path: str | Path, *, top_k: int = 5,
                        clips: int = 3, crops: int = 1, window: float | None = None,
                        window_stride: float | None = None, start: float | None = None, end: float | None = None,
                        device: str = "cpu") -> ClassifyResult:
    """Top classes of ``video_path`` with a fine-tuned classifier, for the video and per window."""
    if not isinstance(top_k, int) or top_k < 1:
        raise ClassifyError("top_k must be a positive integer")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    loaded = model if isinstance(model, LoadedClassifier) else load_classifier(model, device=dev)
    path = Path(video_path)
    if not path.is_file():
        raise ClassifyError(f"video not found (no such file): {path}")
    s = loaded.sampling.for_eval()
    s0 = float(start or 0.0)
    try:
        decoded = decode_video(path, s.fps, s.short_side, start=s0, end=end)
    except VideoError as e:
        raise ClassifyError(f"cannot decode {path.name}: {e}") from e
    probs = _probs(loaded, decoded, s, clips, crops, dev)
    median = (loaded.meta.get("config") or {}).get("median_seconds")
    w = float(window if window is not None else (median or DEFAULT_WINDOW_S))
    stride = float(window_stride if window_stride is not None else w / 2)
    bounds = window_bounds(decoded.seconds, w, stride)
    win_probs = []
    for a, b in bounds:
        i, j = int(round(a * s.fps)), max(int(round(a * s.fps)) + 1, int(round(b * s.fps)))
        win_probs.append(_probs(loaded, DecodedVideo(decoded.frames[i:j], s.fps), s, 1, 1, dev))
    windows = [(round(s0 + a, 3), round(s0 + b, 3)) for a, b in bounds]
    info: dict[str, Any] = {"n_frames": int(len(decoded.frames)), "fps": s.fps, "clip_seconds": w, "clip_stride": stride,
                            "start": round(s0, 3), "end": round(s0 + decoded.seconds, 3), "views": clips * crops,
                            "backbone": loaded.name, "sampling": s.as_dict()}
    return ClassifyResult(str(video_path), list(loaded.classes), f"finetune:{loaded.name}", loaded.sha256, probs,
                          windows, np.stack(win_probs), min(top_k, len(loaded.classes)), "finetuned", str(loaded.path),
                          info)
