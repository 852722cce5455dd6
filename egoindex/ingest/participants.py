"""The participants CSV of ``egoindex ingest --participants``: who each video shows, and when.

Why a file of its own: child-development corpora are analysed by child and by age (SAYCam,
BabyView and Homeview each pair a recording with the child wearing the camera and their age on
that day), and that table is kept beside the videos, not in their names.

Format: comma-separated, UTF-8, a header row. ``video`` is required: the video as the captions
file would name it (its egoindex uid, its path under VIDEOS_DIR with or without extension, or its
file name without extension; ``egoindex.ingest.run.caption_keys``). Optional typed columns:

* ``child_id``: text (the child's id in the study);
* ``age_days``: the child's age in days on the recording day, a whole number >= 0 (``412`` or
  ``412.0``);
* ``date``: the recording date, ISO 8601 ``YYYY-MM-DD`` (stored in that form);
* ``location``: text (home, lab, daycare ...).

Any other column is kept as text (the store's ``participant`` JSON column). Column names are
matched without case or surrounding spaces. An empty cell is "not known" (None). Unlike caption
rows, a bad row is not skipped: the table is small and hand-made, and a silently dropped row
would move that video out of every age or child filter, so any bad cell, a row without a video, a
video listed twice or a row longer than the header is an :class:`~egoindex.errors.IngestError`
naming the line.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egoindex.errors import IngestError

#: The typed columns (everything else is kept as text in ``extra``).
TYPED_COLUMNS = ("child_id", "age_days", "date", "location")
VIDEO_COLUMN = "video"


@dataclass(frozen=True)
class Participant:
    """One video's row: the typed columns (None when empty) and the other columns as text."""

    child_id: str | None = None
    age_days: int | None = None
    date: str | None = None
    location: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What ``SHARDS_DIR/participants.json`` holds per video (``egoindex.dataset.layout``)."""
        return {"child_id": self.child_id, "age_days": self.age_days, "date": self.date, "location": self.location,
                "extra": dict(self.extra)}


@dataclass
class ParticipantsFile:
    """``{video name in the file: Participant}`` in file order, the extra column names and the
    file's sha256 (its identity, recorded in the IngestConfig)."""

    rows: dict[str, Participant]
    extra_columns: list[str]
    sha256: str


def _age(s: str, where: str) -> int | None:
    if not s:
        return None
    try:
        x = float(s)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or x != int(x) or x < 0:
        raise IngestError(f"{where}: age_days must be a whole number of days >= 0 (e.g. 412), got {s!r}")
    return int(x)


def _date(s: str, where: str) -> str | None:
    if not s:
        return None
    try:
        return dt.date.fromisoformat(s).isoformat()
    except ValueError:
        raise IngestError(f"{where}: date must be YYYY-MM-DD (ISO 8601), got {s!r}") from None


def read_participants(path: Path) -> ParticipantsFile:
    """Read a participants CSV (module docstring); any problem is an IngestError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"participants file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise IngestError(f"{path}:{line}: not UTF-8 text ({e.reason})") from e
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [c.strip().lower() for c in next(reader, [])]
    if VIDEO_COLUMN not in header:
        raise IngestError(f"{path}:1: the participants CSV needs a header with a 'video' column (and any of "
                          f"{', '.join(TYPED_COLUMNS)}, plus any other columns); got {header[:8]}")
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes or "" in header:
        got = "an empty name" if "" in header else dupes
        raise IngestError(f"{path}:1: every column needs a name, once; got {got}")
    extra = [c for c in header if c != VIDEO_COLUMN and c not in TYPED_COLUMNS]
    rows: dict[str, Participant] = {}
    for cells in reader:
        where = f"{path}:{reader.line_num}"
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            raise IngestError(f"{where}: more cells than the header has columns (quote a value that holds a comma)")
        d = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        video = d[VIDEO_COLUMN]
        if not video:
            raise IngestError(f"{where}: the row names no video")
        if video in rows:
            raise IngestError(f"{where}: video {video!r} is listed twice; one row per video")
        rows[video] = Participant(child_id=d.get("child_id") or None, age_days=_age(d.get("age_days", ""), where),
                                  date=_date(d.get("date", ""), where), location=d.get("location") or None,
                                  extra={c: d[c] for c in extra if d[c]})
    if not rows:
        raise IngestError(f"{path}: no participant rows under the header")
    return ParticipantsFile(rows, extra, hashlib.sha256(raw).hexdigest())
