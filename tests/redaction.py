"""A tiny corpus for redaction tests: three short videos whose every frame differs (so a JPEG, and
the vector made from it, belongs to one moment only), captions from a CSV file with a unique
nonsense phrase per utterance (so a caption found anywhere is that utterance's), a real ingest
(no Whisper), a randomly initialised ``ego-tiny-vit`` (no training) and a real build.

Shared by the e2e and unit tests of ``egoindex redact``; ``byte_search`` is the check they make.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

VIDEOS = ("kid_a", "kid_b", "kid_c")
SECONDS = 8.0
FPS = 10
SAMPLE_FPS = 2.0
RATE = 16000
#: Each video's utterances (start, end); the text is made unique by :func:`caption`. Frames at 5.5
#: and 6.0 s are more than 1 s (the pairing's max gap) from any: uncaptioned.
UTTERANCES = ((0.2, 1.4), (2.1, 3.3), (3.6, 4.0), (7.2, 7.6))
WORDS = ("quokka", "marmalade", "zeppelin", "tangerine", "wombat", "kumquat", "accordion", "pelican")


def caption(v: int, k: int) -> str:
    """The text of utterance k of video v: words no other caption has in this order."""
    return f"{WORDS[(v + k) % 8]} {WORDS[(3 * v + k + 1) % 8]} number {v}{k}x{v * 7 + k * 3}"


def write_video(path: Path, v: int, seconds: float = SECONDS, audio: bool = True) -> Path:
    """H.264 + AAC: frame i of video v is seeded noise with a moving bar (every frame differs),
    the sound a 440 Hz tone (so silence is measurable)."""
    rng = np.random.default_rng(1000 + v)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv420p"
        vs.codec_context.time_base = Fraction(1, FPS)
        a = c.add_stream("aac", rate=RATE) if audio else None
        if a is not None:
            a.layout = "mono"
        for i in range(int(seconds * FPS)):
            img = (rng.random((64, 96, 3)) * 120).astype(np.uint8)
            x = (i * 3) % 80
            img[8 + 10 * v:30 + 10 * v, x:x + 16] = (200, 60 + 20 * v, 40 + (i * 5) % 200)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for pk in vs.encode(f):
                c.mux(pk)
        for pk in vs.encode():
            c.mux(pk)
        if a is not None:
            t = np.arange(int(seconds * RATE)) / RATE
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
            af.sample_rate, af.pts = RATE, 0
            for pk in a.encode(af):
                c.mux(pk)
            for pk in a.encode():
                c.mux(pk)
    return path


def write_corpus(folder: Path) -> tuple[Path, Path]:
    """``folder/videos/{kid_a,kid_b,kid_c}.mp4`` and ``folder/captions.csv``; returns both."""
    videos = folder / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    lines = ["video,start,end,text"]
    for v, name in enumerate(VIDEOS):
        write_video(videos / f"{name}.mp4", v)
        lines += [f"{name},{s},{e},{caption(v, k)}" for k, (s, e) in enumerate(UTTERANCES)]
    captions = folder / "captions.csv"
    captions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return videos, captions


def ingest_corpus(videos: Path, captions: Path, out: Path, blackouts: Path | None = None) -> Path:
    from egoindex.ingest.run import IngestConfig, RunOptions, run

    run(videos, out, IngestConfig(fps=SAMPLE_FPS, val_fraction=0.0, shard_size=6),
        RunOptions(workers=1, progress=False), transcripts=captions, blackouts=blackouts)
    return out


def random_checkpoint(path: Path) -> Path:
    """``ego-tiny-vit`` as initialised (seeded): a real model whose vectors differ per frame."""
    import torch

    from egoindex.model.openclip import create, make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    created = create("ego-tiny-vit")
    save_checkpoint(path, make_checkpoint(created.model, "ego-tiny-vit", epoch=0, step=0, config={}))
    return path


def build_store(checkpoint: Path, shards: Path, store: Path) -> Path:
    from egoindex.build.run import BuildConfig, run
    from tests.support import torch_threads

    with torch_threads(1):
        summary = run(BuildConfig(checkpoint=checkpoint, shards=shards, store=store, workers=0, progress=False))
    assert summary.committed
    return store


def byte_search(roots: list[Path], needles: dict[str, bytes]) -> dict[str, list[str]]:
    """``{needle name: [files holding it]}`` over every file under ``roots`` (names with a hit only)."""
    found: dict[str, list[str]] = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if not p.is_file():
                continue
            data = p.read_bytes()
            for name, needle in needles.items():
                if needle in data:
                    found.setdefault(name, []).append(str(p.relative_to(root.parent)))
    return found
