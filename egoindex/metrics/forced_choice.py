"""N-way forced choice over labeled images (``egoindex bench forced-choice``), after CVCL's
evaluation (Vong et al., Science 2024, "Labeled-S"): does the word pick its picture?

An *item* is one labeled image: a key (a file path or a store frame ``VIDEO_UID@T``) and its
category (a word). A *trial* is one target item plus ``ways - 1`` foils; each foil is drawn from
a category other than the target's, and the foils' categories differ from each other, so a trial
never holds two right answers and never two images of one wrong word. The model sees the
category word's text vector and the ``ways`` image vectors and picks the image with the highest
cosine; chance is ``1 / ways``.

Why trials are a file: numbers of two checkpoints (or two stores) are comparable only on the
same trials, so the trials are generated once (seeded, deterministic), written, and read back to
score another model; the report records the file's sha256.

Credit is tie-aware, the rule of :mod:`egoindex.metrics.retrieval` (its R@1 with one positive): a target that beats every
foil by more than ``TIE_EPS`` gets 1, one that ties ``m`` foils at the top gets ``1 / (m + 1)``
(what a random pick among the tied would score on average), otherwise 0. Accuracy is in percent
with a Wilson 95 % interval (:func:`egoindex.metrics.motion.wilson_interval`: it takes the
fractional credits of ties), overall and per category.

Pure numpy: no model, no store; the bench module embeds, this module decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.core.fsutil import atomic_open
from egoindex.errors import AnnotationError
from egoindex.metrics.motion import wilson_interval
from egoindex.metrics.retrieval import TIE_EPS, tie_aware_ranks

__all__ = [
    "DEFAULT_WAYS",
    "TRIALS_FORMAT",
    "Item",
    "Trial",
    "forced_choice_metrics",
    "generate_trials",
    "read_trials",
    "score_trials",
    "trial_credit",
    "write_trials",
]

DEFAULT_WAYS = 4
TRIALS_FORMAT = "egoindex-forced-choice-trials"
_TRIALS_VERSION = 1


@dataclass(frozen=True)
class Item:
    """One labeled image: ``key`` names it (unique), ``category`` is its word."""

    key: str
    category: str


@dataclass(frozen=True)
class Trial:
    """One trial: the word ``category``, the candidate image keys in presentation order and the
    index of the target among them; ``categories[i]`` is candidate i's category."""

    id: int
    category: str
    candidates: tuple[str, ...]
    categories: tuple[str, ...]
    answer: int

    @property
    def target(self) -> str:
        return self.candidates[self.answer]


def _by_category(items: Sequence[Item]) -> dict[str, list[Item]]:
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        raise AnnotationError("duplicate item keys among the labeled images")
    groups: dict[str, list[Item]] = {}
    for it in sorted(items, key=lambda i: (i.category, i.key)):
        groups.setdefault(it.category, []).append(it)
    return groups


def generate_trials(items: Sequence[Item], ways: int = DEFAULT_WAYS, seed: int = 0,
                    n_trials: int | None = None) -> list[Trial]:
    """Trials over ``items``: one per item as target (``n_trials`` None), else ``n_trials``
    targets drawn without replacement (and, past the item count, in further seeded passes over
    all items). Per trial, ``ways - 1`` distinct other categories are drawn, one foil from each,
    and the target's position among the candidates is drawn too.

    Deterministic: the result depends only on the set of items (not their order), ``ways``,
    ``seed`` and ``n_trials``. Raises AnnotationError when there are fewer than ``ways``
    categories (a trial could not have distinct foil categories) or no items."""
    if ways < 2:
        raise AnnotationError(f"ways must be at least 2, got {ways}")
    groups = _by_category(items)
    cats = sorted(groups)
    if not cats:
        raise AnnotationError("no labeled images")
    if len(cats) < ways:
        raise AnnotationError(f"{ways}-way trials need at least {ways} categories; the labeled images have "
                              f"{len(cats)} ({', '.join(cats)})")
    pool = [it for c in cats for it in groups[c]]  # canonical order: (category, key)
    rng = np.random.default_rng(seed)
    if n_trials is None:
        targets = list(range(len(pool)))
    else:
        if n_trials < 1:
            raise AnnotationError(f"the number of trials must be at least 1, got {n_trials}")
        targets = []
        while len(targets) < n_trials:
            targets.extend(int(i) for i in rng.permutation(len(pool))[: n_trials - len(targets)])
    trials: list[Trial] = []
    for tid, ti in enumerate(targets):
        target = pool[ti]
        others = [c for c in cats if c != target.category]
        foil_cats = [others[int(i)] for i in rng.choice(len(others), size=ways - 1, replace=False)]
        foils = [groups[c][int(rng.integers(len(groups[c])))] for c in foil_cats]
        answer = int(rng.integers(ways))
        cands = foils[:answer] + [target] + foils[answer:]
        trials.append(Trial(tid, target.category, tuple(c.key for c in cands), tuple(c.category for c in cands),
                            answer))
    return trials


def _check_trial(t: Trial, where: str) -> None:
    if len(t.candidates) < 2 or len(t.candidates) != len(t.categories):
        raise AnnotationError(f"{where}: trial {t.id} needs >= 2 candidates, each with a category")
    if not 0 <= t.answer < len(t.candidates) or t.categories[t.answer] != t.category:
        raise AnnotationError(f"{where}: trial {t.id}'s answer is not a candidate of its category")
    if sum(c == t.category for c in t.categories) != 1:
        raise AnnotationError(f"{where}: trial {t.id} has a foil of the target's category {t.category!r}")
    if len(set(t.candidates)) != len(t.candidates):
        raise AnnotationError(f"{where}: trial {t.id} repeats a candidate")


def write_trials(path: str | Path, trials: Sequence[Trial], *, ways: int, seed: int,
                 source: str = "") -> Path:
    """Write ``{"format", "version", "ways", "seed", "source", "trials": [...]}`` atomically; the
    bytes depend only on the arguments (so equal trials give equal sha256)."""
    doc = {"format": TRIALS_FORMAT, "version": _TRIALS_VERSION, "ways": int(ways), "seed": int(seed),
           "source": source,
           "trials": [{"id": t.id, "category": t.category, "answer": t.answer, "candidates": list(t.candidates),
                       "categories": list(t.categories)} for t in trials]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return path


def read_trials(path: str | Path) -> tuple[list[Trial], dict[str, Any]]:
    """(trials, header: ways, seed, source) of a file of :func:`write_trials`; AnnotationError
    naming the file when it is not one, or when a trial breaks the rules (a foil of the target's
    category, an answer out of range, a repeated candidate, duplicate ids)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read the trials file ({e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: not JSON ({e}); expected a forced-choice trials file") from None
    if not isinstance(doc, dict) or doc.get("format") != TRIALS_FORMAT:
        raise AnnotationError(f"{path}: not a forced-choice trials file (no \"format\": \"{TRIALS_FORMAT}\")")
    try:
        trials = [Trial(int(t["id"]), str(t["category"]), tuple(str(c) for c in t["candidates"]),
                        tuple(str(c) for c in t["categories"]), int(t["answer"])) for t in doc["trials"]]
        header = {"ways": int(doc["ways"]), "seed": int(doc["seed"]), "source": str(doc.get("source", ""))}
    except (KeyError, TypeError, ValueError) as e:
        raise AnnotationError(f"{path}: bad trial ({type(e).__name__}: {e})") from None
    for t in trials:
        _check_trial(t, str(path))
    ids = [t.id for t in trials]
    if len(set(ids)) != len(ids):
        raise AnnotationError(f"{path}: duplicate trial ids")
    return trials, header


def trial_credit(scores: np.ndarray, answer: int, eps: float = TIE_EPS) -> float:
    """Credit of one trial from its candidates' scores: 1 when the answer beats every other by
    more than ``eps``, ``1 / (m + 1)`` when it ties ``m`` others at the top, else 0."""
    s = np.asarray(scores, np.float64).reshape(-1)
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    if not 0 <= answer < s.size:
        raise ValueError(f"answer {answer} out of range for {s.size} candidates")
    positive = np.zeros((1, s.size), bool)
    positive[0, answer] = True
    # the R@1 of the one tie rule, one positive among the candidates
    return float(tie_aware_ranks(s[None], positive, (1,), eps)[1][1][0])


def score_trials(trials: Sequence[Trial], image_vectors: Mapping[str, np.ndarray],
                 text_vectors: Mapping[str, np.ndarray], eps: float = TIE_EPS) -> tuple[np.ndarray, np.ndarray]:
    """(credit per trial, index of the picked candidate per trial): each candidate's score is the
    cosine (dot product of unit vectors) of its image vector with the trial's category text vector.
    A candidate the model ties for the top picks the first (lowest index) tied; credit follows
    :func:`trial_credit`. A missing vector raises AnnotationError naming it."""
    credit = np.zeros(len(trials), np.float64)
    picked = np.zeros(len(trials), np.int64)
    for i, t in enumerate(trials):
        if t.category not in text_vectors:
            raise AnnotationError(f"trial {t.id}: no text vector for category {t.category!r}")
        missing = [c for c in t.candidates if c not in image_vectors]
        if missing:
            raise AnnotationError(f"trial {t.id}: no image vector for {missing[0]!r}")
        q = np.asarray(text_vectors[t.category], np.float64)
        s = np.stack([np.asarray(image_vectors[c], np.float64) for c in t.candidates]) @ q
        credit[i] = trial_credit(s, t.answer, eps)
        picked[i] = int(np.argmax(s))
    return credit, picked


def _summary(credit: np.ndarray) -> dict[str, float | int]:
    n = int(credit.size)
    lo, hi = wilson_interval(float(credit.sum()), n)
    return {"acc": 100.0 * float(credit.mean()) if n else float("nan"), "ci95_low": 100.0 * lo,
            "ci95_high": 100.0 * hi, "n": n}


def forced_choice_metrics(trials: Sequence[Trial], credit: np.ndarray) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics, per-category rows) from per-trial credits.

    Metrics: ``acc`` (percent), its Wilson 95 % interval ``ci95_low``/``ci95_high``, ``chance_acc``
    (100 / ways, the mean over trials when their sizes differ), ``ties`` (trials with a fractional
    credit), ``n`` (trials), ``n_categories``, ``mean_category_acc`` (the unweighted mean of the
    per-category accuracies: categories with many images do not dominate it). Rows: per category
    (sorted), ``n``, ``acc`` and its interval."""
    credit = np.asarray(credit, np.float64)
    if credit.shape != (len(trials),):
        raise ValueError(f"need one credit per trial: {credit.shape} for {len(trials)}")
    metrics: dict[str, Any] = dict(_summary(credit))
    sizes = np.asarray([len(t.candidates) for t in trials], np.float64)
    metrics["chance_acc"] = float(np.mean(100.0 / sizes)) if len(trials) else float("nan")
    metrics["ties"] = int(np.count_nonzero((credit > 0) & (credit < 1)))
    cats = np.asarray([t.category for t in trials], dtype=object)
    rows: list[dict[str, Any]] = []
    for c in sorted(set(cats.tolist())):
        s = _summary(credit[cats == c])
        rows.append({"category": c, "n": s["n"], "acc": s["acc"], "ci95_low": s["ci95_low"],
                     "ci95_high": s["ci95_high"]})
    metrics["n_categories"] = len(rows)
    metrics["mean_category_acc"] = float(np.mean([r["acc"] for r in rows])) if rows else float("nan")
    return metrics, rows
