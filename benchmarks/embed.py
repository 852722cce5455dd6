"""Embedding throughput: the build's data path against a clip-retrieval-style loader and against
the model's forward pass alone, same shards, model, batch, device and loader workers, same run.

* **build**: ``egoindex.build.frames.embed_shards`` as ``egoindex build`` runs it (``ShardChunks`` in
  ``spawn`` loader workers decoding straight to uint8 crops with PIL draft mode, or, with
  ``--decode device``, raw JPEG bytes decoded on the device by ``Embedder.crops_from_jpegs_on_device``;
  normalisation on the device in ``Embedder.encode_crops``; each finished shard written as Lance
  fragments into a throw-away store).
* **baseline** (clip-retrieval style): a torch ``DataLoader`` over the same shard samples, one
  sample at a time PIL decode + the model's own open_clip ``preprocess`` (resize, crop,
  ``ToTensor``, normalise, float32), default collate, then ``model.encode_image``.
* **forward-only**: ``model.encode_image`` + normalise on pre-made float tensors already on the
  device (the upper bound for any data path).

frames/s is reported end to end (including loader worker start-up) and steady (after the first
batch: what a long build sees); the ratios use steady. Goal on CPU: build >= 0.9 x forward-only.

Models: ``--model`` (default ViT-B-32, random weights, no download) and ``ego-tiny-vit``; each is
written as an egoindex checkpoint (``make_checkpoint``/``save_checkpoint``) and loaded with
``egoindex.model.openclip.load_model``, so the build path is used as-is. ``--device auto`` uses CUDA when
present; there it also measures bf16 (autocast) and ``--decode device``.

Shards: ``--shards DIR`` (an ``egoindex ingest`` output), else a demo corpus made once with
``egoindex demo-data`` + ``egoindex ingest`` under ~/.cache/egoindex (CPU: 12 videos x 60 s at
4 fps = 2,880 frames, 512 samples per shard; CUDA: 24 x 120 s at 5 fps = 14,400 frames, 1,024
per shard). Demo frames are 320x240 JPEGs. Keep shards a multiple of ``--batch``: the build
embeds each shard in chunks of at most ``--batch``, so a shard's tail is a short batch.

Usage:
    python -m benchmarks.embed                        # -> benchmarks/results/embed-{cpu|gpu}.json
    python -m benchmarks.embed --shards demo/shards --batch 128
    python -m benchmarks.embed --max-frames 512 --out /tmp/embed-quick.json   # smoke check
"""

from __future__ import annotations

import os

if not os.environ.get("LANCE_LOG"):  # an empty value (set in some shells) would mean "warn"
    os.environ["LANCE_LOG"] = "error"

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from egoindex.dataset.layout import ShardsLayout, has_sizes, read_sizes
from egoindex.build.config import BuildConfig, BuildLayout, BuildSummary
from egoindex.build.frames import embed_shards
from egoindex.core.resources import available_cpus
from egoindex.dataset.shards import list_shards, read_shard
from egoindex.model.embed import Embedder, resolve_device
from egoindex.model.openclip import load_model, make_checkpoint, save_checkpoint

CACHE = Path.home() / ".cache" / "egoindex"
PACKAGES = ("torch", "torchvision", "open_clip_torch", "pillow", "numpy", "pylance")


# ---- data and models -------------------------------------------------------------------------


def _egoindex_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("egoindex")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "egoindex.cli.main"]


def demo_shards(videos: int, seconds: float, fps: float, shard_size: int) -> Path:
    """Shards of a demo corpus, made once with the CLI (``egoindex demo-data`` + ``egoindex ingest``)."""
    root = CACHE / f"bench-embed-v{videos}-s{seconds:g}-f{fps:g}-sh{shard_size}"
    shards = root / "shards"
    if has_sizes(shards):
        return shards
    ego = _egoindex_cmd()
    print(f"making shards in {root} (once) ...", flush=True)
    subprocess.run([*ego, "demo-data", str(root / "videos"), "--videos", str(videos), "--seconds", str(seconds), "-q"],
                   check=True)
    subprocess.run([*ego, "ingest", str(root / "videos"), str(shards), "--fps", str(fps), "--shard-size", str(shard_size),
                    "--workers", str(max(1, available_cpus())), "-q"], check=True)
    return shards


def pick_shards(shards_dir: Path, max_frames: int | None) -> tuple[list[Path], dict[str, int]]:
    """The shards to embed: all of them, or whole shards in name order up to ``max_frames``."""
    sizes = read_sizes(shards_dir)
    shards = [p for p in list_shards(shards_dir) if p.name in sizes]
    if not shards:
        raise SystemExit(f"no shards listed in {ShardsLayout(shards_dir).sizes}")
    if max_frames:
        keep, total = [], 0
        for p in shards:
            if keep and total + sizes[p.name] > max_frames:
                break
            keep.append(p)
            total += sizes[p.name]
        shards = keep
    return shards, sizes


def checkpoint_for(name: str) -> Path:
    """A random-weights egoindex checkpoint of ``name`` (seed 0), written once."""
    import open_clip

    path = CACHE / "bench-embed-ckpt" / f"{name}-random-seed0.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model, _, _ = open_clip.create_model_and_transforms(name, pretrained=None)
        save_checkpoint(path, make_checkpoint(model, name, epoch=0, step=0,
                                              config={"note": "random weights, benchmarks/embed.py"}))
    return path


# ---- timing helpers ----------------------------------------------------------------------------


def stats(t_start: float, stamps: list[tuple[float, int]], t_end: float) -> dict[str, Any]:
    """frames/s from batch completion times: end to end, and steady (after the first batch)."""
    frames = sum(n for _, n in stamps)
    out: dict[str, Any] = {"frames": frames, "batches": len(stamps), "wall_s": round(t_end - t_start, 3),
                           "first_batch_s": round(stamps[0][0] - t_start, 3) if stamps else None,
                           "frames_per_s": round(frames / (t_end - t_start), 2) if frames else None,
                           "steady_frames_per_s": None}
    if len(stamps) > 1 and stamps[-1][0] > stamps[0][0]:
        out["steady_frames_per_s"] = round((frames - stamps[0][1]) / (stamps[-1][0] - stamps[0][0]), 2)
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- the three paths -------------------------------------------------------------------------


def run_build(embedder: Embedder, ckpt: Path, shards_dir: Path, shards: list[Path], sizes: dict[str, int], batch: int,
              workers: int, decode: str) -> dict[str, Any]:
    """``embed_shards`` as the build calls it, into a throw-away store; batch times are taken
    around ``Embedder.encode_crops`` (which returns CPU numpy, so the device is done)."""
    store = Path(tempfile.mkdtemp(prefix="bench-embed-store-"))
    layout = BuildLayout(store)
    layout.frames.mkdir(parents=True)
    cfg = BuildConfig(checkpoint=ckpt, shards=shards_dir, store=store, batch_size=batch, workers=workers,
                      decode=decode, progress=False)
    summary = BuildSummary()
    stamps: list[tuple[float, int]] = []
    inner = embedder.encode_crops

    def timed(crops: torch.Tensor) -> np.ndarray:
        v = inner(crops)
        stamps.append((time.perf_counter(), len(v)))
        return v

    embedder.encode_crops = timed  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        embed_shards(cfg, layout, shards, embedder, sizes, summary)
        t1 = time.perf_counter()
    finally:
        del embedder.encode_crops  # back to the class method
        shutil.rmtree(store, ignore_errors=True)
    if summary.shards_embedded != len(shards) or summary.skipped:
        raise RuntimeError(f"build path embedded {summary.shards_embedded}/{len(shards)} shards, skipped {summary.skipped[:3]}")
    return stats(t0, stamps, t1)


class PerSampleShards(IterableDataset):
    """clip-retrieval's loader shape: samples of the shards, one PIL decode + open_clip
    ``preprocess`` each; shards split over workers like the build's ``ShardChunks``."""

    def __init__(self, shards: list[Path], preprocess: Callable[[Image.Image], torch.Tensor]) -> None:
        super().__init__()
        self.shards, self.preprocess = shards, preprocess

    def __iter__(self) -> Iterator[tuple[torch.Tensor, str]]:
        wi = get_worker_info()
        mine = self.shards[wi.id::wi.num_workers] if wi else self.shards
        for path in mine:
            for key, sample in read_shard(path):
                if key is None:
                    break
                json.loads(sample["json"].decode("utf-8"))  # metadata, as clip-retrieval reads it
                yield self.preprocess(Image.open(io.BytesIO(sample["jpg"]))), key


def run_baseline(embedder: Embedder, shards: list[Path], batch: int, workers: int) -> dict[str, Any]:
    device, model = embedder.device, embedder.model
    ds = PerSampleShards(shards, embedder.loaded.preprocess)
    stamps: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, multiprocessing_context="spawn" if workers else None,
                        prefetch_factor=4 if workers else None, pin_memory=device.type == "cuda")
    with torch.inference_mode():
        for x, _keys in loader:
            with embedder._autocast():
                f = model.encode_image(x.to(device, non_blocking=True))
            F.normalize(f.float(), dim=-1).cpu().numpy()
            stamps.append((time.perf_counter(), len(x)))
    t1 = time.perf_counter()
    del loader
    return stats(t0, stamps, t1)


def run_forward(embedder: Embedder, frames: int, batch: int) -> dict[str, Any]:
    device, model = embedder.device, embedder.model
    s = embedder.pp.image_size
    x = torch.randn(batch, 3, s, s, device=device, generator=None)
    _sync(device)
    stamps: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for lo in range(0, frames, batch):
            xb = x[:min(batch, frames - lo)]
            with embedder._autocast():
                f = model.encode_image(xb)
            F.normalize(f.float(), dim=-1).cpu().numpy()
            stamps.append((time.perf_counter(), len(xb)))
    t1 = time.perf_counter()
    return stats(t0, stamps, t1)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run (by steady frames/s) of repeated measurements, with all runs' figures."""
    if len(runs) == 1:
        return runs[0]
    key = "steady_frames_per_s" if all(r["steady_frames_per_s"] for r in runs) else "frames_per_s"
    mid = sorted(runs, key=lambda r: r[key])[len(runs) // 2]
    return {**mid, "runs": [r[key] for r in runs]}


def ratio(a: dict[str, Any], b: dict[str, Any], key: str = "steady_frames_per_s") -> float | None:
    return round(a[key] / b[key], 3) if a.get(key) and b.get(key) else None


# ---- main --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=Path, default=None, help="an ingest output folder (default: a cached demo corpus)")
    ap.add_argument("--model", default="ViT-B-32", help="open_clip model (random weights); ego-tiny-vit is added")
    ap.add_argument("--no-tiny", action="store_true", help="do not add ego-tiny-vit")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", nargs="+", default=None, help="fp32/bf16/fp16 (default: fp32 on CPU; fp32 bf16 on CUDA)")
    ap.add_argument("--decode", nargs="+", default=None,
                    help="build decode modes: workers/device (default: workers on CPU; workers device on CUDA)")
    ap.add_argument("--batch", type=int, default=256, help="batch size (the build's default: 256)")
    ap.add_argument("--workers", type=int, default=None,
                    help="loader workers for build and baseline (default: the build's choice, min(shards, cpus - 1, 8))")
    ap.add_argument("--max-frames", type=int, default=None, help="embed whole shards up to this many frames (smoke runs)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds over all methods (median reported)")
    ap.add_argument("--videos", type=int, default=None, help="demo corpus size when --shards is not given")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--fps", type=float, default=None)
    ap.add_argument("--shard-size", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/embed-{cpu|gpu}.json)")
    args = ap.parse_args()

    from benchmarks.machine import RESULTS, describe, save

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    precisions = args.precision or (["fp32", "bf16"] if cuda else ["fp32"])
    decodes = args.decode or (["workers", "device"] if cuda else ["workers"])
    if args.shards is None:
        d = (24, 120.0, 5.0, 1024) if cuda else (12, 60.0, 4.0, 512)
        shards_dir = demo_shards(args.videos or d[0], args.seconds or d[1], args.fps or d[2], args.shard_size or d[3])
    else:
        shards_dir = args.shards
    shards, sizes = pick_shards(shards_dir, args.max_frames)
    frames = sum(sizes[p.name] for p in shards)
    workers = args.workers if args.workers is not None else max(1, min(len(shards), available_cpus() - 1, 8))
    for p in shards:  # into the page cache, so no path pays the first read
        p.read_bytes()
    models = [args.model] + ([] if args.no_tiny or args.model == "ego-tiny-vit" else ["ego-tiny-vit"])
    info = describe(PACKAGES)
    info["torch_threads"] = torch.get_num_threads()
    print(f"{frames} frames in {len(shards)} shards of {shards_dir}; device {device}, batch {args.batch}, "
          f"{workers} loader workers", flush=True)

    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for name in models:
        ckpt = checkpoint_for(name)
        for prec in precisions:
            embedder = Embedder(load_model(ckpt, device=device), device=device, precision=prec)
            base = {"model": name, "device": device.type, "precision": prec, "batch": args.batch, "workers": workers,
                    "image_size": embedder.pp.image_size}
            print(f"{name} {prec} ({embedder.pp.image_size} px):", flush=True)
            # the methods take turns (forward, builds, baseline, forward, ...), so a change in machine
            # load during the run hits them alike; each figure is the median over --repeat rounds
            runs: dict[str, list[dict[str, Any]]] = {}
            for _ in range(args.repeat):
                runs.setdefault("forward", []).append(run_forward(embedder, frames, args.batch))
                for dec in decodes:
                    runs.setdefault(dec, []).append(run_build(embedder, ckpt, shards_dir, shards, sizes, args.batch,
                                                              workers, dec))
                runs.setdefault("baseline", []).append(run_baseline(embedder, shards, args.batch, workers))
            fwd = median_of(runs["forward"])
            rows.append({**base, "method": "forward-only", **fwd})
            print(f"  forward-only      {fwd['steady_frames_per_s']} frames/s steady", flush=True)
            builds = {}
            for dec in decodes:
                b = builds[dec] = median_of(runs[dec])
                rows.append({**base, "method": f"build (decode {dec})", "decode": dec, **b})
                print(f"  build decode={dec:<8} {b['steady_frames_per_s']} frames/s steady, {b['frames_per_s']} end to end",
                      flush=True)
            bl = median_of(runs["baseline"])
            rows.append({**base, "method": "baseline (clip-retrieval style)", **bl})
            print(f"  baseline          {bl['steady_frames_per_s']} frames/s steady, {bl['frames_per_s']} end to end",
                  flush=True)
            for dec, b in builds.items():
                s = {**base, "decode": dec,
                     "build_over_baseline": ratio(b, bl), "build_over_forward": ratio(b, fwd),
                     "baseline_over_forward": ratio(bl, fwd),
                     "build_over_baseline_end_to_end": ratio(b, bl, "frames_per_s"),
                     "build_over_forward_end_to_end": ratio(b, fwd, "frames_per_s")}
                if device.type == "cpu":
                    s["goal_build_over_forward_0.9_met"] = bool(s["build_over_forward"] and s["build_over_forward"] >= 0.9)
                summary.append(s)
            del embedder
            if cuda:
                torch.cuda.empty_cache()

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(140, Console().width))
    t = Table(title=f"embedding throughput, {frames} frames ({info['cpu']}, {info['cores']} cores"
                    + (f", {info['gpu']}" if info["gpu"] else "") + f"; batch {args.batch}, {workers} workers)")
    for col in ("model", "precision", "method", "frames", "first batch s", "steady frames/s", "end-to-end frames/s"):
        t.add_column(col, justify="right" if col in ("frames", "first batch s", "steady frames/s", "end-to-end frames/s") else "left")
    for r in rows:
        t.add_row(r["model"], r["precision"], r["method"], str(r["frames"]), f"{r['first_batch_s']:.2f}",
                  "-" if r["steady_frames_per_s"] is None else f"{r['steady_frames_per_s']:,.1f}", f"{r['frames_per_s']:,.1f}")
    console.print(t)
    r = Table(title="ratios (steady frames/s; end to end in brackets)")
    for col in ("model", "precision", "build decode", "build / baseline", "build / forward-only", "baseline / forward-only"):
        r.add_column(col)
    for s in summary:
        r.add_row(s["model"], s["precision"], s["decode"], f"{s['build_over_baseline']} ({s['build_over_baseline_end_to_end']})",
                  f"{s['build_over_forward']} ({s['build_over_forward_end_to_end']})", str(s["baseline_over_forward"]))
    console.print(r)
    few = min(r["batches"] for r in rows)
    if few < 6:
        console.print(f"[yellow]note:[/] steady figures rest on as few as {few - 1} batch(es) after the first; with so "
                      "few, a loader that prefetched during the first batch looks as fast as the model. Use more "
                      "frames (no --max-frames) for figures to report.")

    payload = {"frames": frames, "shards": [p.name for p in shards], "shards_dir": str(shards_dir), "batch": args.batch,
               "workers": workers, "device": str(device), "results": rows, "ratios": summary,
               "note": "steady = frames after the first batch / time from the first to the last batch; end to end "
                       "includes loader start-up (spawned workers). build = egoindex.build.frames.embed_shards incl. its "
                       "Lance fragment writes; baseline = per-sample PIL decode + open_clip preprocess, default collate; "
                       "forward-only = encode_image on pre-made tensors on the device. Random weights."}
    if args.out is None and bool(info["gpu"]) == cuda:
        path = save("embed", payload, packages=PACKAGES)
        # describe() inside save() does not know torch's threads: add them
        data = json.loads(path.read_text())
        data["machine"]["torch_threads"] = info["torch_threads"]
        path.write_text(json.dumps(data, indent=1) + "\n")
    else:  # --out, or --device cpu on a machine with a GPU (save() would call it embed-gpu)
        path = args.out or RESULTS / f"embed-{'gpu' if cuda else 'cpu'}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"benchmark": "embed", "machine": info, **payload}, indent=1) + "\n")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
