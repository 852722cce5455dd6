"""Ingest: a folder of raw videos -> captioned WebDataset shards, split by video.

Captions are Whisper's, or, with ``--transcripts``, a captions file's (or a folder of them,
``--transcript-map`` naming the video of files not named after it) for the videos it names
(:func:`match_captions`; the others, and those whose per-video file could not be read, use
Whisper unless ``--no-whisper``).

Two stages, so that a kill at any moment loses at most the videos in flight and a rerun gives
exactly the shards of an uninterrupted run:

1. Per video (:mod:`egoindex.ingest.video`, parallel over ``--workers`` processes and
   ``--num-parts`` array tasks): transcribe the audio, sample frames, pair each frame with its
   utterance, and write the video's samples to ``_ingest/staging/{uid}.tar`` and its record to
   ``_ingest/videos/{uid}.json`` (both atomic). A video with a record is finished and is not
   redone on a rerun, unless its file changed (size or mtime) or ``--retry-failed`` asks.
2. Per part, once its videos are finished (:mod:`egoindex.ingest.pack`): pack the staged samples,
   interleaving videos, into pair shards ``{split}-{part}-{n}.tar`` (captioned frames only: what
   open_clip_train is pointed at) and ``uncaptioned/uncaptioned-{split}-{part}-{n}.tar`` (the
   frames without a caption, which only the build reads); ``_ingest/packs/*.json`` records which
   videos went into which shards.

Finally both ``sizes.json`` files (the root one counts pairs: what open_clip reads),
``manifest.csv`` (one row per video) and ``shards.csv`` are regenerated from the records, by
whichever part finishes last; the summary carries the ``--train-data`` pattern for
open_clip_train. The files and their formats are owned by :mod:`egoindex.dataset.layout`; what decides the output is
:class:`IngestConfig` (checked on rerun), how to run it is :class:`RunOptions`.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import queue as queue_mod
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import remove_stale_tmp
from egoindex.core.progress import progress_bar
from egoindex.core.resources import available_cpus
from egoindex.dataset.blackouts import add_blackouts, read_blackout_list, refuse_if_pending
from egoindex.dataset.layout import ShardsLayout, read_sizes, read_video_record, write_participants, write_source
from egoindex.dataset.shards import SHARD_RE, list_pair_shards, train_data_pattern
from egoindex.errors import IngestError, MediaError
from egoindex.ingest.annotations import ParticipantsReport, RttmReport, load_participants, load_rttm
from egoindex.ingest.config import SPLITS, IngestConfig, RunOptions, check_config, resolve_parts
from egoindex.ingest.pack import finalize, pack_split, packed_uids
from egoindex.ingest.video import Report, finish_video, fingerprint, init_worker, run_in_worker
from egoindex.media.captions import Captions, read_captions
from egoindex.media.discover import VideoFile, assign_part, assign_split, describe_extensions, find_videos
from egoindex.media.speech import Transcriber, Utterance

__all__ = ["IngestConfig", "IngestError", "IngestSummary", "RunOptions", "run"]


@dataclass
class IngestSummary:
    """What one run (one part) did, for the CLI's summary and the benchmarks."""

    part: int
    num_parts: int
    videos_total: int
    videos_in_part: int
    processed_now: int
    reused: int
    status_counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)  # captioned pairs per split
    shards: dict[str, int] = field(default_factory=dict)  # pair shards per split
    uncaptioned: dict[str, int] = field(default_factory=dict)  # frames without a caption per split
    uncaptioned_shards: dict[str, int] = field(default_factory=dict)
    #: open_clip_train's ``--train-data`` / ``--val-data`` for the published pair shards ("" if none)
    train_data: str = ""
    val_data: str = ""
    #: False while videos of other parts are unfinished: the patterns cover the shards so far
    complete: bool = True
    speech_hours: float = 0.0
    audio_hours: float = 0.0
    elapsed_s: float = 0.0
    problems: list[dict[str, str]] = field(default_factory=list)
    #: ``--transcripts``: its format (``mixed`` for a folder of several), rows read, captions used,
    #: skipped rows by reason (and the first few ``file:line: reason``), videos of this run that
    #: take file captions, the file's video uids that match no video (count and the first few),
    #: and the per-video files that could not be read (relative path -> reason; their videos use
    #: Whisper)
    captions_format: str | None = None
    captions_rows: int = 0
    captions_skipped: dict[str, int] = field(default_factory=dict)
    captions_skip_examples: list[str] = field(default_factory=list)
    captions_notes: dict[str, int] = field(default_factory=dict)
    captions_videos: int = 0
    captions_unmatched: int = 0
    captions_unmatched_examples: list[str] = field(default_factory=list)
    captions_failed: dict[str, str] = field(default_factory=dict)
    #: ``--rttm`` / ``--participants``: what the file held and matched (None without it)
    rttm: RttmReport | None = None
    participants: ParticipantsReport | None = None


#: How many unmatched caption-file video uids the summary names.
UNMATCHED_EXAMPLES = 5


def caption_keys(v: VideoFile) -> list[str]:
    """The names under which a captions file may refer to a video, most specific first: its
    egoindex uid, its relative path, the path without extension, the file name without
    extension (Ego4D's ``{video_uid}.mp4`` files: EgoClip's ``video_uid``)."""
    src = v.source
    stem = src.rsplit("/", 1)[-1]
    keys = [v.video_uid, src, src.rsplit(".", 1)[0] if "." in stem else src, stem.rsplit(".", 1)[0]]
    return list(dict.fromkeys(keys))


def match_captions(captions: Captions, videos: list[VideoFile]) -> tuple[dict[str, list[Utterance]], list[str]]:
    """``{egoindex video uid: its file captions}`` and the file's video uids that match no video
    (in file order; those read but not kept, ``captions.ignored``, first). A video takes the captions of its first key (:func:`caption_keys`) present
    in the file; a file uid that two videos would take (``a/x.mp4`` and ``b/x.mp4`` for ``x``)
    is an :class:`IngestError`, since either choice would be a guess."""
    claims: dict[str, list[VideoFile]] = {}
    for v in videos:
        key = next((k for k in caption_keys(v) if k in captions), None)
        if key is not None:
            claims.setdefault(key, []).append(v)
    for key, vs in claims.items():
        if len(vs) > 1:
            raise IngestError(f"captions for {key!r} match {len(vs)} videos ({', '.join(x.source for x in vs[:3])}); "
                              "name the video by its relative path (without extension) in the captions file")
    by_uid = {vs[0].video_uid: captions[key] for key, vs in claims.items()}
    return by_uid, [*captions.ignored, *(k for k in captions if k not in claims)]


def load_captions(cfg: IngestConfig, transcripts: Path | None, fmt: str, videos: list[VideoFile],
                  transcript_map: Path | None = None) -> tuple[IngestConfig, Captions | None]:
    """Read ``--transcripts`` (utterances only for uids that name one of ``videos``; files named
    by ``--transcript-map`` take its video) and put its identity into the config (sha256, the
    map's included, and resolved format), so that check_config refuses a rerun with another
    file; a config that names a captions file needs it."""
    if transcripts is None:
        if cfg.captions_sha256 is not None:
            raise IngestError("this IngestConfig names a captions file (captions_sha256); pass it as transcripts")
        if fmt != "auto":
            raise IngestError(f"--transcript-format {fmt} needs --transcripts")
        if transcript_map is not None:
            raise IngestError("--transcript-map needs --transcripts (the folder its file paths are relative to)")
        return cfg, None
    names = {k for v in videos for k in caption_keys(v)}
    try:
        captions = read_captions(Path(transcripts), fmt, keep=names.__contains__, video_map=transcript_map)
    except MediaError as e:
        raise IngestError(f"--transcripts: {e}") from e
    sha = captions.sha256
    if cfg.captions_sha256 not in (None, sha):
        raise IngestError(f"--transcripts {transcripts} has sha256 {sha}, not the config's {cfg.captions_sha256}")
    return replace(cfg, captions_sha256=sha, captions_format=captions.format), captions


def videos_to_do(layout: ShardsLayout, mine: list[VideoFile], retry_failed: bool,
                 problems: list[dict[str, str]]) -> list[VideoFile]:
    """The resume rule: a video is redone unless it has a record for the same file (size and
    mtime) that is not a failure to retry. A packed video is never redone (its shards are
    published); a changed file is reported in ``problems`` instead."""
    packed = packed_uids(layout)
    todo: list[VideoFile] = []
    for v in mine:
        rec = read_video_record(layout, v.video_uid)
        if rec is not None:
            changed = {k: rec.get(k) for k in ("size_bytes", "mtime_ns")} != fingerprint(v.path)
            if v.video_uid in packed:
                if changed:
                    problems.append({"source": v.source, "status": "warning",
                                     "reason": "file changed after it was packed; its shards keep the old content"})
                continue
            if not changed and not (retry_failed and rec["status"] == "failed"):
                continue
        todo.append(v)
    return todo


def run(videos_dir: Path, out_dir: Path, cfg: IngestConfig = IngestConfig(),
        opts: RunOptions = RunOptions(), transcripts: Path | None = None,
        transcript_format: str = "auto", rttm: Path | None = None, participants: Path | None = None,
        transcript_map: Path | None = None, blackouts: Path | None = None) -> IngestSummary:
    """Ingest ``videos_dir`` into ``out_dir`` (resumable, idempotent; see module docstring).

    ``transcripts``: a captions file or folder (:mod:`egoindex.media.captions`, ``transcript_format``
    one of its formats or ``auto``) whose videos take its captions instead of Whisper's;
    ``transcript_map``: a ``video,file`` CSV naming the video of per-video files not named after it.
    ``rttm``: speaker turns (a file or folder, :mod:`egoindex.media.speakers`) that give the
    utterances of the videos they name a speaker; ``participants``: a participants CSV
    (:mod:`egoindex.ingest.participants`) written to ``SHARDS_DIR/participants.json`` for the build.
    ``blackouts``: a blackout list (CSV ``video,start,end`` or another folder's ``blackouts.json``)
    added to ``SHARDS_DIR/_redactions/blackouts.json``, whose ranges are never ingested
    (:mod:`egoindex.dataset.blackouts`); a SHARDS_DIR with an unfinished redaction is refused."""
    t0 = time.perf_counter()
    cfg.validate()
    videos_dir, out_dir = Path(videos_dir), Path(out_dir)
    num_parts, part = resolve_parts(opts.num_parts, opts.part_index)
    if not videos_dir.is_dir():
        raise IngestError(f"videos folder not found: {videos_dir.resolve()}")
    videos = find_videos(videos_dir)
    if not videos:
        raise IngestError(f"no videos found under {videos_dir} (extensions: {describe_extensions()})")
    cfg, captions = load_captions(cfg, transcripts, transcript_format, videos, transcript_map)
    # speaker turns (--rttm) and the participants table (--participants): identities into cfg
    cfg, turns, rttm_report = load_rttm(cfg, rttm, videos, caption_keys)
    cfg, people, people_report = load_participants(cfg, participants, videos, caption_keys)
    cfg.validate()
    file_captions, unmatched = match_captions(captions, videos) if captions is not None else ({}, [])
    layout = ShardsLayout(out_dir)
    refuse_if_pending(layout.root, "ingest into it")
    blackout_list = read_blackout_list(blackouts) if blackouts is not None else None
    layout.make()
    check_config(layout, cfg)
    if blackout_list is not None:
        add_blackouts(layout.root, blackout_list)
    if people is not None:
        write_participants(layout, {uid: p.to_json() for uid, p in people.items()})
    write_source(layout, videos_dir)

    mine = [v for v in videos if assign_part(v.video_uid, num_parts) == part]
    splits = {v.video_uid: assign_split(v.video_uid, cfg.val_fraction, cfg.split_seed) for v in mine}
    problems: list[dict[str, str]] = []
    todo = videos_to_do(layout, mine, opts.retry_failed, problems)
    todo_uids = tuple(v.video_uid for v in todo)
    for d in (layout.staging, layout.videos, layout.transcripts):
        remove_stale_tmp(d, todo_uids)

    processed: list[dict[str, Any]] = []
    workers = max(1, min(opts.workers, len(todo))) if todo else 1
    cpu_threads = max(1, available_cpus() // workers)
    todo.sort(key=lambda v: (-(v.path.stat().st_size if v.path.exists() else 0), v.source))  # longest first
    with progress_bar(enabled=opts.progress, fields="extra") as prog:
        tv = prog.add_task("[bold]videos[/bold]", total=len(mine), completed=len(mine) - len(todo), extra="")
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

        # Whisper is loaded only when a video to do has no file captions and --no-whisper is off
        need_whisper = not cfg.no_whisper and any(v.video_uid not in file_captions for v in todo)
        if todo and workers == 1:
            tr = Transcriber(cfg.whisper_model, opts.device, opts.compute_type, cpu_threads, opts.batch_size,
                             cfg.language, cfg.thresholds) if need_whisper else None
            for v in todo:
                done(finish_video(v, splits[v.video_uid], part, cfg, layout, tr, report,
                                  file_captions.get(v.video_uid), turns.get(v.video_uid)))
        elif todo:
            ctx = mp.get_context("spawn")  # never fork: LanceDB and CUDA state do not survive it
            q = ctx.Queue()
            init = (asdict(cfg), str(layout.root), opts.device, opts.compute_type, opts.batch_size, cpu_threads, q,
                    need_whisper)
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker, initargs=init) as ex:
                futures = {ex.submit(run_in_worker, v, splits[v.video_uid], part, file_captions.get(v.video_uid),
                                     turns.get(v.video_uid))
                           for v in todo}
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
    records = {v.video_uid: rec for v in mine if (rec := read_video_record(layout, v.video_uid)) is not None}
    packed = packed_uids(layout)
    for split in SPLITS:
        uids = sorted(u for u, r in records.items() if r["status"] == "ok" and r["split"] == split
                      and u not in packed and layout.staged(u).exists())
        pack_split(layout, split, part, uids, cfg.shard_size, max_gap=cfg.max_gap)
        if not opts.keep_staging:
            for u in uids:
                layout.staged(u).unlink(missing_ok=True)
    for u, r in records.items():  # staged tars of skipped/failed videos are never used
        if r["status"] != "ok":
            layout.staged(u).unlink(missing_ok=True)
    finalize(layout, videos, num_parts)

    summary = IngestSummary(part=part, num_parts=num_parts, videos_total=len(videos), videos_in_part=len(mine),
                            processed_now=len(processed), reused=len(mine) - len(todo), problems=problems)
    if captions is not None:
        summary.captions_format, summary.captions_rows = captions.format, captions.rows
        summary.captions_skipped, summary.captions_skip_examples = dict(captions.skipped), list(captions.examples)
        summary.captions_notes = dict(captions.notes)
        summary.captions_videos = sum(v.video_uid in file_captions for v in mine)
        summary.captions_unmatched = len(unmatched)
        summary.captions_unmatched_examples = unmatched[:UNMATCHED_EXAMPLES]
        summary.captions_failed = dict(captions.failed)
    if rttm_report is not None:
        rttm_report.videos = sum(v.video_uid in turns for v in mine)
    summary.rttm, summary.participants = rttm_report, people_report
    for r in records.values():
        summary.status_counts[r["status"]] = summary.status_counts.get(r["status"], 0) + 1
        summary.speech_hours += (r.get("speech_s") or 0) / 3600
        summary.audio_hours += (r.get("audio_s") or 0) / 3600
    sizes = read_sizes(layout)
    for name, n in sizes.items():
        m = SHARD_RE.match(name)
        if m is None:
            continue
        samples, shards = (summary.uncaptioned, summary.uncaptioned_shards) if m["uncaptioned"] else \
            (summary.samples, summary.shards)
        samples[m["split"]] = samples.get(m["split"], 0) + n
        shards[m["split"]] = shards.get(m["split"], 0) + 1
    patterns = {}
    for split in SPLITS:
        paths = [p.resolve() for p in list_pair_shards(layout, split) if p.name in sizes]
        patterns[split] = train_data_pattern(paths) if paths else ""
    summary.train_data, summary.val_data = patterns["train"], patterns["val"]
    packed = packed_uids(layout)
    summary.complete = all(r is not None and (r["status"] != "ok" or v.video_uid in packed)
                           for v in videos for r in [read_video_record(layout, v.video_uid)])
    summary.elapsed_s = round(time.perf_counter() - t0, 2)
    return summary


def _drain(q: Any, report: Report) -> None:
    """Pass the workers' queued progress reports on to ``report``."""
    while True:
        try:
            kind, n = q.get_nowait()
        except queue_mod.Empty:
            return
        report(kind, n)
