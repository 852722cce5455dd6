"""Recall@K, median rank and mean rank for retrieval with known positives: the one R@K and tie rule.

These are the metrics for benchmarks whose ground truth is a set of correct items per query (a
frame that shows what a spoken sentence describes, a clip that contains a query) rather than a
soft relevance matrix (see :mod:`egoindex.metrics.mir` for that). Training's validation
(:mod:`egoindex.train.eval`) and the store benchmarks (:mod:`egoindex.bench`) both score here.

Definitions (percent for R@K, 1-based ranks):

* A query's rank is the rank of its *best-ranked* positive, the others do not matter.
* Ranking is by descending similarity. **Tie rule**: items whose scores are within ``eps``
  (:data:`TIE_EPS`, default ``1e-6``) of the best positive's score ``m`` are tied, and a tie is
  scored as the expectation over a uniformly random order of the tied items. With ``g`` negatives
  scored strictly above ``m + eps``, ``t`` negatives and ``q`` positives tied at ``m``, the first
  positive's position among the ``t + q`` tied items is random, so

  - expected rank = ``g + 1 + t / (q + 1)``;
  - P(rank <= K) = ``1 - C(t, r) / C(t + q, r)`` with ``r = K - g`` (0 when ``r <= 0``, 1 when
    ``r > t``).

  So a query whose positive ties with ``t`` negatives counts as a hit at K=1 with probability
  ``q / (t + q)``, whatever the column order; a model that gives every pair the same score gets
  exactly chance (never a perfect score), which matters for identical captions and for scores
  rounded by bf16/fp16 or float16 storage. Without ties this is the usual rank.
* R@K = the mean over queries of P(rank <= K), in percent; median and mean rank are over the
  expected ranks.
* Queries with no positive at all have no rank; they are left out of every metric and counted in
  ``queries_skipped`` so that a broken ground truth is visible.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["TIE_EPS", "best_positive_ranks", "chance_hit", "retrieval_at_k", "tie_aware_ranks"]

#: Scores this close to the best positive's count as tied with it (float32 rounding noise).
TIE_EPS = 1e-6


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


def tie_aware_ranks(sim: np.ndarray, positive: np.ndarray, ks: Iterable[int] = (1, 5, 10),
                    eps: float = TIE_EPS) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(expected rank, {K: P(rank <= K)}) of each row's best positive under the tie rule of the
    module docstring; ``sim`` [Q, N] scores and ``positive`` a boolean mask of the same shape.
    Rows without a positive get NaN. Callers with large Q pass row chunks (the rule is per row)."""
    sim = np.asarray(sim)
    if not np.issubdtype(sim.dtype, np.floating):
        sim = sim.astype(np.float64)
    positive = np.asarray(positive, dtype=bool)
    if sim.ndim != 2 or positive.shape != sim.shape:
        raise ValueError(f"sim must be 2-D with a positives mask of the same shape, got {sim.shape} and "
                         f"{positive.shape}")
    has = positive.any(axis=1)
    m = np.where(positive, sim, -np.inf).max(axis=1, initial=-np.inf)[:, None]
    m = np.where(has[:, None], m, 0.0).astype(sim.dtype, copy=False)
    neg = ~positive
    g = np.count_nonzero((sim > m + eps) & neg, axis=1).astype(np.float64)
    tied = np.abs(sim - m) <= eps
    t = np.count_nonzero(tied & neg, axis=1).astype(np.float64)
    q = np.count_nonzero(tied & positive, axis=1).astype(np.float64)
    expected = np.where(has, g + 1 + t / (q + 1), np.nan)
    hits: dict[int, np.ndarray] = {}
    for k in ks:
        r = k - g
        steps = np.clip(r, 0, t)  # C(t, r) / C(t + q, r) = prod_{i < r} (t - i) / (t + q - i)
        ratio = np.ones_like(t)
        for i in range(int(steps.max()) if steps.size else 0):
            ratio = np.where(i < steps, ratio * (t - i) / np.maximum(t + q - i, 1.0), ratio)
        hit = np.where(r <= 0, 0.0, np.where(r > t, 1.0, 1.0 - ratio))
        hits[int(k)] = np.where(has, hit, np.nan)
    return expected, hits


def best_positive_ranks(sim: np.ndarray, positives: Sequence[Iterable[int]] | np.ndarray,
                        eps: float = TIE_EPS) -> np.ndarray:
    """Expected 1-based rank of each query's best-ranked positive (float array; NaN for queries
    without any), under the tie rule of the module docstring.

    ``sim`` is [queries x items]; ``positives`` either one iterable of item indices per query or a
    boolean mask shaped like ``sim``.
    """
    sim = _checked(sim)
    return tie_aware_ranks(sim, _positive_mask(positives, sim.shape), (), eps)[0]


def _checked(sim: np.ndarray) -> np.ndarray:
    sim = np.asarray(sim)
    if sim.ndim != 2:
        raise ValueError(f"sim must be 2-D [queries x items], got shape {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("sim contains NaN or infinite values; rankings would be undefined")
    return sim


def chance_hit(n: int, p: int, k: int) -> float:
    """P(at least one of p positives among the first k of n items in random order):
    1 - C(n-p, k) / C(n, k), in log-gamma form so large n do not overflow."""
    if p <= 0:
        return 0.0
    if k >= n - p + 1:
        return 1.0
    return 1.0 - math.exp(math.lgamma(n - p + 1) - math.lgamma(n - p - k + 1)
                          - math.lgamma(n + 1) + math.lgamma(n - k + 1))


def retrieval_at_k(
    sim: np.ndarray, positives: Sequence[Iterable[int]] | np.ndarray, ks: Sequence[int] = (1, 5, 10),
    eps: float = TIE_EPS,
) -> dict[str, float | int]:
    """R@K (percent) for each K in ``ks``, ``median_rank``, ``mean_rank``, ``n_queries`` (queries
    with at least one positive) and ``queries_skipped`` (queries without any). Keys are ``"R@1"``,
    ``"R@5"``, ... and ``"chance_R@K"``. Ties as in the module docstring. Metrics are NaN when no
    query has a positive."""
    sim = _checked(sim)
    mask = _positive_mask(positives, sim.shape)
    ranks, hits = tie_aware_ranks(sim, mask, ks, eps)
    valid = ~np.isnan(ranks)
    out: dict[str, float | int] = {}
    for k in ks:
        out[f"R@{int(k)}"] = float(100.0 * np.mean(hits[int(k)][valid])) if valid.any() else float("nan")
    counts = mask.sum(axis=1)
    counts = counts[counts > 0]
    for k in ks:
        out[f"chance_R@{int(k)}"] = (float(100.0 * np.mean([chance_hit(sim.shape[1], int(c), int(k)) for c in counts]))
                                     if counts.size else float("nan"))
    out["median_rank"] = float(np.median(ranks[valid])) if valid.any() else float("nan")
    out["mean_rank"] = float(np.mean(ranks[valid])) if valid.any() else float("nan")
    out["n_queries"] = int(valid.sum())
    out["queries_skipped"] = int(ranks.size - valid.sum())
    return out
