"""The GPU check: every GPU path of egoindex in one run, each section with results or why it was skipped.

Sections (each timed, each written to the JSON as soon as it ends, so a run cut short keeps what it did):

- ``environment``: torch, CUDA, the devices, ``nvidia-smi``;
- ``video_decode``: a 1080p30 H.264 clip decoded by PyAV on the CPU (every frame; the exact and
  fast 1 fps samplers) and, where they install, by torchcodec and PyNvVideoCodec on the GPU
  (every frame; the frames at 1 s steps);
- ``jpeg_decode``: 256 px JPEGs (what ingest stores) by PIL, ``torchvision.io.decode_jpeg`` on the
  CPU and batched on the GPU;
- ``embed``: ViT-B-32 and ViT-L-14 in bf16 through the build's path against forward-only
  (``benchmarks/embed.py`` on a corpus made here: synthetic videos, captions from a CSV, real
  ``egoindex ingest``), one JSON per model beside this one;
- ``whisper``: faster-whisper batched against sequential on the device
  (``benchmarks.ingest.whisper_batched_vs_sequential``, bundled tiny.en);
- ``faiss``: an IVF index trained, filled and searched on the GPU against the CPU, if the FAISS
  here has GPU support;
- ``nccl``: ``all_reduce`` across the devices present (``benchmarks/gpu_ddp.py``);
- ``ddp_train``: a few steps of ``egoindex train --nproc-per-node <devices>``.

``--device cpu`` runs the CPU fallback of every section (gloo instead of NCCL, ego-tiny-vit in
place of the big models with ``--quick``), which is how the tests check this script
(``tests/e2e/test_gpu_check.py``). torchcodec and PyNvVideoCodec are not dependencies of egoindex:
if they are not importable, wheels in ``benchmarks/gpu-wheels/`` (``bash benchmarks/gpu_wheels.sh``
fetches them where the registry can be reached) are unpacked into the cache and tried.

Usage:  bash benchmarks/gpu.sh                        # -> benchmarks/results/gpu-check.json, gpu-embed-*.json
        python -m benchmarks.gpu_check --device cpu --quick --out-dir /tmp/gpu-check
"""

from __future__ import annotations

import os

if not os.environ.get("LANCE_LOG"):
    os.environ["LANCE_LOG"] = "error"

import argparse
import importlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.machine import RESULTS, describe

CACHE = Path.home() / ".cache" / "egoindex" / "gpu-check"
WHEELS = Path(__file__).resolve().parent / "gpu-wheels"
PACKAGES = ("torch", "torchvision", "open_clip_torch", "faster-whisper", "ctranslate2", "faiss-cpu", "faiss-gpu",
            "av", "torchcodec", "pynvvideocodec", "pillow")
#: in the order they run: the cheap ones and the distributed ones first, so that a run cut short
#: by its budget loses the optional GPU decoders, not NCCL
SECTIONS = ("environment", "nccl", "jpeg_decode", "faiss", "embed", "ddp_train", "whisper", "video_decode")


class Skip(Exception):
    """A section (or a part of one) that cannot run here; the message says why."""


@dataclass
class Context:
    device: str  # "cuda" or "cpu"
    quick: bool
    out_dir: Path
    deadline: float  # time.monotonic() by which the whole check must end
    gpus: int = 0
    _corpus: Path | None = field(default=None, repr=False)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self, want: float) -> float:
        """A subprocess' timeout: ``want`` seconds, less if the budget is shorter (never < 10)."""
        left = self.left() - 5
        if left < 10:
            raise Skip(f"the time budget is spent ({self.left():.0f} s left)")
        return min(want, left)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def corpus(self) -> Path:
        """A SHARDS_DIR made once: synthetic videos, a captions CSV, real ``egoindex ingest``."""
        if self._corpus is None:
            self._corpus = make_corpus(self)
        return self._corpus


def python() -> str:
    return sys.executable


def egoindex_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("egoindex")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "egoindex.cli.main"]


def tail(text: str, n: int = 1500) -> str:
    return text[-n:] if text else ""


def run(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``cmd`` with a timeout; a non-zero exit raises with the end of its output."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}\n{tail(str(e.stdout or ''))}") from e
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {' '.join(cmd)}\n{tail(p.stdout)}\n{tail(p.stderr)}")
    return p


def optional_import(module: str, wheel_prefix: str) -> tuple[Any, str]:
    """Import ``module``; if it is missing, unpack its wheel from ``benchmarks/gpu-wheels/`` into
    the cache and import from there. Returns the module and where it came from; raises Skip."""
    try:
        return importlib.import_module(module), "installed"
    except ImportError as e:
        first = e
    wheels = sorted(WHEELS.glob(f"{wheel_prefix}-*.whl")) if WHEELS.is_dir() else []
    if not wheels:
        raise Skip(f"{module} is not installed ({first}) and no {wheel_prefix} wheel is in {WHEELS} "
                   "(bash benchmarks/gpu_wheels.sh fetches it where PyPI can be reached)")
    target = CACHE / "wheels" / wheels[-1].stem
    if not target.is_dir():
        with zipfile.ZipFile(wheels[-1]) as z:
            z.extractall(target)
    sys.path.insert(0, str(target))
    try:
        return importlib.import_module(module), f"unpacked from {wheels[-1].name}"
    except Exception as e:  # a wheel for another CUDA/FFmpeg than this machine's
        raise Skip(f"{module} from {wheels[-1].name} does not import here: {type(e).__name__}: {e}") from e


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---- the corpus ---------------------------------------------------------------------------------


def corpus_size(ctx: Context) -> tuple[int, float, float, int]:
    """(videos, seconds, fps, shard size): ~8,000 frames on a GPU, 64 in a quick CPU run."""
    if ctx.cuda:
        return 16, 100.0, 5.0, 1024
    return (2, 8.0, 4.0, 32) if ctx.quick else (6, 60.0, 4.0, 512)


def make_corpus(ctx: Context) -> Path:
    videos, seconds, fps, shard = corpus_size(ctx)
    root = CACHE / f"corpus-v{videos}-s{seconds:g}-f{fps:g}-sh{shard}"
    shards = root / "shards"
    if (shards / "sizes.json").exists():
        return shards
    import av

    shutil.rmtree(root, ignore_errors=True)
    (root / "videos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["video,start,end,text"]
    actions = ["opens the fridge", "stirs the pot", "picks up a cup", "folds a towel", "waters the plant",
               "reads a book", "wipes the table", "closes the door"]
    for v in range(videos):
        texture = np.asarray(Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).resize((640, 480)))
        with av.open(str(root / "videos" / f"room{v:02d}.mp4"), "w") as c:
            vs = c.add_stream("libx264", rate=15, options={"preset": "ultrafast"})
            vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
            for i in range(int(seconds * 15)):
                x, y = int(160 + 150 * np.sin(i / 30)), int(120 + 110 * np.cos(i / 45))
                for pk in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[y: y + 240, x: x + 320]),
                                                               format="rgb24")):
                    c.mux(pk)
            for pk in vs.encode():
                c.mux(pk)
        for k, start in enumerate(np.arange(0, seconds, 2.0)):
            rows.append(f"room{v:02d},{start:.2f},{start + 2:.2f},the person in room {v} {actions[(v + k) % len(actions)]}")
    (root / "captions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    workers = max(1, min(8, (os.cpu_count() or 2) - 1))
    run([*egoindex_cmd(), "ingest", str(root / "videos"), str(shards), "--transcripts", str(root / "captions.csv"),
         "--no-whisper", "--fps", str(fps), "--shard-size", str(shard), "--val-fraction", "0",
         "--workers", str(workers), "-q"], timeout=ctx.timeout(300))
    return shards


# ---- sections -------------------------------------------------------------------------------------


def environment(ctx: Context) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
                           "torch_cuda": torch.version.cuda, "device_count": torch.cuda.device_count(),
                           "requested_device": ctx.device}
    if torch.cuda.is_available():
        out["devices"] = [{"name": torch.cuda.get_device_name(i),
                           "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                           "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                          for i in range(torch.cuda.device_count())]
        out["bf16_supported"] = torch.cuda.is_bf16_supported()
    if shutil.which("nvidia-smi"):
        p = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,mig.mode.current",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        out["nvidia_smi"] = p.stdout.strip().splitlines() or tail(p.stderr)
    else:
        out["nvidia_smi"] = "not found"
    return out


def video_decode(ctx: Context) -> dict[str, Any]:
    import av
    import torch

    from benchmarks.ingest import make_clips
    from egoindex.media.frames import iter_frames, probe

    seconds, size = (4, (640, 360)) if ctx.quick and not ctx.cuda else (10, (1920, 1080))
    path = make_clips(CACHE / "clips", seconds, size, "h264", (60,))[60]
    info = probe(path)
    n_frames = round(info.duration * (info.native_fps or 30))
    out: dict[str, Any] = {"clip": f"{size[0]}x{size[1]} 30 fps H.264, keyframe every 60 frames, {seconds} s",
                           "frames": n_frames, "backends": []}
    times = [float(k) for k in range(int(info.duration))]

    t0 = time.perf_counter()
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        decoded = sum(1 for _ in c.decode(video=0))
    full = time.perf_counter() - t0
    row: dict[str, Any] = {"backend": "PyAV (CPU, threads AUTO)", "device": "cpu",
                           "decode_every_frame_fps": round(decoded / full, 1)}
    for mode in ("exact", "fast"):
        t0 = time.perf_counter()
        got = list(iter_frames(path, 1.0, sampling=mode))
        row[f"{mode}_1fps_video_x_realtime"] = round(info.duration / (time.perf_counter() - t0), 1)
        row[f"{mode}_1fps_max_error_s"] = round(max(abs(f.pts_time - f.t) for f in got), 4)
    out["backends"].append(row)

    def attempt(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        try:
            out["backends"].append({"backend": name, **fn()})
        except Skip as e:
            out["backends"].append({"backend": name, "skipped": str(e)})
        except Exception as e:  # a GPU library that imports but cannot run here
            out["backends"].append({"backend": name, "skipped": f"{type(e).__name__}: {str(e)[:500]}"})

    def torchcodec_run() -> dict[str, Any]:
        mod, where = optional_import("torchcodec", "torchcodec")
        from torchcodec.decoders import VideoDecoder

        dev = "cuda" if ctx.cuda else "cpu"
        res: dict[str, Any] = {"device": dev, "version": getattr(mod, "__version__", None), "source": where}
        dec = VideoDecoder(str(path), device=dev)
        t0 = time.perf_counter()
        n = 0
        for lo in range(0, n_frames, 64):
            n += len(dec.get_frames_in_range(start=lo, stop=min(n_frames, lo + 64)).data)
        sync()
        res["decode_every_frame_fps"] = round(n / (time.perf_counter() - t0), 1)
        for seek_mode in ("exact", "approximate"):
            dec = VideoDecoder(str(path), device=dev, seek_mode=seek_mode)
            t0 = time.perf_counter()
            batch = dec.get_frames_played_at(seconds=times)
            sync()
            res[f"played_at_1s_steps_{seek_mode}_video_x_realtime"] = round(info.duration / (time.perf_counter() - t0), 1)
            res[f"played_at_1s_steps_{seek_mode}_max_error_s"] = round(
                float((batch.pts_seconds.cpu() - torch.tensor(times)).abs().max()), 4)
        return res

    def nvc_run() -> dict[str, Any]:
        if not ctx.cuda:
            raise Skip("needs a CUDA device (NVDEC)")
        nvc, where = optional_import("PyNvVideoCodec", "pynvvideocodec")
        res: dict[str, Any] = {"device": "cuda", "version": getattr(nvc, "__version__", None), "source": where}
        dec = nvc.SimpleDecoder(str(path), gpu_id=0, use_device_memory=True,
                                output_color_type=nvc.OutputColorType.RGB)
        n = len(dec)
        t0 = time.perf_counter()
        got = 0
        for lo in range(0, n, 64):
            got += len(dec[lo: min(n, lo + 64)])
        sync()
        res["decode_every_frame_fps"] = round(got / (time.perf_counter() - t0), 1)
        dec = nvc.SimpleDecoder(str(path), gpu_id=0, use_device_memory=True,
                                output_color_type=nvc.OutputColorType.RGB)
        t0 = time.perf_counter()
        wanted = [round(t * 30) for t in times]
        get = getattr(dec, "get_batch_frames_by_index", None)
        frames = get(wanted) if get is not None else [dec[i] for i in wanted]
        sync()
        res["frames_at_1s_steps_video_x_realtime"] = round(info.duration / (time.perf_counter() - t0), 1)
        res["frames_at_1s_steps"] = len(frames)
        return res

    attempt("torchcodec", torchcodec_run)
    attempt("PyNvVideoCodec", nvc_run)
    return out


def sample_jpegs(n: int) -> list[bytes]:
    """``n`` distinct 455x256 JPEGs at quality 90 (the size and quality ingest stores)."""
    rng = np.random.default_rng(0)
    base = np.asarray(Image.fromarray(rng.integers(0, 255, (32, 57, 3), dtype=np.uint8)).resize((910, 512)))
    out = []
    for i in range(n):
        x, y = (i * 7) % 455, (i * 5) % 256
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(base[y: y + 256, x: x + 455])).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def jpeg_decode(ctx: Context) -> dict[str, Any]:
    import torch
    from torchvision.io import decode_jpeg

    n = 256 if ctx.quick else 2048
    jpegs = sample_jpegs(n)
    datas = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in jpegs]
    out: dict[str, Any] = {"images": n, "size": "455x256 q90", "results": []}
    t0 = time.perf_counter()
    for j in jpegs:
        Image.open(io.BytesIO(j)).convert("RGB").load()
    out["results"].append({"method": "PIL, one at a time (1 CPU thread)",
                           "images_per_s": round(n / (time.perf_counter() - t0), 1)})
    t0 = time.perf_counter()
    decode_jpeg(datas, device="cpu")
    out["results"].append({"method": "torchvision.io.decode_jpeg, CPU, list", "torch_threads": torch.get_num_threads(),
                           "images_per_s": round(n / (time.perf_counter() - t0), 1)})
    if not ctx.cuda:
        out["results"].append({"method": "torchvision.io.decode_jpeg, cuda, batched", "skipped": "no CUDA device"})
        return out
    decode_jpeg(datas[:8], device="cuda")  # warm-up: nvjpeg handles
    sync()
    for batch in (64, 256, 1024):
        t0 = time.perf_counter()
        for lo in range(0, n, batch):
            decode_jpeg(datas[lo: lo + batch], device="cuda")
        sync()
        out["results"].append({"method": f"torchvision.io.decode_jpeg, cuda, batches of {batch}",
                               "images_per_s": round(n / (time.perf_counter() - t0), 1)})
    return out


def embed(ctx: Context) -> dict[str, Any]:
    shards = ctx.corpus()
    if ctx.cuda:
        models, precision, batch, extra = ["ViT-B-32", "ViT-L-14"], "bf16", 256, []
    elif ctx.quick:
        models, precision, batch, extra = ["ego-tiny-vit"], "fp32", 32, ["--workers", "0"]
    else:
        models, precision, batch, extra = ["ViT-B-32"], "fp32", 64, []
    out: dict[str, Any] = {"shards": str(shards), "precision": precision, "batch": batch, "models": []}
    if not ctx.cuda:
        out["models"].append({"model": "ViT-L-14", "skipped": "CPU run: ViT-L-14 takes many minutes per pass here; "
                                                              "the GPU run measures it"})
        if ctx.quick:
            out["models"].append({"model": "ViT-B-32", "skipped": "--quick on CPU: ego-tiny-vit runs the same path"})
    for m in models:
        dest = ctx.out_dir / f"gpu-embed-{m.lower()}.json"
        try:
            run([python(), "-m", "benchmarks.embed", "--shards", str(shards), "--model", m, "--no-tiny",
                 "--device", ctx.device, "--precision", precision, "--batch", str(batch), "--out", str(dest), *extra],
                timeout=ctx.timeout(240 if ctx.cuda else 300))
        except Skip as e:
            out["models"].append({"model": m, "skipped": str(e)})
            continue
        data = json.loads(dest.read_text())
        rows = {r["method"]: r for r in data["results"]}
        fwd = rows["forward-only"]["steady_frames_per_s"]
        out["models"].append({
            "model": m, "json": dest.name, "frames": data["frames"],
            **{f"{k} frames/s": (r["steady_frames_per_s"], r["frames_per_s"]) for k, r in rows.items()},
            "ratios": data["ratios"], "forward_only_steady_frames_per_s": fwd,
            "note": "each 'frames/s' pair is (steady, end to end)"})
    return out


def whisper(ctx: Context) -> dict[str, Any]:
    import ctranslate2

    from benchmarks.ingest import whisper_batched_vs_sequential

    if ctx.cuda and ctranslate2.get_cuda_device_count() == 0:
        raise Skip(f"CTranslate2 {ctranslate2.__version__} sees no CUDA device (its wheel needs CUDA 12 cuBLAS/cuDNN "
                   "libraries that torch's CUDA may not provide)")
    videos, seconds = (3, 60.0) if ctx.cuda else ((1, 20.0) if ctx.quick else (3, 60.0))
    try:
        return whisper_batched_vs_sequential(videos, seconds, 16 if ctx.cuda else 8, device=ctx.device)
    except Exception as e:
        if ctx.cuda:  # e.g. "Library libcublas.so.12 is not found": CTranslate2's CUDA is not torch's
            raise Skip(f"faster-whisper on CUDA does not run here: {type(e).__name__}: {str(e)[:500]}") from e
        raise


def faiss_section(ctx: Context) -> dict[str, Any]:
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if not ctx.cuda:
        raise Skip("no CUDA device")
    if gpus == 0:
        raise Skip(f"this FAISS ({faiss.__version__}) has no GPU support (faiss-cpu); faiss-gpu-cu12 would add it")
    rng = np.random.default_rng(0)
    n, d, nq = (200_000, 512, 2_000)
    x = rng.standard_normal((n, d), dtype=np.float32)
    q = x[rng.choice(n, nq, replace=False)] + 0.05 * rng.standard_normal((nq, d), dtype=np.float32)
    out: dict[str, Any] = {"vectors": n, "dim": d, "queries": nq, "index": "IVF1024,Flat", "nprobe": 16,
                           "gpus": gpus, "results": []}
    ids = {}
    for where in ("cpu", "gpu"):
        index = faiss.index_factory(d, "IVF1024,Flat", faiss.METRIC_INNER_PRODUCT)
        if where == "gpu":
            index = faiss.index_cpu_to_all_gpus(index)
        t0 = time.perf_counter()
        index.train(x[:50_000])
        index.add(x)
        build = time.perf_counter() - t0
        (faiss.GpuParameterSpace() if where == "gpu" else faiss.ParameterSpace()).set_index_parameter(index, "nprobe", 16)
        t0 = time.perf_counter()
        _, ids[where] = index.search(q, 10)
        search = time.perf_counter() - t0
        out["results"].append({"where": where, "train_add_s": round(build, 3), "queries_per_s": round(nq / search, 1)})
    out["top1_agreement_gpu_vs_cpu"] = round(float(np.mean(ids["cpu"][:, 0] == ids["gpu"][:, 0])), 4)
    return out


def nccl(ctx: Context) -> dict[str, Any]:
    backend, world = ("nccl", ctx.gpus) if ctx.cuda else ("gloo", 2)
    if world < 1:
        raise Skip("no CUDA device")
    dest = ctx.out_dir / ".gpu-ddp.json"
    run([python(), "-m", "benchmarks.gpu_ddp", "--backend", backend, "--world", str(world),
         "--mb", "256" if ctx.cuda else ("4" if ctx.quick else "64"), "--out", str(dest)], timeout=ctx.timeout(120))
    res = json.loads(dest.read_text())
    dest.unlink()
    if not res["sum_correct_on_all_ranks"]:
        raise RuntimeError(f"all_reduce gave a wrong sum: {res}")
    return res


def ddp_train(ctx: Context) -> dict[str, Any]:
    shards = ctx.corpus()
    world = ctx.gpus if ctx.cuda else 2
    if world < 1:
        raise Skip("no CUDA device")
    batch, steps = (64, 10) if ctx.cuda else (8, 2)  # batch * steps * world within the corpus' frames
    run_dir = Path(tempfile.mkdtemp(prefix="gpu-check-train-"))
    cmd = [*egoindex_cmd(), "train", str(shards), str(run_dir), "--model", "ego-tiny-vit", "--epochs", "1",
           "--batch-size", str(batch), "--train-num-samples", str(batch * steps * world),
           "--nproc-per-node", str(world), "--device", ctx.device, "--workers", "1", "--no-progress",
           "--log-every", "1", *(["--threads", "1"] if not ctx.cuda else [])]
    t0 = time.perf_counter()
    try:
        run(cmd, timeout=ctx.timeout(240 if ctx.cuda else 300))
        wall = time.perf_counter() - t0
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
        train_lines = [x for x in lines if x.get("kind") == "train"]
        ranks = sorted(p.name for p in (run_dir / "ranks").glob("rank-*.jsonl"))
        if not train_lines:
            raise RuntimeError(f"egoindex train wrote no train steps in {run_dir}/metrics.jsonl")
        last = train_lines[-1]
        shown = " ".join(["egoindex", *cmd[len(egoindex_cmd()):]])
        return {"command": shown.replace(str(run_dir), "RUN").replace(str(shards), "SHARDS"),
                "world": world, "backend": "nccl" if ctx.cuda else "gloo", "wall_s": round(wall, 1),
                "steps": last.get("step"), "rank_logs": ranks,
                "last_train_line": {k: v for k, v in last.items() if isinstance(v, (int, float, str))}}
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "environment": environment, "video_decode": video_decode, "jpeg_decode": jpeg_decode, "embed": embed,
    "whisper": whisper, "faiss": faiss_section, "nccl": nccl, "ddp_train": ddp_train}


# ---- main -------------------------------------------------------------------------------------------


def run_sections(ctx: Context, names: list[str], path: Path, report: dict[str, Any]) -> None:
    """Run each section, recording ``ok`` + results, ``skipped`` + reason or ``failed`` + error,
    and rewrite the JSON after each one."""
    for name in names:
        t0 = time.perf_counter()
        print(f"[gpu-check] {name} ...", flush=True)
        try:
            if ctx.left() < 15:
                raise Skip(f"the time budget is spent ({ctx.left():.0f} s left)")
            entry: dict[str, Any] = {"status": "ok", "results": RUNNERS[name](ctx)}
        except Skip as e:
            entry = {"status": "skipped", "reason": str(e)}
        except KeyboardInterrupt:
            entry = {"status": "skipped", "reason": "interrupted (the script's overall timeout)"}
            report["sections"][name] = entry
            break
        except Exception as e:
            entry = {"status": "failed", "reason": f"{type(e).__name__}: {str(e)[:2000]}",
                     "traceback": tail(traceback.format_exc(), 3000)}
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        report["sections"][name] = entry
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"[gpu-check] {name}: {entry['status']} ({entry['seconds']} s)"
              + (f": {entry['reason'][:300]}" if "reason" in entry else ""), flush=True)
    for name in SECTIONS:
        report["sections"].setdefault(name, {"status": "skipped", "reason": "not run (--sections or interrupted)"})
    path.write_text(json.dumps(report, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="small sizes (the CPU test runs this)")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="where the JSON goes (default: benchmarks/results on CUDA, a temp folder on CPU)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--budget-s", type=float, default=450.0, help="stop starting work after this many seconds")
    args = ap.parse_args()
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    names = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"unknown sections {unknown}: choose from {', '.join(SECTIONS)}")
    out_dir = args.out_dir or (RESULTS if device == "cuda" else Path(tempfile.gettempdir()) / "egoindex-gpu-check")
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(device=device, quick=args.quick, out_dir=out_dir, deadline=time.monotonic() + args.budget_s,
                  gpus=torch.cuda.device_count() if device == "cuda" else 0)
    path = out_dir / "gpu-check.json"
    report: dict[str, Any] = {"benchmark": "gpu-check", "machine": describe(PACKAGES), "device": device,
                              "quick": args.quick, "budget_s": args.budget_s, "sections": {}}
    t0 = time.perf_counter()
    run_sections(ctx, names, path, report)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"[gpu-check] wrote {path} in {report['total_s']} s: "
          + ", ".join(f"{k} {v['status']}" for k, v in report["sections"].items()), flush=True)


if __name__ == "__main__":
    main()
