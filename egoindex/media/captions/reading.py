"""Reading caption files and folders: :func:`read_captions` (the one entry point of ``egoindex ingest
--transcripts``), the ``--transcript-map`` (:func:`read_video_map`), which files a folder has
(:func:`caption_files`), a file's format (:func:`detect_format`) and text (:func:`decode_text`).

Format-agnostic: everything a format does is behind its :class:`~.registry.CaptionFormat` in
:data:`~.registry.FORMATS`. Folders, per-video files, failures and the input's sha256: the package
docstring.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from egoindex.errors import MediaError
from egoindex.media.captions.registry import EXAMPLES, FORMATS, MIXED, Captions, format_names


def read_captions(path: Path, fmt: str = "auto", keep: Callable[[str], bool] | None = None, *,
                  video_map: Path | None = None) -> Captions:
    """Read a caption file, or every caption file of a folder (recursively, in path order; files
    of unknown extension are ignored), as ``{file video uid: [Utterance]}``; ``fmt`` is a name
    in :data:`FORMATS` or ``auto`` (each file's header, then its extension). A folder may mix
    formats; a video uid in two files is an error (their ids and order would be ambiguous); a
    per-video file that fails is recorded in ``failed`` (package docstring), any other is raised.

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
