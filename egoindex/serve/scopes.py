"""A user's scope (which videos and rows of a store they may see) and the one rule that ANDs it into
a request's filters.

Why scopes compile to :class:`~egoindex.store.Filters`: the store already evaluates ``Filters`` before
ranking (quoted SQL, the one door for network filters), so a scope ANDed into the request's own
filters can never widen a result, and no new query path has to be trusted. :func:`conjoin` is that AND,
in one place: the server never combines a scope with a request any other way.

Two kinds of limit live in a scope:

* video-level (``video_uids``, ``split``, ``child_ids``, the age range): a video is in or out as a
  whole, so its rows, thumbnails, transcript and file are served or not;
* row-level (``speakers``): only the rows (utterances, frames, clips) of those speakers. A video file
  cannot be cut by speaker, so a speaker-limited user gets rows, transcript lines and thumbnails of
  in-scope moments, never the whole source video (see :mod:`egoindex.serve.gate`).

This module imports no web framework: ``egoindex users`` uses it without loading FastAPI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from egoindex.errors import AccessError, FilterError
from egoindex.store.filters import Filters

#: The JSON keys of a scope in the users file (and of ``GET /api/session``'s ``scope``).
SCOPE_KEYS = ("all_videos", "video_uids", "child_ids", "split", "speakers", "min_age_days", "max_age_days")


def _names(kind: str, values: Iterable[Any]) -> tuple[str, ...]:
    out = []
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise AccessError(f"a scope's {kind} must be non-empty strings, got {v!r}")
        out.append(v.strip())
    return tuple(dict.fromkeys(out))


def _age(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AccessError(f"a scope's {name} must be a whole number of days >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class Scope:
    """What one user may see. ``all_videos`` must be said explicitly: a scope that limits nothing is
    refused unless it is, so a forgotten flag never opens every family's videos."""

    all_videos: bool = False
    video_uids: tuple[str, ...] = ()
    child_ids: tuple[str, ...] = ()
    split: str | None = None
    speakers: tuple[str, ...] = ()
    min_age_days: int | None = None
    max_age_days: int | None = None

    @classmethod
    def build(cls, *, all_videos: bool = False, video_uids: Iterable[str] = (), child_ids: Iterable[str] = (),
              split: str | None = None, speakers: Iterable[str] = (), min_age_days: int | None = None,
              max_age_days: int | None = None) -> Scope:
        """A checked scope: non-empty names, a non-empty age range, quotable values, and either
        ``all_videos`` or at least one limit (never both)."""
        scope = cls(bool(all_videos), _names("video uids", video_uids), _names("child ids", child_ids),
                    (split.strip() or None) if isinstance(split, str) else split, _names("speakers", speakers),
                    _age("min_age_days", min_age_days), _age("max_age_days", max_age_days))
        if scope.split is not None and not isinstance(scope.split, str):
            raise AccessError(f"a scope's split must be a string, got {split!r}")
        if scope.all_videos and scope.limits():
            raise AccessError("a scope is either all videos or limited (--video/--child/--split/--speaker/--age-*), "
                              "not both")
        if not scope.all_videos and not scope.limits():
            raise AccessError("give the user a scope (--video, --child, --split, --speaker, --age-min, --age-max) "
                              "or say --all-videos explicitly")
        try:
            scope.filters().sql("clips")  # control characters, an empty age range
        except FilterError as e:
            raise AccessError(f"invalid scope: {e}") from None
        return scope

    def limits(self) -> bool:
        """Whether the scope limits anything (False: every video of the store)."""
        return bool(self.video_uids or self.child_ids or self.split or self.speakers
                    or self.min_age_days is not None or self.max_age_days is not None)

    @property
    def row_limited(self) -> bool:
        """Limited below the video (by speaker): whole files are out of reach."""
        return bool(self.speakers)

    def filters(self) -> Filters:
        """Every limit as store filters (rows of ``frames``, ``clips``, ``utterances``)."""
        return Filters(self.video_uids, self.split, speakers=self.speakers, child_ids=self.child_ids,
                       min_age_days=self.min_age_days, max_age_days=self.max_age_days)

    def video_filters(self) -> Filters:
        """The video-level limits only: what the ``videos`` table can answer."""
        return Filters(self.video_uids, self.split, child_ids=self.child_ids, min_age_days=self.min_age_days,
                       max_age_days=self.max_age_days)

    def as_dict(self) -> dict[str, Any]:
        return {"all_videos": self.all_videos, "video_uids": list(self.video_uids), "child_ids": list(self.child_ids),
                "split": self.split, "speakers": list(self.speakers), "min_age_days": self.min_age_days,
                "max_age_days": self.max_age_days}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scope:
        if not isinstance(d, Mapping):
            raise AccessError(f"a scope must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - set(SCOPE_KEYS))
        if unknown:
            raise AccessError(f"unknown scope field(s) {', '.join(unknown)} (known: {', '.join(SCOPE_KEYS)})")
        lists = {k: d.get(k) or [] for k in ("video_uids", "child_ids", "speakers")}
        for k, v in lists.items():
            if not isinstance(v, list):
                raise AccessError(f"a scope's {k} must be a list, got {v!r}")
        return cls.build(all_videos=d.get("all_videos") is True, split=d.get("split"),
                         min_age_days=d.get("min_age_days"), max_age_days=d.get("max_age_days"), **lists)

    def describe(self) -> str:
        """One line for people: ``all videos`` or ``child S, A; split val; speakers FEM``."""
        if self.all_videos:
            return "all videos"
        parts = []
        if self.video_uids:
            parts.append(f"{len(self.video_uids)} video(s)")
        if self.child_ids:
            parts.append("child " + ", ".join(self.child_ids))
        if self.split:
            parts.append(f"split {self.split}")
        if self.speakers:
            parts.append("speakers " + ", ".join(self.speakers))
        if self.min_age_days is not None or self.max_age_days is not None:
            lo = "" if self.min_age_days is None else str(self.min_age_days)
            hi = "" if self.max_age_days is None else str(self.max_age_days)
            parts.append(f"age {lo}-{hi} days")
        return "; ".join(parts)


def _both(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...] | None:
    """The values allowed by two IN-lists (``()`` allows anything); None when none is."""
    if not a:
        return b
    if not b:
        return a
    keep = set(b)
    return tuple(v for v in a if v in keep) or None


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def conjoin(a: Filters, b: Filters) -> Filters | None:
    """The rows matching both ``a`` and ``b`` as one :class:`Filters`; None when no row can match both.

    Every field of ``Filters`` is a conjunction of column conditions, so the AND is field by field:
    IN-lists intersect (an empty intersection matches nothing: None, because ``()`` means "any"),
    a split must agree, the time and age bounds take the tighter side (``end >= max(starts)`` and
    ``start <= min(ends)`` is exactly both overlap conditions), raw ``where`` clauses and excluded spans
    are both kept. An age range that becomes empty matches nothing (None; ``Filters.sql`` would
    refuse it)."""
    parts: dict[str, Any] = {}
    for name in ("video_uids", "speakers", "child_ids"):
        got = _both(getattr(a, name), getattr(b, name))
        if got is None:
            return None
        parts[name] = got
    if a.split and b.split and a.split != b.split:
        return None
    lo_age, hi_age = _max(a.min_age_days, b.min_age_days), _min(a.max_age_days, b.max_age_days)
    if lo_age is not None and hi_age is not None and lo_age > hi_age:
        return None
    wheres = [w for w in (a.where, b.where) if w]
    return Filters(video_uids=parts["video_uids"], split=a.split or b.split or None, start=_max(a.start, b.start),
                   end=_min(a.end, b.end), where=" AND ".join(f"({w})" for w in wheres) if wheres else None,
                   exclude=a.exclude + b.exclude, speakers=parts["speakers"], child_ids=parts["child_ids"],
                   min_age_days=None if lo_age is None else int(lo_age),
                   max_age_days=None if hi_age is None else int(hi_age))
