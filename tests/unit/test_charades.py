"""Charades(-Ego) files and the charades_map metric.

The reference below is written from the documented definition (Charades' ``charades_map``, the
official ``Charades_v1_classify.m``): rank the videos of a class by descending score (ties in
file order, Matlab's stable sort), AP = the mean, over the class' positives, of the precision at
each positive's rank; videos without any label never count; mAP = the mean over the classes that
have a positive.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from egoindex.bench.charades_files import (demo_charades, read_charades_classes, read_charades_csv, samples_of,
                                           write_charades_classes, write_charades_csv)
from egoindex.errors import BenchError
from egoindex.metrics.charades import charades_ap, charades_metrics, expected_random_ap

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


def reference_ap(scores: np.ndarray, gt: np.ndarray) -> list[float | None]:
    """Per-class AP from the definition, with plain Python lists (None = no positive)."""
    counted = [i for i in range(len(gt)) if any(gt[i])]
    out: list[float | None] = []
    for c in range(gt.shape[1]):
        ranked = sorted(counted, key=lambda i: (-scores[i][c], i))  # descending, ties in file order
        pos_ranks = [r + 1 for r, i in enumerate(ranked) if gt[i][c]]
        if not pos_ranks:
            out.append(None)
            continue
        out.append(sum((k + 1) / r for k, r in enumerate(pos_ranks)) / len(pos_ranks))
    return out


# --------------------------------------------------------------------------------------------- files


def test_csv_reader_quoted_ragged_and_empty_actions(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text(HEADER +
                 'AB12,P1,Kitchen,6,7,Yes,"A person, holding a cup; walks","cup;table","said ""hi"", left",'
                 '"c092 11.90 21.20;c147 0.00 12.60",30.5\n'
                 'CD34,P2,Bedroom,,,No,,,,,12\n'
                 'EF56,P3,Hall,,,Yes,,,,"  c001 1 2 ;; c002   3.5 4;",\n', encoding="utf-8")
    rows = read_charades_csv(p)
    assert [r.id for r in rows] == ["AB12", "CD34", "EF56"]
    assert rows[0].actions == (("c092", 11.9, 21.2), ("c147", 0.0, 12.6))
    assert rows[0].fields["script"] == "A person, holding a cup; walks"
    assert rows[0].fields["descriptions"] == 'said "hi", left'
    assert rows[0].length == 30.5
    assert rows[1].actions == () and rows[1].length == 12.0
    assert rows[2].actions == (("c001", 1.0, 2.0), ("c002", 3.5, 4.0)) and rows[2].length is None


@pytest.mark.parametrize("bad", ["c001 1", "c001 a 2", "c001 1 2 3", "c001 nan 2"])
def test_bad_action_names_the_line(tmp_path: Path, bad: str) -> None:
    p = tmp_path / "c.csv"
    p.write_text(HEADER + f'X1,,,,,,,,,"c000 0 1;{bad}",5\n', encoding="utf-8")
    with pytest.raises(BenchError, match="line 2"):
        read_charades_csv(p)


def test_csv_reader_refuses_missing_columns_and_duplicates(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("id,length\nA,3\n", encoding="utf-8")
    with pytest.raises(BenchError, match="actions"):
        read_charades_csv(p)
    p.write_text("id,actions\nA,\nA,\n", encoding="utf-8")
    with pytest.raises(BenchError, match="twice"):
        read_charades_csv(p)
    with pytest.raises(BenchError, match="cannot read"):
        read_charades_csv(tmp_path / "missing.csv")


def test_class_reader(tmp_path: Path) -> None:
    p = tmp_path / "classes.txt"
    p.write_text("c000 Holding some clothes\n\nc001 Putting clothes somewhere  \nc002 Tidying, then sitting\n")
    assert read_charades_classes(p) == [("c000", "Holding some clothes"), ("c001", "Putting clothes somewhere"),
                                        ("c002", "Tidying, then sitting")]
    p.write_text("c000 A\nc000 B\n")
    with pytest.raises(BenchError, match="twice"):
        read_charades_classes(p)
    p.write_text("c000\n")
    with pytest.raises(BenchError, match="line 1"):
        read_charades_classes(p)


def test_writer_round_trip_and_demo_rows(tmp_path: Path) -> None:
    gt = {"videos": [{"path": "a.mp4", "duration": 20.0, "scenes": [
        {"start": 0.0, "end": 8.0, "room": "kitchen", "object": "ball", "colour": "red", "action": "falls",
         "narration": "oops, the red ball fell off the table"},
        {"start": 8.0, "end": 20.0, "room": "kitchen", "object": "cup", "colour": "blue", "action": "grabs",
         "narration": "the baby grabs the blue cup"}]}, {"path": "b.mp4", "duration": 5.0, "scenes": []}]}
    rows, classes = demo_charades(gt, {"a.mp4": "vid-a"}, ["ball", "cup"], ["falls", "grabs"])
    assert classes == [("c000", "the ball falls"), ("c001", "the baby grabs the ball"), ("c002", "the cup falls"),
                       ("c003", "the baby grabs the cup")]
    write_charades_csv(tmp_path / "x.csv", rows)
    write_charades_classes(tmp_path / "x.txt", classes)
    (back,) = read_charades_csv(tmp_path / "x.csv")
    assert back.id == "vid-a" and back.actions == (("c000", 0.0, 8.0), ("c003", 8.0, 20.0)) and back.length == 20.0
    assert back.fields["script"].startswith("oops, the red ball")
    assert read_charades_classes(tmp_path / "x.txt") == classes
    with pytest.raises(BenchError, match="vocabulary"):
        demo_charades(gt, {"a.mp4": "vid-a"}, ["ball"], ["falls"])


def test_samples_video_and_segment_levels(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text(HEADER + 'A,,,,,,,,,"c001 0 5;c000 0 5;c002 6 4",10\nB,,,,,,,,,,10\n', encoding="utf-8")
    rows = read_charades_csv(p)
    s, gt = samples_of(rows, ["c000", "c001", "c002"], "video")
    assert s == [("A", None, None), ("B", None, None)] and gt.tolist() == [[1, 1, 1], [0, 0, 0]]
    s, gt = samples_of(rows, ["c000", "c001", "c002"], "segment")
    assert s == [("A", 0.0, 5.0), ("A", 4.0, 6.0)] and gt.tolist() == [[1, 1, 0], [0, 0, 1]]
    with pytest.raises(BenchError, match="c002"):
        samples_of(rows, ["c000", "c001"], "video")
    with pytest.raises(BenchError, match="level"):
        samples_of(rows, ["c000"], "clip")


# --------------------------------------------------------------------------------------------- metric


def test_hand_case_empty_class_empty_video_and_ties() -> None:
    # 5 videos x 3 classes; video 4 has no label (never counts), class 2 has no positive (excluded)
    gt = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0]])
    scores = np.array([[0.9, 0.5, 0.1],
                       [0.5, 0.5, 0.2],   # class 1: videos 0, 1 and 2 tie at 0.5
                       [0.2, 0.5, 0.3],
                       [0.99, 0.99, 0.99],  # the unlabelled video would be first: it must not count
                       [0.7, 0.1, 0.4]])
    aps = charades_ap(scores, gt)
    # class 0: ranking 0 (pos), 4, 1, 2 (pos) -> (1/1 + 2/4) / 2
    assert aps[0] == pytest.approx((1 + 2 / 4) / 2)
    # class 1: ties in file order: 0 (neg), 1 (pos), 2 (pos), then 4 (pos) -> (1/2 + 2/3 + 3/4) / 3
    assert aps[1] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    assert np.isnan(aps[2])
    ref = reference_ap(scores, gt)
    assert [None if np.isnan(a) else pytest.approx(a) for a in aps] == ref
    m, _ = charades_metrics(scores, gt)
    assert m["mAP"] == pytest.approx(100 * (ref[0] + ref[1]) / 2)
    assert np.isnan(m["mAP_official"])  # the official np.mean over all classes
    assert m["wAP"] == pytest.approx(100 * (ref[0] * 2 + ref[1] * 3) / 5)
    assert (m["n_videos"], m["n_videos_scored"], m["n_classes_scored"], m["n_positives"]) == (5, 4, 2, 5)
    assert m["mean_prevalence"] == pytest.approx(100 * (2 / 4 + 3 / 4) / 2)


def test_matches_reference_on_random_matrices() -> None:
    rng = np.random.default_rng(0)
    for trial in range(30):
        n, c = int(rng.integers(2, 40)), int(rng.integers(1, 8))
        gt = (rng.random((n, c)) < 0.3).astype(int)
        scores = np.round(rng.random((n, c)), 1 if trial % 2 else 6)  # rounded: many ties
        aps = charades_ap(scores, gt)
        ref = reference_ap(scores, gt)
        assert [None if np.isnan(a) else round(float(a), 12) for a in aps] == \
               [None if r is None else round(r, 12) for r in ref]


def test_perfect_and_constant_scores() -> None:
    gt = np.array([[1, 0], [0, 1], [1, 1]])
    m, aps = charades_metrics(gt.astype(float), gt)
    assert m["mAP"] == 100.0 and m["mAP_official"] == 100.0
    with pytest.raises(ValueError, match="NaN"):
        charades_metrics(np.full((3, 2), np.nan), gt)
    with pytest.raises(ValueError, match="shape"):
        charades_metrics(np.zeros((2, 2)), gt)


@pytest.mark.parametrize("n,m", [(1, 1), (3, 1), (4, 2), (5, 5), (6, 3)])
def test_expected_random_ap_is_the_mean_over_all_rankings(n: int, m: int) -> None:
    gt = np.zeros((n, 1), int)
    gt[:m] = 1
    gt_full = np.concatenate([gt, np.ones((n, 1), int)], axis=1)  # class 1 keeps every video counted
    values = [charades_ap(np.array([[float(-r), 0.0] for r in perm]), gt_full)[0]
              for perm in itertools.permutations(range(n))]
    assert expected_random_ap(n, m) == pytest.approx(float(np.mean(values)))
    assert expected_random_ap(n, m) >= m / n
