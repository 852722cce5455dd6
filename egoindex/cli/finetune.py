"""``egoindex finetune``: fine-tune a video backbone (:mod:`egoindex.finetune`), export it, list backbones.

``egoindex finetune DATASET OUT ...`` is ``egoindex finetune run DATASET OUT ...``: a first
argument that names no subcommand runs the fine-tune, so the common case needs no extra word
while ``export`` and ``backbones`` stay subcommands. Every default is read from
:class:`~egoindex.finetune.config.FinetuneConfig` / :class:`~egoindex.finetune.config.RunOptions`,
never restated. ``--nproc-per-node N`` re-executes the same command under torchrun
(``python -m torch.distributed.run --standalone --nproc-per-node N -m egoindex finetune ...``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table
from typer.core import TyperGroup

from egoindex.cli.common import console
from egoindex.errors import ConfigError

# the library's defaults, read once (dataclass fields with defaults are class attributes)
from egoindex.finetune.config import FinetuneConfig as _C, RunOptions as _R  # noqa: E402  (light: no torch)


class DefaultRun(TyperGroup):
    """A group whose first argument, when it is no subcommand, is ``run``'s."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


finetune_app = typer.Typer(cls=DefaultRun, no_args_is_help=True, add_completion=False,
                           help="Fine-tune a video backbone on labelled videos (folder per class or UCF101), export it.")


def torchrun_command(argv: list[str], nproc: int) -> list[str]:
    """``argv`` (the finetune command's arguments) re-run by torchrun on ``nproc`` local processes."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc-per-node":
            skip = True
            continue
        if not a.startswith("--nproc-per-node="):
            rest.append(a)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "egoindex", "finetune", *rest]


@finetune_app.command("run")
def run_cmd(
    dataset: Path = typer.Argument(..., help="DATASET/<class>/*.mp4, or UCF101 (class folders + ucfTrainTestlist/)."),
    out: Path = typer.Argument(..., help="Run folder: checkpoints, metrics, TensorBoard, report/."),
    backbone: str = typer.Option(_C.backbone, "--backbone", help="A registered backbone (egoindex finetune "
                                 "backbones), clip-frames:OPEN_CLIP_NAME or clip-video:CLIP_MODEL."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Local weights: an HF folder (VideoMAE / "
                                          "TimeSformer), a torchvision .pth, an open_clip checkpoint. Default: random."),
    num_frames: Optional[int] = typer.Option(None, "--num-frames", help="Frames per clip (default: the backbone's)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Crop side in px (default: the backbone's)."),
    sampling: str = typer.Option(_C.sampling, "--sampling", help="Training frames: uniform | random | dense."),
    stride: int = typer.Option(_C.stride, "--stride", help="dense: decoded frames between two samples."),
    fps: float = typer.Option(_C.fps, "--fps", help="Decode rate (frames per second)."),
    short_side: Optional[int] = typer.Option(None, "--short-side", help="Decoded short side (default 9/8 of the crop)."),
    splits: Optional[Path] = typer.Option(None, "--splits", help="UCF101's ucfTrainTestlist/ (default: "
                                          "DATASET/ucfTrainTestlist when it exists)."),
    split: int = typer.Option(_C.split, "--split", help="UCF101 official split 1, 2 or 3."),
    fractions: str = typer.Option(",".join(f"{f:g}" for f in _C.fractions), "--fractions",
                                  help="Folder per class: train,val,test fractions per class (the probe's split)."),
    seed: int = typer.Option(_C.seed, "--seed"),
    epochs: int = typer.Option(_C.epochs, "--epochs"),
    batch_size: int = typer.Option(_C.batch_size, "--batch-size", help="Clips per process and micro-batch."),
    accum: int = typer.Option(_C.accum, "--accum", help="Micro-batches per optimizer step (gradient accumulation)."),
    lr: float = typer.Option(_C.lr, "--lr"),
    weight_decay: float = typer.Option(_C.weight_decay, "--weight-decay"),
    warmup_epochs: float = typer.Option(_C.warmup_epochs, "--warmup-epochs"),
    label_smoothing: float = typer.Option(_C.label_smoothing, "--label-smoothing"),
    dropout: float = typer.Option(_C.dropout, "--dropout", help="Dropout before the linear head."),
    grad_clip: float = typer.Option(_C.grad_clip, "--grad-clip", help="Max gradient norm (0: none)."),
    patience: int = typer.Option(_C.patience, "--patience", help="Early stopping: epochs without a better val "
                                 "top-1 (0: never)."),
    crop_scale: float = typer.Option(_C.crop_scale, "--crop-scale", help="Random resized crop: least area kept."),
    flip: float = typer.Option(_C.flip, "--flip", help="Horizontal flip probability (0 when classes are directions)."),
    jitter: float = typer.Option(_C.jitter, "--jitter", help="Colour jitter strength."),
    test_clips: int = typer.Option(_C.test_clips, "--test-clips", help="Test views: clips per video."),
    test_crops: int = typer.Option(_C.test_crops, "--test-crops", help="Test views: 1 or 3 crops per clip."),
    precision: str = typer.Option(_C.precision, "--precision", help="auto (bf16 autocast on CUDA, fp32 on CPU) | "
                                  "fp32 | bf16."),
    device: str = typer.Option(_R.device, "--device", help="auto | cpu | cuda."),
    workers: int = typer.Option(_R.workers, "--workers", help="DataLoader decode processes."),
    threads: int = typer.Option(_R.threads, "--threads", help="torch CPU threads (0: this process' share)."),
    cache_mb: int = typer.Option(_R.cache_mb, "--cache-mb", help="Decoded-clip cache per process (MiB)."),
    save_every_steps: int = typer.Option(_R.save_every_steps, "--save-every-steps",
                                         help="Also save last.pt every N steps."),
    resume: bool = typer.Option(_R.resume, "--resume", help="Continue OUT/last.pt (a killed run)."),
    no_tensorboard: bool = typer.Option(False, "--no-tensorboard"),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", min=1, help="Processes on this node (DDP via torchrun)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (one line per epoch)."),
    as_json: bool = typer.Option(False, "--json", help="Print the test metrics as JSON."),
) -> None:
    """Fine-tune a video backbone on DATASET; writes best.pt / last.pt, metrics, TensorBoard and OUT/report/.

    Examples:
      egoindex finetune demo/motion-classes runs/motion --backbone r3d-tiny --flip 0 --epochs 12
      egoindex finetune UCF-101 runs/ucf --backbone videomae-base --weights ./videomae-base --split 1
    """
    if nproc_per_node > 1 and "LOCAL_RANK" not in os.environ:
        if "finetune" not in sys.argv:
            raise ConfigError("--nproc-per-node needs the command line form `egoindex finetune ...`")
        cmd = torchrun_command(sys.argv[sys.argv.index("finetune") + 1:], nproc_per_node)
        sys.stdout.flush()
        os.execv(cmd[0], cmd)
    try:
        fr = tuple(float(x) for x in fractions.split(","))
    except ValueError:
        raise ConfigError(f"--fractions wants three numbers like 0.6,0.2,0.2, not {fractions!r}") from None
    if len(fr) != 3:
        raise ConfigError(f"--fractions wants three numbers like 0.6,0.2,0.2, not {fractions!r}")
    from egoindex.finetune.config import FinetuneConfig, RunOptions
    from egoindex.finetune.loop import run  # torch, transformers

    cfg = FinetuneConfig(backbone=backbone, weights=weights, num_frames=num_frames, image_size=image_size,
                         sampling=sampling, stride=stride, fps=fps, short_side=short_side,
                         splits=str(splits) if splits else None, split=split, fractions=fr, seed=seed, epochs=epochs,
                         batch_size=batch_size, accum=accum, lr=lr, weight_decay=weight_decay,
                         warmup_epochs=warmup_epochs, label_smoothing=label_smoothing, dropout=dropout,
                         grad_clip=grad_clip, patience=patience, crop_scale=crop_scale, flip=flip, jitter=jitter,
                         test_clips=test_clips, test_crops=test_crops, precision=precision)
    opts = RunOptions(device=device, workers=workers, threads=threads, progress=not no_progress, resume=resume,
                      cache_mb=cache_mb, save_every_steps=save_every_steps, tensorboard=not no_tensorboard)
    r = run(dataset, out, cfg, opts)
    if int(os.environ.get("RANK", 0)) != 0:
        return
    m = r.metrics
    if as_json:
        print(json.dumps(m, indent=1))
        return
    t = Table(title=f"fine-tune {backbone}: {dataset} ({m['n_classes']} classes)", show_header=False)
    for k, label in (("test_top1", f"test top-1 ({m['test_views']} views)"), ("test_top1_1view", "test top-1 (1 view)"),
                     ("test_top5", "test top-5"), ("val_top1", f"val top-1 (epoch {m['best_epoch']})"),
                     ("macro_f1", "macro F1"), ("chance_top1", "chance top-1")):
        t.add_row(label, f"{m[k]:.3f}")
    t.add_row("videos", f"train {m['n_train']}, val {m['n_val']}, test {m['n_test']}, skipped {m['n_skipped']}")
    t.add_row("epochs", f"{m['epochs_run']}{' (stopped early)' if m['stopped_early'] else ''}, {m['steps']} steps")
    console.print(t)
    console.print(f"best: {out / 'best.pt'}  report: {r.written.get('md', out / 'report')}")


@finetune_app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="A fine-tune OUT folder (its best.pt) or a checkpoint file."),
    onnx: bool = typer.Option(False, "--onnx", help="Write model.onnx (+ onnx_example.py, sample_clip.npy)."),
    torchscript: bool = typer.Option(False, "--torchscript", help="Write model.ts (torch.jit.trace)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Export folder (default OUT/export)."),
) -> None:
    """Export the best checkpoint to ONNX and/or TorchScript; prints each file's max |logit difference| from PyTorch.

    Example: egoindex finetune export runs/motion --onnx --torchscript
    """
    from egoindex.finetune.export import export_classifier  # torch, onnx

    r = export_classifier(run_dir, out_dir=out_dir, onnx=onnx or not torchscript, torchscript=torchscript)
    for kind, path in r.files.items():
        diff = r.max_abs_diff.get(kind)
        console.print(f"{kind}: {path}" + (f"  (max abs diff from PyTorch {diff:.2e})" if diff is not None else ""))
    if "example" in r.files:
        console.print(f"try: python {r.files['example']} {r.files['onnx']} {r.files['sample']}")


@finetune_app.command("backbones")
def backbones_cmd() -> None:
    """List the registered backbones (cpu: small enough to fine-tune on a CPU in minutes)."""
    from egoindex.model.backbones import describe

    t = Table(title="video backbones (also clip-frames:OPEN_CLIP_NAME, clip-video:CLIP_MODEL)")
    for col in ("name", "family", "frames", "size", "cpu", "summary"):
        t.add_column(col)
    for r in describe():
        t.add_row(r["name"], r["family"], str(r["frames"]), str(r["size"]), "yes" if r["cpu"] else "", r["summary"])
    console.print(t)


def register(app: typer.Typer) -> None:
    """Add ``finetune`` (run / export / backbones)."""
    app.add_typer(finetune_app, name="finetune")
