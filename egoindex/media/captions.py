"""Timestamped captions from files (human narrations, subtitles, transcripts) instead of Whisper.

Why a registry: every caption-file format (EgoClip, CSV, SRT, WebVTT, CHAT, ELAN, TextGrid) is
one :class:`CaptionFormat` in :data:`FORMATS` (a name, its extensions, a header test, a reader
and whether one file captions one video), and everything above this module (``egoindex ingest
--transcripts``) only ever calls :func:`read_captions`. docs/formats.md is the user's reference.

What a reader returns: ``{file video uid: [Utterance, ...]}`` in file order, every utterance
``kept=True`` with no Whisper scores (``no_speech_prob = avg_logprob = compression_ratio = 0``),
``seg_start/seg_end = start/end``, ``source`` = the format's name and ``speaker`` where the
format names one. A row that cannot become a caption is skipped and counted by reason
(:class:`Captions` ``skipped``, with the first few), never dropped silently; a file that is
unusable as a whole (unknown header, missing columns, not UTF-8, unparsable, no usable row) is a
:class:`~egoindex.errors.MediaError` naming the file (and line where there is one).

Files are UTF-8 (a BOM is allowed) or UTF-16 with a BOM (Praat writes a TextGrid with non-ASCII
text as UTF-16).

Multi-video formats (EgoClip, CSV) name each row's video. Per-video formats (SRT, WebVTT, CHAT,
ELAN, TextGrid; ``CaptionFormat.per_video``) caption one video per file: its uid is the file name
without extension (``kid01_day3.srt`` -> ``kid01_day3``), or the video that a
``--transcript-map`` (:func:`read_video_map`) gives the file.

A folder: its files are read in path order and may mix formats (``Captions.format`` is then
:data:`MIXED`, while each utterance's ``source`` stays its own format); a video uid in two files
is an error. A per-video file of a folder that is unusable as a whole does not stop the others:
it is recorded in ``Captions.failed`` (relative path -> reason) and its video simply has no file
captions (an ingest transcribes it with Whisper). Why only per-video files: a broken file of a
multi-video format takes an unknown set of videos with it, which is worth stopping for; and a
folder in which no file is usable is an error, not a silent fall-back to Whisper for everything.

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
module quotes); ids ``{video}/csv/line{n}``; a non-empty ``speaker`` cell is the speaker.

SRT (``srt``, ``.srt``): blocks separated by blank lines, ``[index]`` then ``HH:MM:SS,mmm -->
HH:MM:SS,mmm`` then the text lines (joined with spaces; ``<i>``-style tags and ``{\\an8}``-style
override codes removed). No speaker: a leading ``NAME:`` stays in the text, since SRT has no
speaker syntax and ``Note:`` would read as one. Ids ``{uid}/srt/{n}``, n = the block's position.

WebVTT (``webvtt``, ``.vtt``): the ``WEBVTT`` header block, ``NOTE``, ``STYLE`` and ``REGION``
blocks are not captions; a cue is ``[identifier]``, ``[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm
[settings]``, text. The speaker is the cue's ``<v Name>`` voice (only voice tags name one; a
cue with two different voices has none, counted in ``notes``); tags are removed and character
references (``&amp;``) decoded. Ids ``{uid}/webvtt/{n}``, n = the cue's position.

CHAT (``chat``, ``.cha``, CHILDES; parsed by pylangacq): one utterance per ``*XXX:`` line; times
from its bullet ``\\x15start_end\\x15`` (ms); speaker = the tier code (``CHI``, ``MOT``); ids
``{uid}/chat/{n}``, n = the utterance's position. Text (:func:`chat_text`): the words as spoken.

ELAN (``elan``, ``.eaf``; parsed by pympi-ling): the annotations of every independent (top-level)
tier; speaker = the tier's PARTICIPANT, else its id; ids ``{uid}/elan/{ANNOTATION_ID}``.
Dependent tiers are not read (counted in ``notes``): their annotations annotate the parent's
(translations, words, glosses; symbolic ones have no times at all) and would caption the same
seconds twice.

TextGrid (``textgrid``, ``.TextGrid``; parsed by praatio): the intervals of every interval tier
(point tiers are counted in ``notes``); speaker = the tier name; empty intervals are pauses and
are passed over without a count; ids ``{uid}/textgrid/{t}-{k}``, tier t, k-th non-empty interval.

Skip reasons (the keys of ``skipped``): ``missing field``, ``bad number`` (unparsable, NaN or
infinite), ``negative time``, ``end before start``, ``empty text``, ``extra fields``,
``duplicate id``, ``no time`` (a subtitle block without a timing line, a CHAT utterance without
a bullet, an ELAN annotation on an unaligned time slot), ``bad time`` (an unparsable timing
line).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pylangacq
import pympi
from praatio import textgrid

from egoindex.errors import MediaError
from egoindex.media.speech import Utterance

#: How many skipped lines a :class:`Captions` remembers (with their reason) for the report.
EXAMPLES = 5
#: ``Captions.format`` of a folder whose files are of more than one format.
MIXED = "mixed"


class Captions(dict[str, list[Utterance]]):
    """``{file video uid: utterances}`` plus what reading it found: the format, how many data
    rows were read, the skipped rows by reason and the first few of them (``file:line: reason``),
    ``notes`` (kept rows with something left out, e.g. an unreadable tag list) and ``ignored``
    (good rows of video uids that ``read_captions(keep=...)`` did not ask for, by uid in file order)
    and ``failed`` (a folder's per-video files that could not be read: relative path -> reason).
    ``video``: while one per-video file is read, the uid of the video it captions."""

    def __init__(self, fmt: str = "", keep: Callable[[str], bool] | None = None, video: str = "") -> None:
        super().__init__()
        self.format = fmt
        self.keep = keep
        self.video = video
        self.failed: dict[str, str] = {}
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
    format's header (None: the format has no header, only ``extensions`` find it); ``per_video``:
    a file captions one video, ``Captions.video`` (the reader names no video itself)."""

    name: str
    description: str
    extensions: tuple[str, ...]
    read: Reader
    sniff: Callable[[str], bool] | None = None
    per_video: bool = False


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


def read_captions(path: Path, fmt: str = "auto", keep: Callable[[str], bool] | None = None, *,
                  video_map: Path | None = None) -> Captions:
    """Read a caption file, or every caption file of a folder (recursively, in path order; files
    of unknown extension are ignored), as ``{file video uid: [Utterance]}``; ``fmt`` is a name
    in :data:`FORMATS` or ``auto`` (each file's header, then its extension). A folder may mix
    formats; a video uid in two files is an error (their ids and order would be ambiguous); a
    per-video file that fails is recorded in ``failed`` (module docstring), any other is raised.

    ``keep(uid)``: make utterances only for these video uids (EgoClip's one file covers all of
    Ego4D's narrated videos; an ingest of a few of them should not hold every row in memory);
    every row is still parsed and checked, the others are counted in ``ignored``.

    ``video_map``: a ``--transcript-map`` CSV (:func:`read_video_map`) that names the video of
    per-video files not named after it."""
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise MediaError(f"unknown caption format {fmt!r}; known: {', '.join(format_names())}")
    files = caption_files(path)
    root = path if path.is_dir() else path.parent
    videos, map_sha = read_video_map(Path(video_map), [f.relative_to(root).as_posix() for f in files]) \
        if video_map is not None else ({}, "")
    out = Captions()
    owner: dict[str, Path] = {}
    folder_hash = hashlib.sha256()
    for f in files:
        rel = f.relative_to(root).as_posix()
        try:
            one = _read_one(f, fmt, keep, videos.get(rel))
        except MediaError as e:
            if path.is_file() or not _per_video_file(f, fmt):
                raise
            out.failed[rel] = str(e)
            folder_hash.update(f"{rel}\0{_sha256_or_empty(f)}\n".encode())
            continue
        folder_hash.update(f"{rel}\0{one.sha256}\n".encode())
        out.format = one.format if out.format in ("", one.format) else MIXED
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
    if not out.files:
        first = "; ".join(f"{k}: {v}" for k, v in list(out.failed.items())[:EXAMPLES])
        raise MediaError(f"no usable caption file in {path}: all {len(out.failed)} failed ({first})")
    # the input's identity, from the bytes just read: a file's sha256, or for a folder the sha256
    # of its caption files' relative paths and sha256s, in reading order (failed files included:
    # a repaired file is another input); with a video map, the sha256 of both sha256s
    out.sha256 = one.sha256 if path.is_file() else folder_hash.hexdigest()
    if video_map is not None:
        out.sha256 = hashlib.sha256(f"{out.sha256}\n{map_sha}\n".encode()).hexdigest()
    return out


def _per_video_file(path: Path, fmt: str) -> bool:
    """Whether a file is of a per-video format: ``fmt``'s, or with ``auto`` every format that
    claims its extension (a ``.csv`` may be EgoClip's, which covers many videos)."""
    if fmt != "auto":
        return FORMATS[fmt].per_video
    claim = [f for f in FORMATS.values() if path.suffix.lower() in f.extensions]
    return bool(claim) and all(f.per_video for f in claim)


def _sha256_or_empty(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


MAP_COLUMNS = ("video", "file")


def read_video_map(path: Path, files: list[str]) -> tuple[dict[str, str], str]:
    """``--transcript-map``: a CSV with header ``video,file`` whose rows give a per-video caption
    file (``file``: its path relative to the ``--transcripts`` folder, or for a single file, to
    that file's folder) the video it captions (``video``: a video uid, relative path or stem, as
    ``caption_keys`` of the ingest accepts). Returns ``{file: video}`` and the map's sha256.

    Every row must be usable (a wrong row would silently send its video to Whisper): a missing
    field, a file named twice or a file that is not one of ``files`` (the caption files read) is
    a :class:`MediaError` naming the line. Files the map leaves out keep their own name."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise MediaError(f"--transcript-map {path}: cannot read it ({e.strerror or e})") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise MediaError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    rows = csv.reader(io.StringIO(text, newline=""))
    header = [c.strip().lower() for c in next(rows, [])]
    if tuple(header) != MAP_COLUMNS:
        raise MediaError(f"{path}:1: a transcript map needs the header video,file; got {header[:4]}")
    known = set(files)
    out: dict[str, str] = {}
    for cells in rows:
        n = rows.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != 2 or not cells[0].strip() or not cells[1].strip():
            raise MediaError(f"{path}:{n}: a row needs two fields, video and file; got {cells[:4]}")
        video, file = cells[0].strip(), PurePosixPath(cells[1].strip().replace("\\", "/")).as_posix()
        if file in out:
            raise MediaError(f"{path}:{n}: {file} is mapped twice (to {out[file]!r} and {video!r})")
        if file not in known:
            raise MediaError(f"{path}:{n}: {file} is not a caption file of --transcripts (paths are relative to "
                             "its folder)")
        out[file] = video
    return out, hashlib.sha256(raw).hexdigest()


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


def decode_text(path: Path, raw: bytes) -> str:
    """A caption file's text: UTF-16 when it starts with a UTF-16 byte-order mark, else UTF-8
    (a BOM allowed); a :class:`MediaError` naming the line otherwise."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as e:
            raise MediaError(f"{path}: not UTF-16 text after its byte-order mark ({e.reason} at byte {e.start})") from e
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise MediaError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start})") from e


def _read_one(path: Path, fmt: str, keep: Callable[[str], bool] | None, video: str | None = None) -> Captions:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MediaError(f"{path}: cannot read it ({e.strerror or e})") from e
    text = decode_text(path, raw)
    first = next(iter(text.splitlines()), "")
    name = detect_format(path, first) if fmt == "auto" else fmt
    per_video = FORMATS[name].per_video
    if video is not None and not per_video:
        raise MediaError(f"{path}: --transcript-map names its video, but a {name} file names the video of each row")
    out = Captions(name, keep, (video if video is not None else path.stem) if per_video else "")
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
             end: float, text: str, fmt: str, speaker: str | None = None, **tags: list[int] | None) -> None:
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
        seg_start=start, seg_end=end, kept=True, source=fmt, speaker=speaker, **tags))


def _times(out: Captions, where: str, start_s: str | None, end_s: str | None) -> tuple[float, float] | None:
    """Parse and check a row's start and end (counting the reason when they are unusable)."""
    if start_s is None or end_s is None or not start_s.strip() or not end_s.strip():
        out.skip(where, "missing field")
        return None
    start, end = _time(start_s), _time(end_s)
    if start is None or end is None:
        out.skip(where, "bad number")
        return None
    return _span(out, where, start, end)


def _span(out: Captions, where: str, start: float, end: float) -> tuple[float, float] | None:
    """Check a caption's times in seconds (counting the reason when they are unusable)."""
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
        speaker = cells[4].strip() if len(header) > 4 and len(cells) > 4 else ""
        _caption(uid, seen, out, where, f"{uid}/csv/line{n}", times[0], times[1], caption, "csv", speaker or None)


register(CaptionFormat(
    name="csv",
    description="comma-separated, header video,start,end,text[,speaker] (seconds)",
    extensions=(".csv",),
    read=read_csv,
    sniff=_sniff_csv,
))


# ----------------------------------------------------------------------------------------------
# Per-video formats: SRT, WebVTT, CHAT, ELAN, TextGrid (module docstring: speakers, ids, text)


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """A subtitle file's blank-line separated blocks: (the block's first line number, its lines)."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            current = None
        elif current is None:
            current = [line.rstrip()]
            blocks.append((n, current))
        else:
            current.append(line.rstrip())
    return blocks


_TAG = re.compile(r"<[^>]*>")
_OVERRIDE = re.compile(r"\{\\[^}]*\}")  # {\an8}, {\i1}: SubStation Alpha codes that SRT files carry
_SPACES = re.compile(r"\s+")
_SRT_TS = r"(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})"
_SRT_TIMING = re.compile(rf"^\s*{_SRT_TS}\s*-->\s*{_SRT_TS}(?:\s|$)")
_VTT_TS = r"(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})"
_VTT_TIMING = re.compile(rf"^\s*{_VTT_TS}\s+-->\s+{_VTT_TS}(?:\s|$)")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?[ \t]+([^>]+)>")
_VTT_OTHER = re.compile(r"^(NOTE|STYLE|REGION)(\s|$)")


def _timing(pattern: re.Pattern[str], line: str) -> tuple[float, float] | None:
    """A timing line's start and end in seconds (to the millisecond), or None when unparsable
    (minutes or seconds of 60 and more included)."""
    m = pattern.match(line)
    if m is None:
        return None
    out = []
    for h, mi, s, frac in (m.groups()[:4], m.groups()[4:]):
        if int(mi) >= 60 or int(s) >= 60:
            return None
        out.append(round(int(h or 0) * 3600 + int(mi) * 60 + int(s) + int(frac) / 10 ** len(frac), 3))
    return out[0], out[1]


def _cue(out: Captions, where: str, block: list[str],
         timing: re.Pattern[str]) -> tuple[tuple[float, float], list[str]] | None:
    """A subtitle block's times and text lines: ``[identifier]``, timing line, text (counting
    the reason when it has no usable timing line)."""
    i = 0 if "-->" in block[0] else 1
    if i >= len(block) or "-->" not in block[i]:
        out.skip(where, "no time")
        return None
    times = _timing(timing, block[i])
    if times is None:
        out.skip(where, "bad time")
        return None
    span = _span(out, where, *times)
    return (span, block[i + 1:]) if span is not None else None


def read_srt(path: Path, text: str, out: Captions) -> None:
    """SubRip blocks -> the utterances of ``out.video`` (module docstring: text, no speaker)."""
    seen: dict[str, set[str]] = {}
    for n, (line, block) in enumerate(_blocks(text), 1):
        out.rows += 1
        where = f"{path.name}:{line}"
        cue = _cue(out, where, block, _SRT_TIMING)
        if cue is None:
            continue
        (start, end), lines = cue
        caption = _SPACES.sub(" ", _OVERRIDE.sub("", _TAG.sub("", " ".join(lines)))).strip()
        if not caption:
            out.skip(where, "empty text")
            continue
        _caption(out.video, seen, out, where, f"{out.video}/srt/{n}", start, end, caption, "srt")


def _sniff_vtt(line: str) -> bool:
    return re.match(r"^WEBVTT([ \t].*)?$", line.rstrip("\r\n")) is not None


def read_vtt(path: Path, text: str, out: Captions) -> None:
    """WebVTT cues -> the utterances of ``out.video`` (module docstring: voices, markup)."""
    blocks = _blocks(text)
    if not blocks or not _sniff_vtt(blocks[0][1][0]):
        raise MediaError(f"{path}:1: a WebVTT file starts with the line WEBVTT")
    first, header = blocks[0]
    # a cue right under the header, without the blank line the spec asks for, is still a cue
    timed = next((i for i, x in enumerate(header) if "-->" in x), None)
    blocks = ([(first + timed, header[timed:])] if timed else []) + blocks[1:]
    seen: dict[str, set[str]] = {}
    n = 0
    for line, block in blocks:
        if _VTT_OTHER.match(block[0]):
            continue
        n += 1
        out.rows += 1
        where = f"{path.name}:{line}"
        cue = _cue(out, where, block, _VTT_TIMING)
        if cue is None:
            continue
        (start, end), lines = cue
        payload = "\n".join(lines)
        voices = list(dict.fromkeys(v.strip() for v in _VOICE.findall(payload)))
        if len(voices) > 1:
            out.note("several voices in one cue (no speaker)")
        caption = _SPACES.sub(" ", html.unescape(_TAG.sub("", payload))).strip()
        if not caption:
            out.skip(where, "empty text")
            continue
        _caption(out.video, seen, out, where, f"{out.video}/webvtt/{n}", start, end, caption, "webvtt",
                 voices[0] if len(voices) == 1 else None)


#: CHAT's codes for speech that has no words: unintelligible (xxx), phonological (yyy), untranscribed (www).
CHAT_UNSPOKEN = frozenset({"xxx", "yyy", "www"})


def chat_text(audible: str) -> str:
    """A CHAT utterance's caption from pylangacq's ``audible`` form, which has already resolved
    the main line to what was said: retracings ``<I think> [/] I think`` keep both (both were
    said), ``word [: target]`` keeps ``word``, ``(be)cause`` is ``cause``, ``&-uh`` is ``uh``,
    ``no@s:fra`` is ``no`` and bracketed codes (``[/]``, ``[?]``, ``[% comment]``, pauses ``(.)``)
    are gone. Then: events ``&=laughs`` and the no-word codes of :data:`CHAT_UNSPOKEN` are
    dropped, so are tokens without a letter (``0``, ``+...``, ``„``, ``‡``, ``,``); the ``&+``
    of a fragment is dropped (``&+fr`` -> ``fr``: it was said); compounds and multi-word names
    are spoken as words (``ice+cream`` -> ``ice cream``, ``Santa_Claus`` -> ``Santa Claus``);
    a final ``.``, ``?`` or ``!`` is kept on the last word."""
    tokens = audible.split()
    words = []
    for t in tokens:
        if t.startswith("&="):
            continue
        t = t.removeprefix("&+").removeprefix("&-").removeprefix("&~")
        if t.lower() in CHAT_UNSPOKEN or not any(ch.isalpha() for ch in t):
            continue
        words.append(t.replace("+", " ").replace("_", " "))
    if words and tokens[-1] in (".", "?", "!"):
        words[-1] += tokens[-1]
    return " ".join(words)


def read_chat(path: Path, text: str, out: Captions) -> None:
    """CHAT main tiers -> the utterances of ``out.video``; pylangacq parses leniently
    (``strict=False``: a cosmetic header slip such as an age ``2;6.`` does not lose the file, nor
    does a ``@Media`` name other than the file's, which a ``--transcript-map`` file may have) and
    the times are checked here, so one bad bullet is one skipped utterance."""
    try:
        utterances = pylangacq.CHAT.from_strs([text], ids=[path.name], parallel=False, strict=False).utterances()
    except Exception as e:  # the Rust parser raises ValueError and others: the file is the problem
        raise MediaError(f"{path}: not a readable CHAT file ({type(e).__name__}: {e})") from e
    seen: dict[str, set[str]] = {}
    for n, u in enumerate(utterances, 1):
        out.rows += 1
        where = f"{path.name}:utterance {n}"
        if not u.time_marks:
            out.skip(where, "no time")
            continue
        span = _span(out, where, u.time_marks[0] / 1000, u.time_marks[1] / 1000)
        if span is None:
            continue
        caption = chat_text(u.audible or "")
        if not caption:
            out.skip(where, "empty text")
            continue
        _caption(out.video, seen, out, where, f"{out.video}/chat/{n}", span[0], span[1], caption, "chat",
                 u.participant or None)


def read_elan(path: Path, text: str, out: Captions) -> None:
    """ELAN independent tiers -> the utterances of ``out.video`` (module docstring: which tiers,
    speaker). The file is parsed from its path (``text`` is only checked to be text): ELAN files
    are XML that declares its own encoding."""
    try:
        eaf = pympi.Elan.Eaf(str(path), suppress_version_warning=True)
    except Exception as e:  # ElementTree's ParseError, KeyError for a broken reference, ...
        raise MediaError(f"{path}: not a readable ELAN file ({type(e).__name__}: {e})") from e
    seen: dict[str, set[str]] = {}
    for tier_id, (aligned, _refs, attrs, _order) in eaf.tiers.items():
        if attrs.get("PARENT_REF"):
            out.note("ELAN dependent tier not read")
            continue
        speaker = (attrs.get("PARTICIPANT") or "").strip() or tier_id
        for aid, (ts1, ts2, value, _svg) in aligned.items():
            out.rows += 1
            where = f"{path.name}:{tier_id}/{aid}"
            t1, t2 = eaf.timeslots.get(ts1), eaf.timeslots.get(ts2)
            if t1 is None or t2 is None:
                out.skip(where, "no time")
                continue
            span = _span(out, where, t1 / 1000, t2 / 1000)
            if span is None:
                continue
            caption = _SPACES.sub(" ", value or "").strip()
            if not caption:
                out.skip(where, "empty text")
                continue
            _caption(out.video, seen, out, where, f"{out.video}/elan/{aid}", span[0], span[1], caption, "elan",
                     speaker)


def _sniff_textgrid(line: str) -> bool:
    return line.strip().startswith('File type = "ooTextFile"')


def read_textgrid(path: Path, text: str, out: Captions) -> None:
    """Praat TextGrid interval tiers -> the utterances of ``out.video`` (module docstring:
    speaker, pauses); parsed by praatio from the path (long and short text formats, UTF-8 or
    UTF-16), which refuses a file whose intervals overlap or run backwards as a whole."""
    try:
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False, reportingMode="silence")
    except Exception as e:  # praatio raises IndexError, ValueError, its own errors on a broken file
        raise MediaError(f"{path}: not a readable TextGrid ({type(e).__name__}: {e})") from e
    seen: dict[str, set[str]] = {}
    for t, tier in enumerate(tg.tiers, 1):
        if not isinstance(tier, textgrid.IntervalTier):
            out.note("TextGrid point tier not read")
            continue
        k = 0
        for iv in tier.entries:
            caption = _SPACES.sub(" ", iv.label).strip()
            if not caption:  # a pause
                continue
            k += 1
            out.rows += 1
            where = f"{path.name}:{tier.name}[{k}]"
            span = _span(out, where, float(iv.start), float(iv.end))
            if span is None:
                continue
            _caption(out.video, seen, out, where, f"{out.video}/textgrid/{t}-{k}", span[0], span[1], caption,
                     "textgrid", tier.name)


for _fmt in (
    CaptionFormat("srt", "SubRip subtitles, one file per video (HH:MM:SS,mmm --> HH:MM:SS,mmm)", (".srt",),
                  read_srt, per_video=True),
    CaptionFormat("webvtt", "WebVTT captions, one file per video (first line WEBVTT; <v Speaker> voices)", (".vtt",),
                  read_vtt, _sniff_vtt, per_video=True),
    CaptionFormat("chat", "CHILDES CHAT transcript, one file per video (first line @UTF8; time bullets)", (".cha",),
                  read_chat, lambda line: line.strip() == "@UTF8", per_video=True),
    CaptionFormat("elan", "ELAN annotation file, one per video (.eaf)", (".eaf",), read_elan, per_video=True),
    CaptionFormat("textgrid", "Praat TextGrid, one file per video (interval tiers)", (".textgrid",), read_textgrid,
                  _sniff_textgrid, per_video=True),
):
    register(_fmt)
