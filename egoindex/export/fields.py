"""Readers for the fields of Ego4D-format JSON, each naming the bad path in its error.

Why one place: the NLQ and moments readers, the VSGN writer (which re-checks the entries it is
given) and the demo annotation builder all walk nested JSON the same way, and a user with a
broken 100 MB annotation file needs the exact path of the bad field
(``videos[3].clips[0].annotations[1].language_queries[2]: missing 'clip_end_sec'``), not a
``KeyError``.  Every failure is an :class:`~egoindex.errors.AnnotationError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from egoindex.errors import AnnotationError

__all__ = ["UID_RE", "check_uid", "number", "string", "list_of", "objects"]

#: A uid becomes a file stem that VSLNet recovers with ``split(".")[0]``: no dots, no separators.
UID_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def check_uid(uid: Any, what: str) -> str:
    """``uid`` when it can be a feature file stem (letters, digits, ``-``, ``_``)."""
    if not isinstance(uid, str) or not UID_RE.match(uid):
        raise AnnotationError(
            f"{what} {uid!r} cannot be a feature file stem: use letters, digits, '-' and '_' only "
            "(VSLNet keys files by the text before the first '.')"
        )
    return uid


def number(d: Mapping[str, Any], key: str, where: str) -> float:
    """``d[key]`` as a finite float (bools are not numbers here)."""
    if key not in d:
        raise AnnotationError(f"{where}: missing {key!r}")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise AnnotationError(f"{where}.{key}: expected a finite number, got {v!r}")
    return float(v)


def string(d: Mapping[str, Any], key: str, where: str) -> str:
    """``d[key]`` as a non-empty string."""
    if key not in d:
        raise AnnotationError(f"{where}: missing {key!r}")
    v = d[key]
    if not isinstance(v, str) or not v:
        raise AnnotationError(f"{where}.{key}: expected a non-empty string, got {v!r}")
    return v


def list_of(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """``d[key]`` as a list (``d`` itself must be an object)."""
    if not isinstance(d, Mapping):
        raise AnnotationError(f"{where}: expected an object, got {type(d).__name__}")
    if key not in d:
        raise AnnotationError(f"{where}: missing {key!r}")
    v = d[key]
    if not isinstance(v, list):
        raise AnnotationError(f"{where}.{key}: expected a list, got {type(v).__name__}")
    return v


def objects(d: Mapping[str, Any], key: str, where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The objects of list ``d[key]`` with their paths (``where.key[i]``); a non-object fails."""
    for i, item in enumerate(list_of(d, key, where)):
        w = f"{where}.{key}[{i}]"
        if not isinstance(item, Mapping):
            raise AnnotationError(f"{w}: expected an object")
        yield w, item
