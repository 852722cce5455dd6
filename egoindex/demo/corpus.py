"""Write a small synthetic corpus of head-camera videos with real spoken narration + ground truth.

Why: the rest of egoindex (ingest, frame sampling, ASR captions, embeddings, retrieval,
benchmarks) needs input that (a) exists without downloads, (b) looks and sounds like the
intended data (a baby's head camera at home, someone narrating what happens), and (c) comes with
exact ground truth so results can be scored.  Each video is a sequence of 5-8 s scenes (room +
coloured object + action, see :mod:`egoindex.demo.scenes`), each narrated by one sentence spoken
by espeak-ng (:mod:`egoindex.demo.tts`) that whisper ``tiny.en`` transcribes almost, but not
quite, perfectly -- realistic weak captions.

Design choices:

* Deterministic: every random choice comes from ``numpy.random.default_rng([seed, video, ...])``
  and speech synthesis is reproducible, so the same arguments give the same scenes, narration
  and timings (and, with single-threaded encoders and bit-exact muxing, the same bytes).
* Robustness fixtures: file names use sub-folders, spaces, non-ASCII letters and upper/mixed-case
  extensions across mp4/mov/mkv/webm containers, because real camera dumps look like that.
* Crash safety: each video is written under a hidden temporary name and renamed into place;
  ``ground_truth.json`` is written last and atomically, so a complete ground-truth file means a
  complete corpus (which makes re-runs with the same arguments a no-op).
* Speed: videos are rendered in parallel worker processes (one video per task).
"""

from __future__ import annotations

import json
import math
import os
import re
import selectors
import subprocess
import sys
import tempfile
import unicodedata
import zlib
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from egoindex.demo.scenes import ACTIONS, COLOURS, OBJECTS, ROOMS, SURFACES, Scene, VideoRenderer
from egoindex.demo.tts import Speaker
from egoindex.core.fsutil import write_json

__all__ = [
    "GENERATOR",
    "CORPUS_VOICES",
    "FORMAT_VERSION",
    "demo_video_names",
    "plan_video",
    "write_demo_corpus",
    "PlannedScene",
    "PlannedVideo",
]

GENERATOR = "egoindex demo-data"
#: Bump when rendering/planning changes so existing corpora are regenerated instead of reused.
FORMAT_VERSION = 1
GROUND_TRUTH = "ground_truth.json"

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

_CONTAINERS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


# --------------------------------------------------------------------------------------------
# planning (everything that ends up in the ground truth)


@dataclass
class PlannedScene:
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

    def ground_truth(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("variant")
        d.pop("room_seed")
        return d

    def scene(self) -> Scene:
        return Scene(self.room, self.object, self.colour, self.action, self.end - self.start, self.variant, self.room_seed)


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
        raise ValueError("n_videos must be >= 1")
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
        raise ValueError("seconds must be >= 5 (a scene and its narration need at least 5 s)")
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


# --------------------------------------------------------------------------------------------
# rendering + encoding


def _resample_linear(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Linear-interpolation resampling; only used to *up*-sample for Opus, where it is adequate."""
    n_out = int(round(audio.size * sr_out / sr_in))
    x = np.arange(n_out, dtype=np.float64) * (sr_in / sr_out)
    return np.interp(x, np.arange(audio.size), audio).astype(np.float32)


def _encode_video(
    plan: PlannedVideo,
    tmp_path: Path,
    container_format: str,
    seed: int,
    fps: int,
    size: tuple[int, int],
    report: Callable[[int], None],
) -> None:
    """Render every frame of ``plan`` and mux it with the narration track into ``tmp_path``."""
    import av  # local import: only needed when actually writing videos

    webm = container_format == "webm"
    n_frames = int(round(plan.duration * fps))
    cam_seed = int(np.random.SeedSequence([seed, plan.index, 404]).generate_state(1)[0])
    renderer = VideoRenderer(cam_seed, size, duration_hint=plan.duration)
    if webm:
        audio_rate = 48000
        audio = _resample_linear(plan.audio, plan.sample_rate, audio_rate)
    else:
        audio_rate = plan.sample_rate
        audio = plan.audio
    n_audio = int(round(plan.duration * audio_rate))
    audio = np.pad(audio, (0, max(0, n_audio - audio.size)))[:n_audio].astype(np.float32)

    with av.open(str(tmp_path), mode="w", format=container_format, options={"fflags": "+bitexact"}) as out:
        if webm:
            vs = out.add_stream("libvpx", rate=fps, options={"deadline": "realtime", "cpu-used": "8", "threads": "1", "crf": "10", "b": "800k"})
            aus = out.add_stream("libopus", rate=audio_rate, layout="mono")
            aus.bit_rate = 48000
        else:
            vs = out.add_stream("libx264", rate=fps, options={"preset": "superfast", "crf": "25", "threads": "1"})
            aus = out.add_stream("aac", rate=audio_rate, layout="mono")
            aus.bit_rate = 64000
        vs.width, vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.codec_context.thread_count = 1
        # bit-exact: no encoder version strings / random IDs, so identical input -> identical bytes
        vs.codec_context.flags |= av.codec.context.Flags.bitexact
        aus.codec_context.flags |= av.codec.context.Flags.bitexact

        audio_tb = Fraction(1, audio_rate)
        bounds = [(s.start, s.end, s.scene()) for s in plan.scenes]
        k = 0
        a_done = 0
        pending = 0
        for f in range(n_frames):
            t = f / fps
            while k < len(bounds) - 1 and t >= bounds[k][1]:
                k += 1
            start, _end, scene = bounds[k]
            img = renderer.render_image(scene, t - start, t)
            frame = av.VideoFrame.from_image(img)
            frame.pts = f
            out.mux(vs.encode(frame))
            # audio goes in ~1 s chunks: cheap per call, and still finely interleaved with video
            if f == n_frames - 1 or (f + 1) % fps == 0:
                a_end = n_audio if f == n_frames - 1 else int(round((f + 1) * audio_rate / fps))
                if a_end > a_done:
                    af = av.AudioFrame.from_ndarray(audio[None, a_done:a_end], format="fltp", layout="mono")
                    af.sample_rate = audio_rate
                    af.pts = a_done
                    af.time_base = audio_tb
                    out.mux(aus.encode(af))
                    a_done = a_end
            pending += 1
            if pending >= 15:
                report(pending)
                pending = 0
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))
    if pending:
        report(pending)


@dataclass(frozen=True)
class _Job:
    index: int
    rel_path: str
    out_dir: str
    seconds: float
    seed: int
    fps: int
    size: tuple[int, int]
    reuse_existing: bool


def _temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.part")


def _make_video(job: _Job, report: Callable[[int], None]) -> dict[str, Any]:
    """Plan, render and encode one video (temp file + rename); return its ground-truth entry."""
    plan = plan_video(job.index, job.rel_path, job.seconds, job.seed)
    final = Path(job.out_dir) / job.rel_path
    if job.reuse_existing and final.is_file() and final.stat().st_size > 0:
        report(int(round(job.seconds * job.fps)))
        return plan.ground_truth()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(final)
    fmt = _CONTAINERS[final.suffix.lower()]
    try:
        _encode_video(plan, tmp, fmt, job.seed, job.fps, job.size, report)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return plan.ground_truth()


def _worker_main() -> None:
    """Entry point of a worker process: read one job (JSON) per stdin line, answer on stdout with
    ``P <frames>`` progress lines and one ``R <ground-truth JSON>`` line per job.

    Why plain subprocesses instead of multiprocessing: ``spawn`` re-imports the caller's
    ``__main__`` (breaks ``python -c``/stdin scripts and re-runs unguarded scripts) and ``fork``
    is unsafe when the caller has threads (rich, pytest plugins, ASR runtimes).  A fresh
    interpreter that imports only this module has neither problem.
    """
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything else printed to stdout (e.g. by a library) must not corrupt the protocol
    sys.stdout = sys.stderr

    def report(n: int) -> None:
        proto.write(f"P {n}\n")

    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        spec["size"] = tuple(spec["size"])
        result = _make_video(_Job(**spec), report)
        proto.write("R " + json.dumps(result, ensure_ascii=False) + "\n")
    proto.close()


class _WorkerProcess:
    """Parent-side handle of one worker subprocess (non-blocking line protocol)."""

    def __init__(self) -> None:
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])  # so the worker imports *this* egoindex
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONIOENCODING"] = "utf-8"
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from egoindex.demo.corpus import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.job: _Job | None = None

    def send(self, job: _Job) -> None:
        self.job = job
        self.stdin.write((json.dumps(asdict(job), ensure_ascii=False) + "\n").encode("utf-8"))
        self.stdin.flush()

    def close_input(self) -> None:
        if not self.stdin.closed:
            self.stdin.close()

    def read_lines(self) -> list[str] | None:
        """Lines available now; None at end of stream (worker exited)."""
        chunk = os.read(self.fd, 65536)
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [ln.decode("utf-8") for ln in lines]

    def error_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        self.close_input()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def _run_in_workers(jobs: list[_Job], n_workers: int, advance: Callable[[int], None]) -> dict[int, dict[str, Any]]:
    """Run ``jobs`` on ``n_workers`` worker subprocesses, one video at a time per worker."""
    results: dict[int, dict[str, Any]] = {}
    todo = list(jobs)
    workers = [_WorkerProcess() for _ in range(n_workers)]
    sel = selectors.DefaultSelector()
    try:
        for w in workers:
            sel.register(w.fd, selectors.EVENT_READ, w)
            w.send(todo.pop(0))
        active = len(workers)
        while active:
            for key, _ in sel.select(timeout=1.0):
                w = key.data
                lines = w.read_lines()
                if lines is None:  # worker exited
                    sel.unregister(w.fd)
                    active -= 1
                    if w.job is not None:
                        w.proc.wait()
                        raise RuntimeError(
                            f"demo corpus worker failed on {w.job.rel_path!r} (exit code {w.proc.returncode}):\n{w.error_text()}"
                        )
                    continue
                for line in lines:
                    if line.startswith("P "):
                        advance(int(line[2:]))
                    elif line.startswith("R ") and w.job is not None:
                        results[w.job.index] = json.loads(line[2:])
                        w.job = None
                        if todo:
                            w.send(todo.pop(0))
                        else:
                            w.close_input()
    finally:
        for w in workers:
            if w.proc.poll() is None and w.job is not None:
                w.proc.kill()  # interrupted or failed: do not leave our workers running
            w.stop()
        sel.close()
    return results


# --------------------------------------------------------------------------------------------
# public entry point


def _args_record(n_videos: int, seconds: float, seed: int, fps: int, size: tuple[int, int]) -> dict[str, Any]:
    return {
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "n_videos": int(n_videos),
        "seconds": round(float(seconds), 3),
        "fps": int(fps),
        "size": [int(size[0]), int(size[1])],
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _matches(record: dict[str, Any] | None, args: dict[str, Any]) -> bool:
    return record is not None and all(record.get(k) == v for k, v in args.items())


def _corpus_complete(out_dir: Path, args: dict[str, Any]) -> bool:
    gt = _read_json(out_dir / GROUND_TRUTH)
    if not _matches(gt, args) or not isinstance(gt.get("videos"), list):  # type: ignore[union-attr]
        return False
    videos = gt["videos"]  # type: ignore[index]
    return len(videos) == args["n_videos"] and all(
        (out_dir / v.get("path", "")).is_file() and (out_dir / v["path"]).stat().st_size > 0 for v in videos
    )


_README = """\
egoindex demo corpus
====================

Synthetic head-camera ("egocentric") videos, as if from a camera worn by a baby at home, with
real spoken narration.  Generated by `egoindex.demo.corpus.write_demo_corpus` ({generator},
format {format_version}); nothing here was downloaded.

Arguments: n_videos={n_videos}, seconds={seconds}, seed={seed}, fps={fps}, size={w}x{h}.

Each video is a sequence of 5-8 s scenes.  A scene shows one room ({rooms}), one object
({objects}) in one colour ({colours}) doing one action ({actions}); "grabs" and "shakes" show
the wearer's own hand.  The camera drifts, bobs and glances like a head camera; frames carry
mild sensor noise.  Every scene has one narration sentence spoken by espeak-ng (voice varies per
video) that starts 0.3-0.8 s into the scene and ends before the scene ends, over quiet room
noise.  Video: H.264 (VP8 in .webm), {fps} fps; audio: AAC 22.05 kHz mono (Opus 48 kHz in .webm).

File names deliberately mix sub-folders, spaces, non-ASCII letters, upper/mixed-case extensions
and several containers (mp4, mov, mkv, webm) to exercise ingest robustness.

ground_truth.json (exact, machine-readable):
  {{"generator", "format_version", "seed", "n_videos", "seconds", "fps", "size": [w, h],
   "videos": [{{"path" (relative, POSIX), "duration", "speaker" (espeak voice), "speech_rate" (wpm),
               "scenes": [{{"start", "end", "room", "object", "colour", "action",
                           "narration", "speech_start", "speech_end"}}]}}]}}
Times are seconds from the start of the video; scenes tile [0, duration].

Re-running the generator with the same arguments on this folder does nothing.
"""


def write_demo_corpus(
    out_dir: Path,
    n_videos: int = 12,
    seconds: float = 60.0,
    seed: int = 0,
    fps: int = 15,
    size: tuple[int, int] = (320, 240),
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Write the demo corpus into ``out_dir`` and return the path of its ``ground_truth.json``.

    Idempotent: if ``out_dir`` already holds a complete corpus made with the same arguments,
    nothing is written.  A run that was killed part-way resumes: finished videos (which only ever
    appear under their final names once complete) are reused when the interrupted run had the
    same arguments.  ``workers`` = number of processes (default: one per CPU, at most one per
    video); the output does not depend on it.
    """
    out_dir = Path(out_dir)
    if n_videos < 1:
        raise ValueError("n_videos must be >= 1")
    if fps < 1:
        raise ValueError("fps must be >= 1")
    w, h = int(size[0]), int(size[1])
    if w < 64 or h < 64 or w % 2 or h % 2:
        raise ValueError("size must be even and at least 64x64 (H.264 4:2:0 needs even dimensions)")
    if seconds < 5.0:
        raise ValueError("seconds must be >= 5")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    args = _args_record(n_videos, seconds, seed, fps, (w, h))
    gt_path = out_dir / GROUND_TRUTH
    if _corpus_complete(out_dir, args):
        return gt_path

    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / ".demo_corpus_state.json"
    reuse = _matches(_read_json(state_path), args)
    old_gt = _read_json(gt_path)
    names = demo_video_names(n_videos)
    if old_gt is not None and old_gt.get("generator") == GENERATOR:
        # remove videos this generator wrote earlier with other arguments that are not in the new set
        for v in old_gt.get("videos", []) if isinstance(old_gt.get("videos"), list) else []:
            p = v.get("path") if isinstance(v, dict) else None
            if isinstance(p, str) and p not in names and (out_dir / p).is_file():
                (out_dir / p).unlink()
    if gt_path.exists():
        gt_path.unlink()  # the corpus is incomplete until the new ground truth is written
    write_json(state_path, args)

    jobs = [_Job(i, name, str(out_dir), float(seconds), int(seed), int(fps), (w, h), reuse) for i, name in enumerate(names)]
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = cpus
    n_workers = workers
    n_workers = max(1, min(int(n_workers), len(jobs)))
    total_frames = len(jobs) * int(round(seconds * fps))

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    results: dict[int, dict[str, Any]] = {}
    with Progress(
        TextColumn("[bold]demo corpus[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not progress,
        transient=False,
    ) as bar:
        task = bar.add_task(f"{len(jobs)} videos -> {out_dir}", total=total_frames)
        if n_workers == 1:
            for job in jobs:
                results[job.index] = _make_video(job, lambda n: bar.advance(task, n))
        else:
            results = _run_in_workers(jobs, n_workers, lambda n: bar.advance(task, n))

    ground_truth = dict(args)
    ground_truth["videos"] = [results[i] for i in range(len(jobs))]
    (out_dir / "README.txt").write_text(
        _README.format(
            w=w,
            h=h,
            rooms=", ".join(ROOMS),
            objects=", ".join(OBJECTS),
            colours=", ".join(COLOURS),
            actions=", ".join(ACTIONS),
            **args,
        ),
        encoding="utf-8",
    )
    write_json(gt_path, ground_truth)
    state_path.unlink(missing_ok=True)
    return gt_path
