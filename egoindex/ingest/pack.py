"""Ingest stage 2: staged per-video tars -> pair shards ``{split}-{part}-{n}.tar`` (captioned
frames) and ``uncaptioned/uncaptioned-{split}-{part}-{n}.tar`` (the rest), then the summaries.

:func:`pack_split` interleaves the videos of one split and part (consecutive frames of one video
share a caption, and would be false negatives for each other in a contrastive batch). The layout
is a pure function of the set of finished videos, so a pack that was killed half-way is simply
redone identically; its pack record (``_ingest/packs/*.json``) is written last and names only
complete shards. :func:`finalize` publishes both ``sizes.json`` files, ``shards.csv`` and
``manifest.csv`` from the records, whichever part finishes last.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import numpy as np

from egoindex.core import failpoints
from egoindex.core.fsutil import remove_stale_tmp
from egoindex.dataset.layout import (ShardsLayout, is_captioned, is_uncaptioned_name, read_pack_records,
                                     read_video_record, write_manifest, write_pack_record, write_shards_csv,
                                     write_sizes)
from egoindex.dataset.shards import SHARD_RE, MemberRef, ShardWriter, TarReaders, index_tar, shard_name
from egoindex.media.discover import VideoFile


def packed_uids(layout: ShardsLayout) -> set[str]:
    """Videos already in a shard (a pack record names them)."""
    return {u for rec in read_pack_records(layout) for u in rec["videos"]}


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def pack_split(layout: ShardsLayout, split: str, part: int, uids: list[str], shard_size: int) -> list[dict[str, Any]]:
    """Pack the staged samples of ``uids`` into new shards; returns the shard rows written.

    Videos are cut into pieces of ``shard_size // 4`` samples, pieces are ordered round-robin over
    videos, gathered into blocks of at least ``4 * shard_size`` samples and shuffled within each
    block (seeded by split, part and position), so every shard mixes many videos while reads stay
    local. That order is then dealt into two series (:func:`is_captioned`): captioned samples to
    the pair shards ``{split}-{part}-{n}.tar`` (what CLIP trainers read), the others, without
    their empty ``txt`` member, to ``uncaptioned/uncaptioned-{split}-{part}-{n}.tar`` (only the
    build reads them); each series numbers its shards on from this part's earlier packs.
    Deterministic: the same ``uids`` always give the same bytes.
    """
    if not uids:
        return []
    prior = [r for r in read_pack_records(layout, split) if r["split"] == split and r["part"] == part]
    number = max((int(r.get("number", -1)) for r in prior), default=-1) + 1
    first = {cap: max((s["index"] for r in prior for s in r["shards"] if is_uncaptioned_name(s["name"]) != cap),
                      default=-1) + 1 for cap in (True, False)}
    # Shards of this part at or beyond `first` were left by a killed pack: not referenced, remove.
    for cap in (True, False):
        folder, stem = layout.shard_dir(shard_name(split, part, 0, captioned=cap)), _stem(split, part, cap)
        for p in folder.glob(f"{stem}*.tar"):
            m = SHARD_RE.match(p.name)
            if m and int(m["index"]) >= first[cap]:
                p.unlink()
        remove_stale_tmp(folder, stem)

    piece = max(1, shard_size // 4)
    indexes = {u: index_tar(layout.staged(u)) for u in sorted(uids)}
    pieces: list[tuple[int, str, int, int]] = []  # (piece number, uid, lo, hi)
    for u, samples in indexes.items():
        for n, lo in enumerate(range(0, len(samples), piece)):
            pieces.append((n, u, lo, min(lo + piece, len(samples))))
    pieces.sort()
    order: list[tuple[str, int]] = []
    block: list[tuple[str, int]] = []
    for bno, (_, u, lo, hi) in enumerate(pieces):
        block.extend((u, j) for j in range(lo, hi))
        if len(block) >= 4 * shard_size or bno == len(pieces) - 1:
            perm = np.random.default_rng(_seed(split, part, number, len(order))).permutation(len(block))
            order.extend(block[i] for i in perm)
            block = []

    readers = TarReaders()
    try:
        series: dict[bool, list[tuple[str, int]]] = {True: [], False: []}
        for u, j in order:
            txt = indexes[u][j][1].get("txt")
            series[is_captioned(readers.read(layout.staged(u), txt) if txt else None)].append((u, j))
        rows: list[dict[str, Any]] = []
        for cap in (True, False):
            rows += _write_series(layout, split, part, first[cap], cap, series[cap], indexes, readers, shard_size)
    finally:
        readers.close()
    write_pack_record(layout, split, part, number, uids, rows)
    return rows


def _stem(split: str, part: int, captioned: bool) -> str:
    """The name of a part's shards of one series up to their index: ``train-0000-``."""
    name = shard_name(split, part, 0, captioned=captioned)
    return name[: SHARD_RE.match(name).start("index")]  # type: ignore[union-attr]


def _write_series(layout: ShardsLayout, split: str, part: int, first: int, captioned: bool,
                  order: list[tuple[str, int]], indexes: dict[str, list[tuple[str, dict[str, MemberRef]]]],
                  readers: TarReaders, shard_size: int) -> list[dict[str, Any]]:
    """Write ``order`` (samples as (uid, position in its staged tar)) into shards of one series,
    ``shard_size`` each, numbered from ``first``; each is published whole (``shard-done``)."""
    rows: list[dict[str, Any]] = []
    writer: ShardWriter | None = None
    vids: set[str] = set()
    try:
        for pos, (u, j) in enumerate(order):
            if writer is None:
                layout.uncaptioned.mkdir(parents=True, exist_ok=True)
                writer = ShardWriter(layout.shard(shard_name(split, part, first + len(rows), captioned=captioned)))
                vids = set()
            key, refs = indexes[u][j]
            writer.write(key, {ext: readers.read(layout.staged(u), ref) for ext, ref in refs.items()
                               if captioned or ext != "txt"})
            vids.add(u)
            if writer.count == shard_size or pos == len(order) - 1:
                count = writer.count
                size = writer.close()
                rows.append({"name": writer.path.name, "index": first + len(rows), "split": split,
                             "count": count, "bytes": size, "videos": sorted(vids)})
                writer = None
                failpoints.hit("shard-done")
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return rows


def _state_signature(layout: ShardsLayout) -> list[tuple[str, int]]:
    sig = []
    for d in (layout.packs, layout.videos):
        for p in sorted(d.glob("*.json")):
            with contextlib.suppress(FileNotFoundError):
                sig.append((p.name, p.stat().st_mtime_ns))
    return sig


def finalize(layout: ShardsLayout, videos: list[VideoFile], num_parts: int) -> None:
    """Regenerate the summary files from the records.

    Parts finishing at the same moment may each write these; each one re-reads the records after
    writing and repeats if they changed, so the last writer always publishes the complete state.
    """
    for _ in range(20):
        before = _state_signature(layout)
        shard_rows = sorted((s for r in read_pack_records(layout) for s in r["shards"]), key=lambda s: s["name"])
        write_sizes(layout, {s["name"]: s["count"] for s in shard_rows})
        by_video: dict[str, list[str]] = {}
        for s in shard_rows:
            for u in s["videos"]:
                by_video.setdefault(u, []).append(s["name"])
        write_shards_csv(layout, shard_rows)
        rows = []
        for v in videos:
            rec = read_video_record(layout, v.video_uid) or {"video_uid": v.video_uid, "source": v.source,
                                                              "status": "pending"}
            rows.append({**rec, "shards": by_video.get(v.video_uid, [])})
        write_manifest(layout, rows)
        if _state_signature(layout) == before:
            return
