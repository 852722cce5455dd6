"""N-way forced choice (``egoindex bench forced-choice``): trials, scoring, the trials file, and the
demo labeled set (``egoindex demo-labeled``) on a tiny real demo corpus."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from egoindex.core.fsutil import sha256_file
from egoindex.errors import AnnotationError, ConfigError
from egoindex.metrics.forced_choice import (
    Item,
    Trial,
    forced_choice_metrics,
    generate_trials,
    read_trials,
    score_trials,
    trial_credit,
    write_trials,
)

CATS = ["ball", "cup", "book", "spoon", "car", "star"]


def _items(per_cat: int = 3) -> list[Item]:
    return [Item(f"{c}/{i}.jpg", c) for c in CATS for i in range(per_cat)]


def test_trials_are_deterministic_and_independent_of_item_order() -> None:
    items = _items()
    a = generate_trials(items, ways=4, seed=7)
    b = generate_trials(list(reversed(items)), ways=4, seed=7)
    c = generate_trials(items, ways=4, seed=8)
    assert a == b
    assert a != c
    assert len(a) == len(items)  # one trial per target image
    assert sorted(t.target for t in a) == sorted(it.key for it in items)


def test_foils_never_share_the_targets_category_and_differ_from_each_other() -> None:
    items = _items(4)
    cat = {it.key: it.category for it in items}
    for seed in range(5):
        for t in generate_trials(items, ways=5, seed=seed, n_trials=40):
            assert len(t.candidates) == 5
            assert cat[t.target] == t.category
            assert [cat[k] for k in t.candidates] == list(t.categories)
            foil_cats = [c for i, c in enumerate(t.categories) if i != t.answer]
            assert t.category not in foil_cats
            assert len(set(foil_cats)) == len(foil_cats)


def test_seeded_sample_and_too_few_categories() -> None:
    items = _items()
    ts = generate_trials(items, ways=3, seed=0, n_trials=5)
    assert len(ts) == 5 and len({t.target for t in ts}) == 5  # without replacement
    assert len(generate_trials(items, ways=3, seed=0, n_trials=50)) == 50  # further passes
    with pytest.raises(AnnotationError, match="at least 7 categories"):
        generate_trials(items, ways=7)
    with pytest.raises(AnnotationError, match="duplicate"):
        generate_trials([Item("a", "x"), Item("a", "y")], ways=2)


def test_answer_positions_vary() -> None:
    ts = generate_trials(_items(5), ways=4, seed=0)
    assert len({t.answer for t in ts}) == 4


def test_trial_credit_ties_and_losses() -> None:
    assert trial_credit(np.array([0.1, 0.9, 0.2]), 1) == 1.0
    assert trial_credit(np.array([0.95, 0.9, 0.2]), 1) == 0.0
    assert trial_credit(np.array([0.5, 0.5, 0.5, 0.1]), 0) == pytest.approx(1 / 3)


def test_scoring_on_hand_made_vectors() -> None:
    """Category c's text is axis c; an image of c points mostly along c. Flip one image to point at
    another axis: exactly the trials where it is the target are lost."""
    dim = len(CATS)
    items = _items(2)
    text = {c: np.eye(dim, dtype=np.float32)[i] for i, c in enumerate(CATS)}
    img = {}
    for it in items:
        v = 0.2 * np.ones(dim) + np.eye(dim)[CATS.index(it.category)]
        img[it.key] = (v / np.linalg.norm(v)).astype(np.float32)
    trials = generate_trials(items, ways=4, seed=3)
    credit, picked = score_trials(trials, img, text)
    assert credit.tolist() == [1.0] * len(trials)
    assert all(t.candidates[p] == t.target for t, p in zip(trials, picked))
    bad = "cup/0.jpg"
    img[bad] = np.eye(dim, dtype=np.float32)[CATS.index("star")]
    credit, _ = score_trials(trials, img, text)
    lost = {t.id for t, c in zip(trials, credit) if c < 1}
    expect = {t.id for t in trials if t.target == bad}
    # the flipped image as a foil of a "star" trial beats the real star image too
    expect |= {t.id for t in trials if t.category == "star" and bad in t.candidates}
    assert lost == expect and lost
    metrics, rows = forced_choice_metrics(trials, credit)
    assert metrics["n"] == len(trials) and metrics["chance_acc"] == pytest.approx(25.0)
    assert metrics["acc"] == pytest.approx(100.0 * (len(trials) - len(lost)) / len(trials))
    assert metrics["ci95_low"] < metrics["acc"] < metrics["ci95_high"] <= 100.0
    by = {r["category"]: r for r in rows}
    assert set(by) == set(CATS) and sum(r["n"] for r in rows) == len(trials)
    assert by["ball"]["acc"] == 100.0 and by["cup"]["acc"] < 100.0


def test_trials_file_round_trip_scores_the_same(tmp_path: Path) -> None:
    items = _items(3)
    trials = generate_trials(items, ways=4, seed=11, n_trials=30)
    path = write_trials(tmp_path / "t.json", trials, ways=4, seed=11, source="x")
    back, header = read_trials(path)
    assert back == trials and header == {"ways": 4, "seed": 11, "source": "x"}
    again = write_trials(tmp_path / "t2.json", back, ways=4, seed=11, source="x")
    assert sha256_file(path) == sha256_file(again)
    rng = np.random.default_rng(0)
    img = {it.key: v / np.linalg.norm(v) for it, v in zip(items, rng.normal(size=(len(items), 8)))}
    text = {c: v / np.linalg.norm(v) for c, v in zip(CATS, rng.normal(size=(len(CATS), 8)))}
    a, pa = score_trials(trials, img, text)
    b, pb = score_trials(back, img, text)
    assert np.array_equal(a, b) and np.array_equal(pa, pb)


def test_trials_file_with_a_target_category_foil_is_refused(tmp_path: Path) -> None:
    bad = [Trial(0, "cup", ("cup/0.jpg", "cup/1.jpg"), ("cup", "cup"), 0)]
    path = write_trials(tmp_path / "bad.json", bad, ways=2, seed=0)
    with pytest.raises(AnnotationError, match="foil of the target's category"):
        read_trials(path)
    (tmp_path / "other.json").write_text(json.dumps({"format": "nope"}), encoding="utf-8")
    with pytest.raises(AnnotationError, match="not a forced-choice trials file"):
        read_trials(tmp_path / "other.json")


def test_demo_labeled_set_from_a_tiny_corpus(tmp_path: Path) -> None:
    from egoindex.demo.corpus import write_demo_corpus
    from egoindex.demo.labeled import write_labeled_set
    from egoindex.media.discover import video_uid

    videos = tmp_path / "videos"
    gt = json.loads(write_demo_corpus(videos, n_videos=2, seconds=6.0, seed=0, fps=2, progress=False)
                    .read_text(encoding="utf-8"))
    out = tmp_path / "labeled"
    labels, n, decoded = write_labeled_set(out, videos, per_scene=2)
    n_scenes = sum(len(v["scenes"]) for v in gt["videos"])
    assert n == decoded == 2 * n_scenes
    with open(labels, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n
    uids = {video_uid(v["path"]) for v in gt["videos"]}
    assert {r["video_uid"] for r in rows} <= uids
    objects = {s["object"] for v in gt["videos"] for s in v["scenes"]}
    assert {r["category"] for r in rows} == objects
    jpgs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert len(jpgs) == n and {j.split("/")[0] for j in jpgs} == objects
    assert all(p.read_bytes()[:2] == b"\xff\xd8" for p in out.rglob("*.jpg"))
    # every row's time lies inside a scene of that object
    scenes = {video_uid(v["path"]): v["scenes"] for v in gt["videos"]}
    for r in rows:
        t = float(r["time"])
        assert any(s["start"] < t < s["end"] and s["object"] == r["category"] for s in scenes[r["video_uid"]])
    before = labels.read_bytes()
    _, n2, decoded2 = write_labeled_set(out, videos, per_scene=2)
    assert (n2, decoded2) == (n, 0) and labels.read_bytes() == before  # idempotent, deterministic
    # --by colour: the same frames (same times), labeled by the scene's colour
    by_colour, n3, _ = write_labeled_set(tmp_path / "colour", videos, per_scene=2, by="colour")
    with open(by_colour, encoding="utf-8", newline="") as f:
        crows = list(csv.DictReader(f))
    assert n3 == n and [(r["video_uid"], r["time"]) for r in crows] == [(r["video_uid"], r["time"]) for r in rows]
    assert {r["category"] for r in crows} == {s["colour"] for v in gt["videos"] for s in v["scenes"]}
    with pytest.raises(ConfigError, match="--by"):
        write_labeled_set(tmp_path / "bad", videos, by="mood")
