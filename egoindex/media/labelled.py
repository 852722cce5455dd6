"""Labelled video datasets: a folder per class, or UCF101's layout with its official split files.

The one reader of both layouts and the one train/val/test rule, shared by ``egoindex probe``
(:mod:`egoindex.classify`) and ``egoindex finetune``, so a probe and a fine-tune of the same
dataset with the same seed are scored on the same test videos.

**Folder per class** (:func:`scan_dataset`): ``DATASET/<class>/**/<video>.<mp4|mov|mkv|webm|...>``.
It is what people already have (ImageFolder convention, Kinetics-style dumps) and needs no
annotation file. Class names are the folder names (NFC-normalised, so a name typed on macOS and
on Linux is the same class); extensions match in any case; hidden files and folders (``.name``:
temp files of interrupted copies, ``.DS_Store`` ...) are ignored. Without a split file, the split
is :func:`split_per_class`: per class a seeded shuffle, at least one video in each part.

**UCF101** (:func:`scan_ucf101`, Soomro et al. 2012, ``ucfTrainTestlist/``):

* ``classInd.txt``: ``"1 ApplyEyeMakeup"`` per line, **1-based** indices in logit order;
* ``trainlist0N.txt``: ``"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"`` (path, 1-based class);
* ``testlist0N.txt``: ``"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"`` (no label: the folder is
  the class).

Names are ``v_<Class>_g<GG>_c<CC>.avi``: group GG (25 groups, the same actor and place) and clip
CC. The official splits keep groups apart (split 1 tests on groups 1-7), so the validation part
is carved from the training list **by group** too (:func:`val_groups`): whole groups, never
clips of a group that also trains. Class names match the folders case-insensitively because
UCF101 itself disagrees with itself (``classInd.txt`` says ``HandstandPushups``, the folder and
files say ``HandStandPushups``).
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egoindex.errors import ClassifyError
from egoindex.media.discover import VIDEO_EXTENSIONS

__all__ = ["BENCH", "MIN_PER_CLASS", "SPLITS_DIR", "LabelledVideo", "VideoSet", "check_fractions", "load_video_set",
           "read_class_index", "read_split_list", "scan_dataset", "scan_ucf101", "split_per_class", "video_set_sha256",
           "ucf_group", "val_groups"]

#: One video each for train, val and test is the least a class can have.
MIN_PER_CLASS = 3
#: The folder of UCF101's split files, beside the class folders or given with ``--splits``.
SPLITS_DIR = "ucfTrainTestlist"
#: The ``meta["bench"]`` of probe and fine-tune reports: ``egoindex bench compare`` pairs them video by video.
BENCH = "video_classification"
_UCF_NAME = re.compile(r"^v_(?P<cls>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$")


@dataclass(frozen=True)
class LabelledVideo:
    path: Path
    rel: str  # POSIX path relative to the dataset folder (stable id for caches and reports)
    label: str


@dataclass
class VideoSet:
    """A labelled dataset with its split: ``split[i]`` is ``train``, ``val`` or ``test`` for ``videos[i]``."""

    classes: list[str]
    videos: list[LabelledVideo]
    split: list[str]
    source: str  # "folders" or "ucf101 split N"

    def part(self, name: str) -> list[LabelledVideo]:
        return [v for v, s in zip(self.videos, self.split) if s == name]


def video_set_sha256(rels: Sequence[str]) -> str:
    """The identity of a test set (sha256 of its sorted relative paths): two reports with the same
    one were scored on the same videos and ``bench compare`` pairs them."""
    return hashlib.sha256("\n".join(sorted(rels)).encode("utf-8")).hexdigest()


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def scan_dataset(root: str | Path) -> tuple[list[str], list[LabelledVideo]]:
    """The classes (sorted folder names) and every video, sorted by (class, path). Raises
    :class:`ClassifyError` when the folder is missing or has fewer than two class folders; a class
    with too few videos is the caller's to judge (it may lose more to decoding errors)."""
    root = Path(root)
    if not root.is_dir():
        raise ClassifyError(f"dataset folder not found: {root}")
    class_dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                         and p.name != SPLITS_DIR), key=lambda p: p.name)
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


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Three positive train, val, test fractions, normalised to sum 1."""
    f = tuple(float(x) for x in fractions)
    if len(f) != 3 or any(not math.isfinite(x) or x <= 0 for x in f):
        raise ClassifyError(f"fractions must be three positive numbers (train, val, test), not {tuple(fractions)}")
    s = sum(f)
    return f[0] / s, f[1] / s, f[2] / s


def split_per_class(labels: Sequence[str], fractions: Sequence[float], seed: int) -> np.ndarray:
    """A "train" / "val" / "test" array aligned with ``labels``: per class (in sorted order) a
    seeded shuffle, then round(n * fraction) videos for val and test (at least one each) and the
    rest, at least one, for train."""
    _, fv, ft = check_fractions(fractions)
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=object)
    lab = np.asarray(labels, dtype=object)
    for c in sorted(set(labels)):
        idx = np.flatnonzero(lab == c)
        n = len(idx)
        if n < MIN_PER_CLASS:
            raise ClassifyError(f"class {c!r} has {n} videos; a split needs at least {MIN_PER_CLASS}")
        idx = idx[rng.permutation(n)]
        n_test = max(1, int(round(n * ft)))
        n_val = max(1, int(round(n * fv)))
        while n - n_test - n_val < 1:  # keep one for training
            if n_val >= n_test and n_val > 1:
                n_val -= 1
            else:
                n_test -= 1
        out[idx[:n_test]] = "test"
        out[idx[n_test:n_test + n_val]] = "val"
        out[idx[n_test + n_val:]] = "train"
    return out.astype(str)


# ---- UCF101 ------------------------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ClassifyError(f"UCF101 split file not found: {path} (expected {SPLITS_DIR}/classInd.txt, "
                            "trainlist0N.txt and testlist0N.txt from UCF101's official split archive)")
    return [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]


def read_class_index(path: Path) -> list[str]:
    """``classInd.txt`` -> class names in index order (index 1 first). Indices must be 1..C, each once."""
    pairs: dict[int, str] = {}
    for n, ln in enumerate(_lines(path), 1):
        parts = ln.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ClassifyError(f"{path}:{n}: expected '<index> <ClassName>', got {ln!r}")
        i = int(parts[0])
        if i in pairs:
            raise ClassifyError(f"{path}:{n}: class index {i} appears twice")
        pairs[i] = parts[1]
    if sorted(pairs) != list(range(1, len(pairs) + 1)):
        raise ClassifyError(f"{path}: class indices must be 1..{len(pairs)} (1-based, no gaps); got "
                            f"{sorted(pairs)[:3]}...{sorted(pairs)[-1:]}")
    return [pairs[i] for i in range(1, len(pairs) + 1)]


def read_split_list(path: Path, classes: Sequence[str], labelled: bool) -> list[tuple[str, str]]:
    """A train/test list -> (relative path, class name). Train lines carry a 1-based class index,
    which must agree with the folder; test lines have none and the folder is the class."""
    by_lower = {c.lower(): c for c in classes}
    out = []
    for n, ln in enumerate(_lines(path), 1):
        parts = ln.split()
        rel = parts[0].replace("\\", "/")
        if "/" not in rel or len(parts) > 2 or (labelled and len(parts) != 2):
            want = "'<Class>/<video>.avi <index>'" if labelled else "'<Class>/<video>.avi'"
            raise ClassifyError(f"{path}:{n}: expected {want}, got {ln!r}")
        folder = rel.split("/", 1)[0]
        cls = by_lower.get(folder.lower())
        if cls is None:
            raise ClassifyError(f"{path}:{n}: folder {folder!r} is no class of classInd.txt")
        if len(parts) == 2:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                raise ClassifyError(f"{path}:{n}: class index {parts[1]!r} is not in 1..{len(classes)} (1-based)")
            if classes[int(parts[1]) - 1] != cls:
                raise ClassifyError(f"{path}:{n}: index {parts[1]} is {classes[int(parts[1]) - 1]!r} in classInd.txt "
                                    f"but the video is in {folder!r}")
        out.append((rel, cls))
    return out


def ucf_group(rel: str) -> str:
    """The group of a UCF101 video (``v_ApplyEyeMakeup_g08_c01.avi`` -> ``ApplyEyeMakeup_g08``): clips of
    one group share actor and place. A name outside the convention is its own group."""
    stem = Path(rel).stem
    m = _UCF_NAME.match(stem)
    return f"{m.group('cls')}_g{int(m.group('group')):02d}" if m else stem


def val_groups(groups: Sequence[str], fraction: float, seed: int) -> set[str]:
    """Group numbers held out for validation: a seeded ``fraction`` of the distinct group numbers
    (at least one, never all), the same numbers for every class."""
    numbers = sorted({g.rsplit("_g", 1)[-1] for g in groups})
    if len(numbers) < 2:
        return set()
    k = min(len(numbers) - 1, max(1, int(round(len(numbers) * fraction))))
    chosen = set(np.random.default_rng(seed).permutation(numbers)[:k].tolist())
    return {g for g in groups if g.rsplit("_g", 1)[-1] in chosen}


def scan_ucf101(root: str | Path, splits_dir: str | Path | None = None, split: int = 1, val_fraction: float = 0.15,
                seed: int = 0) -> VideoSet:
    """UCF101 (or any dataset in its layout) with official split ``split`` (1-3); val by group."""
    root = Path(root)
    sdir = Path(splits_dir) if splits_dir is not None else root / SPLITS_DIR
    if split not in (1, 2, 3):
        raise ClassifyError(f"--split must be 1, 2 or 3 (UCF101's three official splits), not {split}")
    classes = read_class_index(sdir / "classInd.txt")
    train = read_split_list(sdir / f"trainlist{split:02d}.txt", classes, labelled=True)
    test = read_split_list(sdir / f"testlist{split:02d}.txt", classes, labelled=False)
    held = val_groups([ucf_group(r) for r, _ in train], val_fraction, seed)
    videos, parts, missing = [], [], []
    for rows, part in ((train, "train"), (test, "test")):
        for rel, cls in rows:
            path = root / rel
            if not path.is_file():
                missing.append(rel)
                continue
            videos.append(LabelledVideo(path, rel, cls))
            parts.append("val" if part == "train" and ucf_group(rel) in held else part)
    if missing:
        raise ClassifyError(f"{len(missing)} video(s) of split {split} are not under {root}, e.g. {missing[0]}; "
                            "pass the folder that holds the class folders")
    return VideoSet(classes, videos, parts, f"ucf101 split {split}")


def load_video_set(root: str | Path, *, splits_dir: str | Path | None = None, split: int = 1,
                   fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> VideoSet:
    """UCF101's layout when ``splits_dir`` is given or ``root/ucfTrainTestlist`` exists, else folder
    per class with :func:`split_per_class`."""
    root = Path(root)
    if splits_dir is not None or (root / SPLITS_DIR / "classInd.txt").is_file():
        return scan_ucf101(root, splits_dir, split, val_fraction=check_fractions(fractions)[1], seed=seed)
    classes, videos = scan_dataset(root)
    counts = {c: sum(v.label == c for v in videos) for c in classes}
    few = {c: n for c, n in counts.items() if n < MIN_PER_CLASS}
    if few:
        raise ClassifyError(f"every class needs at least {MIN_PER_CLASS} videos (one each for train, val and test); "
                            f"too few: {', '.join(f'{c!r} ({n})' for c, n in sorted(few.items()))}")
    part = split_per_class([v.label for v in videos], fractions, seed)
    return VideoSet(classes, videos, [str(p) for p in part], "folders")
