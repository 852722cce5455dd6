"""Two models scored on the same items, compared item by item.

Why paired: when two checkpoints answer the same trials (the same forced-choice trial file, the
same EgoMCQ questions, the same utterances), the question "is B better than A?" is about the
per-item differences, and the item-to-item variance cancels. Two separate intervals that overlap
can still hide a clear paired difference, and two that do not overlap say less than the paired
test. So ``egoindex bench compare`` reports, for every run against the first, the mean of the
per-item differences with a percentile bootstrap interval over items (the one bootstrap rule,
:func:`egoindex.metrics.alignment.bootstrap_mean_ci`), and for right/wrong outcomes the exact
McNemar test (a two-sided binomial sign test on the discordant items).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from egoindex.metrics.alignment import bootstrap_mean_ci

__all__ = ["mcnemar_exact_p", "paired_difference"]


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: ``only_a`` items right for A alone, ``only_b`` for B
    alone; under the null each discordant item is a fair coin. 1.0 when nothing is discordant."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be non-negative, got {only_a}, {only_b}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *,
                      n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """B minus A over items paired by position: both means, the mean difference, its bootstrap
    95 % interval and ``n``; when every outcome is 0 or 1, also the discordant counts and the
    exact McNemar p (``p_mcnemar``, else None: fractional credits such as shared ties have no
    exact sign test). Items where either value is not finite are dropped from both."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired outcomes need two equal 1-d arrays, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    d = y - x
    lo, hi = bootstrap_mean_ci(d, n_resamples=n_resamples, seed=seed)
    out: dict[str, Any] = {
        "n": int(d.size),
        "mean_a": float(x.mean()) if d.size else float("nan"),
        "mean_b": float(y.mean()) if d.size else float("nan"),
        "diff": float(d.mean()) if d.size else float("nan"),
        "ci95_low": lo, "ci95_high": hi,
        "only_a": None, "only_b": None, "p_mcnemar": None,
    }
    if d.size and np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all():
        only_a = int(np.count_nonzero((x == 1.0) & (y == 0.0)))
        only_b = int(np.count_nonzero((x == 0.0) & (y == 1.0)))
        out.update(only_a=only_a, only_b=only_b, p_mcnemar=mcnemar_exact_p(only_a, only_b))
    return out
