"""Synthetic test videos made with PyAV (real encoders, real containers) and espeak-ng speech."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from egoindex.demo.tts import Speaker

AUDIO_RATE = 22050


def speech_track(seconds: float, lines: Sequence[tuple[float, str]], voice: str = "en-us") -> np.ndarray:
    """Mono float32 audio at 22.05 kHz with each (start, text) spoken at its time, plus faint noise."""
    audio = np.random.default_rng(0).normal(0, 0.002, int(seconds * AUDIO_RATE)).astype(np.float32)
    for start, text in lines:
        s, sr = Speaker().synthesize(text, voice=voice, rate=150)
        assert sr == AUDIO_RATE
        i = int(start * AUDIO_RATE)
        s = s[: len(audio) - i]
        audio[i : i + len(s)] += 0.8 * s
    return audio


def frame_level(i: int) -> int:
    """The grey level of frame i (distinct for neighbouring frames, survives JPEG)."""
    return (i * 37) % 200 + 28


def make_video(
    path: Path,
    seconds: float,
    fps: int = 15,
    size: tuple[int, int] = (320, 240),
    lines: Sequence[tuple[float, str]] = (),
    audio: str | None = "speech",  # "speech", "silence" or None (no audio stream)
    frame_times: Sequence[float] | None = None,  # variable frame rate: explicit presentation times
    faststart: bool = False,
) -> Path:
    """Encode an H.264 video (+ AAC audio) whose frame i is a flat grey of ``frame_level(i)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    times = list(frame_times) if frame_times is not None else [i / fps for i in range(round(seconds * fps))]
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        vs.time_base = Fraction(1, 1000)
        if audio:
            aus = c.add_stream("aac", rate=AUDIO_RATE)
            aus.layout = "mono"
        for i, t in enumerate(times):
            f = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), frame_level(i), np.uint8), format="rgb24")
            f.pts = round(t * 1000)
            f.time_base = Fraction(1, 1000)
            for pk in vs.encode(f):
                c.mux(pk)
        for pk in vs.encode():
            c.mux(pk)
        if audio:
            samples = speech_track(seconds, lines) if audio == "speech" else np.zeros(int(seconds * AUDIO_RATE), np.float32)
            mux_audio(c, aus, samples)
    return path


def mux_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, samples: np.ndarray) -> None:
    """Encode mono float32 ``samples`` (AUDIO_RATE) as one frame from t=0 into ``stream`` and flush it."""
    af = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
    af.sample_rate, af.pts = AUDIO_RATE, 0
    for pk in stream.encode(af):
        container.mux(pk)
    for pk in stream.encode():
        container.mux(pk)


#: rows of the identifying grey band of :func:`make_gop_video`'s frames
BAND = 48


def make_gop_video(path: Path, seconds: float, rate: int = 30, gop: int = 60, codec: str = "libx264",
                   size: tuple[int, int] = (320, 240), open_gop: bool = False) -> Path:
    """A video whose frame i has a top band of grey ``frame_level(i)`` over a moving texture, with
    a keyframe exactly every ``gop`` frames (no scene-cut keyframes) and B-frames."""
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8))
    texture = np.asarray(coarse.resize((size[0] * 2, size[1] * 2), Image.BICUBIC))
    if codec == "libx264":
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=3:b-adapt=0:b-pyramid=normal" + (":open-gop=1" if open_gop else "")
        options = {"preset": "veryfast", "crf": "12", "x264-params": params}
    else:
        options = {"preset": "ultrafast", "crf": "12",
                   "x265-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=3:log-level=error"}
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=rate, options=options)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(round(seconds * rate)):
            x, y = int(size[0] / 2 + size[0] / 3 * np.sin(i / 40)), int(size[1] / 2 + size[1] / 3 * np.cos(i / 55))
            view = np.array(texture[y: y + size[1], x: x + size[0]])
            view[:BAND] = frame_level(i)
            for pk in vs.encode(av.VideoFrame.from_ndarray(view, format="rgb24")):
                c.mux(pk)
        for pk in vs.encode():
            c.mux(pk)
    return path
