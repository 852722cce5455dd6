"""Writing and reading WebDataset tar shards, and their names.

Two frame series (the layout is :mod:`egoindex.dataset.layout`'s): pair shards
``{split}-{part:04d}-{n:05d}.tar`` in SHARDS_DIR (every sample has a caption: what a CLIP trainer
is pointed at, :func:`list_pair_shards`) and ``uncaptioned/uncaptioned-{split}-...`` (frames
without one, which only the build reads). :func:`list_shards` lists both: every frame. The clip
series ``clips/clips-{split}-...`` (:func:`list_clip_shards`) holds one sample per kept utterance,
its frames as members ``000.jpg``, ``001.jpg``, ... (:func:`clip_sample_frames` reads them back);
it is not a frame series, so :data:`SHARD_RE` and :func:`list_shards` never name it.

Shards are byte-for-byte reproducible (fixed mtime, owner and mode in every tar header), so a
resumed ingest can be checked against an uninterrupted one by hashing files, and re-writing a
shard after a kill produces the identical file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tarfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import webdataset as wds

from egoindex.core.fsutil import tmp_name
from egoindex.dataset.layout import CLIPS, UNCAPTIONED, Where, as_layout
from egoindex.errors import DatasetError

#: A shard name of either series; ``uncaptioned`` is set for the uncaptioned one.
SHARD_RE = re.compile(rf"^(?P<uncaptioned>{UNCAPTIONED}-)?(?P<split>train|val)-(?P<part>\d{{4}})-(?P<index>\d{{5}})\.tar$")
#: A clip shard name: ``clips-train-0003-00012.tar``.
CLIP_SHARD_RE = re.compile(rf"^{CLIPS}-(?P<split>train|val)-(?P<part>\d{{4}})-(?P<index>\d{{5}})\.tar$")
#: A frame member of a clip sample: ``000.jpg`` (three digits at least, all of one width per sample).
CLIP_FRAME_RE = re.compile(r"^(?P<n>\d{3,})\.jpg$")


def shard_name(split: str, part: int, index: int, *, captioned: bool = True) -> str:
    """The name of a rank's/part's ``index``-th shard of a split: ``train-0003-00012.tar`` (pairs)
    or ``uncaptioned-train-0003-00012.tar``. Parts number their shards independently, so array
    tasks never write the same name."""
    return f"{'' if captioned else UNCAPTIONED + '-'}{split}-{part:04d}-{index:05d}.tar"


def clip_shard_name(split: str, part: int, index: int) -> str:
    """The name of a part's ``index``-th clip shard of a split: ``clips-train-0003-00012.tar``."""
    return f"{CLIPS}-{split}-{part:04d}-{index:05d}.tar"


def clip_frame_member(i: int, n: int) -> str:
    """The member name of frame ``i`` of a clip of ``n`` frames: ``000.jpg``, ``001.jpg``, ...; the
    width grows with ``n`` (``0000.jpg`` from 1001 frames) so that name order is time order."""
    return f"{i:0{max(3, len(str(n - 1)))}d}.jpg"


class ShardWriter:
    """Writes one shard to a hidden temporary name and renames it into place on ``close``."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = tmp_name(path)
        self._f = open(self.tmp, "wb")
        self._tw = wds.TarWriter(self._f, encoder=False, mtime=0, user="egoindex", group="egoindex")
        self.count = 0

    def write(self, key: str, members: dict[str, bytes]) -> None:
        self._tw.write({"__key__": key, **members})
        self.count += 1

    def close(self) -> int:
        """Finish, fsync and publish the shard; returns its size in bytes."""
        self._tw.close()  # closes the tar stream, not our file object
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.tmp, self.path)
        return self.path.stat().st_size

    def abort(self) -> None:
        """Drop the unfinished shard (the tar stream is closed first so nothing flushes later)."""
        with contextlib.suppress(Exception):
            self._tw.close()
        with contextlib.suppress(Exception):
            self._f.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


@dataclass(frozen=True)
class MemberRef:
    offset: int
    size: int


def index_tar(path: Path) -> list[tuple[str, dict[str, MemberRef]]]:
    """Samples of a tar in file order: ``[(key, {ext: MemberRef})]``, grouped WebDataset-style."""
    samples: list[tuple[str, dict[str, MemberRef]]] = []
    with tarfile.open(path, "r:") as tf:
        for m in tf:
            if not m.isfile():
                continue
            key, _, ext = m.name.partition(".")
            if not samples or samples[-1][0] != key:
                samples.append((key, {}))
            samples[-1][1][ext] = MemberRef(m.offset_data, m.size)
    return samples


class TarReaders:
    """Random access to members of many tars with a bounded number of open files."""

    def __init__(self, max_open: int = 128):
        self.max_open = max_open
        self._open: OrderedDict[Path, object] = OrderedDict()

    def read(self, path: Path, ref: MemberRef) -> bytes:
        f = self._open.pop(path, None)
        if f is None:
            if len(self._open) >= self.max_open:
                _, old = self._open.popitem(last=False)
                old.close()  # type: ignore[attr-defined]
            f = open(path, "rb")
        self._open[path] = f
        f.seek(ref.offset)  # type: ignore[attr-defined]
        return f.read(ref.size)  # type: ignore[attr-defined]

    def close(self) -> None:
        for f in self._open.values():
            f.close()  # type: ignore[attr-defined]
        self._open.clear()


def _published(directory: Path, split: str | None, uncaptioned: bool = False,
               pattern: re.Pattern[str] = SHARD_RE) -> list[Path]:
    """The shards of ``directory`` whose names match ``pattern`` (of the uncaptioned series or not,
    of ``split`` or any), sorted by name; hidden temporaries never match. A missing folder has none."""
    out = []
    for p in sorted(Path(directory).glob("*.tar")):
        m = pattern.match(p.name)
        if m and bool(m.groupdict().get("uncaptioned")) == uncaptioned and (split is None or m["split"] == split):
            out.append(p)
    return out


def list_pair_shards(root: Where, split: str | None = None) -> list[Path]:
    """The published pair shards ``{split}-*.tar`` of SHARDS_DIR, sorted by name: what a CLIP
    trainer reads (in a 0.2 SHARDS_DIR they also hold frames with an empty caption)."""
    return _published(as_layout(root).root, split, False)


def list_clip_shards(root: Where, split: str | None = None) -> list[Path]:
    """The published clip shards ``clips/clips-{split}-*.tar`` of SHARDS_DIR, sorted by name: what
    a clip-level video model reads (none in a SHARDS_DIR of shard layout 2 or 1)."""
    return _published(as_layout(root).clips, split, pattern=CLIP_SHARD_RE)


def clip_sample_frames(sample: dict) -> tuple[dict, list[bytes]]:
    """A clip sample (as :func:`read_shard` or :func:`iter_samples` yields it) -> its ``json``
    (parsed) and the JPEG bytes of its frames in time order. A sample whose frames do not match
    its ``times`` (a shard cut short, a foreign tar) is a :class:`DatasetError`."""
    raw = sample.get("json")
    if raw is None:
        raise DatasetError(f"clip sample {sample.get('__key__', '?')} has no json member")
    meta = json.loads(raw) if isinstance(raw, (bytes, bytearray, str)) else dict(raw)
    frames = sorted((int(m["n"]), v) for k, v in sample.items() if (m := CLIP_FRAME_RE.match(k)))
    times = meta.get("times") or []
    if [n for n, _ in frames] != list(range(len(times))) or not frames:
        raise DatasetError(f"clip sample {sample.get('__key__', '?')}: "
                           f"{len(frames)} frame members for {len(times)} frame times")
    return meta, [bytes(v) for _, v in frames]


def list_shards(root: Where, split: str | None = None) -> list[Path]:
    """Every published shard of SHARDS_DIR, so every frame: the pair shards, then the
    uncaptioned ones (``uncaptioned/``), each series sorted by name. Hidden temporaries are
    never listed. This order is the build's commit order."""
    lay = as_layout(root)
    return _published(lay.root, split, False) + _published(lay.uncaptioned, split, True)


def train_data_pattern(paths: list[Path]) -> str:
    """The ``--train-data`` value for open_clip_train naming exactly ``paths`` (pair shards):
    one brace range per folder and part, ``::``-joined (open_clip and webdataset expand both),
    e.g. ``S/train-0000-{00000..00004}.tar::S/train-0001-{00000..00003}.tar``. The indexes of a
    part are consecutive (ingest numbers them so); a gap starts a new range."""
    groups: list[tuple[str, list[int]]] = []  # (prefix, consecutive indexes)
    for p in sorted(paths, key=lambda q: (str(q.parent), q.name)):
        m = SHARD_RE.match(p.name)
        if m is None:
            raise DatasetError(f"not a shard name: {p.name}")
        prefix = str(p.parent / p.name[: m.start("index")])
        idx = int(m["index"])
        if groups and groups[-1][0] == prefix and groups[-1][1][-1] == idx - 1:
            groups[-1][1].append(idx)
        else:
            groups.append((prefix, [idx]))
    return "::".join(f"{pre}{ix[0]:05d}.tar" if len(ix) == 1 else f"{pre}{{{ix[0]:05d}..{ix[-1]:05d}}}.tar"
                     for pre, ix in groups)


def read_shard(path: Path) -> Iterator[tuple[str, dict[str, bytes]] | tuple[None, str]]:
    """Samples of a tar as (key, {ext: bytes}); a damaged tar ends with (None, reason) after the
    samples that could be read."""
    cur_key, cur = None, {}
    try:
        with tarfile.open(path, "r|") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                base = m.name.rsplit("/", 1)[-1]
                key, _, ext = base.partition(".")
                data = tf.extractfile(m).read()  # type: ignore[union-attr]
                if key != cur_key and cur_key is not None:
                    yield cur_key, cur
                    cur = {}
                cur_key = key
                cur[ext] = data
            end = tf.offset
        # tarfile ends the iteration *silently* at a corrupt member header after the first one:
        # the rest of the shard would be lost without a trace unless the stop is checked.
        damaged = _garbage_after(path, end)
    except (tarfile.TarError, EOFError, OSError) as e:
        damaged = f"damaged tar: {type(e).__name__}: {e}"
    if damaged:
        if cur_key is not None and _complete(cur):
            yield cur_key, cur
        yield None, damaged
        return
    if cur_key is not None:
        yield cur_key, cur


def _complete(sample: dict[str, bytes]) -> bool:
    """Whether the last sample read before a damaged spot is whole: a frame sample has ``jpg`` and
    ``json``; a clip sample its ``json``, ``txt`` and one frame member per frame time (its members
    are written in name order: ``000.jpg`` ..., ``json``, ``txt``)."""
    if "jpg" in sample:
        return "json" in sample
    if "json" not in sample or "txt" not in sample:
        return False
    try:
        clip_sample_frames(sample)
    except (DatasetError, ValueError):
        return False
    return True


def _garbage_after(path: Path, offset: int) -> str | None:
    """Why the tar did not end at ``offset`` (where reading stopped), or None for a clean end
    (end-of-archive zero blocks, or the end of the file)."""
    with open(path, "rb") as f:
        f.seek(offset)
        block = f.read(512)
        size = os.fstat(f.fileno()).st_size
    if block.strip(b"\0"):
        return f"damaged tar: invalid member header at byte {offset}; the last {size - offset} bytes could not be read"
    return None


def iter_samples(paths: list[Path]) -> Iterator[dict]:
    """Read shards back with webdataset (used by tests, summaries and later stages)."""
    ds = wds.WebDataset([str(p) for p in paths], shardshuffle=False, empty_check=False)
    yield from ds


@dataclass(frozen=True)
class Rewrite:
    """What :func:`rewrite_shard` did: samples kept and dropped, the new size (0 when the shard
    was removed), whether the file changed, and why its end could not be read (None when whole)."""

    kept: int
    dropped: int
    size: int
    changed: bool
    damaged: str | None = None


def rewrite_shard(path: Path, keep: Callable[[str, dict[str, bytes]], bool], *, remove_empty: bool = True) -> Rewrite:
    """Rewrite a shard without the samples for which ``keep(key, members)`` is False, atomically
    (a hidden temporary renamed over it: a reader sees the old or the new file, never a mix), with
    the same member order and headers as ingest writes, so the kept samples' bytes are unchanged.
    Nothing dropped: the file is left as it is (rerunning a rewrite is a no-op). No sample left and
    ``remove_empty``: the shard is deleted. The unreadable end of a damaged shard is dropped with it
    (no reader can use it, and what it held cannot be checked), and named in ``damaged``."""
    writer = ShardWriter(path)
    kept = dropped = 0
    damaged = None
    try:
        for key, sample in read_shard(path):
            if key is None:
                damaged = str(sample)
                break
            if keep(key, sample):
                writer.write(key, sample)  # type: ignore[arg-type]
                kept += 1
            else:
                dropped += 1
    except BaseException:
        writer.abort()
        raise
    if not dropped and damaged is None:
        writer.abort()
        return Rewrite(kept, 0, path.stat().st_size, False)
    if kept == 0 and remove_empty:
        writer.abort()
        path.unlink(missing_ok=True)
        return Rewrite(0, dropped, 0, True, damaged)
    size = writer.close()
    return Rewrite(kept, dropped, size, True, damaged)
