"""EgoMCQ with a store's model (``egoindex bench mcq``): from an EgoMCQ file or questions
generated from the store's val videos, choices scored from the store's clip vectors or from raw
videos, accuracy per type in a report.

Clip vectors come from the store's clip encoder, whichever made its clips table (a clip
checkpoint's temporal head or the frame mean; ``StoreMeta.encoders``), on both paths.

* **Generated EgoMCQ** (``--generate``): questions from the store's *val* videos only
  (:func:`egomcq.generate_egomcq`; intra-video distractors at least ``min_gap_s`` seconds, default
  :data:`egomcq.DEFAULT_MIN_GAP_S`, edge to edge from the answer window); choices are windows of
  the clips table, so they are scored with the store's clip vectors, and queries with the text tower.
* **Official EgoMCQ**: the choices are embedded from the raw videos (:mod:`egoindex.bench.videos`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.bench.result import BenchResult, report_meta
from egoindex.bench.store_rows import read_rows, read_vectors, window_key
from egoindex.bench.videos import clip_frames_for, embed_clips_from_videos, store_video_resolver
from egoindex.core.fsutil import sha256_file
from egoindex.core.report import write_report
from egoindex.errors import BenchError
from egoindex.media.discover import video_uid
from egoindex.metrics import egomcq
from egoindex.store.filters import in_list

__all__ = ["CHANCE_MCQ", "GROUND_TRUTH_FILE", "generate_store_mcq", "run_mcq", "store_clip_vectors", "store_tagger"]

CHANCE_MCQ = 100.0 / egomcq.N_CHOICES

#: The demo corpus' ground truth (docs/formats.md, "Demo corpus"), looked for in the store's videos root.
GROUND_TRUTH_FILE = "ground_truth.json"


def store_tagger(store: Any) -> tuple[egomcq.Tagger, str]:
    """The verbs/nouns of a generated EgoMCQ row, and a description for the report.

    Where the store's ``videos_root`` holds the demo corpus' ``ground_truth.json``, a row of a
    video it describes is tagged with the ground truth: the ``action`` (verb) and ``object``
    (noun) of every scene overlapping the row's span, in time order (the scene containing it for
    a zero-length span). Every other row, and every store without that file, uses the text rule
    :func:`egomcq.text_tags`. A ground-truth file that cannot be read raises BenchError."""
    root = store.meta.videos_root
    path = Path(root) / GROUND_TRUTH_FILE if root else None
    if path is None or not path.is_file():
        return egomcq.default_tagger, "text rule (egomcq.text_tags)"
    try:
        gt = json.loads(path.read_text(encoding="utf-8"))
        scenes = {video_uid(v["path"]): [(float(s["start"]), float(s["end"]), str(s["action"]), str(s["object"]))
                                         for s in v["scenes"]] for v in gt["videos"]}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise BenchError(f"{path}: not a readable demo ground truth ({type(e).__name__}: {e})") from None

    def tag(vid: str, start: float, end: float, text: str) -> tuple[list[str], list[str]]:
        hit = [s for s in scenes.get(vid, ()) if max(s[0], start) < min(s[1], end) or (start == end and s[0] <= start < s[1])]
        if not hit:
            return egomcq.text_tags(text)
        return [s[2] for s in hit], [s[3] for s in hit]

    return tag, f"demo ground truth ({path}: scene action / object), else the text rule (egomcq.text_tags)"


def store_utterances(store: Any) -> list[dict[str, Any]]:
    """Every utterance of the store (no vectors), with "" for a missing text or split."""
    rows = read_rows(store, "utterances", ["video_uid", "start", "end", "text", "split"])
    return [{**r, "text": r["text"] or "", "split": r["split"] or ""} for r in rows]


def generate_store_mcq(store: Any, n: int, seed: int, min_gap_s: float = egomcq.DEFAULT_MIN_GAP_S,
                       tagger: egomcq.Tagger | None = None) -> dict[str, egomcq.EgoMCQItem]:
    """An EgoMCQ-format set from the store's val videos (see :func:`egomcq.generate_egomcq`);
    choices are windows of the store's clips table, ``video_dur`` the videos table's duration,
    tags from ``tagger`` (default :func:`store_tagger`). Raises BenchError when nothing can be
    made, saying why."""
    utts = store_utterances(store)
    val_videos = sorted({u["video_uid"] for u in utts if u["split"] == "val" and u["text"].strip()})
    where = None
    if val_videos:
        where = in_list("video_uid", val_videos)
    clips: dict[str, list[tuple[float, float]]] = {}
    if where:
        for r in read_rows(store, "clips", ["video_uid", "start", "end"], where):
            clips.setdefault(r["video_uid"], []).append((float(r["start"]), float(r["end"])))
    try:
        durations = {uid: float(r["duration"]) for uid, r in store.videos.items() if r.get("duration") is not None}
        items = egomcq.generate_egomcq(utts, clips, n, seed, min_gap_s=min_gap_s, durations=durations,
                                       tagger=tagger or store_tagger(store)[0])
    except ValueError as e:
        raise BenchError(str(e)) from e
    if n > 0 and not items:
        need = egomcq.N_CHOICES
        raise BenchError(
            f"no EgoMCQ question could be generated: the store has {len(val_videos)} val videos with speech "
            f"(inter-video questions need at least {need}: the answer's video and {need - 1} others), and "
            f"intra-video questions need {need - 1} clips at least "
            f"{min_gap_s:g} s from the answer. Ingest more videos or a larger --val-fraction.")
    return items


def choice_rows(items: Mapping[str, egomcq.EgoMCQItem]) -> list[tuple[str, float, float]]:
    """(video_uid, start, end) of every choice, item after item, choices "0".."4" in order."""
    return [(str(c["video_uid"]), float(c["clip_start"]), float(c["clip_end"]))
            for item in items.values() for c in (item["choices"][str(i)] for i in range(egomcq.N_CHOICES))]


def store_clip_vectors(store: Any, windows: Sequence[tuple[str, float, float]]) -> np.ndarray:
    """The clips table's vectors for (video_uid, start, end) windows (matched to the millisecond).
    Raises BenchError for a window that is not a clip of the store."""
    vids = sorted({w[0] for w in windows})
    found: dict[tuple[str, int, int], np.ndarray] = {}
    for i in range(0, len(vids), 256):
        where = in_list("video_uid", vids[i:i + 256])
        rows, vecs = read_vectors(store, "clips", ["video_uid", "start", "end"], where)
        for r, v in zip(rows, vecs):
            found.setdefault(window_key(r["video_uid"], r["start"], r["end"]), v)
    missing = [w for w in windows if window_key(*w) not in found]
    if missing:
        w = missing[0]
        raise BenchError(
            f"{len(missing)} choice windows are not clips of the store (e.g. video {w[0]} {w[1]:.3f}-{w[2]:.3f} s); "
            "score them from the raw videos with --videos DIR")
    return np.stack([found[window_key(*w)] for w in windows]).astype(np.float32)


def clip_encoder_of(store: Any, embedder: Any) -> dict[str, Any]:
    """What made the choice vectors, for the report: the store's recorded clips encoder
    (``StoreMeta.clips_encoder``: ``temporal-head`` with ``num_frames``, or ``frame-mean``), or the
    embedder's kind for a store-like object without one."""
    got = getattr(store, "clips_encoder", None)
    if isinstance(got, dict):
        return got
    return {"kind": getattr(embedder, "clip_kind", "frame-mean"), "num_frames": getattr(embedder, "num_frames", None)}


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
    num_frames: int | None = None,
    short_side: int = 256,
    batch_size: int = 64,
    name: str | None = None,
    progress: bool = False,
) -> BenchResult:
    """EgoMCQ on ``store``'s model. Either ``egomcq_file`` (official or generated format) or
    ``generate`` questions from the store's val videos, written to ``out_file`` (default
    ``out_dir/{name}_questions.json``) in the official format and read back from it.

    Candidate clips are scored from the raw videos when ``videos_dir`` is given (``num_frames``
    frames per clip, None: the store's clip model's own, else 4; pooled by the store's clip encoder,
    ``Embedder.encode_clips``), else from the store's clip vectors (every choice window must be a
    store clip: true of generated sets), which the store's clip encoder made (a clip checkpoint's
    temporal head, or the frame mean: the report's ``clip_encoder``). Query vectors: the store's
    text tower on ``query.clip_text``.
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
        tagger, tags = store_tagger(store)
        items = generate_store_mcq(store, generate, seed, min_gap_s, tagger)
        egomcq.write_egomcq(items, path)
        if len(items) < generate:
            notes.append(f"asked for {generate} questions, the store's val videos gave {len(items)}")
        settings.update(generated={"n": generate, "seed": seed, "min_gap_s": min_gap_s, "split": "val", "tags": tags})
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
    windows = choice_rows(items)
    if videos_dir is not None:
        resolve = store_video_resolver(store, videos_dir)
        frames = clip_frames_for(embedder, num_frames)
        cv = embed_clips_from_videos(embedder, windows, resolve, num_frames=frames, short_side=short_side,
                                     batch_size=batch_size, progress=progress)
        source = "raw video"
        settings.update(videos=str(Path(videos_dir).resolve()), num_frames=frames, short_side=short_side)
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
    meta = report_meta(store, "egomcq", egomcq_file=str(egomcq_file.resolve()), egomcq_sha256=sha256_file(egomcq_file),
                       clip_vectors=source, clip_encoder=clip_encoder_of(store, embedder), type_labels={str(t): lbl for t, lbl in egomcq.TYPE_LABELS.items()},
                       **settings)
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
