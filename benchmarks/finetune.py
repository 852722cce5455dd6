"""Fine-tuning throughput per video backbone: clips/s of a training step and of inference.

A training step is what ``egoindex finetune`` does per batch (:func:`egoindex.finetune.loop.optimizer_step`:
forward, label-smoothed cross-entropy, backward, gradient clipping, AdamW); inference is a
forward pass without gradients in eval mode. Inputs are synthetic normalised clips of the
backbone's shape, so the numbers isolate the network (decoding is the ingest's PyAV path and is
cached after the first epoch: ``benchmarks/ingest.py`` measures it).

* CPU: the small configs (``CPU_BACKBONES``) at their own 8 frames x 64 px, batch 8, fp32; with
  ``--full``, also the full-size torchvision / transformers configs at batch 2.
* CUDA (when present): every backbone at its own size, bf16 autocast (``precision auto``), batch 8.

Prints a table and writes ``benchmarks/results/finetune-<cpu|gpu>.json`` with the machine.

    python -m benchmarks.finetune                  # -> benchmarks/results/finetune-cpu.json
    python -m benchmarks.finetune --full --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.machine import save
from egoindex.finetune.loop import autocast_for, optimizer_step, param_groups
from egoindex.model.backbones import BACKBONES, CPU_BACKBONES, count_parameters, create_classifier, dummy_clip

FULL = ("r3d_18", "r2plus1d_18", "s3d", "swin3d_t", "mvit_v2_s", "videomae-base", "timesformer-base")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name: str, batch: int, device: torch.device, steps: int, warmup: int) -> dict[str, Any]:
    """Median clips/s over ``steps`` timed training steps and inference batches (after ``warmup``)."""
    torch.manual_seed(0)
    model = create_classifier(name, 10).to(device)
    autocast = autocast_for("auto", device)
    x = dummy_clip(model, batch).to(device)
    y = torch.arange(batch, device=device) % 10
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4)
    model.train()
    train = []
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        optimizer_step(model, opt, [(x, y)], 0.1, 1.0, device, autocast)
        _sync(device)
        if i >= warmup:
            train.append(batch / (time.perf_counter() - t0))
    model.eval()
    infer = []
    with torch.no_grad():
        for i in range(warmup + steps):
            _sync(device)
            t0 = time.perf_counter()
            with autocast():
                model(x)
            _sync(device)
            if i >= warmup:
                infer.append(batch / (time.perf_counter() - t0))
    return {"backbone": name, "frames": model.num_frames, "size": model.image_size, "batch": batch,
            "params_m": round(count_parameters(model) / 1e6, 2), "precision": "bf16" if device.type == "cuda" else "fp32",
            "train_clips_per_s": round(statistics.median(train), 2),
            "infer_clips_per_s": round(statistics.median(infer), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="CPU: also the full-size configs (slow)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        names, batch_full = list(BACKBONES), 8
    else:
        names, batch_full = list(CPU_BACKBONES) + (list(FULL) if a.full else []), 2
    rows = []
    for n in names:
        batch = 8 if n in CPU_BACKBONES else batch_full
        rows.append(measure(n, batch, device, a.steps, a.warmup))
        Console().print(rows[-1])
    t = Table(title=f"fine-tune throughput ({device.type})")
    for col in ("backbone", "frames", "size", "batch", "params_m", "precision", "train_clips_per_s",
                "infer_clips_per_s"):
        t.add_column(col)
    for r in rows:
        t.add_row(*[str(r[c]) for c in ("backbone", "frames", "size", "batch", "params_m", "precision",
                                        "train_clips_per_s", "infer_clips_per_s")])
    Console().print(t)
    path = save("finetune", {"steps": a.steps, "warmup": a.warmup, "torch_threads": torch.get_num_threads(), "rows": rows},
                packages=("torch", "torchvision", "transformers"))
    Console().print(f"wrote {path}")


if __name__ == "__main__":
    main()
