"""Ingest: a folder of raw videos -> Whisper-captioned WebDataset shards, split by video.

Two stages, so that a kill at any moment loses at most the videos in flight and a rerun gives
exactly the shards of an uninterrupted run:

1. Per video (parallel over ``--workers`` processes and ``--num-parts`` array tasks): transcribe
   the audio, sample frames, pair each frame with its utterance, and write the video's samples to
   ``_ingest/staging/{uid}.tar`` and its record to ``_ingest/videos/{uid}.json`` (both atomic).
   A video with a record is finished and is not redone on a rerun.
2. Per part, once its videos are finished: pack the staged samples into ``{split}-{part}-{n}.tar``
   shards, interleaving videos (consecutive frames of one video share a caption, and would be
   false negatives for each other in a contrastive batch). The layout is a pure function of the
   set of finished videos, so a pack that was killed half-way is simply redone identically.
   ``_ingest/packs/*.json`` records which videos went into which shards.

Finally ``sizes.json`` (what open_clip reads), ``manifest.csv`` (one row per video) and
``shards.csv`` are regenerated from the records, by whichever part finishes last.

Layout of SHARDS_DIR::

    train-0000-00000.tar ...   val-0000-00000.tar ...   sizes.json  manifest.csv  shards.csv
    transcripts/{uid}.json     _ingest/{config.json, videos/, staging/, packs/}
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import json
import multiprocessing as mp
import os
import queue as queue_mod
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.core import failpoints
from egoindex.media.discover import VideoFile, assign_part, assign_split, find_videos, undecodable_name
from egoindex.media.frames import DecodeStats, VideoError, iter_frames, probe
from egoindex.core.fsutil import atomic_open, read_json, remove_stale_tmp, write_json
from egoindex.core.resources import available_cpus
from egoindex.ingest.pairing import DEFAULT_MAX_GAP, pair_frames
from egoindex.dataset.shards import SHARD_RE, ShardWriter, TarReaders, index_tar, shard_name
from egoindex.media.speech import BUNDLED, Thresholds, Transcriber, Utterance, load_audio
from egoindex.dataset.layout import MANIFEST_COLUMNS, ShardsLayout as Layout
from egoindex.errors import IngestError

SPLITS = ("train", "val")
Report = Callable[[str, float], None]




@dataclass
class IngestConfig:
    """Everything that decides the output; stored in ``_ingest/config.json`` and checked on rerun."""

    fps: float = 1.0
    short_side: int = 256
    jpeg_quality: int = 90
    whisper_model: str = BUNDLED
    language: str | None = None
    max_gap: float = DEFAULT_MAX_GAP
    max_no_speech_prob: float = Thresholds.max_no_speech_prob
    min_avg_logprob: float = Thresholds.min_avg_logprob
    max_compression_ratio: float = Thresholds.max_compression_ratio
    val_fraction: float = 0.1
    split_seed: int = 0
    shard_size: int = 2000
    allow_no_audio: bool = False
    keep_truncated: bool = False

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.max_no_speech_prob, self.min_avg_logprob, self.max_compression_ratio)

    def validate(self) -> None:
        if not 0 < self.fps <= 60:
            raise IngestError(f"--fps must be in (0, 60], got {self.fps}")
        if not 0 <= self.val_fraction < 1:
            raise IngestError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.shard_size < 1:
            raise IngestError("--shard-size must be >= 1")
        if not 1 <= self.jpeg_quality <= 100:
            raise IngestError("--jpeg-quality must be in [1, 100]")


@dataclass
class RunOptions:
    """How to run (does not change the output)."""

    workers: int = 1
    num_parts: int | None = None
    part_index: int | None = None
    device: str = "auto"
    compute_type: str = "auto"
    batch_size: int = 16
    strict: bool = False
    retry_failed: bool = False
    keep_staging: bool = False
    progress: bool = True


@dataclass
class IngestSummary:
    part: int
    num_parts: int
    videos_total: int
    videos_in_part: int
    processed_now: int
    reused: int
    status_counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    shards: dict[str, int] = field(default_factory=dict)
    speech_hours: float = 0.0
    audio_hours: float = 0.0
    elapsed_s: float = 0.0
    problems: list[dict[str, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Layout



def resolve_parts(num_parts: int | None, part_index: int | None) -> tuple[int, int]:
    """Explicit values win; otherwise SLURM array variables; otherwise a single part."""
    env = os.environ
    if num_parts is None:
        num_parts = int(env.get("SLURM_ARRAY_TASK_COUNT", "1"))
    if part_index is None:
        if "SLURM_ARRAY_TASK_ID" in env:
            part_index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        else:
            part_index = 0
    if num_parts < 1 or not 0 <= part_index < num_parts:
        raise IngestError(f"--part-index must be in [0, {num_parts}), got {part_index}")
    return num_parts, part_index


def check_config(layout: Layout, cfg: IngestConfig) -> None:
    """Refuse to mix outputs of different settings in one folder; first run writes the config."""
    want = asdict(cfg)
    if layout.config.exists():
        have = read_json(layout.config)
        diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
        if diff:
            lines = ", ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise IngestError(
                f"{layout.root} was ingested with other settings ({lines}). Rerun with the same "
                "settings to resume, or choose a new SHARDS_DIR."
            )
    else:
        write_json(layout.config, want)


# ----------------------------------------------------------------------------------------------
# Stage 1: one video


def fingerprint(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _record(v: VideoFile, split: str, part: int, status: str, reason: str = "", **extra: Any) -> dict[str, Any]:
    rec = {"video_uid": v.video_uid, "source": v.source, "split": split, "part": part, "status": status, "reason": reason}
    rec.update(fingerprint(v.path) if v.path.exists() else {})
    rec.update(extra)
    return rec


def _sample_json(v: VideoFile, split: str, frame, pair) -> dict[str, Any]:
    d: dict[str, Any] = {
        "video_uid": v.video_uid,
        "source": v.source,
        "t": frame.t,
        "frame_index": frame.index,
        "pts_time": frame.pts_time,
        "split": split,
        "width": frame.width,
        "height": frame.height,
        "utterance": None,
    }
    if pair is not None:
        u: Utterance = pair.utterance
        d["utterance"] = {
            "id": u.id, "start": u.start, "end": u.end, "match": pair.match, "gap": pair.gap,
            "no_speech_prob": u.no_speech_prob, "avg_logprob": u.avg_logprob,
            "compression_ratio": u.compression_ratio,
        }
    return d


def process_video(v: VideoFile, split: str, part: int, cfg: IngestConfig, layout: Layout,
                  transcriber: Transcriber, report: Report) -> dict[str, Any]:
    """Stage 1 for one video; always returns a record (ok / skipped / failed), never raises VideoError."""
    t0 = time.perf_counter()
    if undecodable_name(v.path):  # its source (shown escaped) would not lead back to the file
        return _record(v, split, part, "skipped", "bad-name: the file name is not valid UTF-8 (shown with \\x "
                       "escapes); rename the file to UTF-8 to ingest it")
    try:
        info = probe(v.path)
    except VideoError as e:
        status = "skipped" if e.kind in ("empty", "no-video-stream") else "failed"
        return _record(v, split, part, status, f"{e.kind}: {e}")
    except OSError as e:
        return _record(v, split, part, "failed", f"io-error: {e}")
    base = {"duration_s": round(info.duration, 3), "width": info.width, "height": info.height, "rotation": info.rotation,
            "native_fps": round(info.native_fps, 3) if info.native_fps else None, "codec": info.codec}
    if not info.has_audio and not cfg.allow_no_audio:
        return _record(v, split, part, "skipped", "no-audio: no audio stream (use --allow-no-audio to keep its frames)", **base)

    utts: list[Utterance] = []
    meta: dict[str, Any] = {"audio_seconds": 0.0, "voiced_seconds": 0.0}
    t_audio = time.perf_counter()
    if info.has_audio:
        try:
            audio = load_audio(v.path)
        except Exception as e:  # PyAV raises many kinds for broken audio
            return _record(v, split, part, "failed", f"audio-error: cannot decode audio: {e}", **base)
        if audio.size:
            utts, meta = transcriber.transcribe(audio, v.video_uid)
        report("audio", len(audio) / 16000)
    t_audio = time.perf_counter() - t_audio

    stats = DecodeStats()
    writer = ShardWriter(layout.staged(v.video_uid))
    frames = captioned = 0
    pending: list = []

    def flush() -> None:
        nonlocal frames, captioned
        for frame, pair in zip(pending, pair_frames([p.t for p in pending], utts, cfg.max_gap)):
            writer.write(f"{v.video_uid}_{frame.index:06d}", {
                "jpg": frame.jpeg,
                "txt": (pair.utterance.text if pair else "").encode("utf-8"),
                "json": json.dumps(_sample_json(v, split, frame, pair), ensure_ascii=False).encode("utf-8"),
            })
            captioned += pair is not None
        frames += len(pending)
        report("frames", len(pending))
        pending.clear()

    t_frames = time.perf_counter()
    try:
        for frame in iter_frames(v.path, cfg.fps, cfg.short_side, cfg.jpeg_quality, stats):
            pending.append(frame)
            if len(pending) >= 32:
                flush()
        flush()
        if frames == 0:
            raise _Skip("no-frames: no frame could be sampled")
        if any(w.startswith("truncated") for w in stats.warnings) and not cfg.keep_truncated:
            first = sorted(stats.warnings, key=lambda w: not w.startswith("truncated"))  # "truncated: decoded ..."
            raise _Skip("; ".join(first) + " (use --keep-truncated to keep the decodable part)")
        writer.close()
    except _Skip as s:
        writer.abort()
        return _record(v, split, part, "skipped", str(s), **base)
    except VideoError as e:
        writer.abort()
        return _record(v, split, part, "failed", f"{e.kind}: {e}", **base)
    except Exception as e:  # a decoder crash mid-file must not stop the corpus
        writer.abort()
        return _record(v, split, part, "failed", f"decode-error: {type(e).__name__}: {e}", **base)
    t_frames = time.perf_counter() - t_frames

    kept = [u for u in utts if u.kept]
    write_json(layout.transcripts / f"{v.video_uid}.json", {
        "video_uid": v.video_uid, "source": v.source, "model": transcriber.name, **meta,
        "thresholds": asdict(cfg.thresholds), "utterances": [u.to_json() for u in utts],
    })
    warnings = list(stats.warnings)
    if not info.has_audio:
        warnings.append("no audio stream: frames kept with empty captions")
    elif not kept:
        warnings.append("no speech kept (silence or all utterances filtered)")
    return _record(
        v, split, part, "ok", "", **base, frames=frames, utterances=len(kept),
        utterances_dropped=len(utts) - len(kept),
        speech_s=round(sum(u.end - u.start for u in kept), 3),
        audio_s=round(float(meta.get("audio_seconds", 0.0)), 3),
        captioned_frames=captioned, warnings=warnings,
        timing_s={"audio": round(t_audio, 3), "frames": round(t_frames, 3), "total": round(time.perf_counter() - t0, 3)},
    )


class _Skip(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# Worker processes


_WORKER: dict[str, Any] = {}


def _worker_init(cfg: dict, layout_root: str, device: str, compute_type: str, batch_size: int,
                 cpu_threads: int, q: Any) -> None:
    c = IngestConfig(**cfg)
    _WORKER["cfg"] = c
    _WORKER["layout"] = Layout(Path(layout_root))
    _WORKER["transcriber"] = Transcriber(c.whisper_model, device, compute_type, cpu_threads, batch_size,
                                         c.language, c.thresholds)
    _WORKER["queue"] = q


def _worker_run(v: VideoFile, split: str, part: int) -> dict[str, Any]:
    q = _WORKER["queue"]
    rec = process_video(v, split, part, _WORKER["cfg"], _WORKER["layout"], _WORKER["transcriber"],
                        lambda kind, n: q.put((kind, n)))
    write_json(_WORKER["layout"].record(v.video_uid), rec)
    failpoints.hit("video-done")
    return rec


# ----------------------------------------------------------------------------------------------
# Stage 2: packing


def _pack_records(layout: Layout) -> list[dict[str, Any]]:
    out = []
    for p in sorted(layout.packs.glob("*.json")):
        with contextlib.suppress(json.JSONDecodeError, OSError):
            out.append(read_json(p))
    return out


def packed_uids(layout: Layout) -> set[str]:
    return {u for rec in _pack_records(layout) for u in rec["videos"]}


def _seed(*parts: object) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def pack_split(layout: Layout, split: str, part: int, uids: list[str], shard_size: int) -> list[dict[str, Any]]:
    """Pack the staged samples of ``uids`` into new shards; returns the shard rows written.

    Videos are cut into pieces of ``shard_size // 4`` samples, pieces are ordered round-robin over
    videos, gathered into blocks of at least ``4 * shard_size`` samples and shuffled within each
    block (seeded by split, part and position), so every shard mixes many videos while reads stay
    local. Deterministic: the same ``uids`` always give the same bytes.
    """
    if not uids:
        return []
    prior = [r for r in _pack_records(layout) if r["split"] == split and r["part"] == part]
    first = max((s["index"] for r in prior for s in r["shards"]), default=-1) + 1
    # Shards of this part at or beyond `first` were left by a killed pack: not referenced, remove.
    for p in layout.root.glob(f"{split}-{part:04d}-*.tar"):
        m = SHARD_RE.match(p.name)
        if m and int(m["index"]) >= first:
            p.unlink()
    remove_stale_tmp(layout.root, f"{split}-{part:04d}-")

    piece = max(1, shard_size // 4)
    indexes = {u: index_tar(layout.staged(u)) for u in sorted(uids)}
    pieces: list[tuple[int, str, int, int]] = []  # (piece number, uid, lo, hi)
    for u, samples in indexes.items():
        for n, lo in enumerate(range(0, len(samples), piece)):
            pieces.append((n, u, lo, min(lo + piece, len(samples))))
    pieces.sort()
    order: list[tuple[str, int]] = []
    block: list[tuple[str, int]] = []
    for bno, (_, u, lo, hi) in enumerate(pieces):
        block.extend((u, j) for j in range(lo, hi))
        if len(block) >= 4 * shard_size or bno == len(pieces) - 1:
            perm = np.random.default_rng(_seed(split, part, first, len(order))).permutation(len(block))
            order.extend(block[i] for i in perm)
            block = []

    rows: list[dict[str, Any]] = []
    readers = TarReaders()
    writer: ShardWriter | None = None
    vids: set[str] = set()
    try:
        for pos, (u, j) in enumerate(order):
            if writer is None:
                writer = ShardWriter(layout.root / shard_name(split, part, first + len(rows)))
                vids = set()
            key, refs = indexes[u][j]
            writer.write(key, {ext: readers.read(layout.staged(u), ref) for ext, ref in refs.items()})
            vids.add(u)
            if writer.count == shard_size or pos == len(order) - 1:
                count = writer.count
                size = writer.close()
                rows.append({"name": writer.path.name, "index": first + len(rows), "split": split,
                             "count": count, "bytes": size, "videos": sorted(vids)})
                writer = None
                failpoints.hit("shard-done")
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        readers.close()
    write_json(layout.packs / f"{split}-{part:04d}-{first:05d}.json",
               {"split": split, "part": part, "first": first, "videos": sorted(uids), "shards": rows})
    return rows


# ----------------------------------------------------------------------------------------------
# Finalize: sizes.json, manifest.csv, shards.csv




def _state_signature(layout: Layout) -> list[tuple[str, int]]:
    sig = []
    for d in (layout.packs, layout.videos):
        for p in sorted(d.glob("*.json")):
            with contextlib.suppress(FileNotFoundError):
                sig.append((p.name, p.stat().st_mtime_ns))
    return sig


def finalize(layout: Layout, videos: list[VideoFile], num_parts: int) -> None:
    """Regenerate the summary files from the records.

    Parts finishing at the same moment may each write these; each one re-reads the records after
    writing and repeats if they changed, so the last writer always publishes the complete state.
    """
    for _ in range(20):
        before = _state_signature(layout)
        packs = _pack_records(layout)
        shard_rows = sorted((s for r in packs for s in r["shards"]), key=lambda s: s["name"])
        write_json(layout.sizes, {s["name"]: s["count"] for s in shard_rows})
        by_video: dict[str, list[str]] = {}
        for s in shard_rows:
            for u in s["videos"]:
                by_video.setdefault(u, []).append(s["name"])
        with atomic_open(layout.shards_csv, "w") as f:
            w = csv.writer(f)
            w.writerow(["shard", "split", "samples", "bytes", "videos"])
            for s in shard_rows:
                w.writerow([s["name"], s["split"], s["count"], s["bytes"], len(s["videos"])])
        with atomic_open(layout.manifest, "w") as f:
            w = csv.DictWriter(f, MANIFEST_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for v in videos:
                rp = layout.record(v.video_uid)
                rec = read_json(rp) if rp.exists() else {"video_uid": v.video_uid, "source": v.source, "status": "pending"}
                row = dict(rec)
                row["warnings"] = "; ".join(rec.get("warnings") or [])
                row["shards"] = " ".join(by_video.get(v.video_uid, []))
                w.writerow(row)
        if _state_signature(layout) == before:
            return


# ----------------------------------------------------------------------------------------------
# The run


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        disable=not enabled, transient=False,
    )


def run(videos_dir: Path, out_dir: Path, cfg: IngestConfig = IngestConfig(), opts: RunOptions = RunOptions()) -> IngestSummary:
    """Ingest ``videos_dir`` into ``out_dir`` (resumable, idempotent; see module docstring)."""
    t0 = time.perf_counter()
    cfg.validate()
    videos_dir, out_dir = Path(videos_dir), Path(out_dir)
    num_parts, part = resolve_parts(opts.num_parts, opts.part_index)
    videos = find_videos(videos_dir)
    if not videos:
        raise IngestError(f"no videos found under {videos_dir} (extensions: mp4 mov mkv avi webm m4v, any case)")
    layout = Layout(out_dir)
    layout.make()
    check_config(layout, cfg)
    write_json(layout.source, {"videos_dir": str(videos_dir.resolve())})

    mine = [v for v in videos if assign_part(v.video_uid, num_parts) == part]
    splits = {v.video_uid: assign_split(v.video_uid, cfg.val_fraction, cfg.split_seed) for v in mine}
    packed = packed_uids(layout)
    todo: list[VideoFile] = []
    problems: list[dict[str, str]] = []
    for v in mine:
        rp = layout.record(v.video_uid)
        if rp.exists():
            rec = read_json(rp)
            changed = {k: rec.get(k) for k in ("size_bytes", "mtime_ns")} != fingerprint(v.path)
            if v.video_uid in packed:
                if changed:
                    problems.append({"source": v.source, "status": "warning",
                                     "reason": "file changed after it was packed; its shards keep the old content"})
                continue
            if not changed and not (opts.retry_failed and rec["status"] == "failed"):
                continue
        todo.append(v)
    todo_uids = tuple(v.video_uid for v in todo)
    for d in (layout.staging, layout.videos, layout.transcripts):
        remove_stale_tmp(d, todo_uids)

    processed: list[dict[str, Any]] = []
    workers = max(1, min(opts.workers, len(todo))) if todo else 1
    cpu_threads = max(1, available_cpus() // workers)
    todo.sort(key=lambda v: (-(v.path.stat().st_size if v.path.exists() else 0), v.source))  # longest first
    with _progress(opts.progress) as prog:
        tv = prog.add_task("videos", total=len(mine), completed=len(mine) - len(todo), extra="")
        totals = {"frames": 0, "audio": 0.0}

        def report(kind: str, n: float) -> None:
            totals[kind] += n
            prog.update(tv, extra=f"{totals['frames']:,} frames  {totals['audio'] / 3600:.2f} h audio")

        def done(rec: dict[str, Any]) -> None:
            processed.append(rec)
            prog.advance(tv)
            if rec["status"] != "ok":
                problems.append({"source": rec["source"], "status": rec["status"], "reason": rec["reason"]})
                prog.console.print(f"[yellow]{rec['status']}[/]: {rec['source']}: {rec['reason']}")
                if opts.strict:
                    raise IngestError(f"--strict: {rec['source']} {rec['status']}: {rec['reason']}")

        if todo and workers == 1:
            tr = Transcriber(cfg.whisper_model, opts.device, opts.compute_type, cpu_threads, opts.batch_size,
                             cfg.language, cfg.thresholds)
            for v in todo:
                rec = process_video(v, splits[v.video_uid], part, cfg, layout, tr, report)
                write_json(layout.record(v.video_uid), rec)
                failpoints.hit("video-done")
                done(rec)
        elif todo:
            ctx = mp.get_context("spawn")  # never fork: LanceDB and CUDA state do not survive it
            q = ctx.Queue()
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(
                    asdict(cfg), str(layout.root), opts.device, opts.compute_type, opts.batch_size, cpu_threads, q)) as ex:
                futures = {ex.submit(_worker_run, v, splits[v.video_uid], part) for v in todo}
                try:
                    while futures:
                        finished, futures = cf.wait(futures, timeout=0.25, return_when=cf.FIRST_COMPLETED)
                        _drain(q, report)
                        for fut in finished:
                            done(fut.result())
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
                _drain(q, report)

    # Stage 2: pack every finished, unpacked ok video of this part.
    records = {v.video_uid: read_json(layout.record(v.video_uid)) for v in mine if layout.record(v.video_uid).exists()}
    packed = packed_uids(layout)
    for split in SPLITS:
        uids = sorted(u for u, r in records.items() if r["status"] == "ok" and r["split"] == split
                      and u not in packed and layout.staged(u).exists())
        pack_split(layout, split, part, uids, cfg.shard_size)
        if not opts.keep_staging:
            for u in uids:
                layout.staged(u).unlink(missing_ok=True)
    for u, r in records.items():  # staged tars of skipped/failed videos are never used
        if r["status"] != "ok":
            layout.staged(u).unlink(missing_ok=True)
    finalize(layout, videos, num_parts)

    summary = IngestSummary(part=part, num_parts=num_parts, videos_total=len(videos), videos_in_part=len(mine),
                            processed_now=len(processed), reused=len(mine) - len(todo), problems=problems)
    for r in records.values():
        summary.status_counts[r["status"]] = summary.status_counts.get(r["status"], 0) + 1
        summary.speech_hours += (r.get("speech_s") or 0) / 3600
        summary.audio_hours += (r.get("audio_s") or 0) / 3600
    sizes = read_json(layout.sizes)
    for name, n in sizes.items():
        s = SHARD_RE.match(name)["split"]  # type: ignore[index]
        summary.samples[s] = summary.samples.get(s, 0) + n
        summary.shards[s] = summary.shards.get(s, 0) + 1
    summary.elapsed_s = round(time.perf_counter() - t0, 2)
    return summary


def _drain(q: Any, report: Report) -> None:
    while True:
        try:
            kind, n = q.get_nowait()
        except queue_mod.Empty:
            return
        report(kind, n)
