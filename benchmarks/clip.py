"""Clip-level video model speed: training steps, the clip loader, and clip vectors in the build.

Side by side in one run, same machine and threads:

* **training**: clips/s of full optimizer steps (``egoindex.train.loop.Trainer.step``, the loop's own
  step: forward both towers on ``[rows, T, 3, H, W]`` synthetic clips, EgoNCE with verbs/nouns
  multi-hot tags and caption keys, backward, gradient clipping, AdamW) for the clip model at
  ``T`` frames and ``B`` anchors, without and with scene-aware negatives (``2B`` rows), against
  the frame model on ``B*T`` frames (the same images one frame at a time: what a clip costs
  relative to its frames). ``--shards DIR`` adds the loader alone: clips/s of
  ``clip_train_loader`` (the loop's settings for ``--loss egonce``: tags, scene negatives) with 0
  and 1 workers.
* **build**: clip vectors/s of the build's way (``Embedder.encode_windows`` on frame vectors: the
  temporal head only, TSN segment middles of each window) against forward-only
  (``ClipVideoModel.encode_video`` on already-preprocessed clip tensors: the cost if clips were
  re-embedded from pixels) and against the frame mean (a frame checkpoint's ``encode_windows``, the
  normalised mean), at ``--windows`` window counts (windows of 16 frames, 4 s at 4 fps, stride 8).
  With ``--shards`` also the whole ``egoindex build`` wall time of those shards with a frame
  checkpoint and with a clip checkpoint of the same towers.

Models: ``ego-tiny-rn-video`` (CPU; frame model ``ego-tiny-rn``), random weights (seed 0) made
with ``create_clip_video`` + ``make_clip_video_checkpoint``; the frame checkpoint is the clip
model's own towers (``make_checkpoint``). On CUDA (if present) also ``ViT-B-32-video`` against
``ViT-B-32`` with bf16 autocast; skipped with a note otherwise.

Prints rich tables and writes ``benchmarks/results/clip-<name>.json`` (machine description from
``benchmarks.machine.describe``) and a bar chart beside it (if matplotlib is installed).

    python -m benchmarks.clip                                   # -> benchmarks/results/clip-cpu.json
    python -m benchmarks.clip --shards /tmp/m2/shards           # + loader and whole-build timings
    python -m benchmarks.clip --shards /tmp/m2/shards --threads 1 --steps 3   # docs/benchmarks.md (shared machine)
    python -m benchmarks.clip --steps 1 --windows 64 --out-dir /tmp/clip-quick   # smoke check
"""

from __future__ import annotations

import os

if not os.environ.get("LANCE_LOG"):  # an empty value (set in some shells) would mean "warn"
    os.environ["LANCE_LOG"] = "error"

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from benchmarks.machine import describe
from egoindex.metrics.egomcq import EGOCLIP_NOUN_DIM, EGOCLIP_VERB_DIM
from egoindex.model.clip_video import create_clip_video, load_embedding_model, make_clip_video_checkpoint
from egoindex.model.embed import Embedder
from egoindex.model.openclip import create, make_checkpoint, save_checkpoint
from egoindex.train.config import TrainConfig
from egoindex.train.data import Batch, clip_train_loader
from egoindex.train.loop import Trainer, autocast_factory, make_loss, param_groups

CAPTIONS = ["#C C picks up the red ball", "#C C rolls the blue cup away", "#C C shakes the green block",
            "#C C drops the purple star on the rug"]
PACKAGES = ("torch", "open_clip_torch", "numpy", "pylance", "webdataset")
WINDOW_FRAMES, WINDOW_STRIDE = 16, 8  # 4 s windows every 2 s at 4 fps (the build's defaults at ingest --fps 4)


def machine() -> dict[str, Any]:
    """The shared machine description plus what matters to these timings."""
    info = describe(PACKAGES)
    info["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- training --------------------------------------------------------------------------------


def synthetic_batch(rows: int, image_shape: tuple[int, ...], tokenizer: Any, device: torch.device,
                    negatives: int) -> Batch:
    """A training batch of random pixels, real tokenised captions and 1-2 verb/noun tags per row."""
    g = torch.Generator().manual_seed(0)
    verbs = torch.zeros(rows, EGOCLIP_VERB_DIM, dtype=torch.uint8)
    nouns = torch.zeros(rows, EGOCLIP_NOUN_DIM, dtype=torch.uint8)
    verbs[torch.arange(rows), torch.randint(0, EGOCLIP_VERB_DIM, (rows,), generator=g)] = 1
    nouns[torch.arange(rows), torch.randint(0, EGOCLIP_NOUN_DIM, (rows,), generator=g)] = 1
    nouns[torch.arange(rows), torch.randint(0, EGOCLIP_NOUN_DIM, (rows,), generator=g)] = 1
    return Batch(torch.randn(rows, *image_shape, generator=g),
                 tokenizer([CAPTIONS[i % len(CAPTIONS)] + f" {i}" for i in range(rows)]),
                 torch.arange(rows, dtype=torch.int64), torch.arange(rows, dtype=torch.int64),
                 verbs, nouns, negatives).to(device)


def step_throughput(name: str, clip_model: bool, anchors: int, rows: int, frames_per_row: int, precision: str,
                    device: torch.device, steps: int, warmup: int) -> dict[str, Any]:
    """Median time of ``Trainer.step`` (the training loop's optimizer step) on one synthetic batch."""
    torch.manual_seed(0)
    cfg = TrainConfig(shards="-", run_dir="-", model=name, loss="egonce", precision=precision,
                      temporal_lr_scale=5.0 if clip_model else 1.0, num_frames=frames_per_row)
    if clip_model:
        c = create_clip_video(name, num_frames=frames_per_row, device=device)
        size = c.model.clip.visual.image_size
    else:
        c = create(name, device=device)
        size = c.model.visual.image_size
    size = size if isinstance(size, int) else size[0]
    model = c.model.train()
    shape = (frames_per_row, 3, size, size) if clip_model else (3, size, size)
    batch = synthetic_batch(rows, shape, c.tokenizer, device, negatives=rows - anchors)
    opt = torch.optim.AdamW(param_groups(model, cfg.wd, cfg.temporal_lr_scale), lr=1e-4,
                            betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    trainer = Trainer(model, make_loss(cfg, 0, 1), opt, None, autocast_factory(precision, device), cfg, False)
    times = []
    try:
        for i in range(warmup + steps):
            _sync(device)
            t0 = time.perf_counter()
            trainer.step([batch], 1e-4)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    finally:
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
        del model, opt, trainer, batch
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    t = statistics.median(times)
    images = rows * (frames_per_row if clip_model else 1)
    return {"model": name, "device": device.type, "precision": precision, "anchors": anchors, "rows": rows,
            "frames_per_row": frames_per_row if clip_model else 1, "images": images, "step_s": round(t, 4),
            "rows_per_s": round(rows / t, 1), "anchors_per_s": round(anchors / t, 1),
            "images_per_s": round(images / t, 1), "steps": steps, "step_s_all": [round(x, 4) for x in times],
            **({"peak_gib": round(peak, 2)} if peak is not None else {})}


def training_section(video: str, frame: str, batch: int, frames: int, precision: str, device: torch.device,
                     steps: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Clip model without/with scene negatives and the frame model on the same images; rows and ratios."""
    a = step_throughput(video, True, batch, batch, frames, precision, device, steps, warmup=2)
    a["case"] = f"clip model, B={batch}, T={frames}"
    b = step_throughput(video, True, batch, 2 * batch, frames, precision, device, steps, warmup=2)
    b["case"] = f"clip model + scene negatives, 2B={2 * batch} rows"
    f = step_throughput(frame, False, batch * frames, batch * frames, frames, precision, device, steps, warmup=2)
    f["case"] = f"frame model on B*T={batch * frames} frames"
    f2 = step_throughput(frame, False, 2 * batch * frames, 2 * batch * frames, frames, precision, device, steps,
                         warmup=2)
    f2["case"] = f"frame model on 2B*T={2 * batch * frames} frames"
    rows = [a, b, f, f2]
    for r in rows:
        print(f"  {r['case']} ({r['model']} {device.type} {r['precision']}): {r['rows_per_s']} rows/s, "
              f"{r['images_per_s']} images/s", flush=True)
    ratios = {
        "model": video, "device": device.type, "precision": precision, "batch": batch, "frames": frames,
        # the same frames through the clip model vs the frame model (one clip = T frame rows)
        "clip_step_over_frame_step": round(a["step_s"] / f["step_s"], 3),
        "clip_negatives_step_over_frame_step": round(b["step_s"] / f2["step_s"], 3),
        # what scene negatives cost per anchor: anchors/s with them over anchors/s without
        "anchors_per_s_with_over_without_negatives": round(b["anchors_per_s"] / a["anchors_per_s"], 3),
        "negatives_step_over_plain_step": round(b["step_s"] / a["step_s"], 3),
    }
    return rows, ratios


def loader_throughput(shards: Path, video: str, frames: int, workers: int, batch: int, batches: int) -> dict[str, Any]:
    """clips/s of ``clip_train_loader`` as ``egoindex train --loss egonce`` builds it (after the first batch)."""
    c = create_clip_video(video, num_frames=frames)
    t_start = time.perf_counter()
    loader = clip_train_loader(shards, preprocess=c.preprocess_train, tokenizer=c.tokenizer, batch_size=batch,
                               workers=workers, rank=0, world_size=1, seed=0, num_frames=frames, with_tags=True,
                               scene_negatives=True)
    it = iter(loader)
    first = next(it)  # workers started, buffers filling
    t_first = time.perf_counter()
    rows = 0
    for _ in range(batches):
        rows += len(next(it).images)
    dt = time.perf_counter() - t_first
    del it, loader  # stop the worker processes now, not during interpreter shutdown
    return {"model": video, "device": "loader", "workers": workers, "anchors": batch, "rows": len(first.images),
            "frames_per_row": frames, "batches": batches, "first_batch_s": round(t_first - t_start, 3),
            "batch_s": round(dt / batches, 4), "rows_per_s": round(rows / dt, 1),
            "anchors_per_s": round(batch * batches / dt, 1), "images_per_s": round(rows * frames / dt, 1)}


# ---- build -----------------------------------------------------------------------------------


def make_checkpoints(video: str, frames: int, out: Path) -> tuple[Path, Path]:
    """A random clip checkpoint (seed 0) and a frame checkpoint of its own towers."""
    torch.manual_seed(0)
    c = create_clip_video(video, num_frames=frames)
    clip_ckpt, frame_ckpt = out / f"{video}-random-seed0.pt", out / f"{c.frame_model}-random-seed0.pt"
    note = {"note": "random weights, benchmarks/clip.py"}
    save_checkpoint(clip_ckpt, make_clip_video_checkpoint(c.model, c.name, c.frame_model, config=note))
    save_checkpoint(frame_ckpt, make_checkpoint(c.model.clip, c.frame_model, epoch=0, step=0, config=note))
    return frame_ckpt, clip_ckpt


def windows_of(n_windows: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unit frame vectors of a time-sorted video and ``n_windows`` windows of 16 frames, stride 8."""
    n = (n_windows - 1) * WINDOW_STRIDE + WINDOW_FRAMES
    return np.arange(n), [np.arange(i * WINDOW_STRIDE, i * WINDOW_STRIDE + WINDOW_FRAMES) for i in range(n_windows)]


def best_of(fn: Any, repeat: int) -> float:
    """The median wall time of ``repeat`` calls (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build_section(frame_ckpt: Path, clip_ckpt: Path, window_counts: list[int], forward_clips: int, precision: str,
                  device: torch.device, repeat: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Clip vectors/s: the build's temporal head on frame vectors, the frame mean, forward from pixels."""
    clip_emb = Embedder(load_embedding_model(clip_ckpt, device=device), device=device, precision=precision)
    frame_emb = Embedder(load_embedding_model(frame_ckpt, device=device), device=device, precision=precision)
    video = clip_emb.video
    t_frames, dim, s = int(clip_emb.num_frames or 1), clip_emb.dim, clip_emb.pp.image_size
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    base = {"model": clip_emb.loaded.name, "device": device.type, "precision": precision}
    rng = np.random.default_rng(0)

    # forward-only: encode_video on preprocessed clip tensors already on the device, batch 64 clips
    x = torch.randn(min(64, forward_clips), t_frames, 3, s, s, device=device)

    def forward() -> None:
        with torch.inference_mode():
            for lo in range(0, forward_clips, len(x)):
                xb = x[:min(len(x), forward_clips - lo)]
                with clip_emb._autocast():
                    c = video.encode_video(xb)
                F.normalize(c.float(), dim=-1).cpu().numpy()
        _sync(device)

    t = best_of(forward, repeat)
    fwd = {**base, "method": "forward-only (encode_video on pixels)", "windows": forward_clips,
           "s": round(t, 4), "clips_per_s": round(forward_clips / t, 1)}
    rows.append(fwd)
    print(f"  forward-only: {fwd['clips_per_s']} clips/s ({forward_clips} clips)", flush=True)
    for m in window_counts:
        idx, members = windows_of(m)
        vecs = rng.standard_normal((len(idx), dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        out: dict[str, Any] = {}
        for label, emb in (("build: temporal head (encode_windows)", clip_emb),
                           ("frame mean (frame checkpoint's encode_windows)", frame_emb)):
            t = best_of(lambda emb=emb: emb.encode_windows(vecs, members), repeat)
            r = {**base, "method": label, "windows": m, "frame_vectors": len(idx), "s": round(t, 4),
                 "clips_per_s": round(m / t, 1)}
            rows.append(r)
            out[label] = r
            print(f"  {label}, {m} windows: {r['clips_per_s']} clips/s", flush=True)
        head, mean = out["build: temporal head (encode_windows)"], out["frame mean (frame checkpoint's encode_windows)"]
        ratios.append({**base, "windows": m, "head_over_forward": round(head["clips_per_s"] / fwd["clips_per_s"], 1),
                       "head_over_frame_mean": round(head["clips_per_s"] / mean["clips_per_s"], 3)})
    return rows, ratios


def _egoindex_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("egoindex")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "egoindex.cli.main"]


def whole_build(ckpt: Path, shards: Path, kind: str, device: str) -> dict[str, Any]:
    """Wall time of ``egoindex build CKPT SHARDS STORE -q`` into a throw-away store."""
    store = Path(tempfile.mkdtemp(prefix="bench-clip-store-")) / "store"
    cmd = [*_egoindex_cmd(), "build", str(ckpt), str(shards), str(store), "-q", "--device", device]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    counts = {}
    try:
        import lancedb

        db = lancedb.connect(str(store / "lance"))
        counts = {t: db.open_table(t).count_rows() for t in ("frames", "clips")}
    except Exception as e:  # the timing stands without the counts
        counts = {"error": repr(e)[:200]}
    shutil.rmtree(store.parent, ignore_errors=True)
    return {"checkpoint": kind, "path": ckpt.name, "wall_s": round(dt, 2), **counts}


# ---- output ------------------------------------------------------------------------------------


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower()


def chart(payload: dict[str, Any], path: Path) -> Path | None:
    """Bar charts of training throughput and clip-vector throughput (log scale); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [r for r in payload["training"] if r["device"] == "cpu"]
    build = [r for r in payload["build"] if r["device"] == "cpu"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8))
    a.barh([r["case"] for r in train], [r["images_per_s"] for r in train], color="tab:blue")
    a.set_xlabel("images (frames) per second, full optimizer step")
    a.set_title("training, CPU")
    labels = [f"{r['method'].split(' (')[0]} [{r['windows']}]" for r in build]
    b.barh(labels, [r["clips_per_s"] for r in build], color="tab:orange")
    b.set_xscale("log")
    b.set_xlabel("clip vectors per second (log)")
    b.set_title("clip vectors, CPU")
    for ax in (a, b):
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=5, help="timed training steps per case (after 2 warm-up steps)")
    p.add_argument("--batch", type=int, default=16, help="anchors per step B (egoindex train --batch-size)")
    p.add_argument("--frames", type=int, default=4, help="frames per clip T")
    p.add_argument("--windows", type=int, nargs="+", default=[256, 4096], help="window counts for the clip vectors")
    p.add_argument("--forward-clips", type=int, default=256, help="clips for the forward-only case")
    p.add_argument("--repeat", type=int, default=3, help="timed calls per clip-vector case (median)")
    p.add_argument("--shards", type=Path, default=None, help="also time the loader and whole builds on these shards")
    p.add_argument("--loader-batches", type=int, default=30, help="batches timed per loader case")
    p.add_argument("--build-repeat", type=int, default=2, help="whole builds per checkpoint, taking turns (median)")
    p.add_argument("--no-build", action="store_true", help="skip the whole-build timings")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's, one per core); on a shared machine 1 avoids the many-fold "
                        "slow-down of 2 threads on 2 busy cores")
    p.add_argument("--name", default=None, help="result file suffix (default: 'cpu', or the GPU's name)")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    info = machine()
    cpu = torch.device("cpu")
    print(f"{info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads, load {info['load_average']}",
          flush=True)
    print("training (CPU, fp32):", flush=True)
    training, train_ratios = training_section("ego-tiny-rn-video", "ego-tiny-rn", args.batch, args.frames, "fp32", cpu,
                                              args.steps)
    train_ratios = [train_ratios]
    loader: list[dict[str, Any]] = []
    if args.shards is not None:
        for w in (0, 1):
            r = loader_throughput(args.shards, "ego-tiny-rn-video", args.frames, w, args.batch, args.loader_batches)
            print(f"  loader, {w} workers: {r['rows_per_s']} clips/s ({r['anchors_per_s']} anchors/s)", flush=True)
            loader.append(r)
    ckpt_dir = Path(tempfile.mkdtemp(prefix="bench-clip-ckpt-"))
    frame_ckpt, clip_ckpt = make_checkpoints("ego-tiny-rn-video", args.frames, ckpt_dir)
    print("clip vectors (CPU, fp32):", flush=True)
    build, build_ratios = build_section(frame_ckpt, clip_ckpt, args.windows, args.forward_clips, "fp32", cpu,
                                        args.repeat)
    builds: list[dict[str, Any]] = []
    if args.shards is not None and not args.no_build:
        # the two take turns (frame, clip, clip, frame, ...): a change in machine load hits both alike
        walls: dict[str, list[dict[str, Any]]] = {"frame": [], "clip": []}
        for i in range(args.build_repeat):
            for kind in (("frame", "clip") if i % 2 == 0 else ("clip", "frame")):
                r = whole_build(frame_ckpt if kind == "frame" else clip_ckpt, args.shards, kind, "cpu")
                print(f"  egoindex build, {kind} checkpoint: {r['wall_s']} s", flush=True)
                walls[kind].append(r)
        for kind in ("frame", "clip"):
            mid = sorted(walls[kind], key=lambda r: r["wall_s"])[len(walls[kind]) // 2]
            builds.append({**mid, "runs_wall_s": [r["wall_s"] for r in walls[kind]]})
    cuda_note = None
    if torch.cuda.is_available():
        gpu = torch.device("cuda", 0)
        print("CUDA (bf16):", flush=True)
        rows, rat = training_section("ViT-B-32-video", "ViT-B-32", 128, args.frames, "amp_bf16", gpu, args.steps)
        training += rows
        train_ratios.append(rat)
        fg, cg = make_checkpoints("ViT-B-32-video", args.frames, ckpt_dir)
        rows, rat = build_section(fg, cg, [4096, 65536], 2048, "bf16", gpu, args.repeat)
        build += rows
        build_ratios += rat
    else:
        cuda_note = "no CUDA device on this machine: the ViT-B-32-video bf16 section was skipped"
        print(f"  note: {cuda_note}", flush=True)
    shutil.rmtree(ckpt_dir, ignore_errors=True)

    console = Console(width=max(140, Console().width))
    t = Table(title=f"training step throughput, EgoNCE ({info['cpu']}, {info['cores']} cores"
                    + (f", {info['gpu']}" if info["gpu"] else "") + ")")
    for col in ("case", "model", "device", "precision", "rows", "step s", "rows/s", "anchors/s", "images/s"):
        t.add_column(col, justify="left" if col in ("case", "model", "device", "precision") else "right")
    for r in training:
        t.add_row(r["case"], r["model"], r["device"], r["precision"], str(r["rows"]), f"{r['step_s']:.3f}",
                  f"{r['rows_per_s']:,.1f}", f"{r['anchors_per_s']:,.1f}", f"{r['images_per_s']:,.1f}")
    for r in loader:
        t.add_row(f"clip_train_loader, {r['workers']} workers", r["model"], "loader", "-", str(r["rows"]),
                  f"{r['batch_s']:.3f}", f"{r['rows_per_s']:,.1f}", f"{r['anchors_per_s']:,.1f}",
                  f"{r['images_per_s']:,.1f}")
    console.print(t)
    t = Table(title="clip vectors (clips/s)")
    for col in ("model", "device", "precision", "method", "windows", "s", "clips/s"):
        t.add_column(col, justify="right" if col in ("windows", "s", "clips/s") else "left")
    for r in build:
        t.add_row(r["model"], r["device"], r["precision"], r["method"], str(r["windows"]), f"{r['s']:.4f}",
                  f"{r['clips_per_s']:,.1f}")
    for r in builds:
        t.add_row("ego-tiny-rn" + ("-video" if r["checkpoint"] == "clip" else ""), "cpu", "fp32",
                  f"whole egoindex build, {r['checkpoint']} checkpoint", str(r.get("clips", "-")), f"{r['wall_s']:.2f}",
                  "-")
    console.print(t)
    t = Table(title="ratios")
    for col in ("what", "value"):
        t.add_column(col)
    for r in train_ratios:
        for k, v in r.items():
            if k.endswith(("_step", "_negatives")):
                t.add_row(f"{r['model']} {r['device']}: {k}", str(v))
    for r in build_ratios:
        t.add_row(f"{r['model']} {r['device']} {r['windows']} windows: head_over_forward", str(r["head_over_forward"]))
        t.add_row(f"{r['model']} {r['device']} {r['windows']} windows: head_over_frame_mean",
                  str(r["head_over_frame_mean"]))
    if len(builds) == 2:
        t.add_row("whole build: clip checkpoint / frame checkpoint (wall)",
                  str(round(builds[1]["wall_s"] / builds[0]["wall_s"], 3)))
    console.print(t)
    if cuda_note:
        console.print(f"[yellow]note:[/] {cuda_note}")

    name = args.name or (slug(info["gpu"]) if info["gpu"] else "cpu")
    out = args.out_dir / f"clip-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "benchmark": "clip", "machine": describe(PACKAGES) | {"torch_threads": info["torch_threads"],
                                                          "load_average_start": info["load_average"]},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "training": training, "training_ratios": train_ratios, "loader": loader, "build": build,
        "build_ratios": build_ratios, "whole_build": builds,
        "whole_build_clip_over_frame": round(builds[1]["wall_s"] / builds[0]["wall_s"], 3) if len(builds) == 2 else None,
        "cuda_note": cuda_note,
        "note": "training: Trainer.step (forward, EgoNCE with verbs/nouns multi-hot and caption keys, backward, clip, "
                "AdamW) on synthetic pixels; rows = clips (clip model) or frames (frame model); images = frames. "
                "loader: clip_train_loader with tags and scene negatives, rows/s after the first batch. clip vectors: "
                "windows of 16 frame vectors, stride 8; head = Embedder.encode_windows of a clip checkpoint (T segment "
                "middles through the temporal head), frame mean = a frame checkpoint's encode_windows, forward-only = "
                "ClipVideoModel.encode_video on preprocessed tensors. Random weights.",
    }
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}")
    png = chart(payload, out.with_suffix(".png"))
    if png:
        print(f"wrote {png}")


if __name__ == "__main__":
    main()
