"""EPIC-Kitchens MIR must give the official code's numbers, ties and undefined rows included.

The official code is JPoSE's ``src/evaluation/mAP.py`` / ``nDCG.py`` (EgoVLP ships the same files
as ``utils/mAP.py`` / ``utils/nDCG.py``). It is not copied here: the references below re-derive
it from its documented formulas, one row at a time in plain Python, with its ranking order:

* mAP ranks a row with ``(-sim).argsort()``: numpy's default sort of the negated scores;
* nDCG ranks with ``np.argsort(sim)[:, ::-1]``: the default ascending sort, reversed, so tied
  items come out in the opposite order (a constant row: column order for mAP, reverse for nDCG);
* mAP's running sum is ``np.cumsum`` in the relevance's dtype; the means are ``np.mean`` over all
  rows, so one undefined row (0/0) makes the official mean NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from egoindex.metrics.mir import MEAN_RULE, average_precision_rows, mir_metrics, ndcg_rows

RTOL = 1e-12


def ref_ap(sim_row: np.ndarray, rel_row: np.ndarray) -> float:
    """AP = sum over ranks k with r_k == 1 of (r_1 + ... + r_k) / k, divided by #{k : r_k == 1}."""
    ranked = rel_row[np.argsort(-sim_row)]
    running = rel_row.dtype.type(0)  # the official cumsum runs in the relevance's dtype
    terms = []
    for k, r in enumerate(ranked, start=1):
        running = rel_row.dtype.type(running + r)
        if r == 1:
            terms.append(float(running) / k)
    return sum(terms) / len(terms) if terms else math.nan


def ref_ndcg(sim_row: np.ndarray, rel_row: np.ndarray, order: np.ndarray | None = None) -> float:
    """DCG over the first K = #{rel > 0} ranks, rel / log2(rank + 1), divided by the ideal DCG."""
    if order is None:
        order = np.argsort(sim_row)[::-1]
    k = int(np.sum(rel_row > 0))
    if k == 0:
        return math.nan
    dcg = sum(float(rel_row[order[i]]) / math.log2(i + 2) for i in range(k))
    ideal = sorted((float(x) for x in rel_row), reverse=True)
    idcg = sum(ideal[i] / math.log2(i + 2) for i in range(k))
    return dcg / idcg


def ref_metrics(sim: np.ndarray, rel: np.ndarray) -> dict[str, float]:
    """The official means (over all rows; NaN if any row is NaN) and the defined-rows means, in percent."""
    out: dict[str, float] = {}
    for direction, (s, r) in {"v2t": (sim, rel), "t2v": (sim.T, rel.T)}.items():
        for name, fn in (("mAP", ref_ap), ("nDCG", ref_ndcg)):
            rows = [fn(np.ascontiguousarray(s[i]), np.ascontiguousarray(r[i])) for i in range(s.shape[0])]
            defined = [x for x in rows if not math.isnan(x)]
            out[f"{name}_{direction}_official"] = 100 * (math.nan if len(defined) < len(rows) else sum(rows) / len(rows))
            out[f"{name}_{direction}"] = 100 * sum(defined) / len(defined) if defined else math.nan
            out[f"rows_skipped_{name}_{direction}"] = len(rows) - len(defined)
    for name in ("mAP", "nDCG"):
        for suffix in ("", "_official"):
            out[f"{name}_avg{suffix}"] = (out[f"{name}_v2t{suffix}"] + out[f"{name}_t2v{suffix}"]) / 2
    return out


def assert_matches_reference(sim: np.ndarray, rel: np.ndarray) -> dict[str, float | int]:
    got = mir_metrics(sim, rel)
    want = ref_metrics(sim, rel)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=RTOL, atol=0, equal_nan=True, err_msg=key)
    # Per row too, not only the means.
    np.testing.assert_allclose(average_precision_rows(sim, rel), [ref_ap(sim[i], rel[i]) for i in range(len(sim))],
                               rtol=RTOL, equal_nan=True)
    np.testing.assert_allclose(ndcg_rows(sim, rel), [ref_ndcg(sim[i], rel[i]) for i in range(len(sim))],
                               rtol=RTOL, equal_nan=True)
    return got


def soft_relevance(rng: np.random.Generator, shape: tuple[int, int], dtype: type = np.float64) -> np.ndarray:
    """Relevance with EPIC's values (0, 1/4, 1/2, 3/4, 1) and an exact 1 in every row and column,
    so every row of both directions is defined."""
    rel = rng.choice([0.0, 0.0, 0.25, 0.5, 0.75, 1.0], size=shape)
    n = max(shape)
    rel[np.arange(n) % shape[0], np.arange(n) % shape[1]] = 1.0
    return rel.astype(dtype)


@pytest.mark.parametrize("shape", [(40, 40), (25, 60), (600, 30)])  # 600 rows: more than one chunk
def test_untied_random_matrices(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    sim = rng.normal(size=shape)
    assert len(np.unique(sim)) == sim.size  # no ties at all
    m = assert_matches_reference(sim, soft_relevance(rng, shape))
    for key in ("mAP_v2t", "mAP_t2v", "nDCG_v2t", "nDCG_t2v", "mAP_avg", "nDCG_avg"):
        assert m[key] == m[f"{key}_official"]  # every row defined: the two means coincide


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_similarities_rounded_to_a_tenth(dtype: type) -> None:
    # ~10 distinct scores per row of 50: large tie groups, where the tie order decides the numbers.
    rng = np.random.default_rng(7)
    sim = np.round(rng.random((45, 50)), 1).astype(dtype)
    rel = soft_relevance(rng, sim.shape)
    assert_matches_reference(sim, rel)
    # The test is sensitive to the tie order: ranking ties in forward column order for nDCG (a
    # stable descending sort) gives a different figure on this matrix.
    forward = [ref_ndcg(sim[i], rel[i], order=np.argsort(-sim[i], kind="stable")) for i in range(len(sim))]
    assert abs(100 * np.mean(forward) - mir_metrics(sim, rel)["nDCG_v2t"]) > 0.1


def test_float32_relevance_running_sum_in_float32() -> None:
    # The official cumsum stays in float32 for float32 relevance; the reference does the same.
    rng = np.random.default_rng(11)
    sim = rng.normal(size=(30, 400))
    rel = soft_relevance(rng, sim.shape, np.float32)
    rel[rel == 0.25] = np.float32(0.1)  # not exact in binary, so float32 and float64 sums differ
    assert_matches_reference(sim, rel)


def test_constant_row_hand_computed() -> None:
    # One constant row, relevance [1, 0.5, 0, 0] over 4 columns.
    # mAP (column order 0,1,2,3): the only exact item is first -> AP = 1.
    # nDCG (reverse order 3,2,1,0), K = 2: DCG = rel[3]/log2(2) + rel[2]/log2(3) = 0 -> nDCG = 0;
    # a forward order would give DCG = IDCG -> 1.
    sim = np.full((1, 4), 0.3)
    rel = np.array([[1.0, 0.5, 0.0, 0.0]])
    assert average_precision_rows(sim, rel)[0] == 1.0
    assert ndcg_rows(sim, rel)[0] == 0.0
    # Relevance at the end instead: mAP puts the exact item last -> (0 + 0 + 0.5 + 1) / 4 = 0.375;
    # nDCG ranks it first: DCG = 1/1 + 0.5/log2(3) = IDCG -> 1.
    rel2 = rel[:, ::-1].copy()
    assert average_precision_rows(sim, rel2)[0] == 0.375
    assert ndcg_rows(sim, rel2)[0] == 1.0


def test_constant_row_in_a_random_matrix() -> None:
    rng = np.random.default_rng(3)
    sim = rng.normal(size=(20, 35))
    sim[4] = 0.5
    sim[:, 9] = -0.25  # a constant column: a constant row of the t2v direction
    assert_matches_reference(sim, soft_relevance(rng, sim.shape))


def test_rows_without_a_relevant_item_official_nan_and_defined_mean() -> None:
    rng = np.random.default_rng(5)
    sim = rng.normal(size=(12, 15))
    rel = soft_relevance(rng, sim.shape)
    rel[3] = np.where(rel[3] == 1.0, 0.5, rel[3])  # row 3: soft relevance only -> AP undefined
    rel[7] = 0.0  # row 7: nothing relevant -> AP and nDCG undefined
    rel[:, 13] = 0.0  # column 13: an undefined t2v query for both metrics
    m = assert_matches_reference(sim, rel)
    assert m["rows_skipped_mAP_v2t"] == 2 and m["rows_skipped_nDCG_v2t"] == 1
    assert m["rows_skipped_mAP_t2v"] >= 1 and m["rows_skipped_nDCG_t2v"] == 1
    for key in ("mAP_v2t", "mAP_t2v", "mAP_avg", "nDCG_v2t", "nDCG_t2v", "nDCG_avg"):
        assert math.isnan(m[f"{key}_official"])  # what the official code prints
        assert 0.0 <= m[key] <= 100.0  # the headline: the mean over the defined rows
    ap = average_precision_rows(sim, rel)
    assert math.isnan(ap[3]) and math.isnan(ap[7])
    assert m["mAP_v2t"] == pytest.approx(100 * np.nanmean(ap), rel=RTOL)
    assert "defined rows" in MEAN_RULE and "_official" in MEAN_RULE
