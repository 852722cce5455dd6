"""Training throughput: samples/s per device for one full optimizer step.

A step is what ``egoindex train`` does per batch: forward both towers, the duplicate-aware CLIP
loss, backward, gradient clipping and AdamW. Inputs are synthetic images (the model's size) and
real tokenised captions, so the numbers isolate the model; ``--shards DIR`` also measures the
WebDataset loader (JPEG decode + augmentation) to show whether the CPU can feed the device.

* CPU: the small project configs at a fixed batch (fp32; bf16 autocast for the tiny one, which
  shows whether this CPU has native bf16: without it, bf16 is many times slower than fp32).
* CUDA (if present): ViT-B-32 with bf16 autocast at the largest batch that fits (doubling until
  out of memory), and the small configs.

Prints a table and writes ``benchmarks/results/train-<name>.json`` with a machine description.

    python -m benchmarks.train                      # -> benchmarks/results/train-cpu.json
    python -m benchmarks.train --shards demo/shards # + loader throughput
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.machine import describe
from egoindex.model.openclip import create
from egoindex.train.data import train_loader
from egoindex.train.loop import autocast_factory, param_groups
from egoindex.train.loss import DedupClipLoss

CAPTIONS = ["the baby grabs the red ball", "look, the blue cup rolls away", "mommy shakes the green block",
            "the purple star drops to the rug in the living room"]


def machine() -> dict[str, Any]:
    """The shared machine description plus what matters to training throughput."""
    info = describe(("torch", "open_clip_torch"))
    info["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu_memory_gib=round(p.total_memory / 2**30, 1), gpu_count=torch.cuda.device_count(),
                    cuda=torch.version.cuda)
    return info


def step_throughput(name: str, precision: str, batch: int, device: torch.device, steps: int,
                    warmup: int) -> dict[str, Any]:
    """Median samples/s of full training steps (raises torch.OutOfMemoryError if it does not fit)."""
    c = create(name, device=device)
    model = c.model.train()
    size = model.visual.image_size
    size = size if isinstance(size, int) else size[0]
    images = torch.randn(batch, 3, size, size, device=device)
    tokens = c.tokenizer([CAPTIONS[i % len(CAPTIONS)] + f" {i}" for i in range(batch)]).to(device)
    keys = torch.arange(batch, device=device)
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4)
    loss_fn = DedupClipLoss()
    autocast = autocast_factory(precision, device)
    times = []
    try:
        for i in range(warmup + steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with autocast():
                out = model(images, tokens)
                loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"], keys=keys)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    finally:
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
        del model, opt, images, tokens
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    t = statistics.median(times)
    return {"model": name, "device": device.type, "precision": precision, "batch": batch, "step_s": round(t, 4),
            "samples_per_s": round(batch / t, 1), **({"peak_gib": round(peak, 2)} if peak is not None else {})}


def largest_batch(name: str, precision: str, device: torch.device, start: int, limit: int,
                  steps: int) -> dict[str, Any]:
    """Double the batch until out of memory; the last that fit, with its throughput."""
    best: dict[str, Any] | None = None
    batch = start
    while batch <= limit:
        try:
            best = step_throughput(name, precision, batch, device, steps, warmup=2)
            print(f"  {name} {precision} batch {batch}: {best['samples_per_s']} samples/s", flush=True)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        batch *= 2
    if best is None:
        raise RuntimeError(f"{name} does not fit at batch {start}")
    return {**best, "largest_batch_tried": batch}


def loader_throughput(shards: Path, name: str, workers: int, batch: int, batches: int) -> dict[str, Any]:
    c = create(name)
    loader = train_loader(shards, preprocess=c.preprocess_train, tokenizer=c.tokenizer, batch_size=batch,
                          workers=workers, rank=0, world_size=1, seed=0)
    it = iter(loader)
    next(it)  # workers started, buffers filling
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    dt = time.perf_counter() - t0
    del it  # stop the worker processes now, not during interpreter shutdown
    return {"model": name, "device": "loader", "precision": "-", "batch": batch, "workers": workers,
            "step_s": round(dt / batches, 4), "samples_per_s": round(batch * batches / dt, 1)}


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps per case (after 2 warm-up steps)")
    p.add_argument("--shards", type=Path, default=None, help="also time the loader on these shards")
    p.add_argument("--workers", type=int, default=2, help="loader workers for --shards")
    p.add_argument("--name", default=None, help="result file suffix (default: GPU name, else 'cpu')")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args()

    info = machine()
    results = []
    cpu = torch.device("cpu")
    for name, precision, batch in (("ego-tiny-vit", "fp32", 64), ("ego-tiny-vit", "amp_bf16", 64),
                                   ("ego-small-vit", "fp32", 32)):
        r = step_throughput(name, precision, batch, cpu, args.steps, warmup=2)
        print(f"  {name} cpu {precision} batch {batch}: {r['samples_per_s']} samples/s", flush=True)
        results.append(r)
    if torch.cuda.is_available():
        gpu = torch.device("cuda", 0)
        results.append(largest_batch("ViT-B-32", "amp_bf16", gpu, start=128, limit=1 << 14, steps=args.steps))
        for name, batch in (("ego-tiny-vit", 1024), ("ego-small-vit", 512)):
            results.append(step_throughput(name, "amp_bf16", batch, gpu, args.steps, warmup=2))
    if args.shards is not None:
        results.append(loader_throughput(args.shards, "ego-tiny-vit", args.workers, 64, 20))

    table = Table(title=f"training step throughput ({info['cpu']}, {info['cores']} cores"
                        + (f", {info['gpu']}" if info["gpu"] else "") + ")")
    for col in ("model", "device", "precision", "batch", "step s", "samples/s"):
        table.add_column(col, justify="right" if col in ("batch", "step s", "samples/s") else "left")
    for r in results:
        table.add_row(r["model"], r["device"] + (f" x{r['workers']} workers" if "workers" in r else ""), r["precision"],
                      str(r["batch"]), f"{r['step_s']:.3f}", f"{r['samples_per_s']:,.1f}")
    Console().print(table)

    name = args.name or (slug(info["gpu"]) if info["gpu"] else "cpu")
    out = args.out_dir / f"train-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "train", "machine": info, "results": results,
                               "note": "samples/s per device for one optimizer step (forward, loss, backward, AdamW); "
                                       "synthetic images, real tokenised captions"}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
