"""The one tie rule of egoindex.metrics.retrieval (training's validation and the benchmarks use it)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from egoindex.metrics.retrieval import best_positive_ranks, retrieval_at_k, tie_aware_ranks


def _enumerated(row: np.ndarray, positive: np.ndarray, k: int) -> tuple[float, float]:
    """(mean rank of the first positive, P(rank <= k)) over every order of the tied items."""
    ranks = []
    for perm in itertools.permutations(range(len(row))):
        order = sorted(perm, key=lambda j: -row[j])  # sorted is stable: ties keep the permuted order
        ranks.append(1 + min(order.index(j) for j in np.flatnonzero(positive)))
    return float(np.mean(ranks)), float(np.mean([r <= k for r in ranks]))


def test_ties_are_the_expectation_over_random_orders() -> None:
    row = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.1])
    positive = np.array([False, True, False, True, False, False])  # 2 positives tied with 2 negatives
    for k in (1, 2, 3, 4):
        expected, hits = tie_aware_ranks(row[None], positive[None], (k,))
        mean_rank, p_hit = _enumerated(row, positive, k)
        assert expected[0] == pytest.approx(mean_rank)
        assert hits[k][0] == pytest.approx(p_hit)


def test_all_tied_scores_give_chance_whatever_the_column_order() -> None:
    sim = np.full((3, 4), 0.5)
    m = retrieval_at_k(sim, [{0}, {1}, {3}], ks=(1, 2))
    assert m["R@1"] == pytest.approx(m["chance_R@1"]) == pytest.approx(25.0)
    assert m["R@2"] == pytest.approx(m["chance_R@2"])
    assert list(best_positive_ranks(sim, [{0}, {1}, {3}])) == [2.5, 2.5, 2.5]


def test_scores_within_eps_tie_and_untied_ranks_are_plain() -> None:
    sim = np.array([[0.9, 0.1, 0.5, 0.7], [0.3, 0.3 + 5e-7, 0.2, 0.1]])
    ranks = best_positive_ranks(sim, [{2}, {0}])
    assert ranks[0] == 3.0  # no tie: the usual rank
    assert ranks[1] == pytest.approx(1.5)  # 5e-7 apart: tied
    assert best_positive_ranks(sim, [{2}, {0}], eps=0.0)[1] == 2.0
