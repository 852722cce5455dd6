"""EgoMCQ: read, write, generate and score the Ego4D/EgoVLP five-way multiple-choice benchmark.

Why it is here: EgoMCQ is the standard quick check of an egocentric video-text model (EgoVLP,
EgoVLPv2 and LaViLa all report it), so egoindex must score the official ``egomcq.json`` exactly,
and must be able to build an EgoMCQ-format benchmark from a user's own store (utterances as queries,
fixed-length clip windows as choices) to compare checkpoints on the user's data.

Format (``docs/formats.md``, EgoMCQ): one JSON object keyed "0".."N-1"; each item has ``query`` (a clip
row: ``video_uid``, ``clip_start``, ``clip_end``, ``clip_text``, extra keys allowed), ``choices``
(object keyed "0".."4", five clip rows), ``answer`` (int index into choices) and ``types``
(1 = inter-video, 2 = intra-video). Extra keys are preserved on load and written back unchanged.

EgoVLP compatibility: EgoVLP's loader (``data_loader/EgoClip_EgoMCQ_dataset.py``) reads, for the
query and every choice, ``clip_text`` and the EgoClip tag strings ``tag_verb`` / ``tag_noun``
(``eval``-ed to index lists and turned into multi-hot vectors of :data:`EGOCLIP_VERB_DIM` /
:data:`EGOCLIP_NOUN_DIM`), and for every choice ``video_uid``, ``clip_start``, ``clip_end``. A
generated file therefore carries every EgoClip row field (:data:`EGOCLIP_FIELDS`), with tags as
EgoClip writes them: a string such as ``"[93]"`` or ``"[192, 115, 12]"``.

Scoring: the query text's vector against the five candidate clips' vectors; the prediction is the
argmax cosine and an item is correct when it equals ``answer``. Accuracy is reported in percent
for inter and intra separately (they differ a lot: ~90 vs ~60 for published models).
"""

from __future__ import annotations

import json
import math
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from egoindex.core.fsutil import atomic_open
from egoindex.errors import AnnotationError
from egoindex.metrics.tags import tag_text

__all__ = [
    "DEFAULT_MIN_GAP_S",
    "EGOCLIP_FIELDS",
    "EGOCLIP_NOUN_DIM",
    "EGOCLIP_VERB_DIM",
    "NARRATION_SOURCE",
    "N_CHOICES",
    "TYPE_LABELS",
    "ClipRow",
    "EgoClipRow",
    "EgoMCQItem",
    "Utterance",
    "Tagger",
    "clip_frame_times",
    "default_tagger",
    "generate_egomcq",
    "tag_index",
    "tag_string",
    "text_tags",
    "load_egomcq",
    "score_egomcq",
    "validate_egomcq",
    "write_egomcq",
]

# The reference evaluation code (EgoVLP) prints the accuracy of type 1 under the "intra" label and
# type 2 under "inter"; the data's own definition is 1 = inter-video (distractors from other
# videos, the easy case) and 2 = intra-video (distractors from the same video, the hard case).
# egoindex maps the types explicitly and tests the mapping, so its labels match the published
# numbers (inter ~90%, intra ~60%) rather than the swapped print.
TYPE_LABELS: dict[int, str] = {1: "inter", 2: "intra"}

N_CHOICES = 5

# Intra-video distractor windows must be at least this far (in seconds, edge to edge) from the
# answer window: clips a few seconds apart in egocentric video often show the same action in the
# same place, which would make the "wrong" choice a correct answer. 10 s is several typical
# Ego4D narration intervals and still leaves plenty of windows in a minutes-long video.
DEFAULT_MIN_GAP_S = 10.0

#: EgoVLP's taxonomy sizes (``EgoClip_EgoMCQ_dataset.py``: ``verb_dim = 118``, ``noun_dim = 582``):
#: its loader sets ``vec[i] = 1`` for every tag index, so each index must be below these.
EGOCLIP_VERB_DIM = 118
EGOCLIP_NOUN_DIM = 582

#: Every field of an EgoClip row (EgoVLP's README), in EgoClip's column order; a generated row has all.
EGOCLIP_FIELDS: tuple[str, ...] = (
    "clip_idx", "video_uid", "video_dur", "narration_source", "narration_ind", "narration_time",
    "clip_start", "clip_end", "clip_text", "tag_verb", "tag_noun",
)

#: ``narration_source`` of generated rows (EgoClip has ``narration_pass_1`` / ``_2``): the text is
#: the store's transcribed speech, not an Ego4D narration pass.
NARRATION_SOURCE = "egoindex_speech"

#: ``(video_uid, start, end, text) -> (verbs, nouns)``: the words a generated row is tagged with.
Tagger = Callable[[str, float, float, str], tuple[Sequence[str], Sequence[str]]]


class ClipRow(TypedDict):
    """One clip: a video and a time span, with the text said or narrated in it.

    Rows are plain dicts at run time, so extra keys (``clip_uid``, ...) survive a load/write round
    trip unchanged."""

    video_uid: str
    clip_start: float
    clip_end: float
    clip_text: str


class EgoClipRow(ClipRow):
    """A generated clip row: :class:`ClipRow` plus the other EgoClip fields EgoVLP's loader may read."""

    clip_idx: int
    video_dur: float
    narration_source: str
    narration_ind: int
    narration_time: float
    tag_verb: str
    tag_noun: str


class EgoMCQItem(TypedDict):
    """One EgoMCQ question: ``choices`` is keyed "0".."4"; ``types`` is 1 (inter) or 2 (intra)."""

    query: ClipRow
    choices: dict[str, ClipRow]
    answer: int
    types: int


class Utterance(TypedDict):
    """Input record for :func:`generate_egomcq` (any mapping with these keys works)."""

    video_uid: str
    start: float
    end: float
    text: str
    split: str


# --------------------------------------------------------------------------- validation, I/O


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise AnnotationError(f"{where}: expected a clip row object, got {type(row).__name__}")
    for key in ("video_uid", "clip_text"):
        if not isinstance(row.get(key), str):
            raise AnnotationError(f"{where}: {key!r} must be a string, got {row.get(key)!r}")
    for key in ("clip_start", "clip_end"):
        if not _is_number(row.get(key)):
            raise AnnotationError(f"{where}: {key!r} must be a finite number, got {row.get(key)!r}")


def _check_item(key: str, item: Any) -> None:
    where = f"EgoMCQ item {key!r}"
    if not isinstance(item, dict):
        raise AnnotationError(f"{where}: expected an object, got {type(item).__name__}")
    for field in ("query", "choices", "answer", "types"):
        if field not in item:
            raise AnnotationError(f"{where}: missing {field!r}")
    _check_row(item["query"], f"{where} query")
    choices = item["choices"]
    expected = [str(i) for i in range(N_CHOICES)]
    if not isinstance(choices, dict) or sorted(choices, key=str) != expected:
        got = sorted(choices) if isinstance(choices, dict) else type(choices).__name__
        raise AnnotationError(f"{where}: choices must be an object keyed {expected}, got {got}")
    for c in expected:
        _check_row(choices[c], f"{where} choice {c!r}")
    answer = item["answer"]
    if not _is_int(answer) or not 0 <= answer < N_CHOICES:
        raise AnnotationError(f"{where}: answer must be an int in [0, {N_CHOICES}), got {answer!r}")
    if not _is_int(item["types"]) or item["types"] not in TYPE_LABELS:
        raise AnnotationError(f"{where}: types must be 1 (inter) or 2 (intra), got {item['types']!r}")


def validate_egomcq(items: Any) -> dict[str, EgoMCQItem]:
    """Check the official structure; return the items ordered "0".."N-1". Raises
    :class:`~egoindex.errors.AnnotationError` (a ValueError) naming the first bad item."""
    if not isinstance(items, dict):
        raise AnnotationError(f"EgoMCQ data must be an object keyed '0'..'N-1', got {type(items).__name__}")
    expected = {str(i) for i in range(len(items))}
    if set(items) != expected:
        bad = sorted(set(items) - expected)[:5]
        raise AnnotationError(f"EgoMCQ keys must be '0'..'{len(items) - 1}' without gaps; unexpected keys {bad}")
    for key in expected:
        _check_item(key, items[key])
    return {str(i): items[str(i)] for i in range(len(items))}


def load_egomcq(path: str | Path) -> dict[str, EgoMCQItem]:
    """Read and validate an ``egomcq.json`` (official or generated); items ordered by index.
    A file that is not JSON or not the format raises AnnotationError naming the file; a missing
    file raises OSError."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise AnnotationError(f"{path}: not JSON ({e}); expected an EgoMCQ file (egomcq.json)") from None
    try:
        return validate_egomcq(data)
    except AnnotationError as e:
        raise AnnotationError(f"{path}: {e}") from None


def write_egomcq(items: Mapping[str, EgoMCQItem], path: str | Path) -> None:
    """Validate and write ``items`` in the official format, atomically (temporary sibling file,
    fsync, ``os.replace``), so a reader never sees a half-written benchmark. Output bytes depend
    only on ``items`` (fixed key order and formatting)."""
    ordered = validate_egomcq(dict(items))
    with atomic_open(Path(path), "w") as f:
        json.dump(ordered, f, ensure_ascii=False, indent=1)
        f.write("\n")


def clip_frame_times(start: float, end: float, num_frames: int = 4) -> list[float]:
    """Midpoints of ``num_frames`` equal intervals over [start, end] (the standard evaluation
    samples 4 frames per clip this way)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if end < start:
        raise ValueError(f"clip end {end} is before its start {start}")
    step = (end - start) / num_frames
    return [start + (i + 0.5) * step for i in range(num_frames)]


# --------------------------------------------------------------------------- scoring


def score_egomcq(
    items: Mapping[str, EgoMCQItem],
    query_vecs: Mapping[str, np.ndarray],
    choice_vecs: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """Score EgoMCQ: per item, the prediction is the argmax over the five choices of the cosine
    between the query text vector ``query_vecs[key]`` ([D] or [1, D]) and the choice clip vectors
    ``choice_vecs[key]`` ([5, D], row i = choice "i").

    The caller L2-normalises all vectors, so cosine is the dot product; nothing is renormalised
    here. Ties go to the lowest choice index (``np.argmax``).

    Returns ``inter_acc``, ``intra_acc``, ``overall_acc`` (percent; NaN for a type with no items),
    ``n_inter``, ``n_intra``, ``n_total``, ``correct_inter``, ``correct_intra`` and
    ``predictions``: one dict per item (``key, type, answer, pred, correct, score_pred,
    score_answer``) in the items' order, for reports. Items missing vectors raise ValueError.
    """
    missing = [k for k in items if k not in query_vecs or k not in choice_vecs]
    if missing:
        raise ValueError(f"{len(missing)} EgoMCQ items have no query or choice vectors, e.g. {missing[:5]}")
    n = {t: 0 for t in TYPE_LABELS}
    correct = {t: 0 for t in TYPE_LABELS}
    predictions: list[dict[str, Any]] = []
    for key, item in items.items():
        q = np.asarray(query_vecs[key], dtype=np.float64).reshape(-1)
        c = np.asarray(choice_vecs[key], dtype=np.float64)
        if c.shape != (N_CHOICES, q.size):
            raise ValueError(f"EgoMCQ item {key!r}: choice vectors must be [{N_CHOICES}, {q.size}], got {c.shape}")
        scores = c @ q
        pred = int(np.argmax(scores))
        t = int(item["types"])
        if t not in TYPE_LABELS:
            raise ValueError(f"EgoMCQ item {key!r}: unknown type {t!r}")
        ok = pred == int(item["answer"])
        n[t] += 1
        correct[t] += ok
        predictions.append(
            {
                "key": key,
                "type": TYPE_LABELS[t],
                "answer": int(item["answer"]),
                "pred": pred,
                "correct": ok,
                "score_pred": float(scores[pred]),
                "score_answer": float(scores[int(item["answer"])]),
            }
        )

    def pct(c: int, m: int) -> float:
        return 100.0 * c / m if m else float("nan")

    out: dict[str, Any] = {}
    for t, label in TYPE_LABELS.items():
        out[f"{label}_acc"] = pct(correct[t], n[t])
    out["overall_acc"] = pct(sum(correct.values()), sum(n.values()))
    for t, label in TYPE_LABELS.items():
        out[f"n_{label}"] = n[t]
    out["n_total"] = sum(n.values())
    for t, label in TYPE_LABELS.items():
        out[f"correct_{label}"] = correct[t]
    out["predictions"] = predictions
    return out


# --------------------------------------------------------------------------- EgoClip tags


def tag_index(word: str, dim: int) -> int:
    """A tag index in [0, dim) for a word: CRC-32 of its NFC, lowercased UTF-8 bytes, modulo ``dim``.

    Why a hash: egoindex has no Ego4D taxonomy for a user's speech, and the index must be
    stable across files and runs without a vocabulary stored anywhere (an EgoMCQ file has no room
    for one: EgoVLP counts its top-level keys as questions). These are *not* Ego4D taxonomy ids;
    two words may share an index. EgoVLP's EgoMCQ evaluation builds the multi-hot vectors and
    discards them, so they never change an EgoMCQ score."""
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    key = unicodedata.normalize("NFC", word.strip().lower()).encode("utf-8")
    return zlib.crc32(key) % dim


def tag_string(words: Iterable[str], dim: int) -> str:
    """EgoClip's tag cell for ``words``: the distinct :func:`tag_index` values in first-seen order,
    written as a list literal (``"[93]"``, ``"[192, 115, 12]"``, ``"[]"``), which EgoVLP ``eval``-s."""
    out: list[int] = []
    for w in words:
        i = tag_index(w, dim)
        if i not in out:
            out.append(i)
    return json.dumps(out)


def text_tags(text: str) -> tuple[list[str], list[str]]:
    """(verbs, nouns) read from a caption when nothing better is known: the package's one text
    tagger, :func:`egoindex.metrics.tags.tag_text` (lexicon verbs, lemmatised; the Ego4D markers
    ``#C``/``#O`` are stopwords)."""
    return tag_text(text)


def default_tagger(video_uid: str, start: float, end: float, text: str) -> tuple[list[str], list[str]]:
    """The :data:`Tagger` used when no ground truth is given: :func:`text_tags` of the row's text."""
    return text_tags(text)


# --------------------------------------------------------------------------- generation


def _containing_window(windows: Sequence[tuple[float, float]], t: float) -> tuple[float, float] | None:
    """The window with start <= t <= end; among several (overlapping or touching windows) the one
    whose centre is nearest t, then the earliest."""
    best: tuple[float, float] | None = None
    best_d = math.inf
    for s, e in windows:
        if s <= t <= e:
            d = abs((s + e) / 2 - t)
            if d < best_d:
                best, best_d = (s, e), d
    return best


def _overlapping(utts: Sequence[Mapping[str, Any]], s: float, e: float) -> list[int]:
    """Indices (into ``utts``, in time order) of the utterances overlapping [s, e]."""
    out = []
    for i, u in enumerate(utts):
        us, ue = float(u["start"]), float(u["end"])
        if max(us, s) < min(ue, e) or (us == ue and s <= us < e):
            out.append(i)
    return out


def _window_text(utts: Sequence[Mapping[str, Any]], s: float, e: float) -> str:
    """Texts of the utterances overlapping [s, e], in time order, joined by spaces ("" if none)."""
    texts = [str(utts[i]["text"]).strip() for i in _overlapping(utts, s, e)]
    return " ".join(t for t in texts if t)


def generate_egomcq(
    utterances: Sequence[Mapping[str, Any]],
    clips_by_video: Mapping[str, Sequence[tuple[float, float]]],
    n: int,
    seed: int,
    min_gap_s: float = DEFAULT_MIN_GAP_S,
    *,
    durations: Mapping[str, float] | None = None,
    tagger: Tagger | None = None,
) -> dict[str, EgoMCQItem]:
    """Build an EgoMCQ-format benchmark from a store's utterances and fixed-length clip windows.

    ``utterances``: records with ``video_uid, start, end, text, split``. ``clips_by_video``: for
    each video, its clip windows as (start, end) seconds. ``durations``: video lengths in seconds
    for ``video_dur`` (default: the end of the video's last window). ``tagger``: the verbs and
    nouns of a row (default :func:`default_tagger`, the text rule :func:`text_tags`).

    Rules:

    * Only ``split == "val"`` utterances are used, and only videos that have val utterances supply
      clips (a video listed in ``clips_by_video`` without val utterances has unknown or train
      split and is never used). A video with utterances in "val" and in another split raises
      ValueError: questions from it would test on training data.
    * Query: one val utterance with non-empty text (its own span as the query clip). Answer: the
      window of the same video containing the utterance's midpoint (nearest centre if several);
      utterances with no such window are skipped.
    * Type 1 (inter): four distractors, one random window from each of four other distinct val
      videos. Type 2 (intra): four distinct windows of the same video whose edges are at least
      ``min_gap_s`` seconds from the answer window (no overlap). A query that cannot get the four
      distractors its type needs is skipped.
    * Types alternate 1, 2, 1, 2, ... so the result is half inter, half intra (inter first when
      ``n`` is odd); with fewer than five val videos no inter question can exist, and all are
      intra (a small run's val split still gets its EgoMCQ curve); with videos too short for
      four windows clear of any answer, all are inter. The answer's position is
      uniform over 0..4.
    * A choice's ``clip_text`` is the text of the val utterances overlapping its window, in time
      order ("" if none).
    * Every row has all of :data:`EGOCLIP_FIELDS`, so EgoVLP's loader reads the file unchanged:
      ``clip_idx`` = the row's position in the file (item * 6; + 1 + choice index for a choice),
      ``video_dur``, ``narration_source`` = :data:`NARRATION_SOURCE`, ``narration_ind`` = the
      index of the query's utterance (a choice: of its first overlapping utterance, -1 if none)
      among the video's val utterances in time order, ``narration_time`` = the midpoint of the
      row's span, ``tag_verb`` / ``tag_noun`` = :func:`tag_string` of the tagger's words.
    * Deterministic for a given ``seed`` (``numpy.random.default_rng``) and input content: the
      candidates are sorted before being shuffled, so input order does not matter.

    Returns at most ``n`` items keyed "0".."n-1" in the official format; fewer when the corpus
    cannot supply ``n`` (the caller should check ``len``).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if min_gap_s < 0:
        raise ValueError(f"min_gap_s must be >= 0, got {min_gap_s}")
    splits: dict[str, set[str]] = {}
    for u in utterances:
        splits.setdefault(str(u["video_uid"]), set()).add(str(u["split"]))
    mixed = sorted(v for v, s in splits.items() if "val" in s and len(s) > 1)
    if mixed:
        raise ValueError(
            f"{len(mixed)} videos have utterances in 'val' and another split (e.g. {mixed[:3]}); "
            "a val benchmark built from them would leak training data"
        )

    def sort_key(u: Mapping[str, Any]) -> tuple[str, float, float, str]:
        return (str(u["video_uid"]), float(u["start"]), float(u["end"]), str(u["text"]))

    val = sorted((u for u in utterances if u["split"] == "val"), key=sort_key)
    utts_by_video: dict[str, list[Mapping[str, Any]]] = {}
    for u in val:
        utts_by_video.setdefault(str(u["video_uid"]), []).append(u)
    windows: dict[str, list[tuple[float, float]]] = {}
    for vid in utts_by_video:
        ws = sorted({(float(s), float(e)) for s, e in clips_by_video.get(vid, ())})
        if ws:
            windows[vid] = ws
    videos = sorted(windows)
    tag = tagger or default_tagger

    def egoclip_row(vid: str, start: float, end: float, text: str, ind: int) -> EgoClipRow:
        verbs, nouns = tag(vid, start, end, text)
        dur = durations.get(vid) if durations else None
        return {"clip_idx": -1, "video_uid": vid,  # clip_idx is set once the item's order is known
                "video_dur": float(dur) if dur is not None else windows[vid][-1][1],
                "narration_source": NARRATION_SOURCE, "narration_ind": ind, "narration_time": (start + end) / 2,
                "clip_start": start, "clip_end": end, "clip_text": text,
                "tag_verb": tag_string(verbs, EGOCLIP_VERB_DIM), "tag_noun": tag_string(nouns, EGOCLIP_NOUN_DIM)}

    def row(vid: str, w: tuple[float, float]) -> EgoClipRow:
        utts = utts_by_video[vid]
        over = _overlapping(utts, *w)
        return egoclip_row(vid, w[0], w[1], _window_text(utts, *w), over[0] if over else -1)

    rng = np.random.default_rng(seed)
    inter_possible = len(videos) >= N_CHOICES  # else intra-video questions only

    def far_from(ws: list[tuple[float, float]], w: tuple[float, float]) -> list[tuple[float, float]]:
        return [x for x in ws if x[0] >= w[1] + min_gap_s or x[1] <= w[0] - min_gap_s]

    # videos too short for four windows clear of an answer: inter-video questions only
    intra_possible = any(len(far_from(ws, w)) >= N_CHOICES - 1 for ws in windows.values() for w in ws)
    items: dict[str, EgoMCQItem] = {}
    for idx in rng.permutation(len(val)):
        if len(items) >= n:
            break
        u = val[int(idx)]
        vid, text = str(u["video_uid"]), str(u["text"]).strip()
        start, end = float(u["start"]), float(u["end"])
        if not text or vid not in windows:
            continue
        answer_w = _containing_window(windows[vid], (start + end) / 2)
        if answer_w is None:
            continue
        kind = 1 if inter_possible and (not intra_possible or len(items) % 2 == 0) else 2
        if kind == 1:
            others = [v for v in videos if v != vid]
            if len(others) < N_CHOICES - 1:
                continue
            picked = [others[int(i)] for i in rng.choice(len(others), size=N_CHOICES - 1, replace=False)]
            distractors = [row(v, windows[v][int(rng.integers(len(windows[v])))]) for v in picked]
        else:
            far = far_from(windows[vid], answer_w)
            if len(far) < N_CHOICES - 1:
                continue
            distractors = [row(vid, far[int(i)]) for i in rng.choice(len(far), size=N_CHOICES - 1, replace=False)]
        answer = int(rng.integers(N_CHOICES))
        choices = distractors[:answer] + [row(vid, answer_w)] + distractors[answer:]
        query = egoclip_row(vid, start, end, text, utts_by_video[vid].index(u))
        base = (N_CHOICES + 1) * len(items)
        query["clip_idx"] = base
        choices = [{**c, "clip_idx": base + 1 + i} for i, c in enumerate(choices)]
        items[str(len(items))] = {
            "query": query,
            "choices": {str(i): c for i, c in enumerate(choices)},
            "answer": answer,
            "types": kind,
        }
    return items
