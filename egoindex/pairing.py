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

from egoindex.speech import Utterance

DEFAULT_MAX_GAP = 1.0


@dataclass(frozen=True)
class Pair:
    utterance: Utterance
    match: str  # "inside" or "nearest"
    gap: float  # 0 when inside


def pair_frames(times: Sequence[float], utterances: Sequence[Utterance], max_gap: float = DEFAULT_MAX_GAP) -> list[Pair | None]:
    """One Pair (or None) per frame time; ``utterances`` may be unsorted and include dropped ones."""
    kept = sorted((u for u in utterances if u.kept), key=lambda u: (u.start, u.end))
    starts = [u.start for u in kept]
    out: list[Pair | None] = []
    for t in times:
        i = bisect.bisect_right(starts, t)  # kept[:i] start at or before t
        best: Pair | None = None
        # Containing utterances start before t; scan back over the few that might still run.
        for j in range(i - 1, max(-1, i - 8), -1):
            u = kept[j]
            if u.start <= t <= u.end:
                best = Pair(u, "inside", 0.0)
                break
        if best is None:
            cands = []
            if i > 0:
                prev = max(kept[:i][-8:], key=lambda u: u.end)
                cands.append((t - prev.end, prev.start, prev))
            if i < len(kept):
                cands.append((kept[i].start - t, kept[i].start, kept[i]))
            cands = [c for c in cands if 0 <= c[0] <= max_gap]
            if cands:
                gap, _, u = min(cands, key=lambda c: (c[0], c[1]))
                best = Pair(u, "nearest", round(gap, 3))
        out.append(best)
    return out
