"""CSV captions (``csv``): header ``video,start,end,text[,speaker]`` (comma-separated, quoted as
the csv module quotes); ids ``{video}/csv/line{n}``; a non-empty ``speaker`` cell is the speaker.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from egoindex.errors import MediaError
from egoindex.media.captions.registry import CaptionFormat, Captions
from egoindex.media.captions.rows import _caption, _times

CSV_COLUMNS = ("video", "start", "end", "text")


def _sniff_csv(line: str) -> bool:
    cells = [c.strip().lower() for c in next(csv.reader([line]), [])]
    return cells[:4] == list(CSV_COLUMNS) and (len(cells) == 4 or cells[4:] == ["speaker"])


def read_csv(path: Path, text: str, out: Captions) -> None:
    """``video,start,end,text[,speaker]`` rows -> utterances; the speaker, when given, is not
    part of the text (the caption is what was said, as with Whisper)."""
    rows = csv.reader(io.StringIO(text, newline=""))
    header = [c.strip().lower() for c in next(rows, [])]
    if header[:4] != list(CSV_COLUMNS):
        raise MediaError(f"{path}:1: CSV captions need the header video,start,end,text[,speaker]; got {header[:6]}")
    seen: dict[str, set[str]] = {}
    for cells in rows:
        n = rows.line_num
        if not any(c.strip() for c in cells):
            continue
        out.rows += 1
        where = f"{path.name}:{n}"
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            out.skip(where, "extra fields")
            continue
        if len(cells) < 4:
            out.skip(where, "missing field")
            continue
        uid = cells[0].strip()
        if not uid:
            out.skip(where, "missing field")
            continue
        times = _times(out, where, cells[1], cells[2])
        if times is None:
            continue
        caption = cells[3].strip()
        if not caption:
            out.skip(where, "empty text")
            continue
        speaker = cells[4].strip() if len(header) > 4 and len(cells) > 4 else ""
        _caption(uid, seen, out, where, f"{uid}/csv/line{n}", times[0], times[1], caption, "csv", speaker or None)


CSV = CaptionFormat(
    name="csv",
    description="comma-separated, header video,start,end,text[,speaker] (seconds)",
    extensions=(".csv",),
    read=read_csv,
    sniff=_sniff_csv,
)
