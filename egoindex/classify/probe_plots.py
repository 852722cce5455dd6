"""The probe report's two plots: test confusion matrix and learning curves.

Headless (matplotlib's Agg canvas through :mod:`egoindex.core.report`'s figure helpers, no
pyplot state) and written atomically, like the benchmark plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egoindex.core.report import new_figure, save_figure

__all__ = ["plot_confusion", "plot_learning_curves"]


def plot_confusion(path: str | Path, matrix: np.ndarray, classes: Sequence[str], title: str) -> None:
    """Counts per (true, predicted) class, row-normalised colours, counts printed in the cells."""
    m = np.asarray(matrix, np.float64)
    n = len(classes)
    side = min(14.0, 3.0 + 0.45 * n)
    fig = new_figure((side + 1.0, side))
    ax = fig.subplots()
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(c) for c in classes])
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    save_figure(fig, Path(path))


def plot_learning_curves(path: str | Path, per_class: Sequence[int], val: Sequence[float], test: Sequence[float],
                         chance: float, title: str) -> None:
    """Val and test top-1 accuracy against training videos per class, with chance marked."""
    fig = new_figure()
    ax = fig.subplots()
    ax.plot(per_class, val, "o-", label="val top-1")
    ax.plot(per_class, test, "s-", label="test top-1")
    ax.axhline(chance, color="grey", linestyle=":", label=f"chance {chance:.2f}")
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("training videos per class")
    ax.set_ylabel("accuracy")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title)
    ax.legend(loc="lower right")
    save_figure(fig, Path(path))
