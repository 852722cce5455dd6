"""Shared row helpers of the format readers: parsing and checking a row's times, tag lists and text
spacing, and appending one caption (or counting why not).

Why shared: every format counts the same skip reasons (package docstring) for the same faults, and
builds its utterances the same way (``kept=True``, no Whisper scores, ``seg_start/seg_end =
start/end``).
"""

from __future__ import annotations

import math
import re

from egoindex.media.captions.registry import Captions
from egoindex.media.speech import Utterance


def _time(s: str) -> float | None:
    """A finite float, or None."""
    try:
        x = float(s)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


_TAGS = re.compile(r"^\[\s*(-?\d+(\s*,\s*-?\d+)*)?\s*,?\s*\]$")


def parse_tags(s: str | None) -> list[int] | None:
    """``"[192, 115, 12]"`` -> ``[192, 115, 12]``, ``"[]"`` -> ``[]``; anything else -> None.
    A regular expression rather than ``ast.literal_eval``: the file is data, not code, and only
    lists of integers are tags."""
    if s is None:
        return None
    s = s.strip()
    if not _TAGS.match(s):
        return None
    return [int(x) for x in s.strip("[] ,").split(",") if x.strip()]


def _caption(uid: str, uid_seen: dict[str, set[str]], out: Captions, where: str, id_: str, start: float,
             end: float, text: str, fmt: str, speaker: str | None = None, **tags: list[int] | None) -> None:
    """Append one file caption to ``out[uid]`` (or count why not: duplicate id; or, for a uid
    that ``out.keep`` refuses, count it in ``out.ignored``)."""
    if out.keep is not None and not out.keep(uid):
        out.ignored[uid] = out.ignored.get(uid, 0) + 1
        return
    seen = uid_seen.setdefault(uid, set())
    if id_ in seen:
        out.skip(where, "duplicate id")
        return
    seen.add(id_)
    out.setdefault(uid, []).append(Utterance(
        id=id_, start=start, end=end, text=text, no_speech_prob=0.0, avg_logprob=0.0, compression_ratio=0.0,
        seg_start=start, seg_end=end, kept=True, source=fmt, speaker=speaker, **tags))


def _times(out: Captions, where: str, start_s: str | None, end_s: str | None) -> tuple[float, float] | None:
    """Parse and check a row's start and end (counting the reason when they are unusable)."""
    if start_s is None or end_s is None or not start_s.strip() or not end_s.strip():
        out.skip(where, "missing field")
        return None
    start, end = _time(start_s), _time(end_s)
    if start is None or end is None:
        out.skip(where, "bad number")
        return None
    return _span(out, where, start, end)


def _span(out: Captions, where: str, start: float, end: float) -> tuple[float, float] | None:
    """Check a caption's times in seconds (counting the reason when they are unusable)."""
    if start < 0 or end < 0:
        out.skip(where, "negative time")
        return None
    if end < start:
        out.skip(where, "end before start")
        return None
    return start, end


#: Runs of whitespace, collapsed to one space in caption text.
_SPACES = re.compile(r"\s+")
