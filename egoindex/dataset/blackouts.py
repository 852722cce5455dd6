"""Blackouts: the ranges of videos that were redacted, and the one rule for what a range hides.

A blackout is ``(video_uid, start, end)`` in seconds from the start of the video (``end`` None:
to the end; ``start`` 0 and ``end`` None: the whole video). ``egoindex redact`` removes what
they hide from SHARDS_DIR and STORE and records them here; ``ingest``, ``build`` and ``redact``
all ask :class:`Blackouts` whether something is hidden, so a rerun of any of them never brings
the content back. Why one rule: the three would otherwise disagree about the frames at the edges
of a range, and a disagreement here is a privacy leak.

The rule (:meth:`Blackouts.hides_sample`, :meth:`hides_span`, :meth:`hides_window`):

* an utterance is hidden when its ``[start, end]`` overlaps a range (closed intervals), whole,
  with its words, kept by the caption filter or not: its words may have been said in the range;
* a frame is hidden when its time is in a range, or when its caption is a hidden utterance
  (a frame up to ``--max-gap`` seconds outside the range that carries its text);
* a clip sample (``clips/``: one kept utterance and its frames) is hidden when its utterance or
  one of its frames is;
* a clip window of the store (``clips`` table) is hidden when it overlaps a range or a hidden
  utterance (its ``text`` joins the utterances it overlaps).

Files (each under ``_redactions/`` of SHARDS_DIR and of STORE; this module writes and reads them)::

    _redactions/blackouts.json   every blackout so far: {"format": 1, "blackouts": [{video_uid, start, end}]}
    _redactions/log.jsonl        one line per event of a redaction (what range, when, by whom; no content)
    _redactions/journal.json     SHARDS_DIR only: the redaction in progress (its planned steps)

``ingest`` and ``build`` refuse to run while a journal is there (:func:`refuse_if_pending`): a
redaction rewrites the files they write.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import read_json, write_json
from egoindex.errors import RedactionError

#: The folder (under SHARDS_DIR and STORE) of the blackouts, the redaction log and the journal.
REDACTIONS = "_redactions"
BLACKOUTS_FILE = "blackouts.json"
LOG_FILE = "log.jsonl"
JOURNAL_FILE = "journal.json"
LOCK_FILE = "lock"
FORMAT = 1
#: Header names a blackout CSV may use for the video column (``video`` or ``video_uid``).
CSV_VIDEO_COLUMNS = ("video", "video_uid")


@dataclass(frozen=True, order=True)
class Blackout:
    """One redacted range of one video: ``[start, end]`` seconds, ``end`` None for "to the end"."""

    video_uid: str
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        if not self.video_uid or any(ord(c) < 32 for c in self.video_uid):
            raise RedactionError(f"a blackout needs a video uid without control characters, got {self.video_uid!r}")
        for name, v in (("start", self.start), ("end", self.end)):
            if v is not None and (isinstance(v, bool) or not math.isfinite(float(v)) or float(v) < 0):
                raise RedactionError(f"blackout {self.video_uid}: {name} must be a finite number of seconds >= 0, "
                                     f"got {v!r}")
        if self.end is not None and float(self.end) < float(self.start):
            raise RedactionError(f"blackout {self.video_uid}: end {self.end} is before start {self.start}")

    @property
    def whole_video(self) -> bool:
        return float(self.start) <= 0.0 and self.end is None

    def covers(self, t: float) -> bool:
        """Whether time ``t`` is in the range (ends included)."""
        return float(self.start) <= float(t) and (self.end is None or float(t) <= float(self.end))

    def overlaps(self, start: float, end: float) -> bool:
        """Whether ``[start, end]`` meets the range (closed intervals: touching counts)."""
        return float(start) <= (math.inf if self.end is None else float(self.end)) and float(end) >= float(self.start)

    def to_json(self) -> dict[str, Any]:
        return {"video_uid": self.video_uid, "start": float(self.start),
                "end": None if self.end is None else float(self.end)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Blackout:
        try:
            end = d.get("end")
            return cls(str(d["video_uid"]), float(d.get("start") or 0.0), None if end is None else float(end))
        except (KeyError, TypeError, ValueError) as e:
            raise RedactionError(f"not a blackout: {dict(d)!r} ({e})") from None

    def describe(self) -> str:
        end = "end" if self.end is None else f"{float(self.end):g} s"
        return f"{self.video_uid} {float(self.start):g} s - {end}"


def utterance_digest(text: str) -> str:
    """A short fingerprint of an utterance's text: how a redaction journal names a hidden caption
    without holding it (the journal must not hold content either)."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class HiddenUtterance:
    """A hidden utterance as the store side of a redaction needs it: its span, whether the caption
    filter kept it (only kept ones caption frames and clip windows) and its text's digest."""

    video_uid: str
    start: float
    end: float
    kept: bool
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {"video_uid": self.video_uid, "start": self.start, "end": self.end, "kept": self.kept,
                "digest": self.digest}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> HiddenUtterance:
        return cls(str(d["video_uid"]), float(d["start"]), float(d["end"]), bool(d["kept"]), str(d["digest"]))


class Blackouts:
    """A set of blackouts and the rule for what they hide (module docstring). Empty: hides nothing."""

    def __init__(self, items: Iterable[Blackout] = ()) -> None:
        self.items: tuple[Blackout, ...] = tuple(sorted(set(items), key=lambda b: (b.video_uid, b.start,
                                                                                     math.inf if b.end is None else b.end)))
        self._by: dict[str, list[Blackout]] = {}
        for b in self.items:
            self._by.setdefault(b.video_uid, []).append(b)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Blackout]:
        return iter(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blackouts) and self.items == other.items

    def __hash__(self) -> int:
        return hash(self.items)

    @property
    def uids(self) -> tuple[str, ...]:
        return tuple(self._by)

    def of(self, uid: str) -> list[Blackout]:
        return list(self._by.get(uid, ()))

    def union(self, other: Iterable[Blackout]) -> Blackouts:
        return Blackouts((*self.items, *other))

    def whole(self, uid: str) -> bool:
        """Whether a blackout takes the whole video."""
        return any(b.whole_video for b in self._by.get(uid, ()))

    def within(self, uid: str, other: Blackouts) -> bool:
        """Whether every range of ``uid`` lies inside one range of ``other`` (its raw file was
        blanked there: :func:`blanked_ranges`)."""
        return all(any(o.start <= b.start and (o.end is None or (b.end is not None and b.end <= o.end))
                       for o in other.of(uid)) for b in self.of(uid))

    def hides_time(self, uid: str, t: float) -> bool:
        return any(b.covers(t) for b in self._by.get(uid, ()))

    def hides_span(self, uid: str, start: float, end: float) -> bool:
        """An utterance (or any span) that meets a range is hidden, whole."""
        return any(b.overlaps(start, end) for b in self._by.get(uid, ()))

    def hides_utterance(self, uid: str, utterance: Mapping[str, Any]) -> bool:
        """A transcript utterance (``start``, ``end``) is hidden: :meth:`hides_span`."""
        return self.hides_span(uid, float(utterance["start"]), float(utterance["end"]))

    def hides_sample(self, meta: Mapping[str, Any], hidden_keys: frozenset[str] | set[str] = frozenset()) -> bool:
        """Whether a shard sample is hidden, from its ``json`` (parsed): a frame sample (``t``,
        ``utterance`` with ``start``/``end`` or None) when its time is in a range or its caption's
        utterance is hidden; a clip sample (``times``, ``utterance``, ``frame_keys``) when its
        utterance is, a frame time is in a range, or one of its frames is in ``hidden_keys``
        (frames hidden by their own caption, which a clip sample cannot tell)."""
        uid = str(meta.get("video_uid", ""))
        if uid not in self._by:
            return False
        times = meta["times"] if "times" in meta else [meta["t"]]
        if any(self.hides_time(uid, float(t)) for t in times):
            return True
        u = meta.get("utterance")
        if u and self.hides_span(uid, float(u["start"]), float(u["end"])):
            return True
        return bool(hidden_keys) and any(k in hidden_keys for k in meta.get("frame_keys") or ())

    def hides_window(self, uid: str, start: float, end: float,
                     hidden_utterances: Iterable[tuple[float, float]] = ()) -> bool:
        """A store clip window is hidden when it meets a range, or overlaps a hidden (kept)
        utterance, whose text its ``text`` would join (the build's join rule: ``u.start < end``
        and ``u.end > start``)."""
        if uid not in self._by:
            return False
        return self.hides_span(uid, start, end) or any(s < end and e > start for s, e in hidden_utterances)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "blackouts": [b.to_json() for b in self.items]}

    @classmethod
    def from_json(cls, doc: Any) -> Blackouts:
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT or not isinstance(doc.get("blackouts"), list):
            raise RedactionError(f"not a blackouts file of format {FORMAT} (a mapping with \"blackouts\": [...])")
        return cls(Blackout.from_json(d) for d in doc["blackouts"])


# ----------------------------------------------------------------------------------------------
# _redactions/ paths and files


def redactions_dir(root: str | Path) -> Path:
    """``ROOT/_redactions`` (ROOT: a SHARDS_DIR or a STORE)."""
    return Path(root) / REDACTIONS


def blackouts_path(root: str | Path) -> Path:
    return redactions_dir(root) / BLACKOUTS_FILE


def read_blackouts(root: str | Path) -> Blackouts:
    """The blackouts recorded under ``root`` (none when the file is not there). A damaged file is a
    :class:`RedactionError`, never "no blackouts": that would let redacted content back in."""
    path = blackouts_path(root)
    if not path.is_file():
        return Blackouts()
    try:
        return Blackouts.from_json(read_json(path))
    except (json.JSONDecodeError, UnicodeDecodeError, RedactionError) as e:
        raise RedactionError(f"{path} cannot be read ({e}); restore it from the redaction log "
                             f"({redactions_dir(root) / LOG_FILE}) or a backup before ingesting or building") from None


def add_blackouts(root: str | Path, new: Iterable[Blackout]) -> Blackouts:
    """Record ``new`` beside the blackouts already under ``root`` (union, atomic); returns all."""
    merged = read_blackouts(root).union(new)
    write_json(blackouts_path(root), merged.to_json())
    return merged


def read_blackout_list(path: Path) -> list[Blackout]:
    """Blackouts from a file a user gives (``redact --list``, ``ingest --blackouts``): a CSV with a
    header ``video,start,end`` (or ``video_uid``; an empty ``start`` is 0, an empty ``end`` the end
    of the video), or a ``blackouts.json`` of another SHARDS_DIR or STORE."""
    path = Path(path)
    if not path.is_file():
        raise RedactionError(f"blackout list not found: {path}")
    if path.suffix.lower() == ".json":
        try:
            return list(Blackouts.from_json(read_json(path)))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RedactionError(f"{path}: not JSON ({e})") from None
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = [h.strip() for h in reader.fieldnames or []]
    except UnicodeDecodeError as e:
        raise RedactionError(f"{path}: not UTF-8 ({e})") from None
    video_col = next((c for c in CSV_VIDEO_COLUMNS if c in header), None)
    if video_col is None:
        raise RedactionError(f"{path}: a blackout list is a CSV with the header video,start,end "
                             f"(start/end in seconds, empty for the start/end of the video); got {header}")
    out = []
    for n, row in enumerate(rows, start=2):
        row = {str(k).strip(): (v or "").strip() for k, v in row.items() if k is not None}
        try:
            start = float(row.get("start") or 0.0)
            end = float(row["end"]) if row.get("end") else None
        except ValueError:
            raise RedactionError(f"{path}:{n}: start and end must be seconds, got {row.get('start')!r}, "
                                 f"{row.get('end')!r}") from None
        try:
            out.append(Blackout(row.get(video_col, ""), start, end))
        except RedactionError as e:
            raise RedactionError(f"{path}:{n}: {e}") from None
    if not out:
        raise RedactionError(f"{path}: the blackout list has no rows")
    return out


def append_log(root: str | Path, entry: Mapping[str, Any]) -> None:
    """Append one event to ``_redactions/log.jsonl`` (fsynced). What it may hold: ids, ranges,
    times, who, counts and file names; never a caption, a frame or a vector."""
    path = redactions_dir(root) / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = False
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as f:  # a line cut short by a kill must not swallow this one
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(("\n" if torn else "") + json.dumps(dict(entry), ensure_ascii=False, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_log(root: str | Path) -> list[dict[str, Any]]:
    """The redaction log's events in order (a line cut short by a kill is passed over)."""
    path = redactions_dir(root) / LOG_FILE
    out = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


def blanked_ranges(root: str | Path) -> Blackouts:
    """The ranges whose raw video a finished ``egoindex redact --delete-source`` blanked (or,
    for a whole video, deleted), from the redaction log under ``root``. Why from the log: a raw
    file may be streamed whole only if every range redacted from it was also blanked in it, and
    only a finished redaction's ``started`` event says whether it ran with ``--delete-source``."""
    events = read_log(root)
    finished = {e.get("id") for e in events if e.get("event") == "finished"}
    items = []
    for e in events:
        if e.get("event") == "started" and e.get("delete_source") and e.get("id") in finished:
            items += [Blackout.from_json(r) for r in e.get("ranges") or ()]
    return Blackouts(items)


def redacted_shard_sizes(root: str | Path) -> dict[str, int]:
    """``{shard name: size in bytes}`` of the shards that finished redactions rewrote (the last
    size of each): a build that embedded a shard before its redaction accepts it at that size."""
    sizes: dict[str, int] = {}
    for e in read_log(root):
        if e.get("event") == "finished":
            sizes.update({str(k): int(v) for k, v in (e.get("shards") or {}).items()})
    return sizes


def journal_path(root: str | Path) -> Path:
    return redactions_dir(root) / JOURNAL_FILE


def read_journal(root: str | Path) -> dict[str, Any] | None:
    """The redaction in progress under ``root`` (a SHARDS_DIR), or None."""
    path = journal_path(root)
    return dict(read_json(path)) if path.is_file() else None


def write_journal(root: str | Path, journal: Mapping[str, Any]) -> None:
    write_json(journal_path(root), dict(journal))


def remove_journal(root: str | Path) -> None:
    journal_path(root).unlink(missing_ok=True)


def refuse_if_pending(root: str | Path, what: str) -> None:
    """Refuse to ``what`` (ingest into / build from) a SHARDS_DIR with an unfinished redaction."""
    j = read_journal(root)
    if j is not None:
        raise RedactionError(f"{root} has an unfinished redaction ({j.get('id')}, started {j.get('started_at')}); "
                             f"run `egoindex redact {root} {j.get('store') or 'STORE'}` to finish it before you {what}")


@contextlib.contextmanager
def redaction_lock(root: str | Path) -> Iterator[None]:
    """One redaction at a time per SHARDS_DIR (an exclusive ``flock`` on ``_redactions/lock``)."""
    import fcntl

    path = redactions_dir(root) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RedactionError(f"another `egoindex redact` is running on {root}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
