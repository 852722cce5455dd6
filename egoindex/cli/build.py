"""``egoindex build``: :func:`egoindex.build.run.run` with :class:`~egoindex.build.config.BuildConfig`
as its options (and their defaults).

What stays here is about processes, not the build: ``--nproc-per-node N`` / ``--nnodes M`` (and the
rendezvous options of :mod:`egoindex.core.launch`) re-execute this same command under torchrun, and
each of those ranks takes its share of the CPU threads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from egoindex.build.config import BuildConfig, BuildSummary
from egoindex.cli.common import console
from egoindex.core.launch import LAUNCH_OPTIONS
from egoindex.core.launch import exec_torchrun, under_torchrun, wants_torchrun, without_launch_options
from egoindex.core.resources import available_cpus
from egoindex.errors import ConfigError
from egoindex.store.layout import StoreLayout

_D = BuildConfig(checkpoint=Path(), shards=Path(), store=Path())  # the paths are arguments; only defaults are read


def build(
    checkpoint: Path = typer.Argument(
        ..., help="Model: egoindex train's latest.pt, open_clip_train's epoch_N.pt, a state dict (.pt/.bin/"
                  ".safetensors, with --model), a Hugging Face open_clip folder, or a cached hf-hub:ORG/REPO."),
    shards_dir: Path = typer.Argument(..., help="Folder written by `egoindex ingest`."),
    store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX to create or extend."),
    model: Optional[str] = typer.Option(
        _D.model, "--model", help="open_clip model name (default: the checkpoint's; needed for a bare state dict; wins over "
                                   "an open_clip_train run name)."),
    clip_seconds: float = typer.Option(_D.clip_seconds, "--clip-seconds", min=0.1, help="Clip window length (s)."),
    clip_stride: float = typer.Option(_D.clip_stride, "--clip-stride", min=0.1, help="Step between clip windows (s)."),
    batch_size: int = typer.Option(_D.batch_size, "--batch-size", min=1, help="Frames per forward pass."),
    workers: Optional[int] = typer.Option(
        _D.workers, "--workers", min=0, help="Loader processes (default: cores - 1, max 8)."),
    device: str = typer.Option(_D.device, "--device", help="auto | cpu | cuda"),
    precision: str = typer.Option(
        _D.precision, "--precision", help="auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16"),
    decode: str = typer.Option(
        _D.decode, "--decode", help="workers (PIL in loader processes) | device (torchvision on the GPU) | auto"),
    index: Optional[str] = typer.Option(
        _D.index, "--index", help="FAISS factory string for all vector tables (default: by size)."),
    target_recall: float = typer.Option(
        _D.target_recall, "--target-recall", min=0.0, max=1.0, help="recall@10 that nprobe is tuned to."),
    append: bool = typer.Option(_D.append, "--append", help="Add shards that the store does not hold yet."),
    videos: Optional[Path] = typer.Option(
        _D.videos, "--videos", help="Where the source videos are (default: as ingested)."),
    nproc_per_node: int = typer.Option(
        1, "--nproc-per-node", min=1, help="Processes (torchrun); each embeds its share of shards."),
    nnodes: str = typer.Option("1", "--nnodes", help=LAUNCH_OPTIONS["--nnodes"][1]),
    node_rank: Optional[str] = typer.Option(None, "--node-rank", help=LAUNCH_OPTIONS["--node-rank"][1]),
    master_addr: Optional[str] = typer.Option(None, "--master-addr", help=LAUNCH_OPTIONS["--master-addr"][1]),
    master_port: Optional[str] = typer.Option(None, "--master-port", help=LAUNCH_OPTIONS["--master-port"][1]),
    rdzv_backend: Optional[str] = typer.Option(None, "--rdzv-backend", help=LAUNCH_OPTIONS["--rdzv-backend"][1]),
    rdzv_endpoint: Optional[str] = typer.Option(None, "--rdzv-endpoint", help=LAUNCH_OPTIONS["--rdzv-endpoint"][1]),
    rdzv_id: Optional[str] = typer.Option(None, "--rdzv-id", help=LAUNCH_OPTIONS["--rdzv-id"][1]),
    max_restarts: Optional[str] = typer.Option(None, "--max-restarts", help=LAUNCH_OPTIONS["--max-restarts"][1]),
    num_parts: int = typer.Option(
        _D.num_parts, "--num-parts", min=1, help="SLURM array: number of tasks (the last to finish commits)."),
    part_index: int = typer.Option(_D.part_index, "--part-index", min=0, help="SLURM array: this task's index."),
    quiet: bool = typer.Option(not _D.progress, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Embed every frame, clip and utterance into a LanceDB + FAISS store (resumable).

    Frames are embedded in parallel (GPU when present; --nproc-per-node N or torchrun for several
    devices), committed in one Lance commit, then clips (sliding windows) and utterances are
    derived and a FAISS index is built per table. Kill it any time and rerun: finished shards are
    kept, and the result equals an uninterrupted build.

    Example: egoindex build demo/run/latest.pt demo/shards demo/store
    """
    launch = {"nproc_per_node": nproc_per_node, "nnodes": nnodes, "node_rank": node_rank, "master_addr": master_addr,
              "master_port": master_port, "rdzv_backend": rdzv_backend, "rdzv_endpoint": rdzv_endpoint,
              "rdzv_id": rdzv_id, "max_restarts": max_restarts}
    if wants_torchrun(launch) and not under_torchrun():  # this same command, once per rank
        exec_torchrun(launch, ["-m", "egoindex", *without_launch_options(sys.argv[1:])])
    if part_index >= num_parts:
        raise ConfigError("--part-index must be below --num-parts")
    from egoindex.build.run import run  # imports torch, open_clip and lancedb

    if "LOCAL_WORLD_SIZE" in os.environ:
        import torch

        torch.set_num_threads(max(1, available_cpus() // int(os.environ["LOCAL_WORLD_SIZE"])))
    rank0 = os.environ.get("RANK", "0") == "0"
    cfg = BuildConfig(checkpoint=checkpoint, shards=shards_dir, store=store, model=model, clip_seconds=clip_seconds,
                      clip_stride=clip_stride, batch_size=batch_size, workers=workers, device=device,
                      precision=precision, decode=decode, index=index, target_recall=target_recall, append=append,
                      videos=videos, num_parts=num_parts, part_index=part_index, progress=not quiet and rank0)
    s = run(cfg)
    if not s.committed:
        if rank0:
            console.print(f"embedded {s.shards_embedded} shards; the store is committed by the last part to finish")
        return
    _print_summary(s, store)


def _print_summary(s: BuildSummary, store: Path) -> None:
    t = Table(title=f"store {store}")
    t.add_column("table")
    t.add_column("rows", justify="right")
    t.add_column("index")
    for name, n in s.rows.items():
        ix = s.indexes.get(name) or {}
        desc = f"{ix['factory']} (nprobe {ix['nprobe']}, recall@10 {ix['recall_at_10']})" if ix else ""
        t.add_row(name, f"{n:,}", desc)
    console.print(t)
    console.print(f"shards embedded now {s.shards_embedded}, reused {s.shards_reused}; "
                  f"frames added {s.frames_added:,}; videos added {s.videos_added}; {s.seconds:.1f} s")
    if s.skipped:
        first = s.skipped[0]
        console.print(f"[yellow]{len(s.skipped)} samples or shards skipped[/yellow] "
                      f"(listed in {StoreLayout(store).meta}), e.g. {first['shard']} {first['key']}: {first['reason']}")


def register(app: typer.Typer) -> None:
    """Add ``build``."""
    app.command("build")(build)
