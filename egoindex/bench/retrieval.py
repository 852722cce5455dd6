"""Plain text<->clip retrieval on a store's val split (``egoindex bench retrieval``), from the
stored vectors only; R@K and ranks are :mod:`egoindex.metrics.retrieval`'s (its one tie rule).

Text side = the val utterances with non-empty text (their stored text-tower vectors), clip side =
the val clips with non-empty text. A clip is a positive of an utterance when it overlaps the
utterance in time in the same video (the rule by which the build put the utterance's text into the
clip's text), or when it overlaps another utterance whose normalised text (lower case, punctuation
removed) is identical: a repeated sentence cannot tell its occurrences apart, so retrieving any of
them counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.bench.result import BenchResult, report_meta
from egoindex.bench.store_rows import read_vectors, val_text_clips
from egoindex.core.report import write_report
from egoindex.errors import BenchError
from egoindex.metrics import retrieval

__all__ = ["normalise_text", "retrieval_from_store", "retrieval_positives"]

_PUNCT = re.compile(r"[^\w\s]+")


def normalise_text(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed (how repeated sentences are matched)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def retrieval_positives(utts: Sequence[Mapping[str, Any]], clips: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Boolean [utterances x clips]: clip j is a positive of utterance i when they overlap in time
    in the same video, or when clip j overlaps another utterance with the same normalised text
    (see the module docstring)."""
    by_video: dict[str, list[int]] = {}
    for j, c in enumerate(clips):
        by_video.setdefault(str(c["video_uid"]), []).append(j)
    overlap = np.zeros((len(utts), len(clips)), dtype=bool)
    for i, u in enumerate(utts):
        for j in by_video.get(str(u["video_uid"]), ()):
            c = clips[j]
            if float(u["start"]) < float(c["end"]) and float(u["end"]) > float(c["start"]):
                overlap[i, j] = True
    groups: dict[str, list[int]] = {}
    for i, u in enumerate(utts):
        groups.setdefault(normalise_text(str(u["text"])), []).append(i)
    pos = overlap.copy()
    for members in groups.values():
        if len(members) > 1:
            pos[members] = overlap[members].any(axis=0)
    return pos


def retrieval_from_store(store: Any, out_dir: str | Path, *, ks: Iterable[int] = (1, 5, 10),
                         name: str = "retrieval") -> BenchResult:
    """Text->clip and clip->text R@K, median and mean rank on the store's val split (see the
    module docstring for what counts as a positive). Uses only stored vectors (no model load)."""
    clips, cvecs = val_text_clips(store)
    urows, uvecs = read_vectors(store, "utterances", ["video_uid", "start", "end", "text"], "split = 'val'")
    keep = [i for i, r in enumerate(urows) if (r["text"] or "").strip()]
    urows, uvecs = [urows[i] for i in keep], uvecs[keep]
    if not urows:
        raise BenchError("the store has no val utterances with text")
    pos = retrieval_positives(urows, clips)
    sim = uvecs @ cvecs.T
    ks = tuple(int(k) for k in ks)
    t2c = retrieval.retrieval_at_k(sim, pos, ks)
    c2t = retrieval.retrieval_at_k(sim.T, pos.T, ks)
    t2c_ranks = retrieval.best_positive_ranks(sim, pos)
    c2t_ranks = retrieval.best_positive_ranks(sim.T, pos.T)
    metrics: dict[str, Any] = {}
    for prefix, m in (("t2c", t2c), ("c2t", c2t)):
        for k, v in m.items():
            metrics[f"{prefix}_{k}"] = v
    metrics["n_clips"] = len(clips)
    metrics["n_texts"] = len(urows)
    metrics["mean_positives_per_text"] = float(pos.sum(axis=1).mean())
    meta = report_meta(store, "retrieval", split="val", texts="val utterances with text (stored text vectors)",
                       clips="val clips with text (stored clip vectors)",
                       positives="same video and overlapping in time, or overlapping an utterance with the same "
                                 "normalised text")
    worst = np.argsort(-np.nan_to_num(t2c_ranks, nan=-1.0), kind="stable")[:20]
    table = [{"text": urows[i]["text"], "video_uid": urows[i]["video_uid"], "start": urows[i]["start"],
              "rank": t2c_ranks[i]} for i in worst if math.isfinite(t2c_ranks[i])]
    bars = [f"{d} R@{k}" for d in ("t2c", "c2t") for k in ks]
    written = write_report(
        out_dir, name, metrics, meta, tables={"hardest_texts": table},
        plots={"recall": {"kind": "bars", "labels": bars,
                          "values": [metrics[f"{b.split()[0]}_{b.split()[1]}"] for b in bars],
                          "title": "val retrieval recall (%)", "ylabel": "%"},
               "t2c_ranks": {"kind": "rank_histogram", "ranks": t2c_ranks,
                             "title": "text -> clip: rank of first positive"},
               "c2t_ranks": {"kind": "rank_histogram", "ranks": c2t_ranks,
                             "title": "clip -> text: rank of first positive"}})
    return BenchResult(name, metrics, meta, written)
