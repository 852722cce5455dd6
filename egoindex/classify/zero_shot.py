"""Zero-shot classifier weights from label names: the CLIP recipe (Radford et al. 2021, sec. 3.1.4).

Why prompt templates: a bare word ("ball") is a poor caption; the text tower was trained on
sentences. Each label is put into several templates, the texts are embedded, and the label's
weight vector is the L2-normalised mean of those embeddings (prompt ensembling), which is more
robust than any single template. The rule itself is :func:`egoindex.model.prompts.class_embeddings`
(one copy, shared with ``egoindex bench charades``); this module adds the label checks, the
cache and the probabilities. Probabilities are ``softmax(logit_scale * cosine)`` with the model's
own learned temperature, so they are as sharp as the model was trained to be.
"""

from __future__ import annotations

import math
import threading
import unicodedata
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from egoindex.errors import ClassifyError, ModelError
from egoindex.model import prompts

__all__ = ["DEFAULT_TEMPLATES", "MAX_LABELS", "FALLBACK_LOGIT_SCALE", "parse_labels", "check_templates",
           "logit_scale_of", "text_classifier", "softmax"]

#: Prompt templates (:data:`egoindex.model.prompts.CLIP_TEMPLATES`); ``{}`` is replaced by the
#: label. The last one is the bare label, so a label that is already a sentence ("the baby grabs
#: the ball") is also embedded as it was written.
DEFAULT_TEMPLATES: tuple[str, ...] = prompts.CLIP_TEMPLATES
#: More labels than this is almost certainly a mistake (a pasted file), and slow on a CPU.
MAX_LABELS = 200
#: CLIP's maximum temperature (open_clip clamps ``logit_scale.exp()`` to 100 in training).
FALLBACK_LOGIT_SCALE = 100.0


def parse_labels(labels: str | Sequence[str] | None) -> list[str]:
    """Labels as a clean list: a comma-separated string or a sequence; stripped and NFC-normalised.
    Refuses no labels, an empty label, duplicates and more than :data:`MAX_LABELS`."""
    if labels is None:
        raise ClassifyError("no labels given: pass the class names (e.g. --labels \"sitting,walking,clapping\")")
    items = labels.split(",") if isinstance(labels, str) else list(labels)
    out: list[str] = []
    for i, x in enumerate(items):
        if not isinstance(x, str):
            raise ClassifyError(f"label {i + 1} is not text: {x!r}")
        x = unicodedata.normalize("NFC", " ".join(x.split()))
        if not x:
            raise ClassifyError(f"label {i + 1} of {len(items)} is empty (check for a stray comma)")
        out.append(x)
    if not out:
        raise ClassifyError("no labels given: pass the class names (e.g. --labels \"sitting,walking,clapping\")")
    if len(out) > MAX_LABELS:
        raise ClassifyError(f"{len(out)} labels is more than the {MAX_LABELS} allowed")
    dups = sorted({x for x in out if out.count(x) > 1})
    if dups:
        raise ClassifyError(f"duplicate label(s): {', '.join(dups)}")
    return out


def check_templates(templates: Sequence[str]) -> list[str]:
    """Templates as a list; each must contain ``{}`` exactly where the label goes
    (:func:`egoindex.model.prompts.check_templates`, as a ClassifyError)."""
    try:
        return prompts.check_templates(templates)
    except ModelError as e:
        raise ClassifyError(str(e)) from None


def logit_scale_of(model: Any) -> float:
    """The model's learned temperature ``exp(logit_scale)``, clamped to (0, 100]; 100 when the
    model has none (or a non-finite one)."""
    p = getattr(model, "logit_scale", None)
    try:
        v = float(p.detach().float().exp().item()) if p is not None else float("nan")
    except (AttributeError, RuntimeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v <= 0:
        return FALLBACK_LOGIT_SCALE
    return min(v, FALLBACK_LOGIT_SCALE)


#: Recent classifiers per embedder: a server answering many requests with the same labels
#: embeds them once. Weak keys: a dropped model frees its entries.
_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[tuple[str, ...], tuple[str, ...]], np.ndarray]] = weakref.WeakKeyDictionary()
_CACHE_SIZE = 32
_CACHE_LOCK = threading.Lock()


def text_classifier(embedder: Any, labels: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """Weights [C, D] (read-only): :func:`egoindex.model.prompts.class_embeddings` of the labels
    (per label, the renormalised mean of its templates' normalised embeddings, one text batch);
    the last few results per embedder are cached."""
    ts = check_templates(templates)
    key = (tuple(labels), tuple(ts))
    with _CACHE_LOCK:
        cached = _CACHE.get(embedder, {}).get(key)
    if cached is not None:
        return cached
    try:
        w = prompts.class_embeddings(embedder, labels, ts)
    except ModelError as e:
        raise ClassifyError(str(e)) from None
    w.setflags(write=False)
    with _CACHE_LOCK:
        entries = _CACHE.setdefault(embedder, {})
        if len(entries) >= _CACHE_SIZE:
            entries.pop(next(iter(entries)))
        entries[key] = w
    return w


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
