"""EPIC-Kitchens-100 multi-instance retrieval (``egoindex bench mir``) from three kinds of input;
the metric itself is :func:`egoindex.metrics.mir.mir_metrics`.

* **Matrices**: any model's [videos x sentences] similarity against a relevance matrix.
* **EPIC files**: EPIC's segments embedded from the raw videos (:mod:`egoindex.bench.videos`),
  its sentences with the text tower, scored against EPIC's relevance.
* **Store MIR**: rows are the val clips with non-empty text (their stored vectors), columns the
  same clips' texts (text tower); relevance is EPIC's formula over user-supplied classes
  (:func:`~egoindex.bench.epic_files.read_class_csv`) or :func:`mir.proxy_relevance` over the
  texts' content words.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.bench.epic_files import read_class_csv, read_epic_retrieval_csv, read_epic_sentence_csv
from egoindex.bench.result import BenchResult, report_meta
from egoindex.bench.store_rows import clip_id, val_text_clips
from egoindex.bench.videos import embed_clips_from_videos, epic_video_resolver
from egoindex.core.fsutil import sha256_file
from egoindex.core.report import write_report
from egoindex.errors import BenchError
from egoindex.metrics import mir

__all__ = ["load_sim", "mir_from_epic", "mir_from_matrices", "mir_from_store"]

#: The headline metrics, in the order the report's bar plot shows them.
HEADLINE = ["mAP_v2t", "mAP_t2v", "mAP_avg", "nDCG_v2t", "nDCG_t2v", "nDCG_avg"]


def load_sim(path: Path) -> np.ndarray:
    """A similarity matrix [videos x sentences] from ``.npy`` (never unpickled)."""
    if path.suffix.lower() != ".npy":
        raise BenchError(f"{path}: the similarity matrix must be a .npy file")
    try:
        sim = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as e:  # not an .npy file, or a pickled object array
        raise BenchError(f"{path}: cannot read the similarity matrix: {e}") from None
    if sim.ndim != 2 or not np.issubdtype(sim.dtype, np.number):
        raise BenchError(f"{path}: expected a numeric 2-D [videos x sentences] array, got {sim.dtype} {sim.shape}")
    return sim


def mir_report(out_dir: Path, name: str, sim: np.ndarray, rel: np.ndarray, meta: dict[str, Any],
               tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """Score ``sim`` against ``rel`` and write the report; returns (metrics, files written).

    The headline keys are means over the defined rows; the report also carries the official code's
    means over all rows (``*_official``, null when a row is undefined) side by side in the
    ``means`` table, and ``meta["mean_rule"]`` (added to ``meta`` in place) says which is which."""
    try:
        metrics = mir.mir_metrics(sim, rel)
    except ValueError as e:
        raise BenchError(str(e)) from e
    meta.update(mean_rule=mir.MEAN_RULE, ranking="official mAP.py / nDCG.py order, ties included")  # in place: callers return it
    def skipped(key: str) -> int:  # an "avg" row counts the skipped rows of both directions
        name, direction = key.rsplit("_", 1)
        dirs = ("v2t", "t2v") if direction == "avg" else (direction,)
        return int(sum(metrics[f"rows_skipped_{name}_{d}"] for d in dirs))

    means = [{"metric": k, "headline (defined rows)": metrics[k], "official (all rows)": metrics[f"{k}_official"],
              "rows_skipped": skipped(k)} for k in HEADLINE]
    tables = {"means": means, **(tables or {})}
    written = write_report(out_dir, name, metrics, meta, tables=tables,
                           plots={"metrics": {"kind": "bars", "labels": [k.replace("_", " ") for k in HEADLINE],
                                              "values": [metrics[k] for k in HEADLINE],
                                              "title": "multi-instance retrieval (%)", "ylabel": "%"}})
    return dict(metrics), written


def mir_from_matrices(sim_path: str | Path, rel_path: str | Path, out_dir: str | Path, *, name: str = "mir",
                      label: str | None = None) -> BenchResult:
    """EPIC-style mAP / nDCG (v2t, t2v, avg) of any model's [videos x sentences] similarity
    (``.npy``) against a relevance matrix (``.npy``, or EPIC's ``.pkl``). ``label`` names the
    model in the report (default: the similarity file's stem)."""
    sim_path, rel_path = Path(sim_path), Path(rel_path)
    sim = load_sim(sim_path)
    try:
        rel = mir.load_relevance(rel_path, shape=sim.shape)
    except ValueError as e:
        raise BenchError(str(e)) from e
    meta = report_meta(None, "mir", sim=str(sim_path.resolve()), sim_sha256=sha256_file(sim_path),
                       relevance=str(rel_path.resolve()), relevance_sha256=sha256_file(rel_path), relevance_kind="given")
    meta["model"] = label or sim_path.stem
    meta["checkpoint_sha256"] = None
    metrics, written = mir_report(Path(out_dir), name, sim, rel, meta)
    return BenchResult(name, metrics, meta, written)


def mir_from_epic(store: Any, retrieval_csv: str | Path, sentence_csv: str | Path, relevance: str | Path,
                  videos_dir: str | Path, out_dir: str | Path, *, num_frames: int = 4, short_side: int = 256,
                  batch_size: int = 64, name: str = "epic_mir", progress: bool = False) -> BenchResult:
    """EPIC-Kitchens-100 MIR with the store's model: each row of the retrieval csv is a segment
    embedded from ``DIR/{video_id}.MP4`` (``num_frames`` frames in [start, stop]), each sentence
    with the text tower; ``sim = videos @ sentences.T`` is also saved as ``{name}_sim.npy``."""
    rows = read_epic_retrieval_csv(retrieval_csv)
    sents = read_epic_sentence_csv(sentence_csv)
    if not rows or not sents:
        raise BenchError("the EPIC csv files have no rows")
    try:
        rel = mir.load_relevance(relevance, shape=(len(rows), len(sents)))
    except ValueError as e:
        raise BenchError(str(e)) from e
    resolve = epic_video_resolver(videos_dir, {r["video_id"]: r["participant_id"] for r in rows})
    embedder = store.embedder
    v = embed_clips_from_videos(embedder, [(r["video_id"], r["start"], r["stop"]) for r in rows], resolve,
                                num_frames=num_frames, short_side=short_side, batch_size=batch_size, progress=progress)
    t = embedder.encode_texts([s["narration"] for s in sents])
    sim = (v @ t.T).astype(np.float32)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / f"{name}_sim.npy", sim)
    meta = report_meta(store, "epic_mir", retrieval_csv=str(Path(retrieval_csv).resolve()),
                       sentence_csv=str(Path(sentence_csv).resolve()), relevance=str(Path(relevance).resolve()),
                       relevance_kind="EPIC-Kitchens file", videos=str(Path(videos_dir).resolve()),
                       num_frames=num_frames, short_side=short_side)
    metrics, written = mir_report(out_dir, name, sim, rel, meta)
    written["sim"] = out_dir / f"{name}_sim.npy"
    return BenchResult(name, metrics, meta, written)


def mir_from_store(store: Any, out_dir: str | Path, *, classes: str | Path | None = None, name: str = "mir_store") -> BenchResult:
    """MIR on the store's val clips with text: rows = clips (stored vectors), columns = the same
    clips' texts (text tower). Relevance: EPIC's formula over ``classes`` (:func:`read_class_csv`;
    only annotated clips are used) or, without it, :func:`mir.proxy_relevance` (content-word
    Jaccard; not comparable with EPIC's leaderboard). Lists the clips in ``{name}_clips.csv``."""
    rows, cvecs = val_text_clips(store)
    ids = [clip_id(r["video_uid"], r["start"], r["end"]) for r in rows]
    notes: list[str] = []
    if classes is not None:
        ann = read_class_csv(classes)
        keep = [i for i, c in enumerate(ids) if c in ann]
        unknown = len(set(ann) - set(ids))
        if not keep:
            raise BenchError(f"none of the {len(ann)} clips in {classes} is a val clip with text of this store "
                             f"(ids look like {ids[0]}; see the list in {name}_clips.csv)")
        if len(keep) < len(ids):
            notes.append(f"{len(ids) - len(keep)} val clips have no classes in {classes} and are left out")
        if unknown:
            notes.append(f"{unknown} clips in {classes} are not val clips with text of this store")
        rows, cvecs, ids = [rows[i] for i in keep], cvecs[keep], [ids[i] for i in keep]
        verbs = [ann[c][0] for c in ids]
        nouns = [ann[c][1] for c in ids]
        rel = mir.epic_relevance(verbs, nouns, verbs, nouns)
        kind = "EPIC formula over class annotations"
    else:
        rel = mir.proxy_relevance([r["text"] for r in rows], [r["text"] for r in rows])
        kind = "proxy: Jaccard of content words (mir.proxy_relevance)"
    texts = [r["text"].strip() for r in rows]
    t = store.embedder.encode_texts(texts)
    sim = (cvecs @ t.T).astype(np.float32)
    out_dir = Path(out_dir)
    meta = report_meta(store, "mir_store", split="val", relevance_kind=kind,
                       classes=str(Path(classes).resolve()) if classes is not None else None,
                       rows="val clips with text (stored clip vectors)", columns="the same clips' texts (text tower)")
    if notes:
        meta["notes"] = notes
    metrics, written = mir_report(out_dir, name, sim, rel, meta)
    clips_csv = out_dir / f"{name}_clips.csv"
    with open(clips_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["clip_id", "video_uid", "start", "end", "text"])
        for cid, r in zip(ids, rows):
            w.writerow([cid, r["video_uid"], f"{r['start']:.3f}", f"{r['end']:.3f}", r["text"]])
    written["clips"] = clips_csv
    return BenchResult(name, metrics, meta, written, notes)
