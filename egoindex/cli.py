"""The ``egoindex`` command line: thin Typer commands over the library and the pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from egoindex import __version__

app = typer.Typer(
    name="egoindex",
    help="Turn a folder of egocentric (head-camera) video into a searchable, benchmarkable feature store.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console()


def _version(value: bool) -> None:
    if value:
        console.print(f"egoindex {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """egoindex: ingest -> pretrain -> build -> query, on a laptop or a SLURM cluster."""


@app.command("demo-data")
def demo_data(
    out_dir: Path = typer.Argument(..., help="Folder to write the demo videos and ground_truth.json into."),
    videos: int = typer.Option(12, "--videos", min=1, help="Number of videos."),
    seconds: float = typer.Option(60.0, "--seconds", min=5.0, help="Length of each video in seconds."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same corpus)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write a synthetic head-camera corpus with real spoken narration (espeak-ng), offline.

    Rendered scenes (rooms, coloured objects, actions, camera drift) with a narrator describing
    each one, in varied containers and file names (.MP4, .mov, .mkv, .webm, spaces, unicode),
    plus ground_truth.json with every scene's time, object, colour, action and narration.

    Example: egoindex demo-data demo/videos --videos 12 --seconds 60
    """
    from egoindex.demo.corpus import write_demo_corpus

    gt = write_demo_corpus(out_dir, n_videos=videos, seconds=seconds, seed=seed, progress=not quiet)
    console.print(f"demo corpus ready: {gt.parent} (ground truth: {gt.name})")


@app.command()
def ingest(
    videos_dir: Path = typer.Argument(..., help="Folder of raw videos (searched recursively)."),
    shards_dir: Path = typer.Argument(..., help="Output folder for WebDataset shards, manifest and transcripts."),
    fps: float = typer.Option(1.0, "--fps", help="Frames sampled per second of video (1-5 typical)."),
    short_side: int = typer.Option(256, "--short-side", help="Resize frames so the short side is this (never upscales; 0 = keep)."),
    jpeg_quality: int = typer.Option(90, "--jpeg-quality", help="JPEG quality of stored frames."),
    whisper_model: str = typer.Option("bundled", "--whisper-model", help="'bundled' (offline tiny.en), a faster-whisper name (needs the hub) or a local CTranslate2 model folder."),
    language: Optional[str] = typer.Option(None, "--language", help="Spoken language for multilingual models (default: detect)."),
    device: str = typer.Option("auto", "--device", help="Whisper device: auto, cpu or cuda."),
    compute_type: str = typer.Option("auto", "--compute-type", help="CTranslate2 compute type (auto: int8 on CPU, float16 on GPU)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Batched Whisper inference size on GPU."),
    max_gap: float = typer.Option(1.0, "--max-gap", help="A frame outside every utterance takes the nearest one within this many seconds."),
    max_no_speech_prob: float = typer.Option(0.6, "--max-no-speech-prob", help="Drop utterances whose no_speech_prob is above this."),
    min_avg_logprob: float = typer.Option(-1.0, "--min-avg-logprob", help="Drop utterances whose avg_logprob is below this."),
    max_compression_ratio: float = typer.Option(2.4, "--max-compression-ratio", help="Drop utterances whose compression ratio is above this (repetition)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Fraction of videos (by a hash of their uid) in the val split."),
    split_seed: int = typer.Option(0, "--split-seed", help="Salt of the split hash."),
    shard_size: int = typer.Option(2000, "--shard-size", help="Samples per shard."),
    workers: int = typer.Option(1, "--workers", "-j", help="Parallel worker processes on this machine."),
    num_parts: Optional[int] = typer.Option(None, "--num-parts", help="Split the videos across this many array tasks (default: $SLURM_ARRAY_TASK_COUNT or 1)."),
    part_index: Optional[int] = typer.Option(None, "--part-index", help="This task's part (default: from $SLURM_ARRAY_TASK_ID, else 0)."),
    allow_no_audio: bool = typer.Option(False, "--allow-no-audio", help="Keep frames of videos without an audio stream (empty captions) instead of skipping them."),
    keep_truncated: bool = typer.Option(False, "--keep-truncated", help="Keep the decodable part of truncated videos instead of skipping them."),
    strict: bool = typer.Option(False, "--strict", help="Stop with an error at the first skipped or failed video."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Process videos recorded as failed again."),
    keep_staging: bool = typer.Option(False, "--keep-staging", help="Keep the per-video staging tars after packing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Decode frames, transcribe speech (faster-whisper) and write WebDataset shards split by video.

    Resumable: kill it at any point and run the same command again; finished videos are not
    redone and the shards equal those of an uninterrupted run.

    Example: egoindex ingest demo/videos demo/shards --fps 1 --workers 2
    """
    from pipelines.ingest import IngestConfig, IngestError, RunOptions, run

    cfg = IngestConfig(
        fps=fps, short_side=short_side, jpeg_quality=jpeg_quality, whisper_model=whisper_model,
        language=language, max_gap=max_gap, max_no_speech_prob=max_no_speech_prob,
        min_avg_logprob=min_avg_logprob, max_compression_ratio=max_compression_ratio,
        val_fraction=val_fraction, split_seed=split_seed, shard_size=shard_size,
        allow_no_audio=allow_no_audio, keep_truncated=keep_truncated,
    )
    opts = RunOptions(workers=workers, num_parts=num_parts, part_index=part_index, device=device,
                      compute_type=compute_type, batch_size=batch_size, strict=strict,
                      retry_failed=retry_failed, keep_staging=keep_staging, progress=not quiet)
    try:
        s = run(videos_dir, shards_dir, cfg, opts)
    except (IngestError, FileNotFoundError, RuntimeError) as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(1)
    _print_ingest_summary(s, shards_dir)


def _print_ingest_summary(s, shards_dir: Path) -> None:
    t = Table(title=f"ingest: {shards_dir}", show_header=False)
    t.add_row("part", f"{s.part + 1} of {s.num_parts}: {s.videos_in_part} of {s.videos_total} videos")
    t.add_row("this run", f"{s.processed_now} processed, {s.reused} already done")
    t.add_row("videos", ", ".join(f"{k} {v}" for k, v in sorted(s.status_counts.items())))
    t.add_row("samples", ", ".join(f"{k} {v:,} in {s.shards.get(k, 0)} shards" for k, v in sorted(s.samples.items())) or "none")
    t.add_row("audio / speech", f"{s.audio_hours:.2f} h / {s.speech_hours:.2f} h")
    t.add_row("time", f"{s.elapsed_s:.1f} s")
    console.print(t)
    if s.problems:
        p = Table(title="recorded problems")
        for col in ("source", "status", "reason"):
            p.add_column(col)
        for row in s.problems:
            p.add_row(row["source"], row["status"], row["reason"])
        console.print(p)
    console.print(f"manifest: {Path(shards_dir) / 'manifest.csv'}")


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def train(ctx: typer.Context) -> None:
    """Train an open_clip model (CLIP or SigLIP loss) on the shards; all options: egoindex train --help.

    One device runs in this process; --nproc-per-node N / --nnodes M re-run it under torchrun
    (DDP on NCCL or gloo). Writes checkpoints that open_clip loads, metrics.jsonl, TensorBoard
    logs and curves.png to RUN_DIR; --resume continues a killed run.

    Example: egoindex train demo/shards runs/demo --model ego-tiny-vit
    """
    from pipelines.train import launch

    raise typer.Exit(launch(list(ctx.args)))


if __name__ == "__main__":  # pragma: no cover
    app()
