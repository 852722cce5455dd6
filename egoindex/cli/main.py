"""The ``egoindex`` command line: thin Typer commands over the library and its stages."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from egoindex import __version__
from egoindex.cli.common import fail as _fail, open_store as _open_store

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
    from egoindex.ingest.run import IngestConfig, IngestError, RunOptions, run

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
    from egoindex.train.loop import launch

    raise typer.Exit(launch(list(ctx.args)))


def _reexec_torchrun(nproc: int, argv: list[str]) -> None:
    """Run this same command under torchrun with ``nproc`` processes (one per device)."""
    import os
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "egoindex.cli.main", *argv]
    sys.stdout.flush()
    os.execv(cmd[0], cmd)


def _without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` minus ``name VALUE`` / ``name=VALUE`` (every other token kept, in order)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


@app.command()
def build(
    checkpoint: Path = typer.Argument(..., help="Trained checkpoint (egoindex train's latest.pt, or an open_clip file)."),
    shards_dir: Path = typer.Argument(..., help="Folder written by `egoindex ingest`."),
    store: Path = typer.Argument(..., help="Store folder to create or extend."),
    model: Optional[str] = typer.Option(None, "--model", help="open_clip model name (default: the one in the checkpoint)."),
    clip_seconds: float = typer.Option(4.0, "--clip-seconds", min=0.1, help="Clip window length (s)."),
    clip_stride: float = typer.Option(2.0, "--clip-stride", min=0.1, help="Step between clip windows (s)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Frames per forward pass."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Loader processes (default: cores - 1, max 8)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16"),
    decode: str = typer.Option("auto", "--decode", help="workers (PIL in loader processes) | device (torchvision on the GPU) | auto"),
    index: Optional[str] = typer.Option(None, "--index", help="FAISS factory string for all vector tables (default: by size)."),
    target_recall: float = typer.Option(0.95, "--target-recall", min=0.0, max=1.0, help="recall@10 that nprobe is tuned to."),
    append: bool = typer.Option(False, "--append", help="Add shards that the store does not hold yet."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Where the source videos are (default: as ingested)."),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", min=1, help="Processes (torchrun); each embeds its share of shards."),
    num_parts: int = typer.Option(1, "--num-parts", min=1, help="SLURM array: number of tasks (the last to finish commits)."),
    part_index: int = typer.Option(0, "--part-index", min=0, help="SLURM array: this task's index."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Embed every frame, clip and utterance into a LanceDB + FAISS store (resumable).

    Frames are embedded in parallel (GPU when present; --nproc-per-node N or torchrun for several
    devices), committed in one Lance commit, then clips (sliding windows) and utterances are
    derived and a FAISS index is built per table. Kill it any time and rerun: finished shards are
    kept, and the result equals an uninterrupted build.

    Example: egoindex build demo/run/latest.pt demo/shards demo/store
    """
    import os
    import sys

    if nproc_per_node > 1 and "LOCAL_RANK" not in os.environ:
        _reexec_torchrun(nproc_per_node, _without_option(sys.argv[1:], "--nproc-per-node"))
    from egoindex.model.openclip import ModelError
    from egoindex.build.run import BuildConfig, BuildError, run

    if part_index >= num_parts:
        _fail(ValueError("--part-index must be below --num-parts"))
    if "LOCAL_WORLD_SIZE" in os.environ:
        import torch

        from egoindex.core.resources import available_cpus

        torch.set_num_threads(max(1, available_cpus() // int(os.environ["LOCAL_WORLD_SIZE"])))
    cfg = BuildConfig(checkpoint=checkpoint, shards=shards_dir, store=store, model=model, clip_seconds=clip_seconds,
                      clip_stride=clip_stride, batch_size=batch_size, workers=workers, device=device, precision=precision,
                      decode=decode, index=index, target_recall=target_recall, append=append, videos=videos,
                      num_parts=num_parts, part_index=part_index, progress=not quiet and os.environ.get("RANK", "0") == "0")
    try:
        s = run(cfg)
    except (BuildError, ModelError, FileNotFoundError) as e:
        _fail(e)
    if not s.committed:
        if os.environ.get("RANK", "0") == "0":
            console.print(f"embedded {s.shards_embedded} shards; the store is committed by the last part to finish")
        return
    t = Table(title=f"store {store}")
    t.add_column("table")
    t.add_column("rows", justify="right")
    t.add_column("index")
    for name, n in s.rows.items():
        ix = s.indexes.get(name) or {}
        desc = f"{ix['factory']} (nprobe {ix['nprobe']}, recall@10 {ix['recall_at_10']})" if ix else ""
        t.add_row(name, f"{n:,}", desc)
    console.print(t)
    console.print(f"shards embedded now {s.shards_embedded}, reused {s.shards_reused}; frames added {s.frames_added:,}; "
                  f"videos added {s.videos_added}; {s.seconds:.1f} s")
    if s.skipped:
        console.print(f"[yellow]{len(s.skipped)} samples or shards skipped[/yellow] (listed in {store}/egoindex.json), e.g. "
                      f"{s.skipped[0]['shard']} {s.skipped[0]['key']}: {s.skipped[0]['reason']}")


@app.command()
def info(store: Path = typer.Argument(..., help="Store folder."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print a store's tables, row counts, model and index facts.

    Example: egoindex info demo/store
    """
    import json

    s = _open_store(store)
    facts = s.info()
    if as_json:
        print(json.dumps(facts, indent=1, ensure_ascii=False))
        return
    t = Table(title=f"egoindex store {store}", show_header=False)
    for k in ("model", "checkpoint", "checkpoint_sha256", "embed_dim", "clip_seconds", "clip_stride", "built_at",
              "egoindex_version", "shards_dir", "videos_root"):
        t.add_row(k, str(facts.get(k)))
    t.add_row("skipped", str(len(facts.get("skipped") or [])))
    console.print(t)
    tt = Table(title="tables")
    for col in ("table", "rows", "version", "index", "nprobe", "recall@10"):
        tt.add_column(col)
    for name, d in facts["tables"].items():
        ix = d.get("index") or {}
        tt.add_row(name, f"{d['rows']:,}", str(d["version"]), str(ix.get("factory", "")), str(ix.get("nprobe", "")),
                   str(ix.get("recall_at_10", "")))
    console.print(tt)


@app.command("index")
def index_cmd(
    store: Path = typer.Argument(..., help="Store folder."),
    report: bool = typer.Option(False, "--report", help="Measure recall@10 against exact search and latency."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the FAISS indexes."),
    factory: Optional[str] = typer.Option(None, "--index", help="FAISS factory string for --rebuild."),
    queries: int = typer.Option(200, "--queries", min=1, help="Sampled queries for --report."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rebuild a store's FAISS indexes, or report their recall@10 and latency against exact search.

    Example: egoindex index demo/store --report
    """
    import json

    from egoindex.store.report import index_report, rebuild_indexes

    s = _open_store(store)
    if rebuild:
        rebuild_indexes(s, factory)
        s = _open_store(store)
    if report or not rebuild:
        rows = index_report(s, queries)
        if as_json:
            print(json.dumps(rows, indent=1))
            return
        t = Table(title=f"indexes of {store} ({queries} sampled queries, k=10)")
        for col in ("table", "rows", "index", "nprobe", "recall@10", "p50 ms", "p99 ms", "exact p50 ms"):
            t.add_column(col)
        for r in rows:
            t.add_row(r["table"], f"{r['rows']:,}", r["factory"], str(r["nprobe"]), f"{r['recall_at_10']:.3f}",
                      f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['exact_p50_ms']:.2f}")
        console.print(t)


@app.command()
def query(
    store: Path = typer.Argument(..., help="Store folder."),
    text: Optional[str] = typer.Argument(None, help="What to look for, e.g. \"baby grabs spoon\"."),
    k: int = typer.Option(10, "--k", min=1, max=10000, help="Number of results."),
    level: str = typer.Option("clips", "--level", help="clips | frames | utterances"),
    image: Optional[Path] = typer.Option(None, "--image", help="Query by picture instead of text."),
    like: Optional[str] = typer.Option(None, "--like", help="More like this moment: VIDEO_UID@SECONDS."),
    video: list[str] = typer.Option([], "--video", help="Only this video (repeatable)."),
    split: Optional[str] = typer.Option(None, "--split", help="Only this split (train/val)."),
    start: Optional[float] = typer.Option(None, "--start", help="Only moments ending after this time (s)."),
    end: Optional[float] = typer.Option(None, "--end", help="Only moments starting before this time (s)."),
    where: Optional[str] = typer.Option(None, "--where", help="Extra SQL filter on the table's columns."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
    device: str = typer.Option("cpu", "--device", help="Where to embed the query."),
) -> None:
    """Search a store by text, picture or example moment; filters apply before ranking.

    Example: egoindex query demo/store "the baby grabs the red ball" --k 5 --split val
    """
    import json

    from egoindex.store import Filters, StoreError

    s = _open_store(store, device=device)
    try:
        hits = s.search(text, image=image, like=like, level=level, k=k,
                        filters=Filters(tuple(video), split, start, end, where))
    except (StoreError, ValueError) as e:
        _fail(e)
    except Exception as e:  # bad --where SQL surfaces from Lance as various error types
        if where:
            _fail(ValueError(f"the --where filter failed: {e}"))
        raise
    if as_json:
        print(json.dumps([h.as_dict() for h in hits], indent=1, ensure_ascii=False))
        return
    t = Table(title=f"{level} for {text or image or like!r}")
    for col in ("#", "score", "video", "time", "text"):
        t.add_column(col)
    for i, h in enumerate(hits, 1):
        when = f"{h.start:7.2f}s" if h.start == h.end else f"{h.start:.2f}-{h.end:.2f}s"
        t.add_row(str(i), f"{h.score:.3f}", h.source or h.video_uid[:8], when, h.text[:80])
    console.print(t)
    if not hits:
        console.print("no results (empty store, or nothing matches the filters)")


from egoindex.cli.bench import bench_app  # noqa: E402  (sub-commands live in their own modules)
from egoindex.cli.export import export_app  # noqa: E402

app.add_typer(bench_app, name="bench")
app.add_typer(export_app, name="export")
from egoindex.cli.classify import register as _register_classify  # noqa: E402
_register_classify(app)
from egoindex.cli.serve import register as _register_serve  # noqa: E402
_register_serve(app)

if __name__ == "__main__":  # pragma: no cover
    app()
