"""The moment rule (egoindex/store/moments.py): overlapping and adjacent rows of one video merge,
no two moments of a video ever overlap, k moments come back when k exist, thresholds, raw rows.

Pure: rankings are plain lists of Hits (what a store's search returns), no store is opened."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egoindex.store.moments import (Hit, Moment, Utterance, attach_utterances, collect_moments, merge_ranked,
                                    no_overlap, overlaps)


def hit(uid: str, start: float, end: float, score: float, text: str = "", offset: int = -1) -> Hit:
    return Hit("clips", uid, start, end, score, text or f"{uid}@{start}", offset=offset)


def ranked(hits: list[Hit]) -> list[Hit]:
    return sorted(hits, key=lambda h: -h.score)


def test_overlapping_windows_merge_into_one_moment_with_the_best_rows_text() -> None:
    got = merge_ranked(ranked([hit("a", 18, 22, 0.9, "best"), hit("a", 20, 24, 0.8), hit("a", 16, 20, 0.7)]))
    assert len(got) == 1
    m = got[0]
    assert isinstance(m, Moment) and isinstance(m, Hit)  # usable wherever a Hit is
    assert (m.start, m.end, m.score, m.text) == (16, 24, 0.9, "best")
    assert (m.best_start, m.best_end) == (18, 22)
    assert [r.score for r in m.rows] == [0.9, 0.8, 0.7]
    d = m.as_dict()
    assert d["n_rows"] == 3 and d["start"] == 16 and d["end"] == 24 and d["best_start"] == 18
    assert [r["score"] for r in d["rows"]] == [0.9, 0.8, 0.7]


def test_adjacent_windows_merge_and_a_gap_keeps_them_apart() -> None:
    assert len(merge_ranked([hit("a", 0, 4, 0.9), hit("a", 4, 8, 0.8)])) == 1  # touching
    apart = merge_ranked([hit("a", 0, 4, 0.9), hit("a", 4.5, 8, 0.8)])
    assert [(m.start, m.end) for m in apart] == [(0, 4), (4.5, 8)]
    assert len(merge_ranked([hit("a", 0, 4, 0.9), hit("a", 4.5, 8, 0.8)], gap=0.5)) == 1


def test_frames_closer_than_the_gap_merge() -> None:
    frames = [Hit("frames", "a", t, t, 1 - t / 100, "") for t in (3.0, 3.5, 4.0, 6.0)]
    got = merge_ranked(frames, gap=0.5)  # one frame interval at 2 fps
    assert [(m.start, m.end, len(m.rows)) for m in got] == [(3.0, 4.0, 3), (6.0, 6.0, 1)]
    assert len(merge_ranked(frames, gap=0.0)) == 4


def test_other_videos_never_merge() -> None:
    got = merge_ranked([hit("a", 0, 4, 0.9), hit("b", 2, 6, 0.8), hit("a", 2, 6, 0.7)])
    assert [(m.video_uid, m.start, m.end) for m in got] == [("a", 0, 6), ("b", 2, 6)]


def test_a_bridging_row_merges_two_moments() -> None:
    got = merge_ranked([hit("a", 0, 4, 0.9), hit("a", 8, 12, 0.8), hit("a", 3, 9, 0.1)])
    assert [(m.start, m.end, m.score, len(m.rows)) for m in got] == [(0, 12, 0.9, 3)]


def test_max_span_stops_a_chain_of_windows_from_covering_the_video() -> None:
    chain = ranked([hit("a", 2 * i, 2 * i + 4, 1 - abs(i - 7) / 10) for i in range(14)])  # peak at 14-18
    assert [(m.start, m.end) for m in merge_ranked(chain)] == [(0, 30)]
    got = merge_ranked(chain, gap=0, max_span=8)
    assert no_overlap(got) and all(m.end - m.start <= 8 for m in got)
    assert (got[0].start, got[0].end, got[0].best_start) == (12, 20, 14)  # the peak and its two neighbours
    assert [(m.start, m.end) for m in got] == [(12, 20), (2, 10), (22, 30)]  # 10-14 ... would stretch it: left out
    assert len(merge_ranked(chain, 2, max_span=8)) == 2
    one = merge_ranked([hit("a", 0, 20, 0.9)], max_span=8)  # a single long row is still a moment
    assert [(m.start, m.end) for m in one] == [(0, 20)]
    with pytest.raises(ValueError):
        merge_ranked(chain, max_span=0)


def test_k_moments_are_the_shortest_prefix_that_forms_k() -> None:
    rows = [hit("a", 0, 4, 0.9), hit("a", 2, 6, 0.8), hit("b", 0, 4, 0.7), hit("a", 4, 8, 0.6), hit("c", 0, 4, 0.5)]
    got = merge_ranked(rows, 2)
    # the row (a, 4-8) ranks below the 2nd moment's best row: not merged in
    assert [(m.video_uid, m.start, m.end) for m in got] == [("a", 0, 6), ("b", 0, 4)]
    assert len(merge_ranked(rows, 3)) == 3
    assert len(merge_ranked(rows, 10)) == 3  # only 3 exist


def test_threshold_and_raw_rows_through_collect() -> None:
    table = ranked([hit("a", 2 * i, 2 * i + 4, 1 - i / 100) for i in range(14)]
                   + [hit("b", 2 * i, 2 * i + 4, 0.5 - i / 100) for i in range(14)])
    asked: list[int] = []

    def fetch(n: int) -> list[Hit]:
        asked.append(n)
        return table[:n]

    # every window of a video overlaps the next: one moment per video, however many rows that takes
    got = collect_moments(fetch, 5, first=3)
    assert [(m.video_uid, m.start, m.end) for m in got] == [("a", 0, 30), ("b", 0, 30)]
    assert asked == [5, 20, 80]  # never fewer than k; grew until the candidates ran out
    asked.clear()
    got = collect_moments(fetch, 5, first=3, min_score=0.6)
    assert [(m.video_uid, len(m.rows)) for m in got] == [("a", 14)] and min(r.score for r in got[0].rows) >= 0.6
    assert asked == [5, 20]  # rows below the threshold ran out the candidates
    asked.clear()
    assert len(collect_moments(fetch, 1, first=3)) == 1 and asked == [3]
    with pytest.raises(ValueError):
        collect_moments(fetch, 0, first=3)
    with pytest.raises(ValueError):
        merge_ranked(table, gap=-1)


def test_utterances_that_overlap_a_moment_are_attached() -> None:
    speech = {"a": [Utterance("u1", 0.0, 2.0, "hello"), Utterance("u2", 5.0, 7.0, "spoon"),
                    Utterance("u3", 20.0, 22.0, "later")]}
    got = merge_ranked([hit("a", 4, 8, 0.9), hit("b", 0, 4, 0.5)])
    attach_utterances(got, lambda uid: speech.get(uid, []))
    assert [u.utterance_id for u in got[0].utterances] == ["u2"] and got[1].utterances == []
    assert got[0].as_dict()["utterances"] == [{"utterance_id": "u2", "start": 5.0, "end": 7.0, "text": "spoon"}]


# ---- properties ----------------------------------------------------------------------------------

windows = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 40), st.integers(0, 8),
                             st.floats(-1, 1, allow_nan=False)), max_size=60)


def as_ranking(rows: list[tuple[str, int, int, float]], step: float = 0.5) -> list[Hit]:
    return ranked([hit(u, s * step, (s + n) * step, sc, offset=i) for i, (u, s, n, sc) in enumerate(rows)])


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(rows=windows, k=st.integers(1, 30), gap=st.sampled_from([0.0, 0.5, 2.0]),
       max_span=st.sampled_from([None, 2.0, 8.0]))
def test_no_two_moments_of_a_video_overlap(rows: list[tuple[str, int, int, float]], k: int, gap: float,
                                           max_span: float | None) -> None:
    hits = as_ranking(rows)
    got = merge_ranked(hits, k, gap=gap, max_span=max_span)
    assert no_overlap(got, gap)
    if max_span is not None:  # bounded, unless one row alone is longer
        assert all(m.end - m.start <= max_span + 1e-6 or len(m.rows) == 1 for m in got)
    assert len(got) <= k
    assert [m.score for m in got] == sorted((m.score for m in got), reverse=True)
    used = [r for m in got for r in m.rows]
    assert len({r.offset for r in used}) == len(used)  # each row in one moment at most
    for m in got:  # a moment spans exactly its rows, and its score and text are its best row's
        assert m.start == min(r.start for r in m.rows) and m.end == max(r.end for r in m.rows)
        assert m.score == max(r.score for r in m.rows) and m.text == m.rows[0].text
        assert all(r.video_uid == m.video_uid for r in m.rows)
    # nothing ranked above a merged row is lost: it is in a moment, or it touches one of its video
    last = max((hits.index(r) for r in used), default=-1)
    ids = {r.offset for r in used}
    for h in hits[:last]:
        assert h.offset in ids or any(m.video_uid == h.video_uid and overlaps(m.start, m.end, h.start, h.end, gap)
                                      for m in got), h
    if max_span is None:  # unbounded: the merged rows are exactly a prefix of the ranking
        assert sorted(ids) == sorted(h.offset for h in hits[:len(used)])


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(rows=windows, k=st.integers(1, 30), first=st.integers(1, 10), max_span=st.sampled_from([None, 2.0, 8.0]))
def test_exactly_k_moments_when_k_exist(rows: list[tuple[str, int, int, float]], k: int, first: int,
                                        max_span: float | None) -> None:
    hits = as_ranking(rows)
    # k "exist" when some prefix of the ranking forms k moments; else all rows merged come back
    exist = max((len(merge_ranked(hits[:n], max_span=max_span)) for n in range(len(hits) + 1)), default=0)
    got = collect_moments(lambda n: hits[:n], k, first=first, max_span=max_span)
    assert len(got) == (k if exist >= k else len(merge_ranked(hits, max_span=max_span)))
    assert no_overlap(got)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(rows=windows, threshold=st.floats(-1, 1, allow_nan=False))
def test_min_score_keeps_only_rows_at_or_above_it(rows: list[tuple[str, int, int, float]], threshold: float) -> None:
    hits = as_ranking(rows)
    got = collect_moments(lambda n: hits[:n], 1000, first=2, min_score=threshold)
    assert all(r.score >= threshold for m in got for r in m.rows)
    assert sum(len(m.rows) for m in got) == sum(h.score >= threshold for h in hits)  # all of them, merged


def test_overlaps_counts_touching_and_gap() -> None:
    assert overlaps(0, 4, 4, 8) and not overlaps(0, 4, 4.1, 8) and overlaps(0, 4, 4.1, 8, gap=0.1)
    assert no_overlap([hit("a", 0, 4, 1), hit("a", 4.5, 6, 1), hit("b", 0, 4, 1)])
    assert not no_overlap([hit("a", 0, 4, 1), hit("a", 4, 6, 1)])
