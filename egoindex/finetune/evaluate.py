"""Scoring a classifier on videos: multi-view predictions, top-k, per-class metrics, confusion.

A video's prediction is the mean of the softmax over its ``clips x crops`` views
(:func:`egoindex.model.video_input.eval_views`: clips spread over the video, crops across its
long side), the standard multi-view test of video classifiers; validation during training uses
one view (one centred clip, the centre crop) to stay cheap. Under DDP each rank predicts every
``world``-th video and the probabilities are gathered, so every rank holds all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from egoindex.errors import VideoError
from egoindex.media.labelled import LabelledVideo
from egoindex.media.clip_sampling import ClipSampling
from egoindex.media.clips import ClipCache
from egoindex.model.video_input import eval_views

__all__ = ["predict_videos", "score", "topk_accuracy"]


@torch.no_grad()
def predict_videos(model: torch.nn.Module, videos: Sequence[LabelledVideo], sampling: ClipSampling, mean: Any, std: Any,
                   cache: ClipCache, device: torch.device, *, clips: int = 1, crops: int = 1,
                   autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                   rank: int = 0, world: int = 1) -> tuple[np.ndarray, list[str]]:
    """(probabilities [N, C] averaged over the views, reasons) for every video; a video that cannot
    be decoded gets NaN probabilities and its reason (``""`` for the others)."""
    was = model.training
    model.eval()
    es = sampling.for_eval()
    mine: dict[int, tuple[np.ndarray | None, str]] = {}
    for i in range(rank, len(videos), world):
        try:
            views = eval_views(cache.get(videos[i].path, es.fps, es.short_side), es, mean, std, clips, crops)
        except VideoError as e:
            mine[i] = (None, str(e))
            continue
        with autocast():
            logits = model(views.to(device))
        mine[i] = (torch.softmax(logits.float(), dim=-1).mean(0).cpu().numpy(), "")
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, mine)
        for part in gathered:
            mine.update(part)
    model.train(was)
    n_cls = int(next((p.shape[0] for p, _ in mine.values() if p is not None), 0))
    probs = np.full((len(videos), n_cls), np.nan)
    reasons = [""] * len(videos)
    for i, (p, why) in mine.items():
        if p is not None:
            probs[i] = p
        reasons[i] = why
    return probs, reasons


def topk_accuracy(probs: np.ndarray, y: np.ndarray, k: int) -> float:
    """The fraction of rows whose true class is among the ``k`` most probable (ties: lower index first)."""
    if len(y) == 0:
        return float("nan")
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean([y[i] in top[i] for i in range(len(y))]))


def score(probs: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """top-1, top-5 (or top-C), mean NLL, per-class precision / recall / F1, confusion matrix and
    sklearn's classification report, over the rows with predictions."""
    from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

    ok = ~np.isnan(probs).any(axis=1) if probs.size else np.zeros(len(y), bool)
    p, t = probs[ok], y[ok]
    n = len(classes)
    k5 = min(5, n)
    pred = p.argmax(axis=1) if len(p) else np.zeros(0, int)
    labels = list(range(n))
    prec, rec, f1, sup = precision_recall_fscore_support(t, pred, labels=labels, zero_division=0)
    nll = float(-np.mean(np.log(np.clip(p[np.arange(len(t)), t], 1e-12, 1.0)))) if len(t) else float("nan")
    return {
        "top1": topk_accuracy(p, t, 1), "top5": topk_accuracy(p, t, k5), "top5_k": k5, "nll": nll,
        "macro_precision": float(np.mean(prec)), "macro_recall": float(np.mean(rec)), "macro_f1": float(np.mean(f1)),
        "per_class": [{"class": c, "precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                       "support": int(sup[i])} for i, c in enumerate(classes)],
        "confusion": confusion_matrix(t, pred, labels=labels) if len(t) else np.zeros((n, n), int),
        "classification_report": classification_report(t, pred, labels=labels, target_names=list(classes),
                                                       zero_division=0, digits=3) if len(t) else "",
        "pred": pred, "used": ok,
    }
