"""Utterance-frame alignment on a store (``egoindex bench alignment``), after BabyView's analysis
of child egocentric video: is an utterance's text vector closer to the frames seen while it was
said than to frames of another video, or of the same video at another time, with the same number
of frames? The rules (windows, baselines, gaps, bootstrap) are :mod:`egoindex.metrics.alignment`'s;
this module reads the store and writes the report.

Text side: the stored ``utterances`` vectors (the text tower at build time; no model load). Frame
side: the stored ``frames`` vectors of the same split. The across-video baseline draws from the
other videos of that split, so ``--split val`` never mixes in training videos.

Breakdowns: by utterance length (words) always; by speaker, child and age bin only when the
``utterances`` or ``videos`` table has such a column (:data:`GROUP_COLUMNS`). egoindex's own
schema (:mod:`egoindex.store.schema`) has ``speaker``, ``child_id`` and ``age_days`` on the
utterances (filled by ``ingest --rttm`` / speaker transcripts and ``--participants``; null
otherwise); a store built before they existed lacks them, and then these breakdowns are omitted
and the report says so in ``meta.breakdowns_omitted`` and in a note.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.bench.result import BenchResult, report_meta
from egoindex.bench.store_rows import read_vectors
from egoindex.core.report import new_figure, save_figure, write_report
from egoindex.errors import BenchError
from egoindex.metrics.alignment import (
    BASELINES,
    LENGTH_BINS,
    VARIANTS,
    AlignmentUtterance,
    UtteranceAlignment,
    VideoFrames,
    align_utterances,
    gap_summary,
    grouped_summaries,
    length_bin,
    word_count,
)

__all__ = ["GROUP_COLUMNS", "SPLITS", "alignment_from_store", "age_bin"]

SPLITS = ("val", "train", "all")
#: Breakdown name -> the columns that carry it, first found wins (utterances before videos).
GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "speaker": ("speaker", "speaker_id", "speaker_role"),
    "child": ("child", "child_id", "subject_id", "participant_id"),
    "age": ("age_bin", "age_months", "child_age_months", "age_days"),
}
#: Width of an age bin in months when the age is numeric.
AGE_BIN_MONTHS = 6


def age_bin(column: str, value: Any) -> str | None:
    """An age label: ``age_bin`` as given; months (or days / 30.4375) in 6-month bins ``"6-12 mo"``."""
    if value is None:
        return None
    if column == "age_bin":
        return str(value)
    try:
        months = float(value) / (30.4375 if column.endswith("days") else 1.0)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(months):
        return None
    lo = int(months // AGE_BIN_MONTHS) * AGE_BIN_MONTHS
    return f"{lo}-{lo + AGE_BIN_MONTHS} mo"


def _group_sources(utt_columns: Sequence[str], video_columns: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Breakdown -> (table, column) for the breakdowns the store can give."""
    found: dict[str, tuple[str, str]] = {}
    for name, candidates in GROUP_COLUMNS.items():
        for table, cols in (("utterances", utt_columns), ("videos", video_columns)):
            col = next((c for c in candidates if c in cols), None)
            if col is not None:
                found[name] = (table, col)
                break
    return found


def _plot(results: Sequence[UtteranceAlignment], by_length: Sequence[dict[str, Any]]) -> Any:
    scored = [r for r in results if r.skipped is None]

    def draw(path: Path) -> None:
        fig = new_figure((13.0, 4.0))
        axes = fig.subplots(1, 3)
        for ax, variant in zip(axes[:2], VARIANTS):
            series = {"real": [r.real[variant] for r in scored]}
            for base in BASELINES:
                series[f"{base}-video baseline"] = [r.baseline[f"{variant}_{base}"] for r in scored]
            vals = [np.asarray(v, np.float64) for v in series.values()]
            vals = [v[np.isfinite(v)] for v in vals]
            allv = np.concatenate(vals) if vals else np.array([])
            if allv.size:
                bins = np.linspace(float(allv.min()), float(allv.max()) + 1e-9, 31)
                for (label, _), v in zip(series.items(), vals):
                    if v.size:
                        ax.hist(v, bins=bins, alpha=0.5, label=label)
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "no utterances", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"{variant} cosine over the window")
            ax.set_xlabel("cosine")
            ax.set_ylabel("utterances")
        ax = axes[2]
        width = 0.2
        keys = [f"{v}_{b}" for v in VARIANTS for b in BASELINES]
        for k, key in enumerate(keys):
            xs = np.arange(len(by_length)) + (k - 1.5) * width
            ys = np.array([row[f"gap_{key}"] for row in by_length], np.float64)
            lo = np.array([row[f"gap_{key}_ci95_low"] for row in by_length], np.float64)
            hi = np.array([row[f"gap_{key}_ci95_high"] for row in by_length], np.float64)
            err = np.nan_to_num(np.vstack([ys - lo, hi - ys]), nan=0.0)
            ax.bar(xs, np.nan_to_num(ys), width, yerr=err, capsize=2, label=key.replace("_", " vs "))
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(np.arange(len(by_length)), [f"{row['group']} words" for row in by_length])
        ax.set_title("gap (real - baseline) by length, 95 % CI")
        ax.set_ylabel("cosine gap")
        if by_length:
            ax.legend(fontsize=7)
        save_figure(fig, path)

    return draw


def alignment_from_store(store: Any, out_dir: str | Path, *, split: str = "val", seed: int = 0, baselines: int = 10,
                         n_resamples: int = 1000, nearest_s: float = 1.0,
                         name: str = "alignment") -> BenchResult:
    """Utterance-frame alignment of the store's ``split`` utterances (see the module docstring);
    writes NAME.json, NAME.md and NAME_similarities.png to ``out_dir``. Stored vectors only."""
    if split not in SPLITS:
        raise BenchError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if baselines < 1:
        raise BenchError(f"--baselines must be >= 1, got {baselines}")
    if n_resamples < 1:
        raise BenchError(f"--bootstrap must be >= 1, got {n_resamples}")
    where = None if split == "all" else f"split = '{split}'"
    utt_columns = list(store.dataset("utterances").schema.names)
    video_rows = store.videos
    video_columns = sorted({c for r in video_rows.values() for c in r})
    sources = _group_sources(utt_columns, video_columns)
    extra = sorted({col for table, col in sources.values() if table == "utterances"})
    urows, uvecs = read_vectors(store, "utterances", ["utterance_id", "video_uid", "start", "end", "text", *extra],
                                where)
    if not urows:
        raise BenchError(f"the store has no {split} utterances" if split != "all" else "the store has no utterances")
    frows, fvecs = read_vectors(store, "frames", ["video_uid", "t"], where)
    by_video: dict[str, list[int]] = {}
    for j, r in enumerate(frows):
        by_video.setdefault(str(r["video_uid"]), []).append(j)
    frames = {v: VideoFrames.of([frows[j]["t"] for j in idx], fvecs[idx]) for v, idx in by_video.items()}

    empty = [r for r in urows if not (r["text"] or "").strip()]
    keep = [i for i, r in enumerate(urows) if (r["text"] or "").strip()]
    order = sorted(keep, key=lambda i: (str(urows[i]["video_uid"]), float(urows[i]["start"]),
                                        float(urows[i]["end"]), str(urows[i]["utterance_id"])))
    utts = [AlignmentUtterance(str(urows[i]["utterance_id"]), str(urows[i]["video_uid"]), float(urows[i]["start"]),
                               float(urows[i]["end"]), uvecs[i], str(urows[i]["text"])) for i in order]
    rows_of = {str(urows[i]["utterance_id"]): urows[i] for i in order}
    results = align_utterances(utts, frames, baselines=baselines, seed=seed, nearest_s=nearest_s)

    def label_of(breakdown: str) -> Callable[[UtteranceAlignment], Any]:
        table, col = sources[breakdown]

        def get(r: UtteranceAlignment) -> Any:
            row = rows_of[r.utterance.key] if table == "utterances" else video_rows.get(r.utterance.video_uid, {})
            value = row.get(col)
            if breakdown == "age":
                return age_bin(col, value)
            return None if value is None or str(value) == "" else str(value)
        return get

    summary = gap_summary(results, n_resamples=n_resamples, seed=seed)
    if summary["n"] == 0:
        raise BenchError(f"none of the {len(utts)} {split} utterances with text has a frame within {nearest_s} s "
                         "of its window")
    by_length = grouped_summaries(results, lambda r: length_bin(r.utterance.text), n_resamples=n_resamples,
                                  seed=seed, order=[b[0] for b in LENGTH_BINS])
    tables: dict[str, list[dict[str, Any]]] = {"by_length": by_length}
    for breakdown in sources:
        tables[f"by_{breakdown}"] = grouped_summaries(results, label_of(breakdown), n_resamples=n_resamples,
                                                      seed=seed)
    omitted = [b for b in GROUP_COLUMNS if b not in sources]

    skipped: dict[str, int] = {}
    for r in results:
        if r.skipped is not None:
            skipped[r.skipped] = skipped.get(r.skipped, 0) + 1
    if empty:
        skipped["empty text"] = len(empty)
    metrics: dict[str, Any] = {"n_utterances": summary["n"],
                               "n_skipped": sum(skipped.values()),
                               "n_nearest_frame": sum(1 for r in results if r.skipped is None and r.nearest),
                               "mean_window_frames": float(np.mean([r.n_frames for r in results
                                                                    if r.skipped is None]))}
    metrics.update({k: v for k, v in summary.items() if k != "n"})
    for row in by_length:
        for variant in VARIANTS:
            for base in BASELINES:
                metrics[f"gap_{variant}_{base}_{row['group']}w"] = row[f"gap_{variant}_{base}"]

    per_utt = []
    for r in results:
        u = r.utterance
        row: dict[str, Any] = {"utterance_id": u.key, "video_uid": u.video_uid, "start": u.start, "end": u.end,
                               "text": u.text, "words": word_count(u.text), "n_frames": r.n_frames,
                               "nearest_frame": r.nearest, "skipped": r.skipped}
        for variant in VARIANTS:
            row[f"real_{variant}"] = r.real.get(variant)
            for base in BASELINES:
                row[f"baseline_{variant}_{base}"] = r.baseline.get(f"{variant}_{base}")
                row[f"gap_{variant}_{base}"] = r.gap.get(f"{variant}_{base}")
        per_utt.append(row)
    tables["skipped"] = [{"reason": k, "n": v} for k, v in skipped.items()]
    tables["utterances"] = per_utt

    meta = report_meta(store, "alignment", split=split, seed=seed, baselines=baselines, n_utterances=summary["n"],
                       n_skipped=metrics["n_skipped"], bootstrap_resamples=n_resamples, nearest_frame_s=nearest_s,
                       texts="stored utterance vectors (non-empty text)",
                       frames=f"stored frame vectors of the same video ({split} split)",
                       baseline_across=f"random window of equal frame count from another {split} video",
                       baseline_within="random window of equal frame count from the same video, not overlapping the "
                                       "utterance's window",
                       ci="percentile bootstrap 95 % over utterances, seeded",
                       breakdowns=[f"{b} ({sources[b][0]}.{sources[b][1]})" for b in sources],
                       breakdowns_omitted=omitted)
    written = write_report(out_dir, name, metrics, meta, tables=tables,
                           plots={"similarities": _plot(results, by_length)})
    notes = []
    if omitted:
        notes.append(f"no {'/'.join(omitted)} column in the utterances or videos table: those breakdowns are omitted")
    if skipped:
        notes.append("skipped: " + ", ".join(f"{n} ({k})" for k, n in skipped.items()))
    for base in BASELINES:
        missing = summary["n"] - summary[f"n_max_{base}"]
        if missing:
            notes.append(f"{missing} utterances have no {base}-video baseline window of their frame count")
    return BenchResult(name, metrics, meta, written, notes)
