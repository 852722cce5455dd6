"""Which frames a sampler must decode: the pure planning half of :mod:`egoindex.media.frames`.

Why plan from packets: the demuxer gives every packet's presentation time and keyframe flag
before anything is decoded, and those alone say which frames a sample will show. Frames that no
sample shows need not be decoded when nothing refers to them (``skip_frame = "NONREF"``), and
in fast mode the tail of a group of pictures after its last chosen frame need not be decoded at
all. These functions take times in seconds (relative to the stream start, computed by the
caller exactly as the decoded frames' times are) and return decisions; they touch no decoder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: ``egoindex ingest --sampling``: ``exact`` stores the frame on screen at each sample time,
#: ``fast`` a frame within :data:`FAST_TOLERANCE_S` of it (:func:`fast_choice`), decoding far less.
#: Here rather than in ``frames`` so that configs can name them without importing PyAV.
SAMPLING_MODES = ("exact", "fast")
FAST_TOLERANCE_S = 0.5

#: slack on time comparisons: the sampling rule compares with 1e-9, the planner is generous by
#: more, so rounding can only make it decode a frame too many, never one too few
SLACK = 1e-6


def shown_by_a_sample(t: float, next_t: float, fps: float) -> bool:
    """Whether the frame at ``t`` is on screen at some sample time ``k / fps`` (``k >= 0``),
    i.e. ``t <= k / fps < next_t``, where ``next_t`` is the next frame's time (``inf`` when
    unknown). An overestimated ``next_t`` only ever answers True more often: the exact sampler
    then decodes a frame it did not need, never skips one it needs."""
    k = max(0, math.ceil((t - SLACK) * fps))
    return k / fps < next_t + SLACK


def fast_choice(target: float, times: Sequence[float | None], key_t: float | None, key_index: int | None,
                tolerance: float) -> int | None:
    """The fast-mode frame for sample time ``target`` within one group of pictures, as an index
    into ``times`` (the group's packets in decode order; None where a packet has no time), or
    None when the frame lies in a later group.

    The rule (docs/formats.md, "Frame sampling"): the group's keyframe (at ``key_t``, index
    ``key_index``) when it is no more than ``tolerance`` before ``target`` (or after it: a target
    before the first keyframe); otherwise the first frame in presentation order at or after
    ``target - tolerance``. Leading pictures of an open GOP (times before ``key_t``) are never
    chosen: they refer to the previous group, which fast mode may not have decoded."""
    lo = target - tolerance
    if key_t is not None and key_t >= lo - 1e-9 and key_index is not None:
        return key_index
    best: int | None = None
    for i, t in enumerate(times):
        if t is None or t < lo - 1e-9 or (key_t is not None and t < key_t - 1e-9):
            continue
        if best is None or t < times[best]:  # type: ignore[operator]
            best = i
    return best


def last_frame_interval(times: Sequence[float], default: float) -> float:
    """The display time of the last frame: the gap between the last two distinct times (the
    exact sampler's rule), ``default`` (1 / the nominal frame rate) with fewer than two."""
    distinct = sorted(set(times))
    return distinct[-1] - distinct[-2] if len(distinct) >= 2 else default
