"""Ingest speed: frame extraction frames/s and Whisper real-time factor, against a naive baseline.

Frame extraction, egoindex vs the naive loop, on the same files in the same run:
- naive: decode every frame, convert every frame to an RGB array (what ``cv2.VideoCapture.read``
  or ``frame.to_ndarray()`` in a loop does), keep every round(native_fps / fps)-th frame, resize
  with PIL, encode JPEG;
- egoindex: ``egoindex.media.frames.iter_frames`` (frame-threaded decode, only the kept frames are
  scaled and converted, in libswscale, straight to the target size).
Both produce the same number of JPEGs at the same size and quality.

Transcription: real-time factor (audio seconds per wall second) of the ingest configuration
(bundled tiny.en, int8, VAD, beam 5, word timestamps) on the demo corpus' audio.

Usage:  python -m benchmarks.ingest [--videos DIR] [--fps 1] [--repeat 3]
(DIR defaults to a demo corpus generated in ~/.cache/egoindex/bench-demo, plus a 720p clip.)
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from benchmarks.machine import save
from egoindex.demo.corpus import write_demo_corpus
from egoindex.media.discover import find_videos
from egoindex.media.frames import iter_frames, probe, target_size
from egoindex.media.speech import Transcriber, load_audio

CACHE = Path.home() / ".cache" / "egoindex"


def naive_extract(path: Path, fps: float, short_side: int = 256, quality: int = 90) -> int:
    """The baseline: convert every decoded frame, then subsample by frame index."""
    n = 0
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        step = max(1, round(float(vs.average_rate or 30) / fps))
        for i, frame in enumerate(c.decode(vs)):
            rgb = frame.to_ndarray(format="rgb24")  # every frame, full size
            if i % step:
                continue
            img = Image.fromarray(rgb)
            img = img.resize(target_size(img.width, img.height, short_side), Image.BILINEAR)
            img.save(io.BytesIO(), format="JPEG", quality=quality)
            n += 1
    return n


def egoindex_extract(path: Path, fps: float) -> int:
    return sum(1 for _ in iter_frames(path, fps))


def make_hd_clip(path: Path, seconds: int = 60, size: tuple[int, int] = (1280, 720), rate: int = 30) -> Path:
    """A 720p30 H.264 clip with moving texture (head cameras record 720p-1080p)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    # Smooth shapes plus mild grain, like a real room: pure noise would make H.264 decoding
    # unrealistically expensive and hide the conversion cost this benchmark is about.
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8))
    texture = np.asarray(coarse.resize((size[0] * 2, size[1] * 2), Image.BICUBIC)).astype(np.int16)
    texture = np.clip(texture + rng.normal(0, 4, texture.shape), 0, 255).astype(np.uint8)
    with av.open(str(tmp), "w") as c:
        vs = c.add_stream("libx264", rate=rate, options={"preset": "veryfast", "crf": "23"})
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(seconds * rate):
            x, y = int(200 + 150 * np.sin(i / 40)), int(150 + 100 * np.cos(i / 55))
            view = np.ascontiguousarray(texture[y : y + size[1], x : x + size[0]])
            f = av.VideoFrame.from_ndarray(view, format="rgb24")
            for pk in vs.encode(f):
                c.mux(pk)
        for pk in vs.encode():
            c.mux(pk)
    tmp.rename(path)
    return path


def time_it(fn, repeat: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, help="folder of videos (default: the demo corpus)")
    ap.add_argument("--fps", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    console = Console()

    if args.videos is None:
        args.videos = CACHE / "bench-demo"
        write_demo_corpus(args.videos, n_videos=12, seconds=60, progress=False)
    sets = {"demo 320x240 15 fps": [v.path for v in find_videos(args.videos)],
            "720p 30 fps": [make_hd_clip(CACHE / "bench-hd" / "hd720-v2.mp4")]}

    frame_rows = []
    for name, paths in sets.items():
        video_s = sum(probe(p).duration for p in paths)
        t_naive, n_naive = time_it(lambda: sum(naive_extract(p, args.fps) for p in paths), args.repeat)
        t_ego, n_ego = time_it(lambda: sum(egoindex_extract(p, args.fps) for p in paths), args.repeat)
        frame_rows.append({
            "set": name, "videos": len(paths), "video_seconds": round(video_s, 1), "frames_out": n_ego,
            "naive_s": round(t_naive, 3), "egoindex_s": round(t_ego, 3),
            "naive_frames_per_s": round(n_naive / t_naive, 1), "egoindex_frames_per_s": round(n_ego / t_ego, 1),
            "egoindex_video_x_realtime": round(video_s / t_ego, 1), "speedup": round(t_naive / t_ego, 2),
        })

    demo_paths = sets["demo 320x240 15 fps"]
    tr = Transcriber()
    audio_s = wall = 0.0
    for p in demo_paths:
        audio = load_audio(p)
        t = time.perf_counter()
        tr.transcribe(audio, "bench")
        wall += time.perf_counter() - t
        audio_s += len(audio) / 16000
    whisper = {"model": "bundled tiny.en int8", "audio_seconds": round(audio_s, 1), "wall_s": round(wall, 2),
               "real_time_factor": round(wall / audio_s, 4), "x_realtime": round(audio_s / wall, 1),
               "device": tr.device}

    t = Table(title=f"frame extraction at {args.fps:g} fps, short side 256, JPEG q90 (median of {args.repeat})")
    for col in ("set", "frames", "naive frames/s", "egoindex frames/s", "speed-up", "video x real time"):
        t.add_column(col)
    for r in frame_rows:
        t.add_row(r["set"], str(r["frames_out"]), f"{r['naive_frames_per_s']:.0f}", f"{r['egoindex_frames_per_s']:.0f}",
                  f"{r['speedup']:.2f}x", f"{r['egoindex_video_x_realtime']:.0f}x")
    console.print(t)
    console.print(f"Whisper ({whisper['model']}, {whisper['device']}): {whisper['audio_seconds']:.0f} s of audio in "
                  f"{whisper['wall_s']:.1f} s: RTF {whisper['real_time_factor']:.3f} "
                  f"({whisper['x_realtime']:.0f}x real time)")
    path = save("ingest", {"fps": args.fps, "repeat": args.repeat, "frame_extraction": frame_rows,
                           "transcription": whisper},
                packages=("av", "faster-whisper", "ctranslate2", "pillow", "numpy"))
    console.print(f"saved {path}")


if __name__ == "__main__":
    main()
