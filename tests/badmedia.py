"""A corpus of bad (and awkward but valid) inputs for ingest, made with PyAV and numpy.

``write_bad_corpus(root)`` writes one folder that mixes good videos with every kind of bad input
the pipeline must survive, and returns what ``egoindex ingest`` is expected to record for each
file (``Case``). Videos come from :func:`tests.media.make_video` (flat grey frames, espeak-ng
speech) or, where the picture matters (rotation), from :func:`patterned_video` here.

Phone rotation is written the way phones write it: a display matrix on the video stream
(``VideoStream.set_display_rotation``, PyAV >= 15), not rotated pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.media import AUDIO_RATE, make_video, mux_audio, speech_track

SPEECH = [(0.5, "The baby grabs the red ball.")]
FPS = 1.0  # the ingest fps the expectations below are written for


@dataclass(frozen=True)
class Case:
    """One file of the corpus and what ingest must record for it."""

    source: str  # the relative path as ingest reports it (undecodable bytes shown as \\xNN)
    what: str  # the bad input, in words
    status: str | tuple[str, ...]  # ok | skipped | failed (a tuple: any of them)
    reason: str = ""  # the reason's machine-readable prefix ("" for ok)
    frames: int | None = None  # samples expected in the shards (ok cases)
    size: tuple[int, int] | None = None  # (width, height) of the stored frames (ok cases)
    warning: str = ""  # a warning the record must carry

    @property
    def good(self) -> bool:
        return self.status == "ok"


def patterned_video(path: Path, seconds: float, fps: int = 15, size: tuple[int, int] = (320, 240),
                    rotation: int | None = None, audio: str | None = "speech") -> Path:
    """H.264 + AAC whose every frame has a white left half and a black right half (so the
    orientation of a stored frame can be checked); ``rotation`` (degrees, counter-clockwise, as
    ``VideoFrame.rotation`` reads it) sets the display matrix a phone would write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = 255
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.time_base = vs.time_base = Fraction(1, 1000)
        if rotation is not None:
            vs.set_display_rotation(rotation)
        if audio:
            aus = c.add_stream("aac", rate=AUDIO_RATE)
            aus.layout = "mono"
        for i in range(round(seconds * fps)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = round(1000 * i / fps), Fraction(1, 1000)
            for pk in vs.encode(f):
                c.mux(pk)
        for pk in vs.encode():
            c.mux(pk)
        if audio:
            samples = speech_track(seconds, SPEECH) if audio == "speech" else np.zeros(int(seconds * AUDIO_RATE), np.float32)
            mux_audio(c, aus, samples)
    return path


def audio_only(path: Path, seconds: float) -> Path:
    """An .mp4 holding only an AAC stream (a voice memo with a video extension)."""
    samples = speech_track(seconds, SPEECH)
    with av.open(str(path), "w") as c:
        aus = c.add_stream("aac", rate=AUDIO_RATE)
        aus.layout = "mono"
        mux_audio(c, aus, samples)
    return path


# Irregular frame times (bursts at 30 fps, gaps of 0.25 and 1.3 s) ending at 4.3 s: 5 samples at 1 fps.
VFR_TIMES = [0.0, 0.033, 0.067, 0.1, 0.35, 0.6, 1.9, 1.933, 1.967, 2.0, 2.25, 3.55, 3.8, 4.05, 4.083, 4.3]
BAD_NAME = b"latin1 caf\xe9 \xff.mp4"  # not UTF-8: only on file systems that keep raw bytes


def write_bad_corpus(root: Path) -> list[Case]:
    """Write the corpus under ``root``; returns the cases (see module docstring)."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    add = cases.append

    make_video(root / "good.mp4", 4, lines=SPEECH)
    add(Case("good.mp4", "a plain good video", "ok", frames=4, size=(320, 240)))
    make_video(root / "Phone Clips" / "bébé à table.MOV", 4, lines=SPEECH)
    add(Case("Phone Clips/bébé à table.MOV", "unicode and spaces in folder and file name, upper-case extension",
             "ok", frames=4, size=(320, 240)))
    make_video(root / "🎥 clips" / "día 1" / "vídeo final (1).mkv", 3, lines=SPEECH)
    add(Case("🎥 clips/día 1/vídeo final (1).mkv", "emoji, accents, brackets in nested folders; Matroska",
             "ok", frames=3, size=(320, 240)))
    make_video(root / "silent.mkv", 4, audio="silence")
    add(Case("silent.mkv", "an audio track of pure silence", "ok", frames=4, size=(320, 240), warning="no speech"))
    make_video(root / "no_audio.mp4", 4, audio=None)
    add(Case("no_audio.mp4", "no audio stream at all", "skipped", "no-audio"))
    audio_only(root / "audio_only.mp4", 3)
    add(Case("audio_only.mp4", "an audio-only file with a video extension", "skipped", "no-video-stream"))
    (root / "zero.mp4").write_bytes(b"")
    add(Case("zero.mp4", "a zero-length file", "skipped", "empty"))
    (root / "notes.avi").write_text("not a video at all\n" * 50)
    add(Case("notes.avi", "a text file with a video extension", "failed", "unreadable"))

    full = make_video(root / "tmp_full.mp4", 12, lines=SPEECH, faststart=True).read_bytes()
    (root / "truncated.mp4").write_bytes(full[: len(full) // 2])
    add(Case("truncated.mp4", "cut in half (an interrupted copy)", "skipped", "truncated"))
    head = bytearray(make_video(root / "tmp_head.mp4", 4, lines=SPEECH).read_bytes())
    head[:512] = np.random.default_rng(1).integers(0, 256, 512, dtype=np.uint8).tobytes()
    (root / "corrupt_header.mp4").write_bytes(bytes(head))
    add(Case("corrupt_header.mp4", "container header overwritten with random bytes", "failed", "unreadable"))
    mid = bytearray(make_video(root / "tmp_mid.mp4", 6, lines=SPEECH, faststart=True).read_bytes())
    for off in range(len(mid) // 3, 2 * len(mid) // 3, 997):
        mid[off : off + 64] = b"\x00" * 64
    (root / "corrupt_middle.webm").write_bytes(bytes(mid))
    # Zeroed packets are concealed (as ffmpeg does), or the file is recorded: never a crash.
    add(Case("corrupt_middle.webm", "zeroed bytes mid-stream, and the wrong extension for its container",
             ("ok", "skipped", "failed")))
    for tmp in root.glob("tmp_*.mp4"):
        tmp.unlink()

    make_video(root / "huge 4000x3000.mp4", 3, fps=1, size=(4000, 3000), audio="silence")
    add(Case("huge 4000x3000.mp4", "12-megapixel frames, 1 fps, 3 frames", "ok", frames=3, size=(341, 256)))
    make_video(root / "tiny16.mp4", 3, size=(16, 16), lines=SPEECH)
    add(Case("tiny16.mp4", "16x16 pixels (never upscaled)", "ok", frames=3, size=(16, 16)))
    patterned_video(root / "portrait_phone.mov", 3, rotation=-90)
    add(Case("portrait_phone.mov", "phone portrait video: 320x240 coded, display matrix rotation -90",
             "ok", frames=3, size=(240, 320)))
    make_video(root / "vfr.mp4", VFR_TIMES[-1] + 0.2, fps=30, lines=SPEECH, frame_times=VFR_TIMES)
    add(Case("vfr.mp4", "variable frame rate (bursts at 30 fps, gaps up to 1.3 s)", "ok", frames=5, size=(320, 240)))

    bad = os.fsencode(root) + b"/" + BAD_NAME
    try:
        with open(bad, "wb") as f:
            f.write((root / "good.mp4").read_bytes())
    except OSError:  # a file system that insists on UTF-8 names (e.g. macOS APFS, some FUSE)
        pass
    else:
        add(Case(BAD_NAME.decode("utf-8", "backslashreplace"), "file name that is not valid UTF-8 (latin-1 bytes)",
                 "skipped", "bad-name"))
    return cases


# ---- the fault report ------------------------------------------------------------------------

REPORT_ENV = "EGOINDEX_FAULT_REPORT"


def record_faults(name: str, facts: dict) -> None:
    """Print ``FAULTS: name: ...`` (seen with ``-s``) and, when ``$EGOINDEX_FAULT_REPORT`` names a
    file, merge ``{name: facts}`` into that JSON file, whatever pytest does with output. The
    figures in docs/reliability.md come from that file."""
    import json

    print(f"FAULTS: {name}: " + json.dumps(facts, ensure_ascii=False, default=str))
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    p = Path(path)
    try:
        report = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    except ValueError:
        report = {}
    report[name] = facts
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, p)
