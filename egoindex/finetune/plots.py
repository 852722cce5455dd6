"""The fine-tune report's figures (PNG): confusion matrices, learning curves, class distribution,
sample predictions and saliency maps.

Headless, through :mod:`egoindex.core.report`'s figure helpers (matplotlib's Agg canvas, no
pyplot state), written atomically like every report plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.core.report import new_figure, save_figure

__all__ = ["plot_class_distribution", "plot_confusion", "plot_learning_curves", "plot_saliency",
           "plot_sample_predictions"]


def plot_confusion(path: str | Path, matrix: np.ndarray, classes: Sequence[str], title: str, normalised: bool) -> None:
    """Counts per (true, predicted) class; ``normalised``: each row divided by its true-class count."""
    m = np.asarray(matrix, np.float64)
    n = len(classes)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    shown = frac if normalised else m
    side = min(16.0, 3.0 + 0.45 * n)
    fig = new_figure((side + 1.0, side))
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalised else max(1.0, float(m.max())))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class" if normalised else "videos")
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(c) for c in classes])
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, f"{frac[i, j]:.2f}" if normalised else str(int(m[i, j])), ha="center", va="center",
                            fontsize=7, color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    save_figure(fig, Path(path))


def plot_learning_curves(path: str | Path, history: Sequence[dict[str, Any]], chance: float, title: str) -> None:
    """Train loss and val NLL (left), train and val top-1 with chance (right), per epoch."""
    fig = new_figure((10.0, 4.0))
    a1, a2 = fig.subplots(1, 2)
    ep = [h["epoch"] for h in history]

    def series(key: str) -> list[float]:
        return [float("nan") if h.get(key) is None else float(h[key]) for h in history]

    a1.plot(ep, series("train_loss"), "o-", label="train loss (smoothed CE)")
    a1.plot(ep, series("val_nll"), "s-", label="val NLL")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend()
    a2.plot(ep, series("train_top1"), "o-", label="train top-1 (augmented)")
    a2.plot(ep, series("val_top1"), "s-", label="val top-1")
    a2.axhline(chance, color="grey", linestyle=":", label=f"chance {chance:.2f}")
    a2.set_ylim(0.0, 1.02)
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy")
    a2.legend(loc="lower right")
    for a in (a1, a2):
        a.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    save_figure(fig, Path(path))


def plot_class_distribution(path: str | Path, classes: Sequence[str], counts: dict[str, Sequence[int]], title: str) -> None:
    """Videos per class, stacked by split (train / val / test)."""
    n = len(classes)
    fig = new_figure((max(6.0, 0.35 * n + 2), 4.0))
    ax = fig.subplots()
    bottom = np.zeros(n)
    for part, colour in (("train", "tab:blue"), ("val", "tab:orange"), ("test", "tab:green")):
        c = np.asarray(counts.get(part, [0] * n), np.float64)
        ax.bar(range(n), c, bottom=bottom, color=colour, label=part)
        bottom += c
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center")
    ax.set_ylabel("videos")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, Path(path))


def plot_sample_predictions(path: str | Path, rows: Sequence[dict[str, Any]], title: str) -> None:
    """One row per video: its frames (uint8 ``(K, H, W, 3)``), headed by true and predicted class
    (green when right, red when wrong) and the predicted probability."""
    k = max(len(r["frames"]) for r in rows)
    fig = new_figure((1.6 * k, 1.7 * len(rows) + 0.6))
    axes = np.atleast_2d(fig.subplots(len(rows), k, squeeze=False))
    for i, r in enumerate(rows):
        for j in range(k):
            ax = axes[i, j]
            ax.axis("off")
            if j < len(r["frames"]):
                ax.imshow(r["frames"][j])
        ok = r["true"] == r["pred"]
        axes[i, 0].set_title(f"true {r['true']} | predicted {r['pred']} ({r['prob']:.2f})", loc="left", fontsize=8,
                             color="green" if ok else "red")
    fig.suptitle(title)
    save_figure(fig, Path(path))


def plot_saliency(path: str | Path, rows: Sequence[dict[str, Any]], title: str) -> None:
    """One row per video: frames (``(K, H, W, 3)`` uint8) with their saliency (``(K, H, W)`` in [0, 1]) over them."""
    k = max(len(r["frames"]) for r in rows)
    fig = new_figure((1.6 * k, 1.7 * len(rows) + 0.6))
    axes = np.atleast_2d(fig.subplots(len(rows), k, squeeze=False))
    for i, r in enumerate(rows):
        for j in range(k):
            ax = axes[i, j]
            ax.axis("off")
            if j < len(r["frames"]):
                ax.imshow(r["frames"][j])
                ax.imshow(r["maps"][j], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
        axes[i, 0].set_title(f"{r['method']}: {r['label']}", loc="left", fontsize=8)
    fig.suptitle(title)
    save_figure(fig, Path(path))
