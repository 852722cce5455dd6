import re

import numpy as np
import pytest

from egoindex.media.quality import Thresholds
from egoindex.demo.speech_cases import child_directed, judge, narrated, nonspeech, speak
from egoindex.media.speech import Transcriber
from tests.media import AUDIO_RATE, speech_track
from egoindex.errors import ModelError


def to16k(audio: np.ndarray) -> np.ndarray:
    n = int(len(audio) * 16000 / AUDIO_RATE)
    return np.interp(np.arange(n) * AUDIO_RATE / 16000, np.arange(len(audio)), audio).astype(np.float32)


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber()  # the bundled tiny.en, CPU


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_bundled_model_transcribes_narration_with_times_and_scores(transcriber: Transcriber):
    lines = [(1.0, "The baby grabs the red ball."), (7.0, "The green block spins around.")]
    utts, meta = transcriber.transcribe(to16k(speech_track(12.0, lines)), "vid")
    kept = [u for u in utts if u.kept]
    assert len(kept) == 2  # split at the pause although Whisper may return one segment
    assert all(w in kept[0].text.lower() for w in ("red", "ball")) and all(w in kept[1].text.lower() for w in ("green", "spins"))
    assert 0.5 <= kept[0].start <= 1.6 and kept[0].end <= 4.0
    assert 6.5 <= kept[1].start <= 7.6 and kept[1].end <= 10.5
    for u in kept:
        assert 0 <= u.no_speech_prob <= 1 and u.avg_logprob < 0 and u.compression_ratio > 0
        assert u.words and u.id.startswith("vid_u")
    assert meta["audio_seconds"] == pytest.approx(12.0, abs=0.05)


def test_silence_gives_no_kept_utterance(transcriber: Transcriber):
    utts, _ = transcriber.transcribe(np.zeros(16000 * 8, np.float32), "silent")
    assert [u for u in utts if u.kept] == []


def test_strict_thresholds_drop_and_record_reason():
    tr = Transcriber(thresholds=Thresholds(max_no_speech_prob=0.0, speech_confidence=1.01))
    utts, _ = tr.transcribe(to16k(speech_track(5.0, [(0.5, "Look at the yellow banana.")])), "v")
    assert utts and all(not u.kept and u.drop_reason.startswith("no_speech_prob") for u in utts)


def test_named_model_offline_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="--whisper-model /path/to"):
        Transcriber(model="small.en", device="cpu")


# -- the per-utterance quality rule on real decodes (egoindex.media.quality; benchmarks/caption_filter.py
#    measures the same cases at full size)

def test_repetitive_child_directed_speech_keeps_its_correct_utterances(transcriber: Transcriber):
    kept_ok = dropped_ok = sentences = captioned = 0
    for i in range(2):
        lines, seconds = child_directed(i)
        audio, truth = speak(lines, seconds, i)
        r = judge(transcriber.transcribe(audio, f"cds{i}")[0], truth)
        kept_ok, dropped_ok = kept_ok + r["kept_correct"], dropped_ok + r["dropped_correct"]
        sentences, captioned = sentences + r["sentences"], captioned + r["captioned"]
    assert kept_ok / (kept_ok + dropped_ok) >= 0.95, (kept_ok, dropped_ok)
    assert captioned >= 0.85 * sentences, (captioned, sentences)


def test_narration_in_a_repetitive_window_is_kept_and_scored_per_utterance(transcriber: Transcriber):
    lines, seconds = narrated(4)
    audio, truth = speak(lines, seconds, 4)
    utts, _ = transcriber.transcribe(audio, "narr")
    # the window's text repeats its sentence frame: 0.4's window rule (> 2.4) dropped all of it
    assert max(u.compression_ratio for u in utts) > 2.4
    r = judge(utts, truth)
    assert r["captioned"] >= 7 and r["dropped_correct"] == 0, r
    windows: dict[float, list] = {}
    for u in utts:
        windows.setdefault(u.compression_ratio, []).append(u)
    big = max(windows.values(), key=len)
    assert len(big) >= 3
    # scores of one window's utterances are their own
    assert len({u.confidence for u in big}) > 1 and len({u.text_compression for u in big}) > 1


@pytest.mark.parametrize("kind", ["silence", "tones", "music", "noise"])
def test_audio_without_speech_gives_no_kept_caption(transcriber: Transcriber, kind: str):
    utts, _ = transcriber.transcribe(nonspeech(kind, 0, seconds=10.0), kind)
    assert [u.text for u in utts if u.kept] == []
