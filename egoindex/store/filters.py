"""Structured metadata filters, rendered to the SQL that Lance evaluates before ranking.

Why structured and not raw SQL: filters reach the store from the CLI, from Python and from the
network (``egoindex serve``); building the predicate from typed fields with quoted literals means
nobody can inject SQL. The CLI's ``--where`` is the one raw-SQL door, and it is local only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from egoindex.errors import FilterError

LEVELS = ("clips", "frames", "utterances")


def quote(s: str) -> str:
    """A SQL string literal (single quotes doubled); control characters are refused."""
    if any(ord(c) < 32 for c in s):
        raise FilterError("filter values may not contain control characters")
    return "'" + s.replace("'", "''") + "'"


def in_list(column: str, values: Iterable[str]) -> str:
    """``column IN ('a', 'b', ...)`` with quoted literals: the one way egoindex selects rows by a
    list of names (video uids, a build's unit names). ``column`` is egoindex's own column name,
    never user input; an empty list is refused (``IN ()`` is not SQL)."""
    if not column.isidentifier():
        raise FilterError(f"not a column name: {column!r}")
    vals = [quote(str(v)) for v in values]
    if not vals:
        raise FilterError(f"an empty list of {column} values selects nothing; check for it before asking")
    return f"{column} IN ({', '.join(vals)})"


def _days(name: str, value: int | None) -> int | None:
    """An age bound as a whole number of days (bool and non-integers refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FilterError(f"filter {name} must be a whole number of days >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class Filters:
    """Which rows a search may return. Times are seconds within the video; a row matches a time
    range when it overlaps it (frames: ``start <= t <= end``).

    ``speakers``: rows whose ``speaker`` is one of these (a frame's is its paired utterance's, a
    clip's the one whose utterances cover most of it); ``child_ids``: rows of these children;
    ``min_age_days`` / ``max_age_days``: rows of videos recorded at that age or older / younger
    (inclusive). A row without a speaker, child or age (null) matches none of them."""

    video_uids: tuple[str, ...] = ()
    split: str | None = None
    start: float | None = None
    end: float | None = None
    where: str | None = None  # raw SQL, local callers only (CLI --where / Python API)
    exclude: tuple[tuple[str, float, float], ...] = field(default=())  # (video, start, end) spans to skip
    speakers: tuple[str, ...] = ()
    child_ids: tuple[str, ...] = ()
    min_age_days: int | None = None
    max_age_days: int | None = None

    def is_empty(self) -> bool:
        return not (self.video_uids or self.split or self.start is not None or self.end is not None
                    or self.where or self.exclude or self.speakers or self.child_ids
                    or self.min_age_days is not None or self.max_age_days is not None)

    def columns(self) -> set[str]:
        """The speaker and participant columns these filters read (a store built before they
        existed cannot answer them)."""
        cols = {"speaker"} if self.speakers else set()
        if self.child_ids:
            cols.add("child_id")
        if self.min_age_days is not None or self.max_age_days is not None:
            cols.add("age_days")
        return cols

    def sql(self, level: str) -> str | None:
        parts: list[str] = []
        if self.video_uids:
            parts.append(in_list("video_uid", self.video_uids))
        if self.split:
            parts.append(f"split = {quote(self.split)}")
        if self.speakers:
            parts.append(in_list("speaker", self.speakers))
        if self.child_ids:
            parts.append(in_list("child_id", self.child_ids))
        lo_age, hi_age = _days("min_age_days", self.min_age_days), _days("max_age_days", self.max_age_days)
        if lo_age is not None and hi_age is not None and lo_age > hi_age:
            raise FilterError(f"the age range is empty: min_age_days {lo_age} > max_age_days {hi_age}")
        if lo_age is not None:
            parts.append(f"age_days >= {lo_age}")
        if hi_age is not None:
            parts.append(f"age_days <= {hi_age}")
        lo, hi = ("t", "t") if level == "frames" else ("start", "end")
        for name, value in (("start", self.start), ("end", self.end)):
            if value is not None and not math.isfinite(float(value)):
                raise FilterError(f"filter {name} must be a finite number")
        if self.start is not None:
            parts.append(f"{hi} >= {float(self.start)!r}")
        if self.end is not None:
            parts.append(f"{lo} <= {float(self.end)!r}")
        for uid, s, e in self.exclude:
            parts.append(f"NOT (video_uid = {quote(uid)} AND {hi} >= {float(s)!r} AND {lo} <= {float(e)!r})")
        if self.where:
            parts.append(f"({self.where})")
        return " AND ".join(parts) or None
