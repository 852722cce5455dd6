"""Ingest stage 2: staged per-video tars -> ``{split}-{part}-{n}.tar`` shards, then the summaries.

:func:`pack_split` interleaves the videos of one split and part (consecutive frames of one video
share a caption, and would be false negatives for each other in a contrastive batch). The layout
is a pure function of the set of finished videos, so a pack that was killed half-way is simply
redone identically; its pack record (``_ingest/packs/*.json``) is written last and names only
complete shards. :func:`finalize` publishes ``sizes.json``, ``shards.csv`` and ``manifest.csv``
from the records, whichever part finishes last.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import numpy as np

from egoindex.core import failpoints
from egoindex.core.fsutil import remove_stale_tmp
from egoindex.dataset.layout import (ShardsLayout, read_pack_records, read_video_record, write_manifest,
                                     write_pack_record, write_shards_csv, write_sizes)
from egoindex.dataset.shards import SHARD_RE, ShardWriter, TarReaders, index_tar, shard_name
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
    local. Deterministic: the same ``uids`` always give the same bytes.
    """
    if not uids:
        return []
    prior = [r for r in read_pack_records(layout, split) if r["split"] == split and r["part"] == part]
    first = max((s["index"] for r in prior for s in r["shards"]), default=-1) + 1
    # Shards of this part at or beyond `first` were left by a killed pack: not referenced, remove.
    for p in layout.root.glob(f"{split}-{part:04d}-*.tar"):
        m = SHARD_RE.match(p.name)
        if m and int(m["index"]) >= first:
            p.unlink()
    remove_stale_tmp(layout.root, f"{split}-{part:04d}-")

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
            perm = np.random.default_rng(_seed(split, part, first, len(order))).permutation(len(block))
            order.extend(block[i] for i in perm)
            block = []

    rows: list[dict[str, Any]] = []
    readers = TarReaders()
    writer: ShardWriter | None = None
    vids: set[str] = set()
    try:
        for pos, (u, j) in enumerate(order):
            if writer is None:
                writer = ShardWriter(layout.root / shard_name(split, part, first + len(rows)))
                vids = set()
            key, refs = indexes[u][j]
            writer.write(key, {ext: readers.read(layout.staged(u), ref) for ext, ref in refs.items()})
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
    finally:
        readers.close()
    write_pack_record(layout, split, part, first, uids, rows)
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
