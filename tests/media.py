"""Synthetic test videos made with PyAV (real encoders, real containers) and espeak-ng speech."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

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
