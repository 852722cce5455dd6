"""Recall@K, median rank and mean rank for retrieval with known positives.

These are the metrics for benchmarks whose ground truth is a set of correct items per query (a
frame that shows what a spoken sentence describes, a clip that contains a query) rather than a
soft relevance matrix (see :mod:`egoindex.metrics.mir` for that).

Definitions (percent for R@K, 1-based ranks):

* A query's rank is the rank of its *best-ranked* positive, the others do not matter.
* Ranking is by descending similarity with ties broken by column order (lower index first): the
  order a stable ``np.argsort(-sim, kind="stable")`` gives. The rank is computed without sorting
  as ``1 + #{j : sim_j > s*} + #{j < p* : sim_j == s*}`` where p* is the positive with the highest
  score (lowest index among equals) and s* its score, which equals its position in that order.
* R@K = percentage of queries whose rank is <= K.
* Queries with no positive at all have no rank; they are left out of every metric and counted in
  ``queries_skipped`` so that a broken ground truth is visible.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["best_positive_ranks", "chance_hit", "retrieval_at_k"]


def _positive_mask(positives: Sequence[Iterable[int]] | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(positives, np.ndarray) and positives.ndim == 2:
        if positives.shape != shape:
            raise ValueError(f"positives mask shape {positives.shape} does not match sim {shape}")
        return positives.astype(bool, copy=False)
    if len(positives) != shape[0]:
        raise ValueError(f"need one positive set per query: {len(positives)} sets for {shape[0]} queries")
    mask = np.zeros(shape, dtype=bool)
    for i, cols in enumerate(positives):
        idx = np.fromiter((int(c) for c in cols), dtype=np.intp)
        if idx.size and (idx.min() < 0 or idx.max() >= shape[1]):
            raise ValueError(f"query {i}: positive index out of range [0, {shape[1]})")
        mask[i, idx] = True
    return mask


def best_positive_ranks(sim: np.ndarray, positives: Sequence[Iterable[int]] | np.ndarray) -> np.ndarray:
    """1-based rank of each query's best-ranked positive (float array; NaN for queries without any).

    ``sim`` is [queries x items]; ``positives`` either one iterable of item indices per query or a
    boolean mask shaped like ``sim``. Ties are broken by column order (see module docstring).
    """
    sim = np.asarray(sim)
    if sim.ndim != 2:
        raise ValueError(f"sim must be 2-D [queries x items], got shape {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("sim contains NaN or infinite values; rankings would be undefined")
    mask = _positive_mask(positives, sim.shape)
    ranks = np.full(sim.shape[0], np.nan)
    cols = np.arange(sim.shape[1])
    for i in np.flatnonzero(mask.any(axis=1)):
        row = sim[i]
        pos = np.flatnonzero(mask[i])
        best = pos[np.argmax(row[pos])]  # argmax returns the first (lowest-index) maximum
        s = row[best]
        ranks[i] = 1 + np.count_nonzero(row > s) + np.count_nonzero((row == s) & (cols < best))
    return ranks


def chance_hit(n: int, p: int, k: int) -> float:
    """P(at least one of p positives among the first k of n items in random order):
    1 - C(n-p, k) / C(n, k), in log-gamma form so large n do not overflow."""
    if p <= 0:
        return 0.0
    if k >= n - p + 1:
        return 1.0
    return 1.0 - math.exp(math.lgamma(n - p + 1) - math.lgamma(n - p - k + 1) - math.lgamma(n + 1) + math.lgamma(n - k + 1))


def retrieval_at_k(
    sim: np.ndarray, positives: Sequence[Iterable[int]] | np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float | int]:
    """R@K (percent) for each K in ``ks``, ``median_rank``, ``mean_rank``, ``n_queries`` (queries
    with at least one positive) and ``queries_skipped`` (queries without any). Keys are ``"R@1"``,
    ``"R@5"``, ... Metrics are NaN when no query has a positive."""
    mask = _positive_mask(positives, sim.shape)
    ranks = best_positive_ranks(sim, mask)
    valid = ranks[~np.isnan(ranks)]
    out: dict[str, float | int] = {}
    for k in ks:
        out[f"R@{int(k)}"] = float(100.0 * np.mean(valid <= k)) if valid.size else float("nan")
    counts = mask.sum(axis=1)
    counts = counts[counts > 0]
    for k in ks:
        out[f"chance_R@{int(k)}"] = (float(100.0 * np.mean([chance_hit(sim.shape[1], int(c), int(k)) for c in counts]))
                                     if counts.size else float("nan"))
    out["median_rank"] = float(np.median(valid)) if valid.size else float("nan")
    out["mean_rank"] = float(np.mean(valid)) if valid.size else float("nan")
    out["n_queries"] = int(valid.size)
    out["queries_skipped"] = int(ranks.size - valid.size)
    return out
