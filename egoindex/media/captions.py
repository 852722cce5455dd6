"""Timestamped captions from files (human narrations, subtitles) instead of Whisper.

Why a registry: EgoClip's narration metadata is the first format, SRT, WebVTT, CHAT, ELAN and
TextGrid follow through the same door, so a format is one :class:`CaptionFormat` in
:data:`FORMATS` (a name, its extensions, a header test and a reader) and everything above this
module (``egoindex ingest --transcripts``) only ever calls :func:`read_captions`.

What a reader returns: ``{file video uid: [Utterance, ...]}`` in file order, every utterance
``kept=True`` with no Whisper scores (``no_speech_prob = avg_logprob = compression_ratio = 0``),
``seg_start/seg_end = start/end`` and ``source`` = the format's name. A row that cannot become a
caption is skipped and counted by reason (:class:`Captions` ``skipped``, with the first few
lines), never dropped silently; a file that is unusable as a whole (unknown header, missing
columns, not UTF-8, no usable row) is a :class:`~egoindex.errors.MediaError` naming the file and
line.

EgoClip (``egoclip``; EgoVLP's ``egoclip.csv``, tab-separated in spite of its name): header
``clip_idx, video_uid, video_dur, narration_source, narration_ind, narration_time, clip_start,
clip_end, clip_text, tag_verb, tag_noun``. One utterance per row: ``start = clip_start``, ``end =
clip_end``, ``text = clip_text`` as in the file, Ego4D's ``#C`` / ``#O`` markers included. They
are kept on purpose: EgoVLP trains on ``clip_text`` as it is (LaViLa strips ``#C``), the offline
tagger (``egoindex.metrics.tags``) treats them as stopwords, and a caption equal to the file's
text is what a user searching the store expects to find; stripping is a training-time choice,
not an ingest one. Ids are stable across reruns: ``{video_uid}/egoclip/{narration_source}-
{narration_ind}`` (narration indices restart in each annotation pass, so the pass is part of
the id), ``{video_uid}/egoclip/{narration_ind}`` without a source, ``{video_uid}/egoclip/
line{n}`` without an index. Tags (list literals: ``[93]``, ``[192, 115, 12]``, ``[]``) become
``tag_verb`` / ``tag_noun``; a missing or unreadable tag leaves that list None (counted in
``notes``, the caption is kept). Rows: fields are split at tabs; a row with fewer fields keeps
what it has (tags are optional), a row with extra non-empty fields after the last column is
skipped like EgoVLP's ``on_bad_lines`` skip (a tab inside the text would shift the columns).

CSV (``csv``): header ``video,start,end,text[,speaker]`` (comma-separated, quoted as the csv
module quotes); ids ``{video}/csv/line{n}``.

Skip reasons (the keys of ``skipped``): ``missing field``, ``bad number`` (unparsable, NaN or
infinite), ``negative time``, ``end before start``, ``empty text``, ``extra fields``,
``duplicate id``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from egoindex.errors import MediaError
from egoindex.media.speech import Utterance

#: How many skipped lines a :class:`Captions` remembers (with their reason) for the report.
EXAMPLES = 5


class Captions(dict[str, list[Utterance]]):
    """``{file video uid: utterances}`` plus what reading it found: the format, how many data
    rows were read, the skipped rows by reason and the first few of them (``file:line: reason``),
    ``notes`` (kept rows with something left out, e.g. an unreadable tag list) and ``ignored``
    (good rows of video uids that ``read_captions(keep=...)`` did not ask for, by uid in file order)."""

    def __init__(self, fmt: str = "", keep: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.format = fmt
        self.keep = keep
        self.rows = 0
        self.ignored: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.notes: dict[str, int] = {}
        self.examples: list[str] = []
        self.files: list[Path] = []
        self.sha256 = ""  # the input's identity (read_captions), recorded by --transcripts

    @property
    def n_utterances(self) -> int:
        return sum(len(v) for v in self.values())

    def skip(self, where: str, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    def note(self, reason: str) -> None:
        self.notes[reason] = self.notes.get(reason, 0) + 1

    def describe_skips(self) -> str:
        """One line for a summary: ``3 rows skipped (end before start 2, empty text 1)``."""
        n = sum(self.skipped.values())
        if not n:
            return "no rows skipped"
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items()))
        return f"{n} row{'s' * (n != 1)} skipped ({kinds})"


#: ``reader(path, text, out)``: add the file's utterances to ``out`` (and count its skips there).
Reader = Callable[[Path, str, Captions], None]


@dataclass(frozen=True)
class CaptionFormat:
    """One caption-file format: ``sniff(first_line)`` says whether a file's first line is this
    format's header (None: the format has no header, only ``extensions`` find it)."""

    name: str
    description: str
    extensions: tuple[str, ...]
    read: Reader
    sniff: Callable[[str], bool] | None = None


FORMATS: dict[str, CaptionFormat] = {}


def register(fmt: CaptionFormat) -> CaptionFormat:
    """Add a format to :data:`FORMATS` (one name, one reader)."""
    if fmt.name in FORMATS or fmt.name == "auto":
        raise ValueError(f"caption format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def format_names() -> tuple[str, ...]:
    """``auto`` and the registered formats, as the CLI offers them."""
    return ("auto", *FORMATS)


# ----------------------------------------------------------------------------------------------
# Reading


def read_captions(path: Path, fmt: str = "auto", keep: Callable[[str], bool] | None = None) -> Captions:
    """Read a caption file, or every caption file of a folder (recursively, in path order; files
    of unknown extension are ignored), as ``{file video uid: [Utterance]}``; ``fmt`` is a name
    in :data:`FORMATS` or ``auto`` (each file's header, then its extension). A video uid in two
    files of a folder is an error (their ids and order would be ambiguous).

    ``keep(uid)``: make utterances only for these video uids (EgoClip's one file covers all of
    Ego4D's narrated videos; an ingest of a few of them should not hold every row in memory);
    every row is still parsed and checked, the others are counted in ``ignored``."""
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise MediaError(f"unknown caption format {fmt!r}; known: {', '.join(format_names())}")
    files = caption_files(path)
    out = Captions()
    owner: dict[str, Path] = {}
    folder_hash = hashlib.sha256()
    for f in files:
        one = _read_one(f, fmt, keep)
        folder_hash.update(f"{f.relative_to(path).as_posix()}\0{one.sha256}\n".encode())
        if out.format and one.format != out.format:
            raise MediaError(f"{f} is {one.format} but {out.files[0]} is {out.format}: one format per folder")
        out.format = one.format
        out.files.append(f)
        out.rows += one.rows
        for k, v in one.skipped.items():
            out.skipped[k] = out.skipped.get(k, 0) + v
        for k, v in one.notes.items():
            out.notes[k] = out.notes.get(k, 0) + v
        for k, v in one.ignored.items():
            out.ignored[k] = out.ignored.get(k, 0) + v
        out.examples += one.examples[: EXAMPLES - len(out.examples)]
        for uid, utts in one.items():
            if uid in owner:
                raise MediaError(f"video {uid!r} has captions in two files: {owner[uid]} and {f}")
            owner[uid] = f
            out[uid] = utts
    # the input's identity, from the bytes just read: a file's sha256, or for a folder the sha256
    # of its caption files' relative paths and sha256s, in reading order
    out.sha256 = one.sha256 if path.is_file() else folder_hash.hexdigest()
    return out


def caption_files(path: Path) -> list[Path]:
    """The files :func:`read_captions` reads: ``path`` itself, or a folder's files of a known
    caption extension (recursively, sorted, hidden files left out)."""
    if path.is_dir():
        exts = {e for f in FORMATS.values() for e in f.extensions}
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in exts)
        if not files:
            raise MediaError(f"no caption files in {path} (extensions: {' '.join(sorted(exts))})")
        return files
    if path.is_file():
        return [path]
    raise MediaError(f"captions file not found: {path}")


def detect_format(path: Path, first_line: str) -> str:
    """The format of a file: the first whose header test accepts ``first_line``, else the only
    header-less format of its extension; a :class:`MediaError` naming line 1 otherwise."""
    for f in FORMATS.values():
        if f.sniff is not None and f.sniff(first_line):
            return f.name
    by_ext = [f.name for f in FORMATS.values() if f.sniff is None and path.suffix.lower() in f.extensions]
    if len(by_ext) == 1:
        return by_ext[0]
    known = "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
    raise MediaError(f"{path}:1: not a known caption-file header ({first_line[:120]!r}). Known formats: {known}. "
                     "Pass --transcript-format to name one.")


def _read_one(path: Path, fmt: str, keep: Callable[[str], bool] | None) -> Captions:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise MediaError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    first = next(iter(text.splitlines()), "")
    name = detect_format(path, first) if fmt == "auto" else fmt
    out = Captions(name, keep)
    out.sha256 = hashlib.sha256(raw).hexdigest()
    FORMATS[name].read(path, text, out)
    if not out and not out.ignored:
        detail = f"; {out.describe_skips()}, first: {'; '.join(out.examples)}" if out.skipped else ""
        raise MediaError(f"{path}: no usable caption in {out.rows} data rows ({name} format){detail}")
    return out


# ----------------------------------------------------------------------------------------------
# Shared row helpers


def _time(s: str) -> float | None:
    """A finite float, or None."""
    try:
        x = float(s)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


_TAGS = re.compile(r"^\[\s*(-?\d+(\s*,\s*-?\d+)*)?\s*,?\s*\]$")


def parse_tags(s: str | None) -> list[int] | None:
    """``"[192, 115, 12]"`` -> ``[192, 115, 12]``, ``"[]"`` -> ``[]``; anything else -> None.
    A regular expression rather than ``ast.literal_eval``: the file is data, not code, and only
    lists of integers are tags."""
    if s is None:
        return None
    s = s.strip()
    if not _TAGS.match(s):
        return None
    return [int(x) for x in s.strip("[] ,").split(",") if x.strip()]


def _unquote(s: str) -> str:
    """A tab-separated field as pandas reads it: surrounding double quotes removed, ``""`` -> ``"``."""
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return s[1:-1].replace('""', '"')
    return s


def _caption(uid: str, uid_seen: dict[str, set[str]], out: Captions, where: str, id_: str, start: float,
             end: float, text: str, fmt: str, **tags: list[int] | None) -> None:
    """Append one file caption to ``out[uid]`` (or count why not: duplicate id; or, for a uid
    that ``out.keep`` refuses, count it in ``out.ignored``)."""
    if out.keep is not None and not out.keep(uid):
        out.ignored[uid] = out.ignored.get(uid, 0) + 1
        return
    seen = uid_seen.setdefault(uid, set())
    if id_ in seen:
        out.skip(where, "duplicate id")
        return
    seen.add(id_)
    out.setdefault(uid, []).append(Utterance(
        id=id_, start=start, end=end, text=text, no_speech_prob=0.0, avg_logprob=0.0, compression_ratio=0.0,
        seg_start=start, seg_end=end, kept=True, source=fmt, **tags))


def _times(out: Captions, where: str, start_s: str | None, end_s: str | None) -> tuple[float, float] | None:
    """Parse and check a row's start and end (counting the reason when they are unusable)."""
    if start_s is None or end_s is None or not start_s.strip() or not end_s.strip():
        out.skip(where, "missing field")
        return None
    start, end = _time(start_s), _time(end_s)
    if start is None or end is None:
        out.skip(where, "bad number")
        return None
    if start < 0 or end < 0:
        out.skip(where, "negative time")
        return None
    if end < start:
        out.skip(where, "end before start")
        return None
    return start, end


# ----------------------------------------------------------------------------------------------
# EgoClip

EGOCLIP_COLUMNS = ("clip_idx", "video_uid", "video_dur", "narration_source", "narration_ind", "narration_time",
                   "clip_start", "clip_end", "clip_text", "tag_verb", "tag_noun")
EGOCLIP_REQUIRED = ("video_uid", "clip_start", "clip_end", "clip_text")


def _egoclip_header(line: str) -> list[str]:
    return [_unquote(c) for c in line.rstrip("\r\n").split("\t")]


def _sniff_egoclip(line: str) -> bool:
    return set(EGOCLIP_REQUIRED) <= set(_egoclip_header(line))


def read_egoclip(path: Path, text: str, out: Captions) -> None:
    """EgoClip metadata rows -> utterances (module docstring: ids, text, tags, skipped rows)."""
    lines = enumerate(text.splitlines(), 1)
    _, head = next(lines, (1, ""))
    header = _egoclip_header(head)
    missing = [c for c in EGOCLIP_REQUIRED if c not in header]
    if missing:
        raise MediaError(f"{path}:1: EgoClip header lacks {', '.join(missing)} (tab-separated columns "
                         f"{', '.join(EGOCLIP_COLUMNS)}); got {header[:12]}")
    col = {c: i for i, c in enumerate(header)}
    seen: dict[str, set[str]] = {}
    for n, line in lines:
        if not line.strip():
            continue
        out.rows += 1
        where = f"{path.name}:{n}"
        cells = [_unquote(c) for c in line.split("\t")]
        if any(c for c in cells[len(header):]):
            out.skip(where, "extra fields")
            continue

        def get(name: str) -> str | None:
            i = col.get(name)
            return cells[i] if i is not None and i < len(cells) else None

        uid = (get("video_uid") or "").strip()
        if not uid:
            out.skip(where, "missing field")
            continue
        times = _times(out, where, get("clip_start"), get("clip_end"))
        if times is None:
            continue
        caption = (get("clip_text") or "").strip()
        if not caption:
            out.skip(where, "empty text")
            continue
        tags: dict[str, list[int] | None] = {}
        for name in ("tag_verb", "tag_noun"):
            raw = get(name)
            tags[name] = parse_tags(raw)
            if tags[name] is None and name in col:
                out.note(f"{name} missing or unreadable")
        src, ind = (get("narration_source") or "").strip(), (get("narration_ind") or "").strip()
        if ind and src:
            key = f"{src}-{ind}"
        elif ind:
            key = ind
        else:
            key = f"line{n}"
        _caption(uid, seen, out, where, f"{uid}/egoclip/{key}", times[0], times[1], caption, "egoclip", **tags)


register(CaptionFormat(
    name="egoclip",
    description="EgoClip / EgoVLP narration metadata (tab-separated, header clip_idx, video_uid, ..., clip_start, "
                "clip_end, clip_text, tag_verb, tag_noun)",
    extensions=(".csv", ".tsv"),
    read=read_egoclip,
    sniff=_sniff_egoclip,
))


# ----------------------------------------------------------------------------------------------
# Simple CSV

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
        _caption(uid, seen, out, where, f"{uid}/csv/line{n}", times[0], times[1], caption, "csv")


register(CaptionFormat(
    name="csv",
    description="comma-separated, header video,start,end,text[,speaker] (seconds)",
    extensions=(".csv",),
    read=read_csv,
    sniff=_sniff_csv,
))
