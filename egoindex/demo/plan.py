"""What each demo video shows and says: file names, scenes (room, object, action, timing) and the
narration sentence of each scene, all drawn deterministically from the seed.

Split from :mod:`egoindex.demo.corpus` (which writes the corpus) so that the plan, which tests and
the ground truth depend on, reads apart from the encoding machinery (:mod:`egoindex.demo.encode`).
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from egoindex.demo.scenes import ACTIONS, COLOURS, OBJECTS, ROOMS, SURFACES, Scene
from egoindex.demo.tts import Speaker
from egoindex.errors import ConfigError

_MIN_SCENE_DS, _MAX_SCENE_DS = 50, 80  # scene length bounds in deciseconds (5-8 s)
_SPEECH_TAIL_MARGIN = 0.25  # speech must end at least this long before its scene ends (s)
_SPEECH_PEAK = 0.5
_TTS_RATE = 22050

# The first names are fixed and ordered so that any prefix mixes the robustness cases:
# n=1 plain, n=2 adds an upper-case extension, n=3 adds a non-ASCII name, n=4 webm, n=5 a space...
_FIXED_NAMES: tuple[str, ...] = (
    "home_a/day1/breakfast.mp4",
    "home_a/day1/playtime.MP4",
    "home_b/bébé_cuisine.mp4",
    "home_b/salon.webm",
    "home_a/day2/garden walk.mkv",
    "home_a/day2/bath.mov",
    "home_b/Nap Time/crib.MOV",
    "home_c/2024-05-01/clip_001.mp4",
    "home_c/2024-05-01/clip_002.Mp4",
    "home_c/soirée/Éveil musical.mkv",
    "home_a/day3/blocks & books.MKV",
    "home_b/grand-mère/jardin.WEBM",
)
_EXTRA_EXTS: tuple[str, ...] = (".mp4", ".MP4", ".mov", ".mkv", ".webm", ".Mov")

# Narration templates per action; "[...]" marks optional words that may be dropped so that the
# sentence fits its scene.  Fields: {c} colour, {o} object, {a} a/an for "{c}", {room}, {surface}.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "rolls": (
        "[look, ]the {c} {o} rolls across the {surface}",
        "mommy rolls the {c} {o} to the baby[ in the {room}]",
        "{a} {c} {o} is rolling on the {surface}[ in the {room}]",
        "[see, ]the {c} {o} rolls away",
    ),
    "bounces": (
        "{a} {c} {o} bounces on the {surface}",
        "[look, ]the {c} {o} bounces up and down[ in the {room}]",
        "[wow, ]the {c} {o} is bouncing",
    ),
    "falls": (
        "[look, ]{a} {c} {o} falls on the {surface}",
        "[oops, ]the {c} {o} fell off the table",
        "the {c} {o} drops to the {surface}[ in the {room}]",
    ),
    "spins": (
        "the {c} {o} spins around",
        "[look, ]the {c} {o} is spinning[ in the {room}]",
        "round and round goes the {c} {o}",
    ),
    "grabs": (
        "the baby grabs the {c} {o}",
        "[look, ]a little hand picks up the {c} {o}",
        "the baby reaches for the {c} {o}[ in the {room}]",
    ),
    "shakes": (
        "the baby shakes the {c} {o}",
        "[look, ]the baby is shaking {a} {c} {o}",
        "[listen, ]the baby shakes the {c} {o}[ in the {room}]",
    ),
}

#: Voices the corpus rotates through (one per video).  Picked from tts.KNOWN_VOICES for variety
#: (female/male variants) *and* because whisper tiny.en recovers ~85-90 % of colour/object words
#: from them; the British voices ("en", "en-gb-x-rp") and "en-us+f2" scored clearly lower.
CORPUS_VOICES: tuple[str, ...] = ("en-us+f4", "en-us+m3", "en-us", "en-us+f1", "en-us+m4", "en-us+f3")

# --------------------------------------------------------------------------------------------
# planning (everything that ends up in the ground truth)


class SceneRecord:
    """What every planned scene of a demo corpus shares: the render seeds ``variant`` and
    ``room_seed`` stay out of its ground truth, and the renderer's :class:`Scene` comes from its
    room, object, colour, action and length (the default and the motion corpus both)."""

    start: float
    end: float
    room: str
    object: str
    colour: str
    action: str
    variant: int
    room_seed: int

    def ground_truth(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        d.pop("variant")
        d.pop("room_seed")
        return d

    def scene(self) -> Scene:
        return Scene(self.room, self.object, self.colour, self.action, self.end - self.start, self.variant, self.room_seed)


@dataclass
class PlannedScene(SceneRecord):
    """One scene of a planned video, exactly as recorded in ``ground_truth.json``."""

    start: float
    end: float
    room: str
    object: str
    colour: str
    action: str
    narration: str
    speech_start: float
    speech_end: float
    variant: int = field(default=0, repr=False)  # per-scene render seed (not in the ground truth)
    room_seed: int = field(default=0, repr=False)  # the room's look, shared within a home (ditto)


@dataclass
class PlannedVideo:
    """A planned video: its scenes, speaker and the full narration audio track (float32, mono)."""

    index: int
    path: str
    duration: float
    speaker: str
    speech_rate: int
    scenes: list[PlannedScene]
    audio: np.ndarray = field(repr=False)
    sample_rate: int = _TTS_RATE

    def ground_truth(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "duration": self.duration,
            "speaker": self.speaker,
            "speech_rate": self.speech_rate,
            "scenes": [s.ground_truth() for s in self.scenes],
        }


def demo_video_names(n_videos: int) -> list[str]:
    """Relative POSIX paths of the ``n_videos`` corpus files.

    The first 12 are fixed and ordered so that every prefix mixes sub-folders, upper/mixed-case
    extensions, non-ASCII letters, spaces and several containers (why: the ingest stage must cope
    with all of them).  Further names are generated in the same spirit.
    """
    if n_videos < 1:
        raise ConfigError("n_videos must be >= 1")
    names = [unicodedata.normalize("NFC", n) for n in _FIXED_NAMES[:n_videos]]
    for i in range(len(_FIXED_NAMES), n_videos):
        home = "home_" + "abcd"[i % 4]
        day = f"day{4 + (i // 4) % 9}" if i % 3 else f"jour {4 + (i // 4) % 9}"
        stem = f"clip_{i + 1:03d}" if i % 5 else f"été_{i + 1:03d}"
        names.append(unicodedata.normalize("NFC", f"{home}/{day}/{stem}{_EXTRA_EXTS[i % len(_EXTRA_EXTS)]}"))
    return names


def _scene_lengths_ds(rng: np.random.Generator, total_ds: int) -> list[int]:
    """Split ``total_ds`` deciseconds into scene lengths of 5-8 s (relaxed only when impossible)."""
    n_min = max(1, math.ceil(total_ds / _MAX_SCENE_DS))
    n_max = total_ds // _MIN_SCENE_DS
    lo = _MIN_SCENE_DS
    if n_min <= n_max:
        n = int(np.clip(round(total_ds / rng.uniform(55, 72)), n_min, n_max))
    else:  # e.g. 9 s cannot be cut into 5-8 s pieces: use the fewest scenes, shorter minimum
        n = n_min
        lo = total_ds // n
    lengths: list[int] = []
    rem = total_ds
    for k in range(n, 0, -1):
        if k == 1:
            lengths.append(rem)
            break
        a = max(lo, rem - _MAX_SCENE_DS * (k - 1))
        b = min(_MAX_SCENE_DS, rem - lo * (k - 1))
        length = int(rng.integers(a, b + 1))
        lengths.append(length)
        rem -= length
    return lengths


def _fill(template: str, fields: dict[str, str], keep: list[bool] | None) -> str:
    """Fill a template; ``keep[i]`` says whether optional segment ``i`` stays (None = drop all)."""
    counter = iter(keep or [])

    def repl(m: re.Match[str]) -> str:
        return m.group(1) if next(counter, False) else ""

    text = re.sub(r"\[([^\]]*)\]", repl, template).format(**fields)
    return re.sub(r"\s+", " ", text).strip()


def _trim(audio: np.ndarray, sr: int) -> np.ndarray:
    """Cut espeak's leading/trailing silence so speech_start/end mark audible speech."""
    if audio.size == 0:
        return audio
    thr = 0.02 * float(np.abs(audio).max())
    idx = np.flatnonzero(np.abs(audio) > thr)
    if idx.size == 0:
        return audio[:0]
    pad = int(0.01 * sr)
    return audio[max(0, idx[0] - pad) : idx[-1] + pad + 1]


def _room_noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Quiet room tone: white noise + mains hum + low-frequency rumble (keeps whisper's job easy
    but stops the track from being digitally silent between sentences, as real recordings are)."""
    t = np.arange(n, dtype=np.float64) / sr
    hum_f = 50.0 if rng.random() < 0.5 else 60.0
    hum = 0.0025 * np.sin(2 * np.pi * hum_f * t + rng.uniform(0, 6.3)) + 0.001 * np.sin(2 * np.pi * 2 * hum_f * t)
    coarse = rng.normal(0.0, 1.0, size=int(n / sr * 40) + 2)  # 40 Hz control points
    rumble = 0.003 * np.interp(np.arange(n) / sr * 40, np.arange(coarse.size), coarse)
    return (rng.normal(0.0, 0.005, size=n) + hum + rumble).astype(np.float32)


def plan_video(
    index: int,
    path: str,
    seconds: float,
    seed: int,
    speaker: Speaker | None = None,
) -> PlannedVideo:
    """Plan video ``index``: scenes, narration text, voice, speech timing and the audio track.

    Why separate from rendering: the plan *is* the ground truth (it needs TTS to know when speech
    ends, but no pixels), so tools that only need ground truth can call this cheaply.
    """
    if seconds < 5.0:
        raise ConfigError("seconds must be >= 5 (a scene and its narration need at least 5 s)")
    speaker = speaker or Speaker()
    rng = np.random.default_rng([seed, index, 101])
    voice_order = np.random.default_rng([seed, 202]).permutation(len(CORPUS_VOICES))
    voice = CORPUS_VOICES[int(voice_order[index % len(CORPUS_VOICES)])]
    base_rate = int(rng.integers(130, 156))
    main_room = ROOMS[int(rng.integers(len(ROOMS)))]
    home = path.split("/", 1)[0] if "/" in path else ""

    def room_seed(room: str) -> int:  # one look per (home, room), shared by all its videos
        return int(np.random.default_rng([seed, zlib.crc32(home.encode()), ROOMS.index(room), 404]).integers(2**31 - 1))

    total_ds = int(round(seconds * 10))
    lengths = _scene_lengths_ds(rng, total_ds)
    n_samples = int(round(seconds * _TTS_RATE))
    audio = _room_noise(np.random.default_rng([seed, index, 303]), n_samples, _TTS_RATE)

    scenes: list[PlannedScene] = []
    start_ds = 0
    prev: tuple[str, str] | None = None
    for k, length in enumerate(lengths):
        start = start_ds / 10.0
        end = round(float(seconds), 3) if k == len(lengths) - 1 else (start_ds + length) / 10.0
        start_ds += length
        room = main_room if rng.random() < 0.6 else ROOMS[int(rng.integers(len(ROOMS)))]
        while True:
            obj = OBJECTS[int(rng.integers(len(OBJECTS)))]
            colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            if (obj, colour) != prev:
                break
        prev = (obj, colour)
        action = ACTIONS[int(rng.integers(len(ACTIONS)))]
        variant = int(rng.integers(0, 2**31 - 1))
        templates = _TEMPLATES[action]
        template = templates[int(rng.integers(len(templates)))]
        keep = [bool(rng.random() < 0.5) for _ in range(template.count("["))]
        offset = round(float(rng.uniform(0.3, 0.8)), 2)
        fields = {
            "c": colour,
            "o": obj,
            "a": "an" if colour[0] in "aeiou" else "a",
            "room": room,
            "surface": SURFACES[room],
        }
        full, short = _fill(template, fields, keep), _fill(template, fields, None)
        budget = (end - start) - offset - _SPEECH_TAIL_MARGIN
        candidates = [(full, base_rate), (full, base_rate + 25), (short, base_rate), (short, base_rate + 25), (short, base_rate + 50)]
        chosen: tuple[str, np.ndarray] | None = None
        for text, rate in dict.fromkeys(candidates):
            spoken = text[0].upper() + text[1:] + "."
            wav, sr = speaker.synthesize(spoken, voice, rate)
            if sr != _TTS_RATE:
                raise RuntimeError(f"unexpected espeak sample rate {sr}")
            wav = _trim(wav, sr)
            if wav.size / sr <= budget:
                chosen = (text, wav)
                break
        if chosen is None:
            raise RuntimeError(f"narration {short!r} does not fit a {end - start:.1f} s scene")
        text, wav = chosen
        peak = float(np.abs(wav).max()) or 1.0
        wav = wav * (_SPEECH_PEAK / peak)
        s0 = int(round((start + offset) * _TTS_RATE))
        audio[s0 : s0 + wav.size] += wav
        scenes.append(
            PlannedScene(
                start=round(start, 3),
                end=round(end, 3),
                room=room,
                object=obj,
                colour=colour,
                action=action,
                narration=text,
                speech_start=round(s0 / _TTS_RATE, 3),
                speech_end=round((s0 + wav.size) / _TTS_RATE, 3),
                variant=variant,
                room_seed=room_seed(room),
            )
        )
    np.clip(audio, -1.0, 1.0, out=audio)
    return PlannedVideo(index, path, round(float(seconds), 3), voice, base_rate, scenes, audio, _TTS_RATE)


