"""``egoindex ingest``: :func:`egoindex.ingest.run.run` with its two config objects as options.

The defaults are those of :class:`~egoindex.ingest.config.IngestConfig` (what decides the output)
and :class:`~egoindex.ingest.config.RunOptions` (how to run), so the CLI cannot drift from the
library: a changed default changes both.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape
from rich.table import Table

from egoindex.cli.common import console
from egoindex.dataset.layout import ShardsLayout
from egoindex.ingest.config import IngestConfig, RunOptions
from egoindex.media.captions import format_names

if TYPE_CHECKING:
    from egoindex.ingest.run import IngestSummary

_D = IngestConfig()
_R = RunOptions()
#: How many unreadable transcript files the summary names (all are in ``IngestSummary.captions_failed``).
UNREAD_EXAMPLES = 5


def ingest(
    videos_dir: Path = typer.Argument(..., help="Folder of raw videos (searched recursively)."),
    shards_dir: Path = typer.Argument(..., help="Output folder for WebDataset shards, manifest and transcripts."),
    fps: float = typer.Option(_D.fps, "--fps", help="Frames sampled per second of video (1-5 typical)."),
    sampling: str = typer.Option(
        _D.sampling, "--sampling",
        help="exact: the frame on screen at each k/fps; fast: a frame within 0.5 s of it (the nearest keyframe "
             "when one is that close), decoding far less (docs/formats.md#frame-sampling)."),
    short_side: int = typer.Option(
        _D.short_side, "--short-side", help="Resize frames so the short side is this (never upscales; 0 = keep)."),
    jpeg_quality: int = typer.Option(_D.jpeg_quality, "--jpeg-quality", help="JPEG quality of stored frames."),
    whisper_model: str = typer.Option(
        _D.whisper_model, "--whisper-model",
        help="'bundled' (offline tiny.en), a faster-whisper name (needs the hub) or a local CTranslate2 model folder."),
    language: Optional[str] = typer.Option(
        _D.language, "--language", help="Spoken language for multilingual models (default: detect)."),
    device: str = typer.Option(_R.device, "--device", help="Whisper device: auto, cpu or cuda."),
    compute_type: str = typer.Option(
        _R.compute_type, "--compute-type", help="CTranslate2 compute type (auto: int8 on CPU, float16 on GPU)."),
    batch_size: int = typer.Option(_R.batch_size, "--batch-size", help="Batched Whisper inference size on GPU."),
    max_gap: float = typer.Option(
        _D.max_gap, "--max-gap",
        help="A frame outside every utterance takes the nearest one within this many seconds."),
    max_no_speech_prob: float = typer.Option(
        _D.max_no_speech_prob, "--max-no-speech-prob",
        help="A Whisper window above this no_speech_prob drops its utterances below --speech-confidence."),
    speech_confidence: float = typer.Option(
        _D.speech_confidence, "--speech-confidence",
        help="Confidence an utterance needs in a window above --max-no-speech-prob."),
    min_confidence: float = typer.Option(
        _D.min_confidence, "--min-confidence",
        help="Drop utterances whose confidence (geometric mean of their word probabilities) is below this."),
    max_compression_ratio: float = typer.Option(
        _D.max_compression_ratio, "--max-compression-ratio",
        help="Drop utterances whose own text compresses more than this (from --min-compression-chars on)."),
    min_compression_chars: int = typer.Option(
        _D.min_compression_chars, "--min-compression-chars",
        help="Shorter texts are not judged by compression (zlib cannot judge them)."),
    max_window_compression: float = typer.Option(
        _D.max_window_compression, "--max-window-compression",
        help="A Whisper window compressing more than this is a decoding loop: its repeated pieces are dropped."),
    max_repeats: int = typer.Option(
        _D.max_repeats, "--max-repeats",
        help="Drop utterances with one phrase repeated back to back this often (a decoding loop)."),
    min_loop_words: int = typer.Option(
        _D.min_loop_words, "--min-loop-words",
        help="A repeated phrase counts as a loop only when the run covers this many words."),
    val_fraction: float = typer.Option(
        _D.val_fraction, "--val-fraction", help="Fraction of videos (by a hash of their uid) in the val split."),
    split_seed: int = typer.Option(_D.split_seed, "--split-seed", help="Salt of the split hash."),
    shard_size: int = typer.Option(_D.shard_size, "--shard-size", help="Samples per shard."),
    workers: int = typer.Option(_R.workers, "--workers", "-j", help="Parallel worker processes on this machine."),
    num_parts: Optional[int] = typer.Option(
        _R.num_parts, "--num-parts",
        help="Split the videos across this many array tasks (default: $SLURM_ARRAY_TASK_COUNT or 1)."),
    part_index: Optional[int] = typer.Option(
        _R.part_index, "--part-index", help="This task's part (default: from $SLURM_ARRAY_TASK_ID, else 0)."),
    allow_no_audio: bool = typer.Option(
        _D.allow_no_audio, "--allow-no-audio",
        help="Keep frames of videos without an audio stream (empty captions) instead of skipping them."),
    keep_truncated: bool = typer.Option(
        _D.keep_truncated, "--keep-truncated",
        help="Keep the decodable part of truncated videos instead of skipping them."),
    strict: bool = typer.Option(_R.strict, "--strict", help="Stop with an error at the first skipped or failed video."),
    retry_failed: bool = typer.Option(
        _R.retry_failed, "--retry-failed", help="Process videos recorded as failed again."),
    keep_staging: bool = typer.Option(
        _R.keep_staging, "--keep-staging", help="Keep the per-video staging tars after packing."),
    transcripts: Optional[Path] = typer.Option(
        None, "--transcripts",
        help="Captions file (or folder of them) whose videos take its captions instead of Whisper's, e.g. EgoClip's "
             "egoclip.csv, or a folder of per-video .srt/.vtt/.cha/.eaf/.TextGrid files named after their videos "
             "(docs/formats.md#captions-from-files)."),
    transcript_format: str = typer.Option(
        "auto", "--transcript-format",
        help=f"Format of --transcripts: {', '.join(format_names())} (auto: each file's header, then its extension)."),
    transcript_map: Optional[Path] = typer.Option(
        None, "--transcript-map",
        help="CSV with header video,file: the video (uid, relative path or stem) of each per-video transcript "
             "(path relative to the --transcripts folder) not named after it (docs/formats.md#captions-from-files)."),
    no_whisper: bool = typer.Option(
        _D.no_whisper, "--no-whisper",
        help="Do not run Whisper: videos not in --transcripts keep their frames with empty captions."),
    rttm: Optional[Path] = typer.Option(
        None, "--rttm",
        help="Speaker turns (an .rttm file, or a folder of them: Voice Type Classifier, pyannote) that give each "
             "utterance the speaker overlapping it most (docs/formats.md#speaker-turns-rttm)."),
    participants: Optional[Path] = typer.Option(
        None, "--participants",
        help="CSV of video,child_id,age_days,date,location[,...]: joined into the store for --child / --age-min "
             "filters (docs/formats.md#participants-csv)."),
    blackouts: Optional[Path] = typer.Option(
        None, "--blackouts",
        help="Ranges never to ingest: a CSV video,start,end or another folder's _redactions/blackouts.json, added "
             "to SHARDS_DIR/_redactions/blackouts.json (docs/formats.md#blackouts-and-the-redaction-log)."),
    quiet: bool = typer.Option(not _R.progress, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Decode frames, transcribe speech (faster-whisper) and write WebDataset shards split by video.

    Captioned frames go to SHARDS_DIR/{train,val}-*.tar (what CLIP trainers read; sizes.json
    counts pairs), frames without speech to SHARDS_DIR/uncaptioned/ (the build reads both). The
    end of the output is the --train-data pattern for open_clip_train.

    Resumable: kill it at any point and run the same command again; finished videos are not
    redone and the shards equal those of an uninterrupted run.

    Example: egoindex ingest demo/videos demo/shards --fps 1 --workers 2

    Human narrations: egoindex ingest ego4d/v1/full_scale shards --transcripts egoclip.csv --no-whisper
    """
    from egoindex.ingest.run import run  # imports torch (webdataset) and PyAV

    cfg = IngestConfig(
        fps=fps, sampling=sampling, short_side=short_side, jpeg_quality=jpeg_quality, whisper_model=whisper_model,
        language=language, max_gap=max_gap, max_no_speech_prob=max_no_speech_prob,
        speech_confidence=speech_confidence, min_confidence=min_confidence,
        max_compression_ratio=max_compression_ratio, min_compression_chars=min_compression_chars,
        max_window_compression=max_window_compression,
        max_repeats=max_repeats, min_loop_words=min_loop_words,
        val_fraction=val_fraction, split_seed=split_seed, shard_size=shard_size,
        allow_no_audio=allow_no_audio, keep_truncated=keep_truncated, no_whisper=no_whisper,
    )
    opts = RunOptions(workers=workers, num_parts=num_parts, part_index=part_index, device=device,
                      compute_type=compute_type, batch_size=batch_size, strict=strict,
                      retry_failed=retry_failed, keep_staging=keep_staging, progress=not quiet)
    _print_summary(run(videos_dir, shards_dir, cfg, opts, transcripts, transcript_format, rttm=rttm,
                       participants=participants, transcript_map=transcript_map, blackouts=blackouts), shards_dir)


def _print_summary(s: IngestSummary, shards_dir: Path) -> None:
    t = Table(title=f"ingest: {shards_dir}", show_header=False)
    t.add_row("part", f"{s.part + 1} of {s.num_parts}: {s.videos_in_part} of {s.videos_total} videos")
    t.add_row("this run", f"{s.processed_now} processed, {s.reused} already done")
    t.add_row("videos", ", ".join(f"{k} {v}" for k, v in sorted(s.status_counts.items())))
    samples = ", ".join(f"{k} {v:,} in {s.shards.get(k, 0)} shards" for k, v in sorted(s.samples.items()))
    t.add_row("captioned pairs", samples or "none")
    frames = ", ".join(f"{k} {v:,} in {s.uncaptioned_shards.get(k, 0)} shards"
                       for k, v in sorted(s.uncaptioned.items()))
    t.add_row("uncaptioned frames", (frames or "none") + " (in uncaptioned/, for the build)")
    t.add_row("audio / speech", f"{s.audio_hours:.2f} h / {s.speech_hours:.2f} h")
    if s.captions_format is not None:
        t.add_row("captions file", f"{s.captions_format}: {s.captions_rows:,} rows, "
                  f"{s.captions_videos} videos of this part take its captions")
        skipped = sum(s.captions_skipped.values())
        if skipped:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.captions_skipped.items()))
            t.add_row("rows skipped", escape(f"{skipped:,} ({kinds}); first: {'; '.join(s.captions_skip_examples)}"))
        if s.captions_notes:
            t.add_row("captions notes", escape(", ".join(f"{k} {v:,}" for k, v in sorted(s.captions_notes.items()))))
        if s.captions_failed:
            first = "; ".join(f"{k}: {v}" for k, v in list(s.captions_failed.items())[:UNREAD_EXAMPLES])
            t.add_row("transcripts not read", escape(f"{len(s.captions_failed):,} (their videos have no file captions: "
                                                     f"Whisper, unless --no-whisper); {first}"))
        if s.captions_unmatched:
            t.add_row("file videos not found", escape(f"{s.captions_unmatched:,} (e.g. "
                      f"{', '.join(s.captions_unmatched_examples)}): no video of VIDEOS_DIR has that uid or name"))
    _annotation_rows(t, s)
    t.add_row("time", f"{s.elapsed_s:.1f} s")
    console.print(t)
    if s.problems:
        p = Table(title="recorded problems")
        for col in ("source", "status", "reason"):
            p.add_column(col)
        for row in s.problems:
            p.add_row(row["source"], row["status"], row["reason"])
        console.print(p)
    console.print(f"manifest: {ShardsLayout(shards_dir).manifest}")
    if s.train_data:
        # soft_wrap: the command line is printed whole, never cut at the terminal's width
        console.print("open_clip_train (python -m open_clip_train.main ...):" +
                      ("" if s.complete else " (other parts are unfinished: these are the shards so far)"),
                      soft_wrap=True)
        console.print(open_clip_args(s), soft_wrap=True, markup=False, highlight=False)


def _annotation_rows(t: Table, s: IngestSummary) -> None:
    """The summary's lines for ``--rttm`` and ``--participants``."""
    if s.rttm is not None:
        r = s.rttm
        t.add_row("speaker turns", escape(f"{r.turns:,} turns of {', '.join(r.labels)} in {r.files} RTTM files; "
                                          f"{r.videos} videos of this part take them"))
        if r.skipped:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r.skipped.items()))
            t.add_row("RTTM rows skipped", escape(f"{sum(r.skipped.values()):,} ({kinds}); first: "
                                                  f"{'; '.join(r.skip_examples)}"))
        if r.unmatched:
            t.add_row("RTTM file ids not found", escape(f"{r.unmatched:,} (e.g. {', '.join(r.unmatched_examples)}): "
                                                        "no video of VIDEOS_DIR has that uid or name"))
    if s.participants is not None:
        p = s.participants
        extra = f" (extra columns: {', '.join(p.extra_columns)})" if p.extra_columns else ""
        t.add_row("participants", escape(f"{p.rows:,} rows, {p.videos} videos matched{extra}"))
        if p.unmatched:
            t.add_row("participant rows not found", escape(f"{p.unmatched:,} (e.g. {', '.join(p.unmatched_examples)}): "
                                                           "no video of VIDEOS_DIR has that uid or name"))


def open_clip_args(s: IngestSummary) -> str:
    """The data options of open_clip_train for these shards: the pair shards as brace patterns
    and their number of pairs (what ``sizes.json`` says, so passing it changes nothing but is
    explicit), ``--dataset-type webdataset``."""
    args = ["--train-data", shlex.quote(s.train_data), "--train-num-samples", str(s.samples.get("train", 0)),
            "--dataset-type", "webdataset"]
    if s.val_data:
        args += ["--val-data", shlex.quote(s.val_data), "--val-num-samples", str(s.samples.get("val", 0))]
    return " ".join(args)


def register(app: typer.Typer) -> None:
    """Add ``ingest``."""
    app.command("ingest")(ingest)
