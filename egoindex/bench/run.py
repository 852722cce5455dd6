"""The benchmark runs behind ``egoindex bench``: read the inputs, embed, score, write the report.

The metric modules (:mod:`~egoindex.metrics.egomcq`, :mod:`~egoindex.metrics.mir`,
:mod:`~egoindex.metrics.retrieval`, :mod:`~egoindex.core.report`) hold the published definitions;
this module only gathers vectors for them, from a store's tables or from raw videos, and records
what produced the numbers (the store's model and checkpoint sha256) in every report.

Choices (also in the CLI help):

* **Clip vectors from raw video** (official EgoMCQ, EPIC MIR): ``num_frames`` frames at the
  midpoints of equal intervals over [start, end] (:func:`egomcq.clip_frame_times`), each decoded
  exactly as ``egoindex ingest`` stores frames (:mod:`egoindex.media.sample`), embedded with the
  store's image tower; the clip vector is the L2-normalised mean of the frame vectors, the same
  pooling the store uses for its clips table.
* **Generated EgoMCQ** (``--generate``): questions from the store's *val* videos only
  (:func:`egomcq.generate_egomcq`; intra-video distractors at least ``min_gap_s`` seconds, default
  :data:`egomcq.DEFAULT_MIN_GAP_S`, edge to edge from the answer window); choices are windows of
  the clips table, so they are scored with the store's clip vectors, and queries with the text tower.
* **Store MIR**: rows are the val clips with non-empty text (their stored vectors), columns the
  same clips' texts (text tower); relevance is EPIC's formula over user-supplied classes
  (:func:`read_class_csv`) or :func:`mir.proxy_relevance` over the texts' content words.
* **Store retrieval**: text side = the val utterances with non-empty text (their stored text-tower
  vectors), clip side = the val clips with non-empty text. A clip is a positive of an utterance
  when it overlaps the utterance in time in the same video (the rule by which the build put the
  utterance's text into the clip's text), or when it overlaps another utterance whose normalised
  text (lower case, punctuation removed) is identical: a repeated sentence cannot tell its
  occurrences apart, so retrieving any of them counts.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egoindex import __version__
from egoindex.metrics import egomcq, mir, retrieval
from egoindex.core.report import compare_reports, write_report
from egoindex.core.fsutil import sha256_file
from egoindex.errors import BenchError

__all__ = [
    "BenchError",
    "BenchResult",
    "clip_id",
    "compare",
    "embed_clips_from_videos",
    "mir_from_epic",
    "mir_from_matrices",
    "mir_from_store",
    "parse_timestamp",
    "read_class_csv",
    "read_epic_retrieval_csv",
    "read_epic_sentence_csv",
    "retrieval_from_store",
    "run_mcq",
    "store_video_resolver",
]

CHANCE_MCQ = 100.0 / egomcq.N_CHOICES
VIDEO_SUFFIXES = (".mp4", ".MP4", ".mov", ".MOV", ".mkv", ".webm")




@dataclass
class BenchResult:
    """What a run produced: the report's metrics and meta, and the files written (by kind)."""

    name: str
    metrics: dict[str, Any]
    meta: dict[str, Any]
    written: dict[str, Path]
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- shared helpers


def default_out_dir(store_root: str | Path) -> Path:
    return Path(store_root) / "bench"


def _store_meta(store: Any) -> dict[str, Any]:
    m = store.meta
    return {
        "model": m.get("model"),
        "checkpoint_sha256": m.get("checkpoint_sha256"),
        "checkpoint": m.get("checkpoint"),
        "store": str(Path(store.root).resolve()),
        "embed_dim": m.get("embed_dim"),
        "clip_seconds": m.get("clip_seconds"),
        "clip_stride": m.get("clip_stride"),
    }


def _meta(store: Any | None, bench: str, **settings: Any) -> dict[str, Any]:
    base = _store_meta(store) if store is not None else {"model": None, "checkpoint_sha256": None}
    base.update({"bench": bench, **settings})
    base["egoindex_version"] = __version__
    base["created_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return base


def _read_table(store: Any, name: str, columns: list[str], where: str | None = None) -> list[dict[str, Any]]:
    """Rows of a store table (no vectors) in table order."""
    ds = store.table(name).to_lance()
    return ds.to_table(columns=columns, filter=where).to_pylist()


def _read_vectors(store: Any, name: str, columns: list[str], where: str | None) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rows (``columns``) and their ``vector`` column as float32 [N, D], in table order."""
    from egoindex.store.schema import vectors_of

    tbl = store.table(name).to_lance().to_table(columns=[*columns, "vector"], filter=where)
    vecs = vectors_of(tbl["vector"], store.dim)
    return tbl.drop_columns(["vector"]).to_pylist(), vecs


def _normalise_rows(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def clip_id(video_uid: str, start: float, end: float) -> str:
    """A store clip's id in benchmark files: ``VIDEO_UID@START-END`` (seconds, 3 decimals)."""
    return f"{video_uid}@{float(start):.3f}-{float(end):.3f}"


def _window_key(video_uid: str, start: float, end: float) -> tuple[str, int, int]:
    """Match windows by millisecond: store times are rounded to 6 decimals, JSON may print fewer."""
    return str(video_uid), round(float(start) * 1000), round(float(end) * 1000)


# --------------------------------------------------------------------------- raw videos


def store_video_resolver(store: Any | None, videos_dir: str | Path | None) -> Callable[[str], Path]:
    """``video_uid -> file``: ``DIR/{video_uid}.mp4`` (Ego4D's layout; other usual suffixes too),
    else, for a uid in the store's videos table, its source path under ``videos_dir``, else under
    the store's ``videos_root``. Raises BenchError naming the places tried."""
    vdir = Path(videos_dir) if videos_dir else None

    def resolve(uid: str) -> Path:
        tried: list[Path] = []
        if vdir is not None:
            tried += [vdir / f"{uid}{ext}" for ext in VIDEO_SUFFIXES]
        row = store.videos.get(uid) if store is not None else None
        if row is not None and row.get("source"):
            if vdir is not None:
                tried.append(vdir / row["source"])
            root = store.meta.get("videos_root")
            if root:
                tried.append(Path(root) / row["source"])
        for p in tried:
            if p.is_file():
                return p
        raise BenchError(f"no video file for {uid}: tried {', '.join(str(p) for p in tried) or 'nothing (no --videos)'}")

    return resolve


def embed_clips_from_videos(
    embedder: Any,
    clips: Sequence[tuple[str, float, float]],
    resolve: Callable[[str], Path],
    num_frames: int = 4,
    short_side: int = 256,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Clip vectors [len(clips), D] for (video key, start, end) triples: ``num_frames`` frames at
    the midpoints of equal intervals over [start, end], decoded like the ingest does, embedded
    with ``embedder``'s image tower, mean-pooled and L2-normalised. Each video is decoded once
    (its frames in time order, seeking over long gaps); identical clips are embedded once."""
    import torch

    from egoindex.model.embed import crop_jpeg
    from egoindex.media.frames import VideoError
    from egoindex.media.sample import frames_at

    unique: dict[tuple[str, float, float], int] = {}
    for c in clips:
        unique.setdefault((str(c[0]), float(c[1]), float(c[2])), len(unique))
    by_video: dict[str, list[tuple[int, float, float]]] = {}
    for (vid, s, e), j in unique.items():
        by_video.setdefault(vid, []).append((j, s, e))
    dim = int(embedder.dim)
    sums = np.zeros((len(unique), dim), np.float64)
    paths = {vid: resolve(vid) for vid in sorted(by_video)}  # fail before any decoding

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not progress) as prog:
        task = prog.add_task("decode + embed clips", total=len(unique))
        for vid in sorted(by_video):
            owners: list[int] = []
            times: list[float] = []
            for j, s, e in by_video[vid]:
                for t in egomcq.clip_frame_times(s, e, num_frames):
                    owners.append(j)
                    times.append(t)
            batch: list[np.ndarray] = []
            batch_owner: list[int] = []

            def flush() -> None:
                if batch:
                    v = embedder.encode_crops(torch.from_numpy(np.stack(batch)))
                    np.add.at(sums, np.asarray(batch_owner), v.astype(np.float64))
                    batch.clear()
                    batch_owner.clear()

            try:
                for i, _, jpeg in frames_at(paths[vid], times, short_side=short_side):
                    batch.append(crop_jpeg(jpeg, embedder.pp))
                    batch_owner.append(owners[i])
                    if len(batch) >= batch_size:
                        flush()
            except VideoError as e:
                raise BenchError(f"cannot decode {paths[vid]} (video {vid}): {e}") from e
            flush()
            prog.advance(task, len(by_video[vid]))
    vecs = _normalise_rows(sums)
    return vecs[[unique[(str(c[0]), float(c[1]), float(c[2]))] for c in clips]]


# --------------------------------------------------------------------------- EgoMCQ


def _store_utterances(store: Any) -> list[dict[str, Any]]:
    rows = _read_table(store, "utterances", ["video_uid", "start", "end", "text", "split"])
    return [{**r, "text": r["text"] or "", "split": r["split"] or ""} for r in rows]


def generate_store_mcq(store: Any, n: int, seed: int, min_gap_s: float = egomcq.DEFAULT_MIN_GAP_S) -> dict[str, egomcq.EgoMCQItem]:
    """An EgoMCQ-format set from the store's val videos (see :func:`egomcq.generate_egomcq`);
    choices are windows of the store's clips table. Raises BenchError when nothing can be made,
    saying why."""
    utts = _store_utterances(store)
    val_videos = sorted({u["video_uid"] for u in utts if u["split"] == "val" and u["text"].strip()})
    where = None
    if val_videos:
        from egoindex.store.filters import quote

        where = f"video_uid IN ({', '.join(quote(v) for v in val_videos)})"
    clips: dict[str, list[tuple[float, float]]] = {}
    if where:
        for r in _read_table(store, "clips", ["video_uid", "start", "end"], where):
            clips.setdefault(r["video_uid"], []).append((float(r["start"]), float(r["end"])))
    try:
        items = egomcq.generate_egomcq(utts, clips, n, seed, min_gap_s=min_gap_s)
    except ValueError as e:
        raise BenchError(str(e)) from e
    if n > 0 and not items:
        need = egomcq.N_CHOICES
        raise BenchError(
            f"no EgoMCQ question could be generated: the store has {len(val_videos)} val videos with speech "
            f"(inter-video questions need at least {need}: the answer's video and {need - 1} others, and the "
            f"first question is inter-video), and intra-video questions need {need - 1} clips at least "
            f"{min_gap_s:g} s from the answer. Ingest more videos or a larger --val-fraction.")
    return items


def _choice_rows(items: Mapping[str, egomcq.EgoMCQItem]) -> list[tuple[str, float, float]]:
    return [(str(c["video_uid"]), float(c["clip_start"]), float(c["clip_end"]))
            for item in items.values() for c in (item["choices"][str(i)] for i in range(egomcq.N_CHOICES))]


def store_clip_vectors(store: Any, windows: Sequence[tuple[str, float, float]]) -> np.ndarray:
    """The clips table's vectors for (video_uid, start, end) windows (matched to the millisecond).
    Raises BenchError for a window that is not a clip of the store."""
    from egoindex.store.filters import quote

    vids = sorted({w[0] for w in windows})
    found: dict[tuple[str, int, int], np.ndarray] = {}
    for i in range(0, len(vids), 256):
        where = f"video_uid IN ({', '.join(quote(v) for v in vids[i:i + 256])})"
        rows, vecs = _read_vectors(store, "clips", ["video_uid", "start", "end"], where)
        for r, v in zip(rows, vecs):
            found.setdefault(_window_key(r["video_uid"], r["start"], r["end"]), v)
    missing = [w for w in windows if _window_key(*w) not in found]
    if missing:
        w = missing[0]
        raise BenchError(
            f"{len(missing)} choice windows are not clips of the store (e.g. video {w[0]} {w[1]:.3f}-{w[2]:.3f} s); "
            "score them from the raw videos with --videos DIR")
    return np.stack([found[_window_key(*w)] for w in windows]).astype(np.float32)


def run_mcq(
    store: Any,
    out_dir: str | Path,
    *,
    egomcq_file: str | Path | None = None,
    generate: int | None = None,
    seed: int = 0,
    out_file: str | Path | None = None,
    min_gap_s: float = egomcq.DEFAULT_MIN_GAP_S,
    videos_dir: str | Path | None = None,
    num_frames: int = 4,
    short_side: int = 256,
    batch_size: int = 64,
    name: str | None = None,
    progress: bool = False,
) -> BenchResult:
    """EgoMCQ on ``store``'s model. Either ``egomcq_file`` (official or generated format) or
    ``generate`` questions from the store's val videos, written to ``out_file`` (default
    ``out_dir/{name}_questions.json``) in the official format and read back from it.

    Candidate clips are scored from the raw videos when ``videos_dir`` is given (``num_frames``
    frames per clip), else from the store's clip vectors (every choice window must be a store
    clip: true of generated sets). Query vectors: the store's text tower on ``query.clip_text``.
    Reports inter (type 1) and intra (type 2) accuracy separately, in percent."""
    if (egomcq_file is None) == (generate is None):
        raise BenchError("give exactly one of an EgoMCQ file (--egomcq) or --generate N")
    out_dir = Path(out_dir)
    notes: list[str] = []
    settings: dict[str, Any] = {}
    name = name or ("egomcq_generated" if generate is not None else "egomcq")
    if generate is not None:
        path = Path(out_file) if out_file else out_dir / f"{name}_questions.json"
        if path.resolve() == (out_dir / f"{name}.json").resolve():
            raise BenchError(f"--out {path} is where the report goes; choose another file or --name")
        items = generate_store_mcq(store, generate, seed, min_gap_s)
        egomcq.write_egomcq(items, path)
        if len(items) < generate:
            notes.append(f"asked for {generate} questions, the store's val videos gave {len(items)}")
        settings.update(generated={"n": generate, "seed": seed, "min_gap_s": min_gap_s, "split": "val"})
        egomcq_file = path
    egomcq_file = Path(egomcq_file)  # type: ignore[arg-type]
    try:
        items = egomcq.load_egomcq(egomcq_file)
    except (ValueError, OSError) as e:
        raise BenchError(str(e)) from e
    if not items:
        raise BenchError(f"{egomcq_file} has no questions")
    empty = [k for k, it in items.items() if not it["query"]["clip_text"].strip()]
    if empty:
        raise BenchError(f"{len(empty)} EgoMCQ queries have empty clip_text (e.g. item {empty[0]}); nothing to embed")

    embedder = store.embedder
    keys = list(items)
    q = embedder.encode_texts([items[k]["query"]["clip_text"] for k in keys])
    windows = _choice_rows(items)
    if videos_dir is not None:
        resolve = store_video_resolver(store, videos_dir)
        cv = embed_clips_from_videos(embedder, windows, resolve, num_frames=num_frames, short_side=short_side,
                                     batch_size=batch_size, progress=progress)
        source = "raw video"
        settings.update(videos=str(Path(videos_dir).resolve()), num_frames=num_frames, short_side=short_side)
    else:
        cv = store_clip_vectors(store, windows)
        source = "store clips"
    n = egomcq.N_CHOICES
    query_vecs = {k: q[i] for i, k in enumerate(keys)}
    choice_vecs = {k: cv[i * n:(i + 1) * n] for i, k in enumerate(keys)}
    scored = egomcq.score_egomcq(items, query_vecs, choice_vecs)

    metrics = {k: v for k, v in scored.items() if k != "predictions"}
    metrics["chance_acc"] = CHANCE_MCQ
    preds = []
    for p in scored["predictions"]:
        item = items[p["key"]]
        preds.append({**p, "video_uid": item["query"]["video_uid"], "query": item["query"]["clip_text"]})
    meta = _meta(store, "egomcq", egomcq_file=str(egomcq_file.resolve()), egomcq_sha256=sha256_file(egomcq_file),
                 clip_vectors=source, type_labels={str(t): lbl for t, lbl in egomcq.TYPE_LABELS.items()}, **settings)
    if notes:
        meta["notes"] = notes
    labels = ["inter (type 1)", "intra (type 2)", "overall"]
    values = [metrics["inter_acc"], metrics["intra_acc"], metrics["overall_acc"]]
    written = write_report(
        out_dir, name, metrics, meta, tables={"predictions": preds},
        plots={"accuracy": {"kind": "bars", "labels": labels, "values": values,
                            "title": f"EgoMCQ accuracy (%), chance {CHANCE_MCQ:.0f}%", "ylabel": "accuracy (%)"}})
    written["egomcq"] = egomcq_file
    return BenchResult(name, metrics, meta, written, notes)


# --------------------------------------------------------------------------- MIR


def _load_sim(path: Path) -> np.ndarray:
    if path.suffix.lower() != ".npy":
        raise BenchError(f"{path}: the similarity matrix must be a .npy file")
    sim = np.load(path, allow_pickle=False)
    if sim.ndim != 2 or not np.issubdtype(sim.dtype, np.number):
        raise BenchError(f"{path}: expected a numeric 2-D [videos x sentences] array, got {sim.dtype} {sim.shape}")
    return sim


def _mir_report(out_dir: Path, name: str, sim: np.ndarray, rel: np.ndarray, meta: dict[str, Any],
                tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    try:
        metrics = mir.mir_metrics(sim, rel)
    except ValueError as e:
        raise BenchError(str(e)) from e
    keys = ["mAP_v2t", "mAP_t2v", "mAP_avg", "nDCG_v2t", "nDCG_t2v", "nDCG_avg"]
    written = write_report(out_dir, name, metrics, meta, tables=tables,
                           plots={"metrics": {"kind": "bars", "labels": [k.replace("_", " ") for k in keys],
                                              "values": [metrics[k] for k in keys],
                                              "title": "multi-instance retrieval (%)", "ylabel": "%"}})
    return dict(metrics), written


def mir_from_matrices(sim_path: str | Path, rel_path: str | Path, out_dir: str | Path, *, name: str = "mir",
                      label: str | None = None) -> BenchResult:
    """EPIC-style mAP / nDCG (v2t, t2v, avg) of any model's [videos x sentences] similarity
    (``.npy``) against a relevance matrix (``.npy``, or EPIC's ``.pkl``). ``label`` names the
    model in the report (default: the similarity file's stem)."""
    sim_path, rel_path = Path(sim_path), Path(rel_path)
    sim = _load_sim(sim_path)
    try:
        rel = mir.load_relevance(rel_path, shape=sim.shape)
    except ValueError as e:
        raise BenchError(str(e)) from e
    meta = _meta(None, "mir", sim=str(sim_path.resolve()), sim_sha256=sha256_file(sim_path),
                 relevance=str(rel_path.resolve()), relevance_sha256=sha256_file(rel_path), relevance_kind="given")
    meta["model"] = label or sim_path.stem
    meta["checkpoint_sha256"] = None
    metrics, written = _mir_report(Path(out_dir), name, sim, rel, meta)
    return BenchResult(name, metrics, meta, written)


_TS = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)\s*$")


def parse_timestamp(ts: str) -> float:
    """EPIC-Kitchens ``HH:MM:SS.ff`` (or ``MM:SS.ff``, or plain seconds) -> seconds."""
    m = _TS.match(str(ts))
    if m:
        h, mi, s = m.groups()
        return int(h or 0) * 3600 + int(mi) * 60 + float(s)
    try:
        return float(ts)
    except ValueError:
        raise BenchError(f"bad timestamp {ts!r}; expected HH:MM:SS.ff") from None


def _parse_int_list(text: str) -> list[int]:
    """``"[3, 7]"`` (EPIC's all_noun_classes), ``"3 7"``, ``"3;7"`` or ``"3,7"`` -> [3, 7]."""
    text = str(text).strip()
    if not text:
        return []
    return [int(x) for x in re.findall(r"-?\d+", text)]


def read_epic_retrieval_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of ``EPIC_100_retrieval_test.csv`` (one per video segment): narration_id, video_id,
    participant_id, start, stop (seconds from start_timestamp/stop_timestamp), narration,
    verb_class and noun_classes (all_noun_classes) when present."""
    path = Path(path)
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"narration_id", "video_id", "start_timestamp", "stop_timestamp"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise BenchError(f"{path}: missing columns {sorted(missing)} (is this EPIC_100_retrieval_test.csv?)")
        for r in reader:
            start, stop = parse_timestamp(r["start_timestamp"]), parse_timestamp(r["stop_timestamp"])
            if stop < start:
                raise BenchError(f"{path}: {r['narration_id']} stops ({stop}) before it starts ({start})")
            out.append({
                "narration_id": r["narration_id"], "video_id": r["video_id"],
                "participant_id": r.get("participant_id") or r["video_id"].split("_")[0],
                "start": start, "stop": stop, "narration": r.get("narration", ""),
                "verb_class": int(r["verb_class"]) if r.get("verb_class", "").strip() else None,
                "noun_classes": _parse_int_list(r.get("all_noun_classes", "")),
            })
    return out


def read_epic_sentence_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of ``EPIC_100_retrieval_test_sentence.csv``: narration_id, narration (in file order:
    the relevance matrix's columns)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "narration" not in (reader.fieldnames or []):
            raise BenchError(f"{path}: no 'narration' column (is this EPIC_100_retrieval_test_sentence.csv?)")
        return [{"narration_id": r.get("narration_id", ""), "narration": r["narration"]} for r in reader]


def epic_video_resolver(videos_dir: str | Path, participants: Mapping[str, str]) -> Callable[[str], Path]:
    """``video_id -> file``: ``DIR/{video_id}.MP4`` (any usual suffix), or EPIC's download layouts
    ``DIR/{participant}/{video_id}.MP4`` and ``DIR/{participant}/videos/{video_id}.MP4``."""
    vdir = Path(videos_dir)

    def resolve(video_id: str) -> Path:
        pid = participants.get(video_id) or video_id.split("_")[0]
        tried = []
        for base in (vdir, vdir / pid, vdir / pid / "videos"):
            for ext in VIDEO_SUFFIXES:
                p = base / f"{video_id}{ext}"
                tried.append(p)
                if p.is_file():
                    return p
        raise BenchError(f"no video file for {video_id}: tried {tried[0]}, {tried[len(VIDEO_SUFFIXES)]} and "
                         f"{tried[2 * len(VIDEO_SUFFIXES)]} (and other suffixes)")

    return resolve


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
    meta = _meta(store, "epic_mir", retrieval_csv=str(Path(retrieval_csv).resolve()),
                 sentence_csv=str(Path(sentence_csv).resolve()), relevance=str(Path(relevance).resolve()),
                 relevance_kind="EPIC-Kitchens file", videos=str(Path(videos_dir).resolve()), num_frames=num_frames,
                 short_side=short_side)
    metrics, written = _mir_report(out_dir, name, sim, rel, meta)
    written["sim"] = out_dir / f"{name}_sim.npy"
    return BenchResult(name, metrics, meta, written)


def read_class_csv(path: str | Path) -> dict[str, tuple[int, list[int]]]:
    """Class annotations of store clips: ``clip_id -> (verb class, noun classes)``.

    Columns: ``clip_id`` (:func:`clip_id`, as listed in ``{name}_clips.csv``) or ``video_uid``,
    ``start``, ``end``; ``verb_class``; ``noun_classes`` (``"[3, 7]"``, ``"3 7"`` or ``"3;7"``; the
    column may also be called ``all_noun_classes`` or ``noun_class``)."""
    path = Path(path)
    out: dict[str, tuple[int, list[int]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        noun_col = next((c for c in ("noun_classes", "all_noun_classes", "noun_class") if c in cols), None)
        if "verb_class" not in cols or noun_col is None or not ({"clip_id"} <= cols or {"video_uid", "start", "end"} <= cols):
            raise BenchError(f"{path}: needs columns clip_id (or video_uid, start, end), verb_class and noun_classes; "
                             f"got {sorted(cols)}")
        for i, r in enumerate(reader, start=2):
            try:
                cid = r.get("clip_id") or clip_id(r["video_uid"], float(r["start"]), float(r["end"]))
                out[cid] = (int(r["verb_class"]), _parse_int_list(r[noun_col]))
            except (TypeError, ValueError) as e:
                raise BenchError(f"{path} line {i}: {e}") from None
    return out


def _val_text_clips(store: Any) -> tuple[list[dict[str, Any]], np.ndarray]:
    rows, vecs = _read_vectors(store, "clips", ["video_uid", "start", "end", "text"], "split = 'val'")
    keep = [i for i, r in enumerate(rows) if (r["text"] or "").strip()]
    if not keep:
        raise BenchError("the store has no val clips with text (no val split, or no speech in the val videos)")
    return [rows[i] for i in keep], vecs[keep]


def mir_from_store(store: Any, out_dir: str | Path, *, classes: str | Path | None = None, name: str = "mir_store") -> BenchResult:
    """MIR on the store's val clips with text: rows = clips (stored vectors), columns = the same
    clips' texts (text tower). Relevance: EPIC's formula over ``classes`` (:func:`read_class_csv`;
    only annotated clips are used) or, without it, :func:`mir.proxy_relevance` (content-word
    Jaccard; not comparable with EPIC's leaderboard). Lists the clips in ``{name}_clips.csv``."""
    rows, cvecs = _val_text_clips(store)
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
    meta = _meta(store, "mir_store", split="val", relevance_kind=kind,
                 classes=str(Path(classes).resolve()) if classes is not None else None,
                 rows="val clips with text (stored clip vectors)", columns="the same clips' texts (text tower)")
    if notes:
        meta["notes"] = notes
    metrics, written = _mir_report(out_dir, name, sim, rel, meta)
    clips_csv = out_dir / f"{name}_clips.csv"
    with open(clips_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["clip_id", "video_uid", "start", "end", "text"])
        for cid, r in zip(ids, rows):
            w.writerow([cid, r["video_uid"], f"{r['start']:.3f}", f"{r['end']:.3f}", r["text"]])
    written["clips"] = clips_csv
    return BenchResult(name, metrics, meta, written, notes)


# --------------------------------------------------------------------------- retrieval R@K


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
    clips, cvecs = _val_text_clips(store)
    urows, uvecs = _read_vectors(store, "utterances", ["video_uid", "start", "end", "text"], "split = 'val'")
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
    meta = _meta(store, "retrieval", split="val", texts="val utterances with text (stored text vectors)",
                 clips="val clips with text (stored clip vectors)",
                 positives="same video and overlapping in time, or overlapping an utterance with the same normalised text")
    worst = np.argsort(-np.nan_to_num(t2c_ranks, nan=-1.0), kind="stable")[:20]
    table = [{"text": urows[i]["text"], "video_uid": urows[i]["video_uid"], "start": urows[i]["start"],
              "rank": t2c_ranks[i]} for i in worst if math.isfinite(t2c_ranks[i])]
    bars = [f"{d} R@{k}" for d in ("t2c", "c2t") for k in ks]
    written = write_report(
        out_dir, name, metrics, meta, tables={"hardest_texts": table},
        plots={"recall": {"kind": "bars", "labels": bars, "values": [metrics[f"{b.split()[0]}_{b.split()[1]}"] for b in bars],
                          "title": "val retrieval recall (%)", "ylabel": "%"},
               "t2c_ranks": {"kind": "rank_histogram", "ranks": t2c_ranks, "title": "text -> clip: rank of first positive"},
               "c2t_ranks": {"kind": "rank_histogram", "ranks": c2t_ranks, "title": "clip -> text: rank of first positive"}})
    return BenchResult(name, metrics, meta, written)


# --------------------------------------------------------------------------- compare


def compare(reports: Sequence[str | Path], out: str | Path | None = None) -> str:
    """Markdown table of several reports' metrics side by side (:func:`report.compare_reports`),
    optionally written to ``out``."""
    missing = [str(p) for p in reports if not Path(p).is_file()]
    if missing:
        raise BenchError(f"no such report: {', '.join(missing)}")
    try:
        text = compare_reports([Path(p) for p in reports])
    except (KeyError, ValueError, json.JSONDecodeError) as e:
        raise BenchError(f"cannot read the reports: {e}") from e
    if out is not None:
        from egoindex.core.fsutil import atomic_open

        with atomic_open(Path(out), "w") as f:
            f.write(text)
    return text
