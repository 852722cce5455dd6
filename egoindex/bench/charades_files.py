"""The Charades(-Ego) files ``egoindex bench charades`` reads, and the demo corpus' files in the
same format (reader and writer together: one owner of the format).

* The annotation csv (``Charades_v1_test.csv``, ``CharadesEgo_v1_test_only1st.csv``): a header
  ``id, subject, scene, quality, relevance, verified, script, objects, descriptions, actions,
  length``; only ``id`` and ``actions`` are required. ``actions`` is ``"c092 11.90 21.20;c147 0.00
  12.60"`` (class id, start and end seconds) or empty; ``length`` the video's seconds.
* The class list (``Charades_v1_classes.txt``): ``c000 Holding some clothes``, one a line.

Why BenchError: these are the command's inputs, and the message names the file and line to fix.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.errors import BenchError

__all__ = ["CSV_COLUMNS", "LEVELS", "CharadesVideo", "demo_charades", "parse_actions", "read_charades_classes",
           "read_charades_csv", "samples_of", "write_charades_classes", "write_charades_csv"]

#: The Charades csv header, in the official order.
CSV_COLUMNS = ("id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions",
               "actions", "length")

_CLASS_LINE = re.compile(r"^\s*(\S+)\s+(.*\S)\s*$")

#: The two ways to score: one sample per video, or one per distinct annotated window.
LEVELS = ("video", "segment")

#: Demo actions done by the wearer's hand: their class names follow the narration ("the baby grabs the cup").
_HAND_ACTIONS = ("grabs", "shakes")


@dataclass(frozen=True)
class CharadesVideo:
    """One row of the csv: the video id, its actions (class id, start, end) and its length (None if absent)."""

    id: str
    actions: tuple[tuple[str, float, float], ...]
    length: float | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


def parse_actions(text: str, where: str = "actions") -> list[tuple[str, float, float]]:
    """``"c092 11.90 21.20;c147 0.00 12.60"`` -> [("c092", 11.9, 21.2), ("c147", 0.0, 12.6)].

    Empty text (or only ``;`` and spaces) is no action; items are split on ``;`` and whitespace
    (extra spaces and a trailing ``;`` are tolerated); an item that is not ``CLASS START END``
    with finite numbers raises BenchError."""
    out = []
    for item in str(text or "").split(";"):
        parts = item.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise BenchError(f"{where}: action {item.strip()!r} is not 'CLASS START END' (e.g. 'c092 11.90 21.20')")
        try:
            start, end = float(parts[1]), float(parts[2])
        except ValueError:
            raise BenchError(f"{where}: action {item.strip()!r} has a time that is not a number") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise BenchError(f"{where}: action {item.strip()!r} has a time that is not finite")
        out.append((parts[0], start, end))
    return out


def read_charades_csv(path: str | Path) -> list[CharadesVideo]:
    """The rows of a Charades(-Ego) csv in file order; ids must be unique."""
    path = Path(path)
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise BenchError(f"cannot read {path}: {e.strerror or e}") from None
    out: list[CharadesVideo] = []
    seen: set[str] = set()
    with f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = cols
        missing = [c for c in ("id", "actions") if c not in cols]
        if missing:
            raise BenchError(f"{path}: missing columns {missing} (is this a Charades csv? expected {', '.join(CSV_COLUMNS)})")
        for line, r in enumerate(reader, start=2):
            vid = (r.get("id") or "").strip()
            if not vid:
                raise BenchError(f"{path} line {line}: empty id")
            if vid in seen:
                raise BenchError(f"{path} line {line}: video id {vid!r} appears twice")
            seen.add(vid)
            length = None
            raw_len = (r.get("length") or "").strip()
            if raw_len:
                try:
                    length = float(raw_len)
                except ValueError:
                    raise BenchError(f"{path} line {line}: length {raw_len!r} is not a number") from None
            acts = parse_actions(r.get("actions") or "", f"{path} line {line}")
            extra = {k: v for k, v in r.items() if k is not None and k not in ("id", "actions", "length")}
            out.append(CharadesVideo(vid, tuple(acts), length, {k: v or "" for k, v in extra.items()}))
    return out


def read_charades_classes(path: str | Path) -> list[tuple[str, str]]:
    """(class id, name) pairs of ``Charades_v1_classes.txt`` in file order (the score columns).

    The name is the rest of the line after the id, whole (EgoVLP reads the line with ``csv.reader``
    and keeps ``line[0][5:]``, which would cut a name at a comma; the Charades names have none)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise BenchError(f"cannot read {path}: {e.strerror or e}") from None
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        m = _CLASS_LINE.match(raw)
        if not m:
            raise BenchError(f"{path} line {line}: expected 'CLASS_ID name' (e.g. 'c000 Holding some clothes'), got {raw!r}")
        cid, name = m.group(1), m.group(2)
        if cid in seen:
            raise BenchError(f"{path} line {line}: class {cid!r} appears twice")
        seen.add(cid)
        out.append((cid, name))
    if not out:
        raise BenchError(f"{path}: no classes")
    return out


def write_charades_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write rows (dicts with any of :data:`CSV_COLUMNS`; ``actions`` as (class, start, end) triples)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS))
        w.writeheader()
        for r in rows:
            acts = ";".join(f"{c} {s:.2f} {e:.2f}" for c, s, e in r.get("actions", ()))
            w.writerow({**{k: r.get(k, "") for k in CSV_COLUMNS}, "actions": acts,
                        "length": f"{float(r['length']):.2f}" if r.get("length") is not None else ""})
    return path


def write_charades_classes(path: str | Path, classes: Sequence[tuple[str, str]]) -> Path:
    """Write ``CLASS_ID name`` lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{c} {n}\n" for c, n in classes), encoding="utf-8")
    return path


def demo_class_name(obj: str, action: str) -> str:
    """A demo class as the narration says it: "the ball falls", "the baby grabs the cup"."""
    return f"the baby {action} the {obj}" if action in _HAND_ACTIONS else f"the {obj} {action}"


def demo_charades(ground_truth: Mapping[str, Any], video_uids: Mapping[str, str], objects: Sequence[str],
                  actions: Sequence[str]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Charades-format rows and classes for the demo corpus: one class per (object, action) of the
    demo vocabulary (``c000`` = the first object with the first action, ...), one row per
    ground-truth video whose ``path`` is in ``video_uids`` (id = the egoindex video uid), its
    actions = its scenes (class of the scene's object and action, the scene's start and end).
    Raises BenchError for a scene outside the vocabulary."""
    classes: list[tuple[str, str]] = []
    index: dict[tuple[str, str], str] = {}
    for o in objects:
        for a in actions:
            cid = f"c{len(classes):03d}"
            index[(o, a)] = cid
            classes.append((cid, demo_class_name(o, a)))
    rows: list[dict[str, Any]] = []
    try:
        for v in ground_truth["videos"]:
            if v["path"] not in video_uids:
                continue
            acts, rooms, objs, said = [], [], [], []
            for s in v["scenes"]:
                key = (str(s["object"]), str(s["action"]))
                if key not in index:
                    raise BenchError(f"demo scene {key} of {v['path']} is not in the vocabulary")
                acts.append((index[key], float(s["start"]), float(s["end"])))
                rooms += [s["room"]] if s["room"] not in rooms else []
                objs += [s["object"]] if s["object"] not in objs else []
                said.append(str(s.get("narration", "")))
            rows.append({"id": video_uids[v["path"]], "subject": "demo", "scene": ";".join(rooms), "quality": "",
                         "relevance": "", "verified": "Yes", "script": " ".join(said), "objects": ";".join(objs),
                         "descriptions": " ".join(said), "actions": acts, "length": float(v["duration"])})
    except (KeyError, TypeError, ValueError) as e:
        raise BenchError(f"not a readable demo ground truth ({type(e).__name__}: {e})") from None
    if not rows:
        raise BenchError("none of the ground-truth videos is among the chosen videos")
    return rows, classes


def samples_of(videos: Sequence[CharadesVideo], class_ids: Sequence[str], level: str
               ) -> tuple[list[tuple[str, float | None, float | None]], np.ndarray]:
    """The scored samples and their multi-hot labels [samples x classes].

    ``video``: (id, None, None) per row. ``segment``: (id, start, end) per distinct window, in
    file order (a reversed window is read as [min, max]). An action whose class is not in the
    class list raises BenchError."""
    if level not in LEVELS:
        raise BenchError(f"--level must be one of {', '.join(LEVELS)}, not {level!r}")
    col = {c: i for i, c in enumerate(class_ids)}
    for v in videos:
        unknown = [a[0] for a in v.actions if a[0] not in col]
        if unknown:
            raise BenchError(f"video {v.id}: action class {unknown[0]!r} is not in the class list")
    samples: list[tuple[str, float | None, float | None]] = []
    labels: list[set[int]] = []
    if level == "video":
        for v in videos:
            samples.append((v.id, None, None))
            labels.append({col[a[0]] for a in v.actions})
    else:
        where: dict[tuple[str, int, int], int] = {}
        for v in videos:
            for c, s, e in v.actions:
                s, e = min(s, e), max(s, e)
                key = (v.id, round(s * 1000), round(e * 1000))
                if key not in where:
                    where[key] = len(samples)
                    samples.append((v.id, s, e))
                    labels.append(set())
                labels[where[key]].add(col[c])
    gt = np.zeros((len(samples), len(class_ids)), np.int8)
    for i, ls in enumerate(labels):
        gt[i, sorted(ls)] = 1
    return samples, gt
