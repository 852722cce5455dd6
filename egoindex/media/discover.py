"""Finding videos in a folder and naming them stably.

A ``video_uid`` is a UUIDv5 of the video's path relative to the corpus root (POSIX separators,
Unicode NFC), so it is the same on every machine, every run and every SLURM array task, looks like
an Ego4D uid, and contains no dots (WebDataset splits sample keys at the first dot).
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from egoindex.errors import MediaError

#: The one list of video extensions (lower case, most common first); files match in any letter case.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi")
#: Exact spellings to try when a file is looked up by stem (``DIR/{uid}.mp4``, ``DIR/{id}.MP4``):
#: each extension in lower, then upper case, in the order of :data:`VIDEO_EXTENSIONS`.
VIDEO_SUFFIXES: tuple[str, ...] = tuple(s for ext in VIDEO_EXTENSIONS for s in (ext, ext.upper()))
# A fixed namespace: changing it would rename every video in every existing store.
EGOINDEX_NAMESPACE = uuid.UUID("6f1c0e52-5d0f-4a4e-9a35-3f1b5e0c9d21")


@dataclass(frozen=True)
class VideoFile:
    """One video found under the corpus root."""

    path: Path  # absolute path on this machine
    source: str  # path relative to the corpus root, POSIX, NFC
    video_uid: str


def relative_source(path: Path, root: Path) -> str:
    """The path below ``root``, POSIX, NFC. Bytes that are not UTF-8 (a latin-1 name from an old
    archive: Python keeps them as surrogate escapes, which no JSON, CSV or uuid accepts) are
    shown as ``\\xNN``; ingest records such a file as skipped (see :func:`undecodable_name`)."""
    rel = path.relative_to(root).as_posix()
    if undecodable_name(rel):
        rel = os.fsencode(rel).decode("utf-8", "backslashreplace")
    return unicodedata.normalize("NFC", rel)


def undecodable_name(name: str | Path) -> bool:
    """Whether a file name holds bytes that are not UTF-8 (surrogate escapes)."""
    try:
        str(name).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def video_uid(source: str) -> str:
    """Stable uid from the relative path (see module docstring)."""
    return str(uuid.uuid5(EGOINDEX_NAMESPACE, unicodedata.normalize("NFC", source)))


def is_video_name(name: str) -> bool:
    """Extension check in any letter case (``.MP4``, ``.Mov`` ...); hidden files are ignored."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def describe_extensions() -> str:
    """The extension list as a user reads it in a message: ``mp4 mov mkv webm m4v avi, any case``."""
    return " ".join(ext.lstrip(".") for ext in VIDEO_EXTENSIONS) + ", any case"


def find_videos(root: Path) -> list[VideoFile]:
    """All videos below ``root``, sorted by relative path (deterministic order for splits and parts)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise MediaError(f"videos folder not found: {root}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if is_video_name(name):
                p = Path(dirpath) / name
                src = relative_source(p, root)
                found.append(VideoFile(path=p, source=src, video_uid=video_uid(src)))
    found.sort(key=lambda v: v.source)
    return found


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (for splits and part assignment)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(uid: str, val_fraction: float, seed: int = 0) -> str:
    """``val`` or ``train`` for a whole video.

    A per-video hash threshold, not a rank over the corpus: adding videos later never moves an
    already-ingested video to the other split, and every array task decides alone.
    """
    return "val" if unit_hash("split", seed, uid) < val_fraction else "train"


def assign_part(uid: str, num_parts: int) -> int:
    """Which of ``num_parts`` array tasks owns this video (hash-balanced by count)."""
    return int(unit_hash("part", uid) * num_parts)
