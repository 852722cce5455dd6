"""Utterance-frame alignment (``egoindex bench alignment``), BabyView style: is what is said close
to what is seen while it is said, more than to what is seen elsewhere?

For one utterance with text vector ``u`` (L2-normalised) and the frames of its own video inside
``[start, end]`` (the *real window*; when none lies inside, the one nearest frame within
``nearest_s`` of the window, else the utterance is skipped with a reason), the real scores are the
max and the mean cosine of ``u`` against those ``n`` frames. Two baselines use windows of the
**same** ``n`` frames (``n`` consecutive frames of one video), so the max over more frames is not
mistaken for alignment:

* *across video*: a random window of another video (never the utterance's own video);
* *within video*: a random window of the same video whose frames and time span lie entirely
  outside the real window (never overlapping it).

Each baseline is drawn ``baselines`` times per utterance and averaged; the gap is real minus
baseline, per utterance, for the max and the mean variants. A baseline that cannot be drawn (no
other video has ``n`` frames; the video has no ``n`` frames outside the window) is NaN for that
utterance and left out of that baseline's summary. The overall gap is the mean over utterances
with a percentile bootstrap 95 % interval (resampling utterances), seeded.

Determinism: utterance ``i`` draws from ``default_rng([seed, i])``, so a result depends only on the
seed and the order of the utterances, and one utterance's draws do not depend on the others'.

Pure numpy: no store, no model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BASELINES",
    "LENGTH_BINS",
    "VARIANTS",
    "AlignmentUtterance",
    "UtteranceAlignment",
    "VideoFrames",
    "across_video_window",
    "align_utterances",
    "bootstrap_mean_ci",
    "gap_summary",
    "grouped_summaries",
    "length_bin",
    "window_frames",
    "window_sims",
    "within_video_window",
    "word_count",
]

#: Utterance length bins in words: (label, min, max or None).
LENGTH_BINS: tuple[tuple[str, int, int | None], ...] = (("1-2", 1, 2), ("3-5", 3, 5), ("6+", 6, None))
#: The two similarity variants and the two baselines (report keys ``gap_{variant}_{baseline}``).
VARIANTS = ("max", "mean")
BASELINES = ("across", "within")

#: Why an utterance was skipped.
SKIP_NO_FRAMES = "no frames of its video in the store"
SKIP_NO_NEAR_FRAME = "no frame inside the window or within the nearest-frame tolerance"


@dataclass(frozen=True)
class VideoFrames:
    """The frames of one video: times (seconds, ascending) and L2-normalised vectors [N, D]."""

    times: np.ndarray
    vectors: np.ndarray

    @staticmethod
    def of(times: Sequence[float] | np.ndarray, vectors: np.ndarray) -> VideoFrames:
        """Sorted by time (a store's table order need not be)."""
        t = np.asarray(times, dtype=np.float64)
        order = np.argsort(t, kind="stable")
        return VideoFrames(t[order], np.asarray(vectors, dtype=np.float32)[order])


@dataclass(frozen=True)
class AlignmentUtterance:
    """One utterance: where it is and its text vector (L2-normalised)."""

    key: str
    video_uid: str
    start: float
    end: float
    vector: np.ndarray
    text: str = ""


@dataclass
class UtteranceAlignment:
    """The result for one utterance: real scores, baseline means (NaN when not drawable) and gaps;
    or ``skipped`` with the reason."""

    utterance: AlignmentUtterance
    n_frames: int = 0
    nearest: bool = False
    skipped: str | None = None
    real: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)  # "{variant}_{baseline}"
    gap: dict[str, float] = field(default_factory=dict)  # "{variant}_{baseline}"


def word_count(text: str) -> int:
    return len(str(text).split())


def length_bin(text: str) -> str | None:
    """The :data:`LENGTH_BINS` label of ``text`` by word count (None for no words)."""
    n = word_count(text)
    for label, lo, hi in LENGTH_BINS:
        if n >= lo and (hi is None or n <= hi):
            return label
    return None


def window_frames(times: np.ndarray, start: float, end: float, nearest_s: float = 1.0) -> tuple[np.ndarray, bool]:
    """Indices of the frames with ``start <= t <= end`` and False; when there are none, the one
    frame nearest to the window if it is within ``nearest_s`` seconds of it and True; else an empty
    array and True."""
    t = np.asarray(times, dtype=np.float64)
    inside = np.flatnonzero((t >= start) & (t <= end))
    if inside.size or t.size == 0:
        return inside, False
    dist = np.maximum(start - t, 0.0) + np.maximum(t - end, 0.0)
    j = int(np.argmin(dist))
    return (np.array([j]) if dist[j] <= nearest_s else np.array([], dtype=np.int64)), True


def window_sims(text_vec: np.ndarray, frame_vecs: np.ndarray) -> tuple[float, float]:
    """(max, mean) cosine of one normalised text vector against normalised frame vectors."""
    s = np.asarray(frame_vecs, dtype=np.float32) @ np.asarray(text_vec, dtype=np.float32)
    return float(s.max()), float(s.mean())


def across_video_window(rng: np.random.Generator, n: int, frames: Mapping[str, VideoFrames],
                        own_video: str) -> tuple[str, np.ndarray] | None:
    """``n`` consecutive frames of a random video other than ``own_video`` that has at least ``n``
    (video uniform, then start uniform); None when no other video has ``n`` frames."""
    candidates = sorted(v for v, f in frames.items() if v != own_video and len(f.times) >= n)
    if not candidates:
        return None
    video = candidates[int(rng.integers(len(candidates)))]
    s = int(rng.integers(len(frames[video].times) - n + 1))
    return video, np.arange(s, s + n)


def within_video_window(rng: np.random.Generator, n: int, times: np.ndarray, own: np.ndarray, start: float,
                        end: float) -> np.ndarray | None:
    """``n`` consecutive frames of the same video (``times``) whose time span lies entirely before
    or after the real window: the span of ``[start, end]`` and of the frames ``own`` (the nearest
    frame may lie outside ``[start, end]``). Start uniform over such windows; None when there is none."""
    t = np.asarray(times, dtype=np.float64)
    if n < 1 or t.size < n:
        return None
    own_t = t[np.asarray(own, dtype=np.int64)] if len(own) else np.array([], np.float64)
    lo = min(float(start), float(own_t.min())) if own_t.size else float(start)
    hi = max(float(end), float(own_t.max())) if own_t.size else float(end)
    first, last = t[: t.size - n + 1], t[n - 1:]
    ok = np.flatnonzero((last < lo) | (first > hi))
    if ok.size == 0:
        return None
    s = int(ok[int(rng.integers(ok.size))])
    return np.arange(s, s + n)


def _mean_of_draws(draw: Callable[[], tuple[float, float] | None], k: int) -> tuple[float, float]:
    got = [d for d in (draw() for _ in range(k)) if d is not None]
    if not got:
        return float("nan"), float("nan")
    a = np.asarray(got, dtype=np.float64)
    return float(a[:, 0].mean()), float(a[:, 1].mean())


def align_utterances(utterances: Sequence[AlignmentUtterance], frames: Mapping[str, VideoFrames], *,
                     baselines: int = 10, seed: int = 0, nearest_s: float = 1.0) -> list[UtteranceAlignment]:
    """Real scores, baselines and gaps of every utterance (see the module docstring); one result
    per utterance, in order, skipped ones included."""
    if baselines < 1:
        raise ValueError(f"baselines must be >= 1, got {baselines}")
    out: list[UtteranceAlignment] = []
    for i, u in enumerate(utterances):
        res = UtteranceAlignment(u)
        out.append(res)
        vf = frames.get(u.video_uid)
        if vf is None or len(vf.times) == 0:
            res.skipped = SKIP_NO_FRAMES
            continue
        own, res.nearest = window_frames(vf.times, u.start, u.end, nearest_s)
        if own.size == 0:
            res.skipped = SKIP_NO_NEAR_FRAME
            continue
        n = res.n_frames = int(own.size)
        rmax, rmean = window_sims(u.vector, vf.vectors[own])
        res.real = {"max": rmax, "mean": rmean}
        rng = np.random.default_rng([int(seed), i])

        def across() -> tuple[float, float] | None:
            w = across_video_window(rng, n, frames, u.video_uid)
            return None if w is None else window_sims(u.vector, frames[w[0]].vectors[w[1]])

        def within() -> tuple[float, float] | None:
            w = within_video_window(rng, n, vf.times, own, u.start, u.end)
            return None if w is None else window_sims(u.vector, vf.vectors[w])

        for name, draw in (("across", across), ("within", within)):
            bmax, bmean = _mean_of_draws(draw, baselines)
            for variant, b in (("max", bmax), ("mean", bmean)):
                res.baseline[f"{variant}_{name}"] = b
                res.gap[f"{variant}_{name}"] = res.real[variant] - b
    return out


def bootstrap_mean_ci(values: Sequence[float] | np.ndarray, *, n_resamples: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN dropped), resampling values
    with replacement ``n_resamples`` times from ``default_rng(seed)``; (NaN, NaN) when empty."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(int(n_resamples), dtype=np.float64)
    chunk = max(1, 2_000_000 // v.size)
    for s in range(0, int(n_resamples), chunk):
        m = min(chunk, int(n_resamples) - s)
        means[s:s + m] = v[rng.integers(0, v.size, size=(m, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def gap_summary(results: Sequence[UtteranceAlignment], *, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Flat summary over the scored utterances: for each ``{variant}_{baseline}``, the mean real
    and baseline score, the mean gap, its bootstrap 95 % interval and the number of utterances."""
    scored = [r for r in results if r.skipped is None]
    out: dict[str, Any] = {"n": len(scored)}
    for variant in VARIANTS:
        real = np.array([r.real[variant] for r in scored], dtype=np.float64)
        out[f"real_{variant}"] = float(real.mean()) if real.size else float("nan")
        for base in BASELINES:
            key = f"{variant}_{base}"
            gaps = np.array([r.gap[key] for r in scored], dtype=np.float64)
            bvals = np.array([r.baseline[key] for r in scored], dtype=np.float64)
            fin = np.isfinite(gaps)
            lo, hi = bootstrap_mean_ci(gaps, n_resamples=n_resamples, seed=seed)
            out[f"baseline_{key}"] = float(bvals[fin].mean()) if fin.any() else float("nan")
            out[f"gap_{key}"] = float(gaps[fin].mean()) if fin.any() else float("nan")
            out[f"gap_{key}_ci95_low"] = lo
            out[f"gap_{key}_ci95_high"] = hi
            out[f"n_{key}"] = int(fin.sum())
    return out


def grouped_summaries(results: Sequence[UtteranceAlignment], group: Callable[[UtteranceAlignment], Any], *,
                      n_resamples: int = 1000, seed: int = 0,
                      order: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """:func:`gap_summary` per group of the scored utterances (``group`` returns the label; None
    leaves an utterance out), in ``order`` (default: sorted labels), each row headed ``group``."""
    groups: dict[Any, list[UtteranceAlignment]] = {}
    for r in results:
        if r.skipped is None:
            g = group(r)
            if g is not None:
                groups.setdefault(g, []).append(r)
    labels = [g for g in order if g in groups] if order is not None else sorted(groups, key=str)
    return [{"group": g, **gap_summary(groups[g], n_resamples=n_resamples, seed=seed)} for g in labels]
