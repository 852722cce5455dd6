"""``egoindex query`` and ``Store.search(merge=True)`` over the session's demo store: moments, not
overlapping windows (the rule: egoindex/store/moments.py, unit-tested in tests/unit/test_moments.py).

Real store, real model: the CLI in process (typer's runner), its JSON checked against the rows of
the store's own tables (read with LanceDB directly)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lancedb
import pytest
from typer.testing import CliRunner

from egoindex.cli.main import app
from egoindex.store import Filters, Hit, Store
from egoindex.store.moments import Moment, no_overlap

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUERY = "the baby grabs the red ball"
LEVELS = ("clips", "frames", "utterances")


def query(store: Path, *args: str) -> list[dict[str, Any]]:
    r = CliRunner().invoke(app, ["query", str(store), QUERY, "--json", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def as_hits(rows: list[dict[str, Any]]) -> list[Hit]:
    return [Hit(d["level"], d["video_uid"], d["start"], d["end"], d["score"], d["text"]) for d in rows]


def between(rows: list[dict[str, Any]]) -> float:
    """A threshold halfway between two consecutive (rounded) scores of the middle of a ranking,
    so rounding to 5 decimals cannot put a row on the wrong side of it."""
    scores = [d["score"] for d in rows]
    i = next(i for i in range(len(scores) // 2, len(scores) - 1) if scores[i] - scores[i + 1] > 2e-5)
    return (scores[i] + scores[i + 1]) / 2


@pytest.fixture(scope="module")
def store(demo_store: Path) -> Store:
    return Store(demo_store)


@pytest.mark.parametrize("level", LEVELS)
def test_query_json_gives_k_moments_none_overlapping(demo_store: Path, store: Store, level: str) -> None:
    for k in (1, 5, 10):
        got = query(demo_store, "--level", level, "--k", str(k))
        assert len(got) == k, (level, k, [(d["video_uid"][:8], d["start"], d["end"]) for d in got])
        assert no_overlap(as_hits(got), store.default_gap(level)), level
        assert [d["score"] for d in got] == sorted((d["score"] for d in got), reverse=True)
        for d in got:
            assert d["n_rows"] == len(d["rows"]) >= 1 and d["start"] <= d["best_start"] <= d["best_end"] <= d["end"]
            assert d["score"] == max(r["score"] for r in d["rows"])
            assert d["end"] - d["start"] <= 2 * store.meta.clip_seconds + 1e-3 or d["n_rows"] == 1
    # the same from Python
    want = store.search(QUERY, level=level, k=10, merge=True)
    assert all(isinstance(m, Moment) for m in want)
    assert [(m.video_uid, round(m.start, 3), round(m.end, 3)) for m in want] == \
        [(d["video_uid"], d["start"], d["end"]) for d in got]


def test_moments_carry_the_utterances_in_their_span(demo_store: Path, store: Store) -> None:
    rows = lancedb.connect(str(store.layout.lance)).open_table("utterances").to_arrow().to_pylist()
    got = query(demo_store, "--k", "10")
    for d in got:
        inside = sorted((u for u in rows if u["video_uid"] == d["video_uid"]
                         and u["end"] >= d["start"] - 1e-6 and u["start"] <= d["end"] + 1e-6), key=lambda u: u["start"])
        assert [u["utterance_id"] for u in d["utterances"]] == [u["utterance_id"] for u in inside]
        assert [u["text"] for u in d["utterances"]] == [u["text"] for u in inside]
    assert any(d["utterances"] for d in got)


@pytest.mark.parametrize("level", LEVELS)
def test_no_merge_gives_the_raw_rows(demo_store: Path, store: Store, level: str) -> None:
    raw = query(demo_store, "--level", level, "--k", "10", "--no-merge")
    assert raw == [h.as_dict() for h in store.search(QUERY, level=level, k=10)]
    assert len(raw) == 10 and all("rows" not in d for d in raw)
    if level == "clips":  # the windows overlap: the raw rows show one event more than once
        assert not no_overlap(as_hits(query(demo_store, "--k", "30", "--no-merge")))
    cut = between(raw)
    above = query(demo_store, "--level", level, "--k", "10", "--no-merge", "--min-score", str(cut))
    assert above == [d for d in raw if d["score"] >= cut]
    merged = query(demo_store, "--level", level, "--k", "10", "--min-score", str(cut))
    assert merged and all(r["score"] >= cut for d in merged for r in d["rows"])
    assert sum(d["n_rows"] for d in merged) <= len(above)


def test_gap_filters_and_the_table(demo_store: Path, store: Store) -> None:
    uid = sorted(store.videos)[0]
    got = query(demo_store, "--video", uid, "--start", "5", "--end", "20", "--k", "50")
    assert got and all(d["video_uid"] == uid and d["end"] >= 5 and d["start"] <= 20 for d in got)
    assert no_overlap(as_hits(got))
    wide = query(demo_store, "--video", uid, "--k", "50", "--gap", "3")
    assert no_overlap(as_hits(wide), 3.0) and len(wide) <= len(query(demo_store, "--video", uid, "--k", "50"))
    assert store.frame_interval == pytest.approx(0.5, abs=1e-6)  # the demo is ingested at 2 fps
    # consecutive frames are one moment: all 11 frames of 5 ... 10 s (fewer than k moments exist) merge
    span = ("--level", "frames", "--video", uid, "--start", "5", "--end", "10", "--k", "50")
    n = store.count("frames", Filters((uid,), start=5.0, end=10.0))
    frames = query(demo_store, *span)
    assert [(d["start"], d["end"], d["n_rows"]) for d in frames] == [(5.0, 10.0, n)]
    assert len(query(demo_store, *span, "--gap", "0")) == n  # each frame alone
    assert len(query(demo_store, *span, "--max-span", "2")) > 1
    r = CliRunner().invoke(app, ["query", str(demo_store), QUERY, "--k", "3"])
    assert r.exit_code == 0 and "moments of clips" in r.output and "rows" in r.output, r.output
    r = CliRunner().invoke(app, ["query", str(demo_store), QUERY, "--k", "3", "--no-merge"])
    assert r.exit_code == 0 and "rows of clips" in r.output, r.output
    r = CliRunner().invoke(app, ["query", str(demo_store), QUERY, "--gap", "-1"])
    assert r.exit_code != 0
    assert store.search(QUERY, k=3, merge=True, filters=Filters(split="nope")) == []
