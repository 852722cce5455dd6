"""Pairing sampled frames with utterances.

Rule: a frame at time t takes the kept utterance whose [start, end] contains t; if none does,
the utterance whose nearer edge is closest to t, provided that gap is at most ``max_gap``
seconds (default 1.0 s: speech about a scene usually starts or ends within a second of what
the camera shows); otherwise the frame's caption is empty. Ties prefer the earlier utterance.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from egoindex.media.speech import Utterance

DEFAULT_MAX_GAP = 1.0


@dataclass(frozen=True)
class Pair:
    utterance: Utterance
    match: str  # "inside" or "nearest"
    gap: float  # 0 when inside


def pair_frames(times: Sequence[float], utterances: Sequence[Utterance],
                max_gap: float = DEFAULT_MAX_GAP) -> list[Pair | None]:
    """One Pair (or None) per frame time; ``utterances`` may be unsorted and include dropped ones.

    Among several utterances containing t, the one that started last wins (the most recent
    speech). O(log n) per frame via a prefix maximum of end times.
    """
    kept = sorted((u for u in utterances if u.kept), key=lambda u: (u.start, u.end))
    starts = [u.start for u in kept]
    longest: list[int] = []  # longest[j]: index of the max end among kept[: j + 1]
    for j, u in enumerate(kept):
        longest.append(j if not longest or u.end > kept[longest[-1]].end else longest[-1])
    out: list[Pair | None] = []
    for t in times:
        i = bisect.bisect_right(starts, t)  # kept[:i] start at or before t
        cands: list[tuple[float, int]] = []  # (gap, index)
        if i > 0:
            b = longest[i - 1]
            if kept[b].end >= t:
                j = next(j for j in range(i - 1, -1, -1) if kept[j].end >= t)
                out.append(Pair(kept[j], "inside", 0.0))
                continue
            cands.append((t - kept[b].end, b))
        if i < len(kept):
            cands.append((kept[i].start - t, i))
        gap, j = min(cands, default=(float("inf"), -1))
        out.append(Pair(kept[j], "nearest", round(gap, 3)) if gap <= max_gap else None)
    return out
