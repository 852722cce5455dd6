"""Readers of the csv files the MIR benchmark takes: EPIC-Kitchens-100's retrieval test csvs and
egoindex's class csv for a store's own clips (verb and noun classes, for EPIC's relevance formula).

Why they raise :class:`~egoindex.errors.BenchError` and not AnnotationError: these are the
benchmark's command inputs, and the message names the file and the column the user must fix.
(The relevance matrix itself is read by :func:`egoindex.metrics.mir.load_relevance`.)
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from egoindex.bench.store_rows import clip_id
from egoindex.errors import BenchError

__all__ = ["parse_int_list", "parse_timestamp", "read_class_csv", "read_epic_retrieval_csv", "read_epic_sentence_csv"]

_TS = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)\s*$")


def parse_timestamp(ts: str) -> float:
    """EPIC-Kitchens ``HH:MM:SS.ff`` (or ``MM:SS.ff``, or plain seconds) -> seconds."""
    m = _TS.match(str(ts))
    if m:
        h, mi, s = m.groups()
        return int(h or 0) * 3600 + int(mi) * 60 + float(s)
    try:
        return float(ts)
    except ValueError:
        raise BenchError(f"bad timestamp {ts!r}; expected HH:MM:SS.ff") from None


def parse_int_list(text: str) -> list[int]:
    """``"[3, 7]"`` (EPIC's all_noun_classes), ``"3 7"``, ``"3;7"`` or ``"3,7"`` -> [3, 7]."""
    text = str(text).strip()
    if not text:
        return []
    return [int(x) for x in re.findall(r"-?\d+", text)]


def read_epic_retrieval_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of ``EPIC_100_retrieval_test.csv`` (one per video segment): narration_id, video_id,
    participant_id, start, stop (seconds from start_timestamp/stop_timestamp), narration,
    verb_class and noun_classes (all_noun_classes) when present."""
    path = Path(path)
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"narration_id", "video_id", "start_timestamp", "stop_timestamp"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise BenchError(f"{path}: missing columns {sorted(missing)} (is this EPIC_100_retrieval_test.csv?)")
        for r in reader:
            start, stop = parse_timestamp(r["start_timestamp"]), parse_timestamp(r["stop_timestamp"])
            if stop < start:
                raise BenchError(f"{path}: {r['narration_id']} stops ({stop}) before it starts ({start})")
            out.append({
                "narration_id": r["narration_id"], "video_id": r["video_id"],
                "participant_id": r.get("participant_id") or r["video_id"].split("_")[0],
                "start": start, "stop": stop, "narration": r.get("narration", ""),
                "verb_class": int(r["verb_class"]) if r.get("verb_class", "").strip() else None,
                "noun_classes": parse_int_list(r.get("all_noun_classes", "")),
            })
    return out


def read_epic_sentence_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of ``EPIC_100_retrieval_test_sentence.csv``: narration_id, narration (in file order:
    the relevance matrix's columns)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "narration" not in (reader.fieldnames or []):
            raise BenchError(f"{path}: no 'narration' column (is this EPIC_100_retrieval_test_sentence.csv?)")
        return [{"narration_id": r.get("narration_id", ""), "narration": r["narration"]} for r in reader]


def read_class_csv(path: str | Path) -> dict[str, tuple[int, list[int]]]:
    """Class annotations of store clips: ``clip_id -> (verb class, noun classes)``.

    Columns: ``clip_id`` (:func:`~egoindex.bench.store_rows.clip_id`, as listed in
    ``{name}_clips.csv``) or ``video_uid``, ``start``, ``end``; ``verb_class``; ``noun_classes``
    (``"[3, 7]"``, ``"3 7"`` or ``"3;7"``; the column may also be called ``all_noun_classes`` or
    ``noun_class``)."""
    path = Path(path)
    out: dict[str, tuple[int, list[int]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        noun_col = next((c for c in ("noun_classes", "all_noun_classes", "noun_class") if c in cols), None)
        if "verb_class" not in cols or noun_col is None or not ({"clip_id"} <= cols or {"video_uid", "start", "end"} <= cols):
            raise BenchError(f"{path}: needs columns clip_id (or video_uid, start, end), verb_class and noun_classes; "
                             f"got {sorted(cols)}")
        for i, r in enumerate(reader, start=2):
            try:
                cid = r.get("clip_id") or clip_id(r["video_uid"], float(r["start"]), float(r["end"]))
                out[cid] = (int(r["verb_class"]), parse_int_list(r[noun_col]))
            except (TypeError, ValueError) as e:
                raise BenchError(f"{path} line {i}: {e}") from None
    return out
