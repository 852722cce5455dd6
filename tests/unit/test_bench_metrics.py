"""Benchmark metrics against hand-computed values: each case would fail on a plausible wrong
implementation (0/1 precision instead of the soft running sum, no top-K truncation in nDCG,
untransposed t2v, unstable tie-breaking, swapped EgoMCQ type labels, train leakage)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

from egoindex.metrics.egomcq import (
    DEFAULT_MIN_GAP_S,
    TYPE_LABELS,
    clip_frame_times,
    generate_egomcq,
    load_egomcq,
    score_egomcq,
    write_egomcq,
)
from egoindex.metrics.mir import (
    average_precision_rows,
    content_words,
    epic_relevance,
    load_relevance,
    mean_average_precision,
    mir_metrics,
    ndcg,
    ndcg_rows,
    proxy_relevance,
)
from egoindex.core.report import compare_reports, write_report
from egoindex.metrics.retrieval import best_positive_ranks, retrieval_at_k

# ----------------------------------------------------------------------------- mAP


def test_ap_soft_running_sum_hand_case() -> None:
    # Ranked relevances [1, 0.5, 0, 1]; exactly relevant at k=1 and k=4.
    # k=1: 1/1 = 1;  k=4: (1 + 0.5 + 0 + 1)/4 = 0.625  ->  AP = (1 + 0.625)/2 = 0.8125.
    # (0/1 precision would give k=4: 2/4 -> AP 0.75, so this distinguishes the two.)
    sim = np.array([[0.9, 0.8, 0.7, 0.6]])
    rel = np.array([[1.0, 0.5, 0.0, 1.0]])
    assert average_precision_rows(sim, rel)[0] == pytest.approx(0.8125)
    assert mean_average_precision(sim, rel) == pytest.approx(0.8125)


def test_ap_soft_item_ranked_first() -> None:
    # sim ranks columns 1, 0, 3, 2 -> ranked relevances [0.5, 1, 1, 0].
    # k=2: (0.5 + 1)/2 = 0.75;  k=3: (0.5 + 1 + 1)/3 = 2.5/3  ->  AP = (0.75 + 0.8333..)/2 = 0.791666..
    # (0/1 precision: k=2: 1/2, k=3: 2/3 -> 0.58333; counting rel > 0 as hits gives yet another value.)
    sim = np.array([[0.8, 0.9, 0.1, 0.7]])
    rel = np.array([[1.0, 0.5, 0.0, 1.0]])
    assert average_precision_rows(sim, rel)[0] == pytest.approx((0.75 + 2.5 / 3) / 2)


def test_ap_ties_broken_by_column_order() -> None:
    # All scores equal: the official mAP's argsort(-sim) ranks a constant row 0,1,2,3 -> the only
    # exact item (column 1) is at k=2: AP = (0 + 1)/2 = 0.5.  A reversed argsort would put it at
    # k=3 -> 1/3.  (nDCG ranks the same row in reverse: tests/unit/test_mir_official.py.)
    sim = np.full((1, 4), 0.5)
    rel = np.array([[0.0, 1.0, 0.0, 0.0]])
    assert average_precision_rows(sim, rel)[0] == pytest.approx(0.5)
    # Exact item in column 2 instead: column order puts it at k=3 -> AP = 1/3 (reversed order: k=2 -> 1/2).
    assert average_precision_rows(sim, rel[:, ::-1].copy())[0] == pytest.approx(1 / 3)


def test_ap_row_without_exact_item_is_nan_and_skipped() -> None:
    sim = np.array([[0.9, 0.1, 0.5], [0.3, 0.2, 0.1]])
    rel = np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5]])  # row 1 has soft relevance only
    ap = average_precision_rows(sim, rel)
    assert ap[0] == pytest.approx(1.0) and math.isnan(ap[1])
    assert mean_average_precision(sim, rel) == pytest.approx(1.0)  # mean over defined rows only
    m = mir_metrics(sim, rel)
    assert m["rows_skipped_mAP_v2t"] == 1
    assert m["mAP_v2t"] == pytest.approx(100.0)


def test_mir_t2v_uses_transposes_non_square() -> None:
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4]])
    rel = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0]])
    # v2t: row 0 ranked [1, 0.5, 0] -> AP 1; row 1 ranked [1, 1, 0] -> AP 1.  mAP 100.
    # t2v (columns as queries): col 0 [1, 0] -> 1; col 1 ranked [1, 0] -> 1;
    #   col 2: sims [0.5, 0.4] -> ranked [0.5, 1] -> k=2: 1.5/2 = 0.75.  mAP = 2.75/3.
    m = mir_metrics(sim, rel)
    assert m["mAP_v2t"] == pytest.approx(100.0)
    assert m["mAP_t2v"] == pytest.approx(100.0 * 2.75 / 3)
    assert m["mAP_avg"] == pytest.approx((100.0 + 100.0 * 2.75 / 3) / 2)
    assert (m["n_videos"], m["n_sentences"]) == (2, 3)
    assert m["rows_skipped_mAP_t2v"] == 0 and m["rows_skipped_nDCG_t2v"] == 0


def test_shape_mismatch_and_nan_sim_rejected() -> None:
    with pytest.raises(ValueError, match="same shape"):
        mir_metrics(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        average_precision_rows(np.array([[np.nan, 1.0]]), np.array([[1.0, 0.0]]))


def test_ap_chunking_matches_direct_computation() -> None:
    # More rows than one chunk: the chunked computation must equal a plain per-row loop.
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(600, 7))
    rel = rng.choice([0.0, 0.25, 0.5, 1.0], size=(600, 7))
    got = average_precision_rows(sim, rel)
    for i in (0, 511, 512, 599):
        r = rel[i][np.argsort(-sim[i])]  # the official mAP's ranking
        terms = [r[: k + 1].sum() / (k + 1) for k in range(7) if r[k] == 1.0]
        want = np.mean(terms) if terms else np.nan
        np.testing.assert_allclose(got[i], want, equal_nan=True)


# ----------------------------------------------------------------------------- nDCG


def test_ndcg_perfect_and_reversed() -> None:
    rel = np.array([[1.0, 0.5, 0.0, 0.25]])  # K = 3 items with rel > 0
    assert ndcg_rows(rel.copy(), rel)[0] == pytest.approx(1.0)
    # Reversed ranking (ascending relevance): ranked [0, 0.25, 0.5, 1]; only the top K=3 count:
    # DCG = 0/log2(2) + 0.25/log2(3) + 0.5/log2(4); IDCG = 1/log2(2) + 0.5/log2(3) + 0.25/log2(4).
    expected = (0.25 / np.log2(3) + 0.5 / 2) / (1.0 + 0.5 / np.log2(3) + 0.25 / 2)
    assert ndcg_rows(-rel, rel)[0] == pytest.approx(expected)
    assert ndcg(-rel, rel) == pytest.approx(expected)  # ~0.2831; without truncation it would be ~0.52


def test_ndcg_row_with_no_relevance_is_skipped() -> None:
    sim = np.array([[0.1, 0.2], [0.3, 0.4]])
    rel = np.array([[0.0, 1.0], [0.0, 0.0]])
    rows = ndcg_rows(sim, rel)
    assert rows[0] == pytest.approx(1.0) and math.isnan(rows[1])
    m = mir_metrics(sim, rel)
    assert m["rows_skipped_nDCG_v2t"] == 1 and m["nDCG_v2t"] == pytest.approx(100.0)
    # t2v: column 0 has no relevance at all -> skipped; column 1 has rel [1, 0], ranked by [0.2, 0.4]
    # -> ranked [0, 1] with K = 1: DCG = 0 -> nDCG 0.
    assert m["rows_skipped_nDCG_t2v"] == 1 and m["nDCG_t2v"] == pytest.approx(0.0)


# ----------------------------------------------------------------------------- relevance


def test_epic_relevance_exact_fractions() -> None:
    verbs_a, nouns_a = [1, 2], [[3, 4], [5]]
    verbs_b, nouns_b = [1, 1, 2, 9], [[3], [4, 3], [6], [4, 7]]
    rel = epic_relevance(verbs_a, nouns_a, verbs_b, nouns_b)
    expected = np.array(
        [
            [(1 + 1 / 2) / 2, (1 + 1) / 2, 0.0, (0 + 1 / 3) / 2],  # same verb, {3,4} vs {3}: 1/2 ...
            [0.0, 0.0, (1 + 0) / 2, 0.0],
        ]
    )
    np.testing.assert_allclose(rel, expected, rtol=1e-6)
    assert rel[0, 1] == 1.0  # exactly 1 so mAP treats it as exactly relevant


def test_proxy_relevance_jaccard_of_content_words() -> None:
    assert content_words("#C C opens the fridge.") == {"opens", "fridge"}
    rel = proxy_relevance(
        ["#C C opens the fridge.", "I open the fridge door", "uh, the"],
        ["C opens fridge", "open fridge", "the um"],
    )
    assert rel[0, 0] == 1.0  # same content words -> exactly relevant
    assert rel[1, 1] == pytest.approx(2 / 3)  # {open, fridge, door} vs {open, fridge}
    assert rel[0, 1] == pytest.approx(1 / 3)  # no stemming: {opens, fridge} vs {open, fridge} share 1 of 3
    assert rel[2, 2] == 0.0  # no content words: never relevant, not even to each other


def test_load_relevance_formats_and_errors(tmp_path) -> None:
    arr = np.array([[1.0, 0.5], [0.0, 1.0]])
    np.save(tmp_path / "rel.npy", arr)
    with open(tmp_path / "rel.pkl", "wb") as f:
        pickle.dump(arr, f)
    np.testing.assert_array_equal(load_relevance(tmp_path / "rel.npy"), arr)
    np.testing.assert_array_equal(load_relevance(tmp_path / "rel.pkl", shape=(2, 2)), arr)
    with pytest.raises(ValueError, match="suffix|.npy"):
        load_relevance(tmp_path / "rel.csv")
    with pytest.raises(ValueError, match="does not match"):
        load_relevance(tmp_path / "rel.npy", shape=(3, 2))
    np.save(tmp_path / "one_d.npy", np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        load_relevance(tmp_path / "one_d.npy")
    np.save(tmp_path / "str.npy", np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="numeric"):
        load_relevance(tmp_path / "str.npy")
    with open(tmp_path / "dict.pkl", "wb") as f:
        pickle.dump({"rel": arr}, f)
    with pytest.raises(ValueError, match="numpy array"):
        load_relevance(tmp_path / "dict.pkl")


# ----------------------------------------------------------------------------- retrieval


def test_retrieval_at_k_hand_case() -> None:
    sim = np.array(
        [
            [0.9, 0.1, 0.5, 0.7],  # positive {2}: ranked 0, 3, 2 -> rank 3
            [0.2, 0.8, 0.3, 0.9],  # positives {0, 3}: column 3 is first -> rank 1
            [0.5, 0.5, 0.5, 0.5],  # positive {1} tied with 3 negatives: expected rank 2.5, P(@1) 1/4, P(@2) 1/2
            [0.1, 0.2, 0.3, 0.4],  # no positive: skipped
        ]
    )
    positives = [{2}, {0, 3}, {1}, set()]
    m = retrieval_at_k(sim, positives, ks=(1, 2, 5))
    assert m["R@1"] == pytest.approx(100 * (0 + 1 + 1 / 4) / 3)
    assert m["R@2"] == pytest.approx(100 * (0 + 1 + 1 / 2) / 3)
    assert m["R@5"] == pytest.approx(100.0)
    assert m["median_rank"] == 2.5 and m["mean_rank"] == pytest.approx((3 + 1 + 2.5) / 3)
    assert m["n_queries"] == 3 and m["queries_skipped"] == 1
    # a random ranking of 4 columns: 1, 2 and 1 positives -> P(hit@1) = 1/4, 2/4, 1/4
    assert m["chance_R@1"] == pytest.approx(100 / 3)
    assert m["chance_R@2"] == pytest.approx(100 * (1 - 3 / 6 + 1 - 1 / 6 + 1 - 3 / 6) / 3)
    assert m["chance_R@5"] == pytest.approx(100.0)
    mask = np.zeros_like(sim, dtype=bool)
    for i, p in enumerate(positives):
        mask[i, list(p)] = True
    assert retrieval_at_k(sim, mask, ks=(1, 2, 5)) == m
    # Without ties, ranks agree with a sort of -sim; a tie is the expectation over random orders.
    ranks = best_positive_ranks(sim, positives)
    for i, p in enumerate(positives[:2]):
        order = list(np.argsort(-sim[i], kind="stable"))
        assert ranks[i] == 1 + min(order.index(j) for j in p)
    assert ranks[2] == 2.5 and np.isnan(ranks[3])


# ----------------------------------------------------------------------------- EgoMCQ


def _row(vid: str, s: float, e: float, text: str = "") -> dict:
    return {"video_uid": vid, "clip_start": s, "clip_end": e, "clip_text": text}


def _item(answer: int, types: int) -> dict:
    return {
        "query": _row("q", 0.0, 1.0, "query"),
        "choices": {str(i): _row(f"v{i}", 0.0, 1.0) for i in range(5)},
        "answer": answer,
        "types": types,
    }


def _vecs(items: dict, preds: dict[str, int]) -> tuple[dict, dict]:
    """Unit vectors such that item key's argmax cosine is preds[key]."""
    q, c = {}, {}
    for key in items:
        q[key] = np.eye(5)[preds[key]]
        c[key] = np.eye(5) * 0.9 + 0.01
    return q, c


def test_type_labels_mapping() -> None:
    assert TYPE_LABELS == {1: "inter", 2: "intra"}


def test_score_type1_only_reported_as_inter() -> None:
    items = {str(i): _item(answer=i % 5, types=1) for i in range(3)}
    q, c = _vecs(items, {"0": 0, "1": 1, "2": 0})  # items 0 and 1 correct, item 2 (answer 2) wrong
    s = score_egomcq(items, q, c)
    assert s["n_inter"] == 3 and s["n_intra"] == 0
    assert s["inter_acc"] == pytest.approx(200 / 3)
    assert math.isnan(s["intra_acc"])
    assert s["overall_acc"] == pytest.approx(200 / 3)
    assert [p["correct"] for p in s["predictions"]] == [True, True, False]
    assert {p["type"] for p in s["predictions"]} == {"inter"}


def test_score_mixed_types_not_swapped() -> None:
    items = {"0": _item(answer=1, types=1), "1": _item(answer=3, types=2)}
    q, c = _vecs(items, {"0": 1, "1": 0})  # inter right, intra wrong
    s = score_egomcq(items, q, c)
    assert s["inter_acc"] == 100.0 and s["intra_acc"] == 0.0 and s["overall_acc"] == 50.0
    with pytest.raises(ValueError, match="no query or choice vectors"):
        score_egomcq(items, {"0": q["0"]}, c)


def test_clip_frame_times_midpoints() -> None:
    assert clip_frame_times(0.0, 8.0) == pytest.approx([1.0, 3.0, 5.0, 7.0])
    assert clip_frame_times(10.0, 12.0, num_frames=2) == pytest.approx([10.5, 11.5])


def test_load_egomcq_rejects_bad_items(tmp_path) -> None:
    good = {"0": _item(0, 1), "1": _item(4, 2)}
    p = tmp_path / "ok.json"
    p.write_text(json.dumps(good))
    assert load_egomcq(p) == good
    cases = [
        ({"0": _item(0, 1), "1": {**_item(5, 2)}}, "'1'.*answer"),
        ({"0": _item(0, 3)}, "'0'.*types"),
        ({"0": _item(0, 1), "2": _item(0, 1)}, "without gaps"),
        ({"0": {**_item(0, 1), "choices": {str(i): _row("v", 0, 1) for i in range(4)}}}, "'0'.*choices"),
        ({"0": {**_item(0, 1), "answer": True}}, "answer"),
        ({"0": {**_item(0, 1), "query": {"video_uid": "v", "clip_start": 0}}}, "query"),
    ]
    for data, pattern in cases:
        p.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=pattern):
            load_egomcq(p)


VAL_VIDEOS = [f"val{i}" for i in range(6)]
TRAIN_VIDEOS = ["train0", "train1"]


@pytest.fixture(scope="module")
def corpus() -> tuple[list[dict], dict[str, list[tuple[float, float]]]]:
    """6 val + 2 train videos, 120 s each; 4 s windows; an utterance every 6 s."""
    utts, clips = [], {}
    for vid in VAL_VIDEOS + TRAIN_VIDEOS:
        split = "val" if vid.startswith("val") else "train"
        clips[vid] = [(float(s), float(s + 4)) for s in range(0, 120, 4)]
        for k in range(20):
            utts.append({"video_uid": vid, "start": 6.0 * k + 0.5, "end": 6.0 * k + 2.5, "text": f"{vid} says {k}", "split": split})
    return utts, clips


def test_generate_rules(corpus) -> None:
    utts, clips = corpus
    items = generate_egomcq(utts, clips, n=20, seed=0)
    assert list(items) == [str(i) for i in range(20)]
    assert [it["types"] for it in items.values()] == [1, 2] * 10
    assert len({it["answer"] for it in items.values()}) > 1
    for it in items.values():
        q, choices = it["query"], it["choices"]
        ans = choices[str(it["answer"])]
        vids = [c["video_uid"] for c in choices.values()]
        assert set(vids) | {q["video_uid"]} <= set(VAL_VIDEOS)  # no train leakage
        mid = (q["clip_start"] + q["clip_end"]) / 2
        assert ans["video_uid"] == q["video_uid"] and ans["clip_start"] <= mid <= ans["clip_end"]
        assert q["clip_text"] in ans["clip_text"]
        distractors = [c for k, c in choices.items() if k != str(it["answer"])]
        if it["types"] == 2:
            assert all(d["video_uid"] == q["video_uid"] for d in distractors)
            for d in distractors:
                gap = max(d["clip_start"] - ans["clip_end"], ans["clip_start"] - d["clip_end"])
                assert gap >= DEFAULT_MIN_GAP_S
            assert len({(d["clip_start"], d["clip_end"]) for d in distractors}) == 4
        else:
            dv = [d["video_uid"] for d in distractors]
            assert len(set(dv)) == 4 and q["video_uid"] not in dv


def test_generate_deterministic_and_round_trip(corpus, tmp_path) -> None:
    utts, clips = corpus
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    write_egomcq(generate_egomcq(utts, clips, n=12, seed=7), a)
    write_egomcq(generate_egomcq(list(reversed(utts)), clips, n=12, seed=7), b)  # input order irrelevant
    write_egomcq(generate_egomcq(utts, clips, n=12, seed=8), c)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    items = generate_egomcq(utts, clips, n=12, seed=7)
    assert load_egomcq(a) == items
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temporary file


def test_generate_refuses_video_in_two_splits_and_skips_impossible(corpus) -> None:
    utts, clips = corpus
    leaky = utts + [{"video_uid": "val0", "start": 1.0, "end": 2.0, "text": "x", "split": "train"}]
    with pytest.raises(ValueError, match="leak"):
        generate_egomcq(leaky, clips, n=4, seed=0)
    # Gap larger than any video: intra questions are impossible anywhere, so every item is inter
    # (it used to stop after one inter item, leaving short-video corpora with a 1-question curve).
    items = generate_egomcq(utts, clips, n=4, seed=0, min_gap_s=1000.0)
    assert [it["types"] for it in items.values()] == [1, 1, 1, 1]


# ----------------------------------------------------------------------------- reports


SHA_A, SHA_B = "a1" * 32, "b2" * 32


def test_write_report_files(tmp_path) -> None:
    # Slowest test (~2 s) only because it is the first to import matplotlib.
    paths = write_report(
        tmp_path,
        "egomcq_base",
        metrics={"inter_acc": 90.5, "intra_acc": float("nan"), "n_total": 4},
        meta={"model": "ViT-S-32", "checkpoint_sha256": SHA_A},
        tables={"predictions": [{"key": "0", "type": "inter", "correct": True}]},
        plots={
            "acc": {"kind": "bars", "labels": ["inter", "intra"], "values": [90.5, float("nan")], "title": "acc"},
            "ranks": {"kind": "rank_histogram", "ranks": [1, 1, 2, 50, np.nan], "title": "ranks"},
        },
    )
    doc = json.loads(paths["json"].read_text())
    assert doc["metrics"] == {"inter_acc": 90.5, "intra_acc": None, "n_total": 4}
    assert doc["meta"]["checkpoint_sha256"] == SHA_A
    assert doc["tables"]["predictions"] == [{"key": "0", "type": "inter", "correct": True}]
    md = paths["md"].read_text()
    assert "| inter_acc | 90.50 |" in md and "| intra_acc | n/a |" in md and "ViT-S-32" in md
    for key in ("plot:acc", "plot:ranks"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="tables"):
        write_report(tmp_path, "bad", metrics={"predictions": [1, 2]}, meta={})


def test_compare_reports_side_by_side(tmp_path) -> None:
    write_report(
        tmp_path, "egomcq_base", metrics={"inter_acc": 90.5, "intra_acc": float("nan")}, meta={"model": "ViT-S-32", "checkpoint_sha256": SHA_A}
    )
    write_report(tmp_path, "egomcq_ft", metrics={"inter_acc": 93.25, "extra": 1.0}, meta={"model": "ViT-S-32", "checkpoint_sha256": SHA_B})
    table = compare_reports([tmp_path / "egomcq_base.json", tmp_path / "egomcq_ft.json"])
    assert "ViT-S-32 @ a1a1a1a1" in table and "ViT-S-32 @ b2b2b2b2" in table
    assert "| inter_acc | 90.50 | 93.25 |" in table
    assert "| intra_acc | n/a | - |" in table and "| extra | - | 1.00 |" in table
    assert not list(tmp_path.glob("*.png"))
