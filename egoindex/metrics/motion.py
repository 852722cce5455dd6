"""Motion-direction questions: does a model see the order of frames? (``egoindex bench motion``)

A question is one directional scene of the motion corpus (``egoindex demo-data --motion``):
``(key, video_uid, start, end, text, opposite)``, e.g. text "the red ball slides left", opposite
"the red ball slides right", over the window ``[start, end]`` in which the object moves.

**Video side (the headline figure).** The two candidates are the same clip twice: its
``num_frames`` frames in time order, and the same frames in reverse order. The query is the
text; the answer is the forward clip. A frame-mean model (egoindex's clip vector: the normalised
mean of frame vectors) is at chance **by construction**: a mean does not depend on the order of
its terms, so both candidates get the same vector (up to float rounding of the summation order,
far below :data:`~egoindex.metrics.retrieval.TIE_EPS`), both scores tie, and under the tie rule
of :mod:`egoindex.metrics.retrieval` a tie between the answer and one wrong candidate counts 1/2.
So a frame-mean model scores exactly 50 %, whatever its weights and whatever the videos; only a
model whose clip vector depends on frame order can move off 50 %, in either direction.

**Text side (the second figure).** One clip (forward), two candidate texts (``text`` and
``opposite``); the answer is ``text``. This one is *not* at chance by construction: a frame
model sees the set of positions the object takes, and where a direction's path differs from its
opposite's (the object ends up on the left; a camera that drifts with the motion) frame content
alone can pick the text. The demo renderer draws each pair on the same path (one direction is the
other time-reversed), which removes the position cue from the pixels, but a model may still prefer
one word ("left") for every clip: it then scores 100 % on one action and 0 % on its opposite,
about 50 % overall only because the corpus is balanced. Read the per-action rows.

Accuracy is tie-aware (credit 1, 1/2 or 0 per question, the rule of
:func:`egoindex.metrics.retrieval.tie_aware_ranks` with two candidates), in percent, with chance
50 %, a Wilson score 95 % interval on the credit proportion (Wilson, not Clopper-Pearson, because
half credits make the count non-integer and Wilson needs only the proportion), and per action.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.core.fsutil import atomic_open
from egoindex.errors import AnnotationError
from egoindex.metrics.retrieval import TIE_EPS, tie_aware_ranks

__all__ = [
    "CHANCE_PCT",
    "QUESTIONS_FORMAT",
    "Z95",
    "MotionQuestion",
    "generate_motion_questions",
    "motion_metrics",
    "pair_credit",
    "read_motion_questions",
    "wilson_interval",
    "write_motion_questions",
]

#: Two candidates, one right: chance accuracy in percent.
CHANCE_PCT = 50.0
#: The standard normal quantile of a two-sided 95 % interval.
Z95 = 1.959963984540054
QUESTIONS_FORMAT = "egoindex-motion-questions"
_QUESTIONS_VERSION = 1


@dataclass(frozen=True)
class MotionQuestion:
    """One question: the window ``[start, end]`` of ``video_uid`` shows ``text``; ``opposite`` is
    the same sentence with the opposite direction. ``action`` is the ground-truth action (the
    per-action rows of the report)."""

    key: str
    video_uid: str
    start: float
    end: float
    text: str
    opposite: str
    action: str = ""


def _video_uid_of(video: Mapping[str, Any]) -> str:
    uid = video.get("video_uid")
    if isinstance(uid, str) and uid:
        return uid
    stem = posixpath.splitext(posixpath.basename(str(video["path"])))[0]
    return stem


def generate_motion_questions(ground_truth: Mapping[str, Any], val_videos: Collection[str]) -> list[MotionQuestion]:
    """One question per directional scene (a scene with an ``opposite`` sentence) of the videos
    whose uid (the ground truth's ``video_uid``, else the file's stem) is in ``val_videos``.

    Deterministic: ordered by (video_uid, start); ``key`` = ``"{video_uid}:{scene index}"``; the
    window is the scene's motion (``motion_start``/``motion_end``, else its start/end). Only val
    videos, because a model trained on the train videos has seen their narrations with these very
    frames. Raises AnnotationError when the ground truth is not the motion format."""
    try:
        videos = list(ground_truth["videos"])
        out: list[MotionQuestion] = []
        for v in videos:
            uid = _video_uid_of(v)
            if uid not in val_videos:
                continue
            for i, s in enumerate(v["scenes"]):
                if not s.get("opposite"):
                    continue
                start = float(s.get("motion_start", s["start"]))
                end = float(s.get("motion_end", s["end"]))
                out.append(MotionQuestion(f"{uid}:{i}", uid, start, end, str(s["narration"]), str(s["opposite"]),
                                          str(s["action"])))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise AnnotationError(f"not a motion-corpus ground truth ({type(e).__name__}: {e}); expected the "
                              "ground_truth.json of `egoindex demo-data DIR --motion`") from None
    out.sort(key=lambda q: (q.video_uid, q.start, q.key))
    return out


def write_motion_questions(path: str | Path, questions: Sequence[MotionQuestion], source: str = "") -> Path:
    """Write ``{"format", "version", "source", "questions": [...]}`` atomically; the bytes depend
    only on the arguments."""
    doc = {"format": QUESTIONS_FORMAT, "version": _QUESTIONS_VERSION, "source": source,
           "questions": [asdict(q) for q in questions]}
    with atomic_open(Path(path), "w") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return Path(path)


def read_motion_questions(path: str | Path) -> list[MotionQuestion]:
    """Read a file of :func:`write_motion_questions`; AnnotationError naming the file when it is
    not one (duplicate keys and empty windows included)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: not JSON ({e}); expected a motion question file") from None
    if not isinstance(doc, dict) or doc.get("format") != QUESTIONS_FORMAT:
        raise AnnotationError(f"{path}: not a motion question file (no \"format\": \"{QUESTIONS_FORMAT}\")")
    try:
        qs = [MotionQuestion(str(q["key"]), str(q["video_uid"]), float(q["start"]), float(q["end"]), str(q["text"]),
                             str(q["opposite"]), str(q.get("action", ""))) for q in doc["questions"]]
    except (KeyError, TypeError, ValueError) as e:
        raise AnnotationError(f"{path}: bad question ({type(e).__name__}: {e})") from None
    keys = [q.key for q in qs]
    if len(set(keys)) != len(keys):
        raise AnnotationError(f"{path}: duplicate question keys")
    bad = [q.key for q in qs if not q.end > q.start or q.text == q.opposite]
    if bad:
        raise AnnotationError(f"{path}: question {bad[0]!r} has an empty window or text == opposite")
    return qs


def pair_credit(right: np.ndarray, wrong: np.ndarray, eps: float = TIE_EPS) -> np.ndarray:
    """Per question: 1 when the answer's score beats the other candidate's by more than ``eps``,
    0 when it loses by more, 1/2 when they tie (the R@1 of
    :func:`~egoindex.metrics.retrieval.tie_aware_ranks` with two candidates, one positive)."""
    right = np.asarray(right, np.float64).reshape(-1)
    wrong = np.asarray(wrong, np.float64).reshape(-1)
    if right.shape != wrong.shape:
        raise ValueError(f"need one wrong score per right score, got {right.shape} and {wrong.shape}")
    if not (np.isfinite(right).all() and np.isfinite(wrong).all()):
        raise ValueError("scores contain NaN or infinite values")
    sim = np.stack([right, wrong], axis=1)
    mask = np.zeros(sim.shape, bool)
    mask[:, 0] = True
    return tie_aware_ranks(sim, mask, (1,), eps)[1][1]


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n`` (``successes`` may be fractional:
    half credits), as fractions in [0, 1]; ``(nan, nan)`` when ``n == 0``."""
    if n <= 0:
        return float("nan"), float("nan")
    p = float(successes) / n
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"successes must be within [0, n], got {successes} of {n}")
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _summary(credit: np.ndarray, prefix: str) -> dict[str, float | int]:
    n = int(credit.size)
    lo, hi = wilson_interval(float(credit.sum()), n)
    return {f"{prefix}_acc": 100.0 * float(credit.mean()) if n else float("nan"),
            f"{prefix}_ci95_low": 100.0 * lo, f"{prefix}_ci95_high": 100.0 * hi,
            f"{prefix}_ties": int(np.count_nonzero(credit == 0.5))}


def motion_metrics(questions: Sequence[MotionQuestion], video_credit: np.ndarray,
                   text_credit: np.ndarray | None = None) -> tuple[dict[str, float | int], list[dict[str, Any]]]:
    """(metrics, per-action rows) from per-question credits (:func:`pair_credit`).

    Metrics: ``video_acc`` (forward vs reversed frames, percent), its Wilson 95 % interval
    ``video_ci95_low``/``_high``, ``video_ties`` (questions scored 1/2), the same with ``text_``
    for the text side when given, ``chance_acc`` (50) and ``n``. Rows: per action, ``n`` and each
    side's accuracy and interval."""
    video_credit = np.asarray(video_credit, np.float64)
    if video_credit.shape != (len(questions),):
        raise ValueError(f"need one video credit per question: {video_credit.shape} for {len(questions)}")
    sides = {"video": video_credit}
    if text_credit is not None:
        text_credit = np.asarray(text_credit, np.float64)
        if text_credit.shape != video_credit.shape:
            raise ValueError("need one text credit per question")
        sides["text"] = text_credit
    metrics: dict[str, float | int] = {}
    for side, credit in sides.items():
        metrics.update(_summary(credit, side))
    metrics["chance_acc"] = CHANCE_PCT
    metrics["n"] = len(questions)
    actions = np.asarray([q.action for q in questions], dtype=object)
    rows: list[dict[str, Any]] = []
    for a in sorted(set(actions.tolist())):
        m = actions == a
        row: dict[str, Any] = {"action": a, "n": int(m.sum())}
        for side, credit in sides.items():
            s = _summary(credit[m], side)
            row.update({k: s[k] for k in (f"{side}_acc", f"{side}_ci95_low", f"{side}_ci95_high")})
        rows.append(row)
    return metrics, rows
