"""Charades (and Charades-Ego) multi-label action recognition: per-class AP and mAP, the official
``charades_map`` definition, and the exact mAP of random scores.

Why a careful implementation: Charades numbers (EgoVLP reports 25.0 mAP zero-shot on Charades-Ego)
are only comparable when computed exactly as the official evaluation does:

* ``scores`` [videos x classes], ``gt`` multi-hot of the same shape. Videos with no label at all
  get ``-inf`` in every class (``charades_map``'s fix), so they rank last and never count.
* Per class: rank the videos by descending score; ``tp`` = the ranked video has the class;
  ``prec_k = cumsum(tp)_k / k``; ``AP = (sum of prec_k over the ranks k with tp_k) / n_pos``.
* A class with no positive video has an undefined AP (NaN). The official code takes
  ``np.mean`` over all classes (NaN as soon as one class is empty; never the case on the
  Charades(-Ego) test sets); egoindex's headline ``mAP`` is the mean over the classes with at
  least one positive, beside ``mAP_official`` (the plain mean) and ``wAP`` (the official weighted
  AP: ``sum_c AP_c * n_pos_c / sum n_pos``).
* Ties: ranked in file (video) order, a stable sort, as Matlab's ``sort`` in the official
  ``Charades_v1_classify.m`` does. EgoVLP's python ``np.argsort(-x)`` (numpy's default, unstable
  sort) agrees everywhere except, possibly, inside a group of tied scores.
* The running sums are taken in float64 in rank order, like the official loop.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["charades_ap", "charades_metrics", "expected_random_ap"]


def _check(scores: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, np.float64)
    g = np.asarray(gt)
    if s.ndim != 2 or s.shape != g.shape:
        raise ValueError(f"scores {s.shape} and ground truth {g.shape} must be the same [videos x classes] shape")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if not np.isin(g, (0, 1)).all():
        raise ValueError("the ground truth must be 0/1 (multi-hot)")
    return s, g.astype(bool)


def charades_ap(scores: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-class AP [classes] (NaN for a class without positives), by the official definition above."""
    s, g = _check(scores, gt)
    s = s.copy()
    s[~g.any(axis=1), :] = -np.inf
    aps = np.full(s.shape[1], np.nan)
    for c in range(s.shape[1]):
        order = np.argsort(-s[:, c], kind="stable")
        tp = g[order, c]
        n_pos = int(tp.sum())
        if n_pos == 0:
            continue
        prec = np.cumsum(tp) / np.arange(1, len(tp) + 1, dtype=np.float64)
        total = 0.0
        for p in prec[tp]:  # in rank order, as the official loop adds them
            total += float(p)
        aps[c] = total / n_pos
    return aps


def expected_random_ap(n: int, m: int) -> float:
    """The expected AP of a uniformly random ranking of ``n`` items with ``m`` positives (NaN if m = 0).

    A positive at rank r (uniform on 1..n) has on average (r-1)(m-1)/(n-1) other positives above
    it, so E[prec] = (H_n + (m-1)(n-H_n)/(n-1)) / n, H_n the harmonic number. This is slightly
    above the prevalence m/n (by (n-m) H_n / (n(n-1))): the computed chance, not the usual guess."""
    if m <= 0 or n <= 0:
        return float("nan")
    if n == 1:
        return 1.0
    h = math.fsum(1.0 / k for k in range(1, n + 1))
    return (h + (m - 1) * (n - h) / (n - 1)) / n


def charades_metrics(scores: np.ndarray, gt: np.ndarray) -> tuple[dict[str, float | int], np.ndarray]:
    """Headline metrics (percent) and the per-class AP array (fractions, NaN = no positive).

    ``mAP`` (mean over classes with a positive), ``mAP_official`` (``np.mean`` over all, NaN if
    any is empty), ``wAP``, ``chance_mAP`` (the exact expected mAP of random scores over the same
    classes and the videos that count), ``mean_prevalence`` (the mean fraction of counted videos
    that have the class: the usual approximation of chance), and the counts."""
    s, g = _check(scores, gt)
    aps = charades_ap(s, g)
    counted = g.any(axis=1)
    n = int(counted.sum())
    n_pos = g.sum(axis=0)
    defined = n_pos > 0
    if not defined.any():
        raise ValueError("no class has a positive video: nothing to score")
    chance = [expected_random_ap(n, int(m)) for m in n_pos[defined]]
    metrics: dict[str, float | int] = {
        "mAP": 100.0 * float(np.mean(aps[defined])),
        "mAP_official": 100.0 * float(np.mean(aps)),
        "wAP": 100.0 * float(np.sum(aps[defined] * n_pos[defined]) / n_pos.sum()),
        "chance_mAP": 100.0 * float(np.mean(chance)),
        "mean_prevalence": 100.0 * float(np.mean(n_pos[defined] / n)),
        "n_videos": int(s.shape[0]),
        "n_videos_scored": n,
        "n_classes": int(s.shape[1]),
        "n_classes_scored": int(defined.sum()),
        "n_positives": int(n_pos.sum()),
    }
    return metrics, aps
