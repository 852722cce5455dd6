"""Class names -> text-classifier weights: the one copy of the CLIP prompt-ensemble rule.

Why one copy: zero-shot classification (``egoindex classify``) and the Charades benchmark
(``egoindex bench charades``) both turn class names into class vectors, and their numbers are
only comparable (and only comparable with the papers') if the rule is the same. It is open_clip's
``build_zero_shot_classifier`` (CLIP, Radford et al. 2021, sec. 3.1.4): every class name is put
into every template, the texts are embedded, each embedding is L2-normalised, the class vector is
the mean of its templates' embeddings, renormalised. With one template a class vector is that
prompt's normalised embedding.

Differences from open_clip, on purpose: the name goes in with ``template.replace("{}", name)``
(not ``str.format``, so a template may contain other braces); the arithmetic is float64 and the
result float32 (the store's dtype); a zero embedding stays zero instead of becoming NaN. No torch
here: the embedder's ``encode_texts(texts) -> [N, D]`` does the model work (a PyTorch embedder or
the store's ONNX text encoder alike).

Errors are :class:`~egoindex.errors.ModelError`; a consumer re-raises them as its own error type
with its option's name (``--template``, ``--labels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from egoindex.errors import ModelError

__all__ = ["CLIP_TEMPLATES", "NAME_ONLY_TEMPLATES", "check_templates", "class_embeddings", "prompt_texts"]

#: Zero-shot classification's default templates; ``{}`` is replaced by the label. The last one is
#: the bare label, so a label that is already a sentence ("the baby grabs the ball") is also
#: embedded as it was written.
CLIP_TEMPLATES: tuple[str, ...] = ("a photo of a {}.", "a head camera video of {}.", "{}")
#: EgoVLP's Charades-Ego prompt (``run/test_charades.py``): the raw class name.
NAME_ONLY_TEMPLATES: tuple[str, ...] = ("{}",)


def check_templates(templates: str | Sequence[str]) -> list[str]:
    """Templates as a list (one string is one template); each must contain ``{}`` where the name
    goes. Raises ModelError for none, or for one without ``{}``."""
    ts = [templates] if isinstance(templates, str) else list(templates)
    if not ts:
        raise ModelError("no prompt template given")
    bad = [t for t in ts if not isinstance(t, str) or "{}" not in t]
    if bad:
        raise ModelError(f"every prompt template needs a '{{}}' where the class name goes; not {bad[0]!r}")
    return ts


def prompt_texts(names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """The texts to embed, class-major: every template of the first name, then of the second, ..."""
    return [t.replace("{}", n) for n in names for t in templates]


def _unit_rows(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def class_embeddings(embedder: Any, names: Sequence[str], templates: str | Sequence[str]) -> np.ndarray:
    """Class vectors [C, D] float32, in the order of ``names``: per class, the renormalised mean
    of its templates' normalised embeddings (one ``encode_texts`` call for all C x T texts).
    Raises ModelError for bad templates, no names, or an embedder that returns the wrong number
    of rows."""
    ts = check_templates(templates)
    names = list(names)
    if not names:
        raise ModelError("no class names to embed")
    texts = prompt_texts(names, ts)
    emb = np.asarray(embedder.encode_texts(texts), np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ModelError(f"the text encoder returned {emb.shape} for {len(texts)} prompts; expected [{len(texts)}, D]")
    per_class = _unit_rows(emb).reshape(len(names), len(ts), -1).mean(axis=1)
    return _unit_rows(per_class).astype(np.float32)
