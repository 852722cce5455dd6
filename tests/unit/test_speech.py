import re

import numpy as np
import pytest

from egoindex.media.speech import Thresholds, Transcriber
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
    tr = Transcriber(thresholds=Thresholds(max_no_speech_prob=0.0))
    utts, _ = tr.transcribe(to16k(speech_track(5.0, [(0.5, "Look at the yellow banana.")])), "v")
    assert utts and all(not u.kept and u.drop_reason.startswith("no_speech_prob") for u in utts)


def test_named_model_offline_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="--whisper-model /path/to"):
        Transcriber(model="small.en", device="cpu")
