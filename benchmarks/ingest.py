"""Ingest at the decode limit: every way to take 1 frame/s out of 720p and 1080p 30 fps video, in one run.

Modes, each on the same files in the same run (CPU time from ``getrusage``, so a busy machine
slows the wall clock but not the per-core figures):

- **exact, every frame decoded**: the sampler as it was before ``skip_nonref`` (the frame on
  screen at k / fps; every frame decoded, the kept ones scaled in libswscale);
- **exact**: the same frames, byte for byte, with the non-reference frames that no sample shows
  skipped by the decoder (``egoindex.media.frames``, ``skip_frame = "NONREF"`` planned per packet);
- **fast** (``egoindex ingest --sampling fast``): the nearest keyframe within 0.5 s, else the first
  frame at or after t - 0.5 s, decoding only up to it (docs/formats.md, "Frame sampling");
- **keyframes only**: the keyframe nearest to t, whatever the distance (a lower bound on decode
  cost, not an ingest mode: its timestamp error is the GOP's);
- threading: exact and fast with ``thread_type="NONE"`` (one thread) and ``FRAME`` x2 beside the
  default ``AUTO`` (libavcodec's thread count);
- **ffmpeg**: the seed's command line, ``ffmpeg -i V -vf fps=1 out/%06d.jpg`` (full-size JPEGs),
  and the like-for-like ``-vf fps=1,scale=...:256 -q:v 2`` (Debian's ffmpeg; when it is not
  installed the JSON says so and the ratios to it are null).

Timestamp error (``pts_time - t``, seconds) is measured per sample for the egoindex modes from
their own presentation times; for ffmpeg, which reports none, it is measured on an index-coded
clip (each frame's number in black and white blocks, read back from the JPEGs), which also
checks that the egoindex modes' ``pts_time`` names the frame they show.

Also Whisper on CPU: faster-whisper's ``BatchedInferencePipeline`` against the sequential
``WhisperModel.transcribe`` that ingest uses on CPU (bundled tiny.en, int8, ingest's options),
on the audio of a demo corpus.

Videos: 60 s clips made once with PyAV's encoders under ~/.cache/egoindex/bench-ingest (a moving
texture with grain that changes every frame; H.264 x264 veryfast CRF 20, HEVC x265 ultrafast
CRF 22, both with P-frames about a third of a keyframe as in camera footage (:func:`encoder_options`);
a keyframe exactly every 60 frames (2 s) or 250 frames, no scene-cut keyframes). Each clip's
picture types and mean packet sizes are in the JSON (``frame_types``).

Usage:  python -m benchmarks.ingest [--seconds 60] [--repeat 3] [--no-hevc] [--no-whisper]
        python -m benchmarks.ingest --quick --out /tmp/ingest-quick.json     # smoke run
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from benchmarks.machine import describe, save
from egoindex.media.frames import (FAST_TOLERANCE_S, SampledFrame, encode_jpeg, iter_frames, n_samples, open_video,
                                   probe, target_size)

CACHE = Path.home() / ".cache" / "egoindex"
PACKAGES = ("av", "faster-whisper", "ctranslate2", "pillow", "numpy")
SHORT_SIDE, QUALITY = 256, 90
HUNDRED_K_HOURS = 100_000
#: the index code of the error clip: bit j of the frame number is block j of the top band
BITS, BLOCK = 11, 24


# ---- test videos ------------------------------------------------------------------------------


def encoder_options(codec: str, gop: int) -> dict[str, str]:
    """x264 / x265 settings of the test clips: a keyframe exactly every ``gop`` frames, and
    P-frames that keep the grain (equal dead zones, I/P/B quality ratios near 1), so that a P-frame
    is about a third of a keyframe, as in camera footage. With x264's defaults the grain is
    quantised away between keyframes and keyframes are ~30x the P-frames: keyframes would then
    dominate decoding, which is not what cameras record."""
    if codec == "h264":
        return {"preset": "veryfast", "crf": "20",
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:deadzone-inter=6:deadzone-intra=6:"
                               "ipratio=1.1:pbratio=1.1"}
    return {"preset": "ultrafast", "crf": "22",
            "x265-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:ipratio=1.1:pbratio=1.1:log-level=error"}


def make_clips(folder: Path, seconds: float, size: tuple[int, int], codec: str, gops: tuple[int, ...],
               rate: int = 30, index_code: bool = False) -> dict[int, Path]:
    """One clip per GOP length from the same frames, made once: a texture panning like a head
    camera with film grain (pure noise would make decoding unrealistically expensive, a flat
    picture unrealistically cheap). With ``index_code`` each frame carries its number."""
    tag = f"{codec}-{size[1]}p-{seconds:g}s-v2" + ("-coded" if index_code else "")
    paths = {g: folder / f"{tag}-g{g}.mp4" for g in gops}
    if all(p.exists() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 255, (size[1] // 12, size[0] // 12, 3), dtype=np.uint8))
    texture = np.asarray(coarse.resize((size[0] * 2, size[1] * 2), Image.BICUBIC)).astype(np.int16)
    texture = np.clip(texture + rng.normal(0, 6, texture.shape), 0, 255).astype(np.int16)
    # sensor grain that changes every frame (61 patterns: longer than any reference window)
    grain = [np.clip(rng.normal(0, 3.0, (size[1], size[0], 1)), -127, 127).astype(np.int8) for _ in range(61)]
    tmp = {g: p.with_suffix(".part.mp4") for g, p in paths.items()}
    outs = {g: av.open(str(t), "w") for g, t in tmp.items()}
    streams = {}
    for g, c in outs.items():
        vs = c.add_stream("libx264" if codec == "h264" else "libx265", rate=rate, options=encoder_options(codec, g))
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        streams[g] = vs
    try:
        for i in range(round(seconds * rate)):
            x = int(size[0] / 4 + size[0] / 5 * np.sin(i / 40))
            y = int(size[1] / 4 + size[1] / 5 * np.cos(i / 55))
            view = np.clip(texture[y: y + size[1], x: x + size[0]] + grain[i % 61], 0, 255).astype(np.uint8)
            if index_code:
                write_index(view, i)
            frame = av.VideoFrame.from_ndarray(view, format="rgb24")
            for g, c in outs.items():
                for pk in streams[g].encode(frame):
                    c.mux(pk)
        for g, c in outs.items():
            for pk in streams[g].encode():
                c.mux(pk)
    finally:
        for c in outs.values():
            c.close()
    for g, t in tmp.items():
        t.rename(paths[g])
    return paths


def write_index(rgb: np.ndarray, i: int) -> None:
    rgb[: BLOCK + 8, : 8 + BITS * (BLOCK + 8)] = 128
    for j in range(BITS):
        x = 8 + j * (BLOCK + 8)
        rgb[4: 4 + BLOCK, x: x + BLOCK] = 235 if (i >> j) & 1 else 16


def read_index(jpeg: bytes) -> int:
    """The frame number :func:`write_index` drew, from a full-size JPEG."""
    grey = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L")).astype(np.float32)
    bits = [grey[8: BLOCK, 8 + j * (BLOCK + 8) + 4: 8 + j * (BLOCK + 8) + BLOCK - 4].mean() > 128 for j in range(BITS)]
    return sum(1 << j for j, b in enumerate(bits) if b)


def frame_types(path: Path) -> dict[str, dict[str, float]]:
    """Per picture type (I, P, B): how many, and their mean packet size in KB (what decoding costs)."""
    sizes: dict[int, int] = {}
    counts: dict[str, list[int]] = {}
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        for packet in c.demux(vs):
            if packet.pts is not None:
                sizes[packet.pts] = packet.size
            for f in packet.decode():
                kind = {1: "I", 2: "P", 3: "B"}.get(int(f.pict_type), str(f.pict_type))
                counts.setdefault(kind, []).append(sizes.get(f.pts, 0))
    return {k: {"frames": len(v), "mean_kb": round(float(np.mean(v)) / 1000, 1)} for k, v in sorted(counts.items())}


# ---- samplers ---------------------------------------------------------------------------------


def keyframes_only(path: Path, fps: float) -> list[tuple[float, float]]:
    """(t, pts_time) of the keyframe nearest each sample time (the earlier on a tie): only the
    keyframe packets are sent to the decoder, each followed by a flush (fed one after another
    without, the HEVC decoder drops some open-GOP keyframes), and each keyframe is scaled and
    JPEG-encoded once, as ingest does, so the cost compares."""
    keys: list[tuple[float, bytes]] = []
    with open_video(path) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        ctx = vs.codec_context
        tb, start = vs.time_base, vs.start_time or 0
        size = target_size(ctx.width, ctx.height, SHORT_SIDE)
        for packet in c.demux(vs):
            if packet.is_keyframe:
                for f in [*packet.decode(), *ctx.decode(None)]:
                    keys.append((float((f.pts - start) * tb), encode_jpeg(f, size, QUALITY)[0]))
                ctx.flush_buffers()
    times = np.array([k for k, _ in keys])
    out = []
    for k in range(n_samples(probe(path).duration, fps)):
        i = int(np.argmin(np.abs(times - k / fps)))
        out.append((k / fps, float(times[i])))
    return out


def egoindex_mode(fps: float, **kw: Any) -> Callable[[Path], list[SampledFrame]]:
    return lambda p: list(iter_frames(p, fps, SHORT_SIDE, QUALITY, **kw))


def ffmpeg_cmd(path: Path, out: Path, fps: float, scaled: bool) -> list[str]:
    """The seed's command line (``-vf fps=1``, full-size JPEGs at ffmpeg's default quality), or
    the like-for-like one (short side 256, ``-q:v 2``)."""
    vf = f"fps={fps:g}" + (f",scale='if(lt(iw,ih),{SHORT_SIDE},-2)':'if(lt(iw,ih),-2,{SHORT_SIDE})'" if scaled else "")
    return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(path), "-vf", vf,
            *(["-q:v", "2"] if scaled else []), str(out / "%06d.jpg")]


def run_ffmpeg(path: Path, fps: float, scaled: bool) -> list[bytes]:
    out = Path(tempfile.mkdtemp(prefix="bench-ffmpeg-"))
    try:
        subprocess.run(ffmpeg_cmd(path, out, fps, scaled), check=True)
        return [p.read_bytes() for p in sorted(out.glob("*.jpg"))]
    finally:
        shutil.rmtree(out, ignore_errors=True)


# ---- measuring -------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) and its finished children (ffmpeg)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    """CPU and wall seconds of one run of ``fn``, and its result."""
    c0, w0 = cpu_seconds(), time.perf_counter()
    result = fn()
    return {"cpu_s": round(cpu_seconds() - c0, 3), "wall_s": round(time.perf_counter() - w0, 3)}, result


def error_stats(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """max / mean |pts_time - t| and whether every sample is within the fast mode's 0.5 s."""
    if not pairs:
        return {"max_abs_error_s": None, "mean_abs_error_s": None, "within_0.5s": None}
    err = [abs(pt - t) for t, pt in pairs]
    return {"max_abs_error_s": round(max(err), 4), "mean_abs_error_s": round(float(np.mean(err)), 4),
            "within_0.5s": bool(max(err) <= FAST_TOLERANCE_S + 1e-6)}


def per_core(video_s: float, frames: int, cpu_s: float) -> dict[str, Any]:
    hours_per_core_hour = video_s / cpu_s
    return {"frames_per_core_s": round(frames / cpu_s, 1), "video_hours_per_core_hour": round(hours_per_core_hour, 1),
            "core_hours_per_100k_video_hours": round(HUNDRED_K_HOURS / hours_per_core_hour)}


MODES: list[tuple[str, dict[str, Any]]] = [
    ("exact, every frame decoded (before)", {"skip_nonref": False}),
    ("exact", {}),
    ("exact, 1 thread", {"thread_type": "NONE"}),
    ("exact, frame threads x2", {"thread_type": "FRAME", "thread_count": 2}),
    ("fast", {"sampling": "fast"}),
    ("fast, 1 thread", {"sampling": "fast", "thread_type": "NONE"}),
]
FFMPEG_MODES = [("ffmpeg -vf fps=1 (seed, full-size JPEG)", False), ("ffmpeg -vf fps=1,scale 256 px", True)]
KEYFRAMES = "keyframes only"


def measure_video(path: Path, name: str, fps: float, repeat: int, have_ffmpeg: bool) -> list[dict[str, Any]]:
    info = probe(path)
    base = {"video": name, "file": path.name, "codec": info.codec, "width": info.width, "height": info.height,
            "video_seconds": round(info.duration, 2), "mbit_per_s": round(path.stat().st_size * 8 / info.duration / 1e6, 2)}
    base["frame_types"] = frame_types(path)
    path.read_bytes()  # into the page cache: no mode pays the first read
    rows = []
    runs: list[tuple[str, Callable[[], Any]]] = [(m, (lambda kw=kw: egoindex_mode(fps, **kw)(path))) for m, kw in MODES]
    runs.append((KEYFRAMES, lambda: keyframes_only(path, fps)))
    if have_ffmpeg:
        runs += [(m, (lambda s=s: run_ffmpeg(path, fps, s))) for m, s in FFMPEG_MODES]
    # the modes take turns, round after round, so that a change in the machine's load hits all alike
    measured: dict[str, list[tuple[float, float]]] = {m: [] for m, _ in runs}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for mode, fn in runs:
            c0, w0 = cpu_seconds(), time.perf_counter()
            results[mode] = fn()
            measured[mode].append((cpu_seconds() - c0, time.perf_counter() - w0))
    for mode, _ in runs:
        result = results[mode]
        cpu = [c for c, _ in measured[mode]]
        t = {"cpu_s": round(statistics.median(cpu), 3), "wall_s": round(statistics.median(w for _, w in measured[mode]), 3),
             "cpu_s_runs": [round(x, 3) for x in cpu]}
        if mode.startswith("ffmpeg"):
            frames, err = len(result), {"max_abs_error_s": None, "mean_abs_error_s": None, "within_0.5s": None,
                                        "error_note": "see ffmpeg_timestamp_error (index-coded clip)"}
        elif mode == KEYFRAMES:
            frames, err = len(result), error_stats(result)
        else:
            frames, err = len(result), error_stats([(f.t, f.pts_time) for f in result])
        row = {**base, "mode": mode, "frames_out": frames, **t, **per_core(info.duration, frames, t["cpu_s"]),
               "wall_frames_per_s": round(frames / t["wall_s"], 1), **err}
        rows.append(row)
        print(f"  {mode:<40} {row['frames_per_core_s']:>7.1f} frames/core-s {row['video_hours_per_core_hour']:>7.1f} "
              f"video-h/core-h  max err {row['max_abs_error_s']}", flush=True)
    return rows


def ffmpeg_timestamp_error(folder: Path, fps: float, have_ffmpeg: bool) -> dict[str, Any]:
    """Which source frame each sample shows, read from an index-coded 30 fps clip (H.264, GOP
    60 and 250): ffmpeg's errors, and a check that egoindex's ``pts_time`` names the frame shown."""
    clips = make_clips(folder, 20, (640, 360), "h264", (60, 250), index_code=True)
    out: dict[str, Any] = {"clip": "640x360 30 fps H.264, 20 s, index-coded", "results": []}
    for gop, path in clips.items():
        for mode, kw in [("exact", {}), ("fast", {"sampling": "fast"})]:
            got = list(iter_frames(path, fps, 0, 95, **kw))  # full size: the blocks must survive
            shown = [read_index(f.jpeg) for f in got]
            out["results"].append({"gop": gop, "mode": mode, **error_stats([(f.t, i / 30) for f, i in zip(got, shown)]),
                                   "pts_time_names_the_frame_shown": all(abs(f.pts_time - i / 30) < 1e-3
                                                                         for f, i in zip(got, shown))})
        if have_ffmpeg:
            for mode, _ in FFMPEG_MODES[:1]:
                shown = [read_index(j) for j in run_ffmpeg(path, fps, scaled=False)]
                out["results"].append({"gop": gop, "mode": mode, "frames_out": len(shown),
                                       **error_stats([(k / fps, i / 30) for k, i in enumerate(shown)])})
    return out


# ---- Whisper ---------------------------------------------------------------------------------


def whisper_batched_vs_sequential(videos: int, seconds: float, batch_size: int, device: str = "cpu") -> dict[str, Any]:
    """faster-whisper's sequential ``transcribe`` (ingest's way on CPU) against its batched
    pipeline (ingest's way on CUDA), same model, options and audio: CPU time per audio second,
    wall-clock speed, and how far the texts agree. ``benchmarks/gpu_check.py`` runs it on CUDA."""
    from faster_whisper import BatchedInferencePipeline

    from egoindex.demo.corpus import write_demo_corpus
    from egoindex.media.discover import find_videos
    from egoindex.media.speech import Transcriber, load_audio

    folder = CACHE / f"bench-ingest-demo-v{videos}-s{seconds:g}"
    if not (folder / "ground_truth.json").exists():
        write_demo_corpus(folder, n_videos=videos, seconds=seconds, progress=False)
    audios = [load_audio(v.path) for v in find_videos(folder)]
    audio_s = sum(len(a) for a in audios) / 16000
    tr = Transcriber(device=device)
    out: dict[str, Any] = {"model": f"bundled tiny.en {'float16' if device == 'cuda' else 'int8'}", "device": device,
                           "audio_seconds": round(audio_s, 1), "videos": len(audios), "batch_size": batch_size,
                           "modes": []}
    texts: dict[str, str] = {}
    for mode in ("sequential (WhisperModel.transcribe)", "batched (BatchedInferencePipeline)"):
        tr.batched = BatchedInferencePipeline(tr.model) if mode.startswith("batched") else None
        tr.batch_size = batch_size
        t, utts = timed(lambda: [tr.transcribe(a, f"v{i}")[0] for i, a in enumerate(audios)])
        kept = [u for us in utts for u in us if u.kept]
        texts[mode] = " ".join(u.text for u in kept)
        out["modes"].append({"mode": mode, **t, "audio_s_per_core_s": round(audio_s / t["cpu_s"], 2),
                             "x_realtime_wall": round(audio_s / t["wall_s"], 1),
                             "core_hours_per_100k_audio_hours": round(HUNDRED_K_HOURS * t["cpu_s"] / audio_s),
                             "utterances_kept": len(kept), "words": len(texts[mode].split())})
        print(f"  whisper {mode}: {audio_s:.0f} s of audio in {t['cpu_s']:.1f} CPU-s ({t['wall_s']:.1f} s wall)", flush=True)
    a, b = texts.values()
    out["word_agreement"] = round(difflib.SequenceMatcher(None, a.split(), b.split()).ratio(), 3)
    return out


# ---- main --------------------------------------------------------------------------------------


def summarise(rows: list[dict[str, Any]], have_ffmpeg: bool) -> list[dict[str, Any]]:
    """Per mode over all videos (total video seconds / total CPU seconds): the 100k-hour estimate,
    and the speed relative to the seed's ffmpeg command, overall and per video (min, max)."""
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_mode.setdefault(r["mode"], []).append(r)
    seed = by_mode.get(FFMPEG_MODES[0][0], []) if have_ffmpeg else []
    seed_rate = sum(r["video_seconds"] for r in seed) / sum(r["cpu_s"] for r in seed) if seed else None
    seed_by_file = {r["file"]: r["video_seconds"] / r["cpu_s"] for r in seed}
    out = []
    for mode, rs in by_mode.items():
        video_s, cpu_s = sum(r["video_seconds"] for r in rs), sum(r["cpu_s"] for r in rs)
        errs = [r["max_abs_error_s"] for r in rs if r["max_abs_error_s"] is not None]
        ratios = [r["video_seconds"] / r["cpu_s"] / seed_by_file[r["file"]] for r in rs if r["file"] in seed_by_file]
        out.append({"mode": mode, "videos": len(rs), "video_seconds": round(video_s, 1), "cpu_s": round(cpu_s, 2),
                    **per_core(video_s, sum(r["frames_out"] for r in rs), cpu_s),
                    "max_abs_error_s": max(errs) if errs else None,
                    "mean_abs_error_s": (round(float(np.mean([r["mean_abs_error_s"] for r in rs])), 4) if errs else None),
                    "x_seed_ffmpeg_all_videos": round(video_s / cpu_s / seed_rate, 2) if seed_rate else None,
                    "x_seed_ffmpeg_min_per_video": round(min(ratios), 2) if ratios else None,
                    "x_seed_ffmpeg_max_per_video": round(max(ratios), 2) if ratios else None})
    return out


def goals(summary: list[dict[str, Any]], have_ffmpeg: bool) -> dict[str, Any]:
    s = {r["mode"]: r for r in summary}
    fast, exact = s.get("fast"), s.get("exact")
    if not have_ffmpeg or fast is None or exact is None:
        return {"note": "ffmpeg not installed: no ratios (apt-get install ffmpeg)"}
    return {
        "fast_x_ffmpeg": fast["x_seed_ffmpeg_all_videos"],
        "fast_goal_5x_ffmpeg_met": bool(fast["x_seed_ffmpeg_all_videos"] >= 5),
        "fast_goal_5x_met_on_every_video": bool(fast["x_seed_ffmpeg_min_per_video"] >= 5),
        "fast_every_frame_within_0.5s": bool(fast["max_abs_error_s"] is not None
                                             and fast["max_abs_error_s"] <= FAST_TOLERANCE_S + 1e-6),
        "exact_x_ffmpeg": exact["x_seed_ffmpeg_all_videos"],
        "exact_goal_as_fast_as_ffmpeg_met": bool(exact["x_seed_ffmpeg_min_per_video"] >= 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fps", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each test clip")
    ap.add_argument("--repeat", type=int, default=3, help="runs per mode (median CPU time)")
    ap.add_argument("--no-hevc", action="store_true")
    ap.add_argument("--no-whisper", action="store_true")
    ap.add_argument("--whisper-videos", type=int, default=6)
    ap.add_argument("--whisper-batch", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 s 720p clips, one repeat, 2 Whisper videos")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/ingest-{cpu|gpu}.json)")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.repeat, args.whisper_videos = 6.0, 1, 2
    folder = CACHE / "bench-ingest"
    have_ffmpeg = shutil.which("ffmpeg") is not None
    ffmpeg_version = (subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
                      if have_ffmpeg else None)
    if not have_ffmpeg:
        print("ffmpeg is not installed (Debian: apt-get install ffmpeg): the ffmpeg baseline is skipped", flush=True)

    sizes = [(1280, 720)] if args.quick else [(1280, 720), (1920, 1080)]
    codecs = ["h264"] + ([] if args.no_hevc or not hevc_available() else ["hevc"])
    rows: list[dict[str, Any]] = []
    for codec in codecs:
        for size in sizes:
            print(f"making / finding {codec} {size[1]}p clips ...", flush=True)
            clips = make_clips(folder, args.seconds, size, codec, (60, 250))
            for gop, path in clips.items():
                name = f"{size[1]}p30 {codec.upper()} keyframe every {gop} frames"
                print(name, flush=True)
                rows += measure_video(path, name, args.fps, args.repeat, have_ffmpeg)
    ts = ffmpeg_timestamp_error(folder, args.fps, have_ffmpeg)
    summary = summarise(rows, have_ffmpeg)
    whisper = None if args.no_whisper else whisper_batched_vs_sequential(args.whisper_videos, 60.0, args.whisper_batch)

    payload = {"fps": args.fps, "repeat": args.repeat, "short_side": SHORT_SIDE, "jpeg_quality": QUALITY,
               "ffmpeg": ffmpeg_version or "not installed (apt-get install ffmpeg)",
               "ffmpeg_commands": [" ".join(ffmpeg_cmd(Path("V.mp4"), Path("OUT"), args.fps, s)) for _, s in FFMPEG_MODES],
               "encoders": {c: encoder_options(c, 0) for c in codecs},
               "hevc": "measured" if "hevc" in codecs else "skipped: " + ("--no-hevc" if args.no_hevc else
                                                                         "PyAV here has no libx265 encoder or hevc decoder"),
               "note": "per core = output frames (or video seconds) per CPU second of this process and its "
                       "children (getrusage: all decoder threads, and ffmpeg); core-hours for 100k hours = "
                       "100000 / video-hours per core-hour. Errors are |pts_time - k/fps|.",
               "frame_extraction": rows, "summary": summary, "goals": goals(summary, have_ffmpeg),
               "ffmpeg_timestamp_error": ts, "whisper_cpu": whisper}
    print(json.dumps(payload["goals"], indent=1))
    for r in summary:
        print(f"{r['mode']:<40} {r['frames_per_core_s']:>7.1f} frames/core-s  {r['video_hours_per_core_hour']:>6.1f} "
              f"video-h/core-h  {r['core_hours_per_100k_video_hours']:>8,} core-h/100k h  x ffmpeg "
              f"{r['x_seed_ffmpeg_all_videos']}  max err {r['max_abs_error_s']}")
    machine = describe(PACKAGES)
    if args.out is None and not args.quick:
        path = save("ingest", payload, packages=PACKAGES)
    else:
        path = args.out or Path(tempfile.gettempdir()) / "ingest-quick.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"benchmark": "ingest", "machine": machine, **payload}, indent=1) + "\n")
    print(f"saved {path}")


def hevc_available() -> bool:
    try:
        av.codec.Codec("libx265", "w")
        av.codec.Codec("hevc", "r")
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
