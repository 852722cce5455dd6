"""Search results: raw rows (:class:`Hit`) and the moments they merge into (:class:`Moment`).

Why moments: clip windows overlap (4 s every 2 s), frames come every 1/fps seconds and speech
segments may overlap, so the top rows of a query name one event of one video two or three times
(``0:18-0:22`` and ``0:20-0:24``). A moment is the union of a video's ranked rows that overlap or
lie within ``gap`` seconds of each other; it carries its span, the best row's score and text and
(filled in by the store) the utterances that fall in it.

The rule, in one place (CLI, Python API and server all use it):

* Rows are taken in rank order (best first). Each row joins every moment of its video that it
  overlaps or touches (``row.start <= m.end + gap`` and ``m.start <= row.end + gap``), merging
  them if it bridges several, or starts a new moment.
* A row that would stretch a moment past ``max_span`` seconds is left out instead (it overlaps a
  moment already shown, so it is not shown again). Why: every clip window overlaps the next, so
  without a bound a video whose windows all rank chains into one moment of the whole video.
* Asked for k moments, the moments are those of the **shortest prefix of the ranking that forms k
  moments**: every row ranked above the k-th moment's best row is merged, none below it. So the k
  moments are exactly the k best-scoring disjoint moments of that prefix, no two of one video
  overlap or touch, and fewer than k come back only when all candidate rows form fewer.
* ``min_score`` drops rows scoring below it before merging.

A ranking ranks more rows than it returns, so :func:`collect_moments` asks a ``fetch(n)`` callback
for more rows (``n`` grows 4x) until k moments are formed or the candidates run out.
Pure Python, no store access: the unit tests drive it with plain lists.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Two times closer than this are the same time (float noise in ``k / fps`` timestamps).
EPS = 1e-6
#: :func:`collect_moments` never asks for more rows than this in one fetch (bounded work per query).
MAX_FETCH = 200_000
#: How much faster than linear the over-fetch grows when a round formed too few moments.
GROWTH = 4


@dataclass
class Hit:
    """One search result row. ``start``/``end`` are seconds in the source video (equal for frames)."""

    level: str
    video_uid: str
    start: float
    end: float
    score: float
    text: str
    source: str = ""
    offset: int = -1
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = {"level": self.level, "video_uid": self.video_uid, "start": round(self.start, 3), "end": round(self.end, 3),
             "score": round(float(self.score), 5), "text": self.text, "source": self.source, "row": self.offset}
        d.update(self.extra)
        return d


@dataclass(frozen=True)
class Utterance:
    """One transcript segment of a video (a row of the store's ``utterances`` table, no vector)."""

    utterance_id: str
    start: float
    end: float
    text: str
    speaker: str | None = None  # who spoke, when the store knows (None: no speaker, or an older store)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"utterance_id": self.utterance_id, "start": round(self.start, 3),
                             "end": round(self.end, 3), "text": self.text}
        if self.speaker is not None:
            d["speaker"] = self.speaker
        return d


@dataclass
class Moment(Hit):
    """Overlapping or adjacent hits of one video as one result: ``start``/``end`` span them all,
    ``score``, ``text``, ``offset`` and ``extra`` are the best row's (so a Moment is usable wherever
    a Hit is), ``best_start``/``best_end`` its window, ``rows`` the merged hits in rank order and
    ``utterances`` the video's speech that overlaps the span (filled in by the store)."""

    best_start: float = 0.0
    best_end: float = 0.0
    rows: list[Hit] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = super().as_dict()
        d.update({"best_start": round(self.best_start, 3), "best_end": round(self.best_end, 3),
                  "n_rows": len(self.rows),
                  "rows": [{"start": round(h.start, 3), "end": round(h.end, 3), "score": round(float(h.score), 5),
                            "row": h.offset} for h in self.rows],
                  "utterances": [u.as_dict() for u in self.utterances]})
        return d


def overlaps(a_start: float, a_end: float, b_start: float, b_end: float, gap: float = 0.0) -> bool:
    """Whether two time spans overlap or lie within ``gap`` seconds of each other (touching counts)."""
    return b_start <= a_end + gap + EPS and a_start <= b_end + gap + EPS


@dataclass
class _Group:
    start: float
    end: float
    rows: list[Hit]


def merge_ranked(hits: Iterable[Hit], k: int | None = None, *, gap: float = 0.0,
                 max_span: float | None = None) -> list[Moment]:
    """The moments of ranked ``hits`` (best first): the shortest prefix forming ``k`` moments, or
    all of them when ``k`` is None or they form fewer; best moment first (ties: video, start).
    ``max_span``: no merge makes a moment longer than this (None: unbounded)."""
    if gap < 0 or not math.isfinite(gap):
        raise ValueError(f"the merge gap must be a finite number of seconds >= 0, not {gap}")
    if max_span is not None and not max_span > 0:
        raise ValueError(f"max_span must be a positive number of seconds, not {max_span}")
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    # per video: disjoint groups sorted by start, more than `gap` apart (so ends are sorted too)
    starts: dict[str, list[float]] = {}
    ends: dict[str, list[float]] = {}
    groups: dict[str, list[_Group]] = {}
    count = 0
    for h in hits:
        s, e = min(h.start, h.end), max(h.start, h.end)
        st, en, gr = (starts.setdefault(h.video_uid, []), ends.setdefault(h.video_uid, []),
                      groups.setdefault(h.video_uid, []))
        lo = bisect.bisect_left(en, s - gap - EPS)  # first group ending at or after s - gap
        hi = bisect.bisect_right(st, e + gap + EPS)  # past the last group starting at or before e + gap
        joined = gr[lo:hi]
        g = _Group(min([s] + [j.start for j in joined]), max([e] + [j.end for j in joined]),
                   [r for j in joined for r in j.rows] + [h])
        if joined and max_span is not None and g.end - g.start > max_span + EPS:
            continue  # overlaps a moment already formed, and would stretch it too far: not shown again
        gr[lo:hi], st[lo:hi], en[lo:hi] = [g], [g.start], [g.end]
        count += 1 - len(joined)
        if k is not None and count >= k:
            break
    out = []
    for gr in groups.values():
        for g in gr:
            rows = sorted(g.rows, key=lambda r: -float(r.score))  # stable: rank order among equal scores
            best = rows[0]
            out.append(Moment(best.level, best.video_uid, g.start, g.end, float(best.score), best.text, best.source,
                              best.offset, dict(best.extra), best_start=best.start, best_end=best.end, rows=rows))
    out.sort(key=lambda m: (-m.score, m.video_uid, m.start))
    return out


def collect_moments(fetch: Callable[[int], Sequence[Hit]], k: int, *, first: int, gap: float = 0.0,
                    max_span: float | None = None, min_score: float | None = None,
                    max_fetch: int = MAX_FETCH) -> list[Moment]:
    """k moments (fewer only when the candidates run out) from a ranking read by ``fetch(n)``,
    which returns the top ``n`` rows (fewer when fewer match). Asks for ``first`` rows, then ``GROWTH``
    times more per round, never more than ``max_fetch``; each round merges its own list afresh,
    so a ranking whose top rows change with n (an approximate index) is still merged consistently."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    n = max(k, min(int(first), max_fetch))
    while True:
        rows = list(fetch(n))
        kept = rows if min_score is None else [h for h in rows if h.score >= min_score]
        moments = merge_ranked(kept, k, gap=gap, max_span=max_span)
        exhausted = (len(rows) < n or n >= max_fetch
                     or (min_score is not None and len(kept) < len(rows)))  # the rest score lower still
        if len(moments) >= k or exhausted:
            return moments
        n = min(max_fetch, n * GROWTH)


def attach_utterances(moments: Iterable[Moment], transcript: Callable[[str], Sequence[Utterance]]) -> None:
    """Give each moment the utterances of its video (``transcript(uid)``, sorted by start) that
    overlap its span, in time order."""
    for m in moments:
        m.utterances = [u for u in transcript(m.video_uid) if overlaps(m.start, m.end, u.start, u.end)]


def no_overlap(moments: Sequence[Hit], gap: float = 0.0) -> bool:
    """Whether no two results of one video overlap or lie within ``gap`` of each other (the
    invariant merged results keep; tests and callers check it with this one rule)."""
    by_video: dict[str, list[Hit]] = {}
    for m in moments:
        by_video.setdefault(m.video_uid, []).append(m)
    for ms in by_video.values():
        ms = sorted(ms, key=lambda m: m.start)
        for a, b in zip(ms, ms[1:]):
            if overlaps(a.start, a.end, b.start, b.end, gap):
                return False
    return True
