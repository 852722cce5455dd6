"""Spoken test cases for the caption quality rule: sentences whose words and times are known, and
audio with no speech at all. Shared by ``benchmarks/caption_filter.py`` (which measures the rule)
and the tests (which hold it to its must-shows), so both judge the same audio.

``narrated(i)``: 8 sentences of one frame, ~2.6 s apart, the verb the same within a clip ("Look,
the orange block slides left. Look, the red ball slides left. ..."): the repetitive narration
whose Whisper window compresses above 2.4. ``child_directed(i)``: 8 short, repetitive
utterances ("Look, the ball! The ball! Look!", "Ball, ball, ball!"). ``nonspeech(kind, seed)``:
``silence`` (faint noise), ``tones`` (random sine notes), ``music`` (chords with harmonics on a
beat), ``noise`` (white or pink), ``reversed`` (a narrated clip played backwards: speech-like
sound without words). Speech is espeak-ng (``egoindex.demo.tts``), all at 16 kHz mono float32.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from egoindex.demo.tts import synthesize
from egoindex.media.quality import tokens
from egoindex.media.speech import Utterance

RATE = 22050
OBJECTS = ["orange block", "red ball", "blue cup", "green car", "yellow duck", "pink spoon", "purple bear",
           "white shoe", "brown dog", "black hat", "grey truck", "gold key"]
VERBS = ["slides left", "rolls away", "falls down", "goes up", "spins around", "moves right", "comes back",
         "stops here"]
CDS = ["Look, the {o}! The {o}! Look!", "{O}, {o}, {o}!", "Where is the {o}? There it is!",
       "Yes, the {o}! Good job!", "Oh, the {o}! Look at the {o}!", "Can you get the {o}? Get the {o}!",
       "The {o}, the {o}. Wow!", "No, no, that's the {o}!"]
NONSPEECH = ("silence", "tones", "music", "noise", "reversed")


def to16k(audio: np.ndarray, sr: int = RATE) -> np.ndarray:
    n = int(len(audio) * 16000 / sr)
    return np.interp(np.arange(n) * sr / 16000, np.arange(len(audio)), audio).astype(np.float32)


def speak(lines: list[tuple[float, str]], seconds: float, seed: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Audio with each (start, text) spoken, and the sentences with their spoken intervals."""
    audio = np.random.default_rng(seed).normal(0, 0.002, int(seconds * RATE)).astype(np.float32)
    truth = []
    for start, text in lines:
        s, sr = synthesize(text, rate=150)
        assert sr == RATE
        i = int(start * RATE)
        s = s[: len(audio) - i]
        audio[i:i + len(s)] += 0.8 * s
        truth.append({"text": text, "start": start, "end": start + len(s) / RATE})
    return to16k(audio), truth


def narrated(i: int) -> tuple[list[tuple[float, str]], float]:
    """Clip ``i``'s (start, sentence) lines and its length in seconds."""
    lines = [(1.0 + 2.6 * k, f"Look, the {OBJECTS[(i + k) % 12]} {VERBS[i % 8]}.") for k in range(8)]
    return lines, lines[-1][0] + 3.5


def child_directed(i: int) -> tuple[list[tuple[float, str]], float]:
    """Clip ``i``'s (start, utterance) lines and its length in seconds."""
    lines, t = [], 1.0
    for k in range(8):
        o = OBJECTS[(i + k) % 12].split()[-1]
        text = CDS[(i + k) % len(CDS)].format(o=o, O=o.capitalize())
        lines.append((t, text))
        t += 1.2 + 0.08 * len(text)
    return lines, t + 2.0


def nonspeech(kind: str, seed: int, seconds: float = 20.0) -> np.ndarray:
    """``seconds`` of one non-speech kind (module docstring), seeded."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    if kind == "silence":
        return rng.normal(0, 0.002, n).astype(np.float32)
    if kind == "tones":
        out = np.zeros(n)
        for k in range(int(seconds / 0.5)):
            f = rng.uniform(200, 1000)
            sl = slice(int(k * 0.5 * 16000), int((k + 1) * 0.5 * 16000))
            out[sl] = 0.3 * np.sin(2 * np.pi * f * t[sl])
        return out.astype(np.float32)
    if kind == "music":
        out = np.zeros(n)
        beat = 0.4
        for k in range(int(seconds / beat)):
            root = 220 * 2 ** (rng.integers(0, 12) / 12)
            sl = slice(int(k * beat * 16000), int((k + 1) * beat * 16000))
            tt = t[sl] - t[sl][0]
            env = np.exp(-4 * tt)
            for ratio in (1, 1.25, 1.5):
                for h in (1, 2, 3):
                    out[sl] += 0.08 / h * env * np.sin(2 * np.pi * root * ratio * h * tt)
        return out.astype(np.float32)
    if kind == "noise":
        white = rng.normal(0, 0.1, n)
        pink = np.cumsum(rng.normal(0, 1, n))
        pink = (pink - np.convolve(pink, np.ones(400) / 400, mode="same"))
        pink = 0.1 * pink / (np.abs(pink).max() + 1e-9)
        return (white if seed % 2 else pink).astype(np.float32)
    if kind == "reversed":
        lines, secs = narrated(seed)
        audio, _ = speak(lines, min(secs, seconds), seed)
        return audio[::-1].copy()
    raise ValueError(f"unknown non-speech kind {kind!r}; known: {', '.join(NONSPEECH)}")


def judge(utts: list[Utterance], truth: list[dict[str, Any]], margin: float = 0.5) -> dict[str, Any]:
    """How a rule did on one clip. A sentence is *captioned* when the kept utterances overlapping
    its spoken interval (+-``margin`` s) contain at least half of its words; an utterance is
    *correct* when at least half of its words belong to the sentences it overlaps. On audio
    without speech (``truth`` empty) every kept utterance is a hallucination."""
    kept = [u for u in utts if u.kept]
    captioned = 0
    for s in truth:
        words = set(tokens(s["text"]))
        near = [u for u in kept if u.end >= s["start"] - margin and u.start <= s["end"] + margin]
        heard = set(w for u in near for w in tokens(u.text))
        captioned += len(words & heard) >= 0.5 * len(words)
    correct = 0
    dropped_correct = 0
    for u in utts:
        near = [s for s in truth if u.end >= s["start"] - margin and u.start <= s["end"] + margin]
        words = set(w for s in near for w in tokens(s["text"]))
        toks = tokens(u.text)
        ok = bool(toks) and sum(w in words for w in toks) >= 0.5 * len(toks)
        if u.kept:
            correct += ok
        else:
            dropped_correct += ok
    return {"sentences": len(truth), "captioned": captioned, "utterances": len(utts), "kept": len(kept),
            "kept_correct": correct, "dropped": len(utts) - len(kept), "dropped_correct": dropped_correct,
            "drop_reasons": dict(Counter((u.drop_reason or "").split(" ")[0] for u in utts if not u.kept))}
