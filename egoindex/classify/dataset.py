"""A folder-per-class video dataset: ``DATASET/<class>/**/<video>.<mp4|mov|mkv|webm|...>``.

Why this layout: it is what people already have (ImageFolder convention, Kinetics-style dumps)
and needs no annotation file. Class names are the folder names (NFC-normalised, so a name typed
on macOS and on Linux is the same class); extensions match in any case; hidden files and folders
(``.name``: temp files of interrupted copies, ``.DS_Store`` ...) are ignored.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from egoindex.errors import ClassifyError
from egoindex.media.discover import VIDEO_EXTENSIONS

__all__ = ["VIDEO_EXTENSIONS", "MIN_PER_CLASS", "LabelledVideo", "scan_dataset"]

#: One video each for train, val and test is the least a class can have.
MIN_PER_CLASS = 3


@dataclass(frozen=True)
class LabelledVideo:
    path: Path
    rel: str  # POSIX path relative to the dataset folder (stable id for caches and reports)
    label: str


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def scan_dataset(root: str | Path) -> tuple[list[str], list[LabelledVideo]]:
    """The classes (sorted folder names) and every video, sorted by (class, path). Raises
    :class:`ClassifyError` when the folder is missing or has fewer than two class folders; a class
    with too few videos is the caller's to judge (it may lose more to decoding errors)."""
    root = Path(root)
    if not root.is_dir():
        raise ClassifyError(f"dataset folder not found: {root}")
    class_dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    if len(class_dirs) < 2:
        raise ClassifyError(f"{root} needs one sub-folder per class (at least 2), e.g. {root}/walking/*.mp4; "
                            f"found {len(class_dirs)}")
    out: list[LabelledVideo] = []
    labels: dict[str, str] = {}
    for d in class_dirs:
        label = unicodedata.normalize("NFC", d.name)
        if label in labels:
            raise ClassifyError(f"class folders {labels[label]!r} and {d.name!r} have the same name after "
                                f"Unicode normalisation")
        labels[label] = d.name
        vids = sorted(p for p in d.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
                      and not _hidden(p.relative_to(d)))
        out += [LabelledVideo(p, p.relative_to(root).as_posix(), label) for p in vids]
    return list(labels), out
