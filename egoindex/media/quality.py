"""Which Whisper utterances are kept as captions: each utterance judged on its own scores.

Why per utterance. Whisper decodes windows of up to 30 s; with VAD one window often spans all the
speech of a short video, and egoindex splits it into utterances at pauses. Judging every piece by
its window's scores (what egoindex did up to 0.4) means one score for all: on a narrated corpus
of 12 videos with 8 sentences each ("Look, the orange block slides left."), the window's text
repeats its sentence frame, its compression ratio went above 2.4 and every correct sentence of
8 of the 12 videos was dropped as a "hallucination loop". Child-directed speech is repetitive by
nature ("look, the ball! the ball! look!"), so a rule that reads repetition across a window
throws away the speech that matters most. The rule below reads each utterance's own words.

Scores (:func:`score`, recorded on every Whisper utterance):

- ``confidence``: the geometric mean of the utterance's word probabilities (faster-whisper's
  per-word probability), in [0, 1]; ``exp`` of the mean word log-probability, so it is on
  Whisper's own ``avg_logprob`` scale (``-1.0`` = 0.37) but of these words only.
- ``text_compression``: the gzip-style compression ratio of the utterance's own text (Whisper's
  definition: UTF-8 bytes / zlib-compressed bytes). zlib cannot judge short texts (its header and
  the missing back-references keep their ratio under ~1.3 whatever they say), so it only counts
  from :attr:`Thresholds.min_compression_chars` characters on.
- ``repeats``: the longest run of one n-gram (1 to :data:`MAX_NGRAM` words) repeated back to back
  within the utterance, counted in occurrences, over words lower-cased without punctuation:
  "thank you thank you thank you" is 3. Only runs that cover at least
  :attr:`Thresholds.min_loop_words` words count, so "no no no" or "the ball! the ball!" are not
  loops (child-directed speech), while a decoder stuck on "Thank you." for 20 words is.
- ``window_echo``: whether every word of the utterance also occurs in another utterance of the
  same decoding window (:func:`echoes`; Whisper's 30-s window, which may hold several segments,
  all with the window's scores). With the window's compression ratio this finds a decoding loop
  that the pause split has cut into pieces: on reversed speech (speech-like sound without words)
  Whisper wrote "We are in Seoul." 16 times in one window (window compression ratio 10.7), each
  a separate utterance with confident words (0.53-0.94) and a short text of its own.
- ``no_speech_prob``: the window's (Whisper gives it per segment, for the whole window), used as
  what it is: evidence about the window, which counts against an utterance only together with its
  own low confidence. That is Whisper's own rule (``no_speech_threshold`` applies only when
  ``avg_logprob < log_prob_threshold``) with the utterance's confidence in place of the window's.

An utterance is dropped, with the first reason that holds (recorded as ``drop_reason``):
``no words`` (no letter at all), ``repeats N >= max_repeats`` (a loop), ``text_compression R >
max_compression_ratio`` (long and repetitive), ``window loop`` (the window's compression ratio
above ``max_window_compression`` and the utterance a ``window_echo``: the window is a loop and
this piece says nothing the rest of it does not; a window's correct speech with words of its own
survives), ``confidence C < min_confidence``, ``no_speech_prob P > max_no_speech_prob with
confidence C < speech_confidence``. The defaults and the measurements
behind them are in docs/formats.md ("Caption quality"), reproduced by
``benchmarks/caption_filter.py``.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: The longest n-gram :func:`repeat_run` looks for (Whisper's loops are phrases of a few words).
MAX_NGRAM = 8
#: A word probability below this counts as this (a zero would make the geometric mean zero).
MIN_WORD_PROB = 1e-4

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


class Scored(Protocol):
    """What the rule reads of an utterance (``egoindex.media.speech.Utterance`` has these)."""

    text: str
    no_speech_prob: float
    compression_ratio: float
    window_echo: bool | None
    confidence: float | None
    text_compression: float | None
    repeats: int | None


def confidence(words: Sequence[dict[str, Any]]) -> float | None:
    """The geometric mean of the words' probabilities (key ``p``); None without words."""
    ps = [float(w["p"]) for w in words if w.get("p") is not None]
    if not ps:
        return None
    return math.exp(sum(math.log(max(p, MIN_WORD_PROB)) for p in ps) / len(ps))


def compression_ratio(text: str) -> float:
    """Whisper's compression ratio of a text: UTF-8 bytes over zlib-compressed bytes."""
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b)) if b else 0.0


def tokens(text: str) -> list[str]:
    """Words lower-cased, punctuation dropped (apostrophes inside a word kept: "it's")."""
    return _TOKEN.findall(text.lower())


def repeat_run(words: Sequence[str], min_words: int = 1, max_n: int = MAX_NGRAM) -> int:
    """The most back-to-back occurrences of one n-gram (n <= ``max_n``) among ``words``,
    counting only runs that cover at least ``min_words`` words; 1 when nothing repeats (0 for
    no words). "a b a b a b c" -> 3 ("a b" three times); "the ball the ball" -> 2."""
    if not words:
        return 0
    best = 1
    n_words = len(words)
    for n in range(1, min(max_n, n_words // 2) + 1):
        for start in range(n):  # every phase of the n-gram grid
            run, i = 1, start
            while i + 2 * n <= n_words:
                if words[i:i + n] == words[i + n:i + 2 * n]:
                    run += 1
                    if run * n >= min_words:
                        best = max(best, run)
                else:
                    run = 1
                i += n
    return best


@dataclass(frozen=True)
class Thresholds:
    """The per-utterance rule (module docstring). Defaults: docs/formats.md, "Caption quality"."""

    max_no_speech_prob: float = 0.6
    #: with a window above ``max_no_speech_prob``, an utterance needs at least this confidence
    speech_confidence: float = 0.5
    min_confidence: float = 0.2
    max_compression_ratio: float = 2.4
    min_compression_chars: int = 80
    #: a window compressing more than this is a decoding loop (its echoes are dropped)
    max_window_compression: float = 3.0
    max_repeats: int = 4
    min_loop_words: int = 8

    def reject_reason(self, u: Scored) -> str | None:
        """Why ``u`` is not a caption, or None to keep it. File captions carry no scores
        (``confidence`` None) and are judged only for having words."""
        if not any(ch.isalpha() for ch in u.text):
            return "no words"
        if u.repeats is not None and u.repeats >= self.max_repeats:
            return f"repeats {u.repeats} >= {self.max_repeats}"
        if (u.text_compression is not None and len(u.text) >= self.min_compression_chars
                and u.text_compression > self.max_compression_ratio):
            return f"text_compression {u.text_compression:.2f} > {self.max_compression_ratio}"
        if u.window_echo and u.compression_ratio > self.max_window_compression:
            return f"window loop (compression_ratio {u.compression_ratio:.2f} > {self.max_window_compression})"
        if u.confidence is None:
            return None
        if u.confidence < self.min_confidence:
            return f"confidence {u.confidence:.2f} < {self.min_confidence}"
        if u.no_speech_prob > self.max_no_speech_prob and u.confidence < self.speech_confidence:
            return (f"no_speech_prob {u.no_speech_prob:.2f} > {self.max_no_speech_prob} with confidence "
                    f"{u.confidence:.2f} < {self.speech_confidence}")
        return None


#: The kinds of ``drop_reason`` (its words before the first number), in the rule's order.
REASON_KINDS = ("no words", "repeats", "text_compression", "window loop", "confidence", "no_speech_prob")


def reason_kind(reason: str) -> str:
    """``"confidence 0.12 < 0.2"`` -> ``"confidence"``: a drop reason without its figures, for counts."""
    return next((k for k in REASON_KINDS if reason.startswith(k)), reason.split(" ", 1)[0])


def echoes(texts: Sequence[str]) -> list[bool]:
    """For each text of one window: are all its words (:func:`tokens`) found in the window's
    other texts? A text without words is no echo."""
    toks = [set(tokens(t)) for t in texts]
    out = []
    for i, mine in enumerate(toks):
        others = set().union(*(t for j, t in enumerate(toks) if j != i))
        out.append(bool(mine) and mine <= others)
    return out


def score(text: str, words: Sequence[dict[str, Any]], thresholds: Thresholds = Thresholds()
          ) -> tuple[float | None, float, int]:
    """``(confidence, text_compression, repeats)`` of one utterance (module docstring)."""
    c = confidence(words)
    return (None if c is None else round(c, 4), round(compression_ratio(text), 4),
            repeat_run(tokens(text), thresholds.min_loop_words))
