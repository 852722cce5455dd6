"""Ingest stage 2: staged per-video tars -> pair shards ``{split}-{part}-{n}.tar`` (captioned
frames), ``uncaptioned/uncaptioned-{split}-{part}-{n}.tar`` (the rest) and
``clips/clips-{split}-{part}-{n}.tar`` (one sample per kept utterance), then the summaries.

:func:`pack_split` interleaves the videos of one split and part (consecutive frames of one video
share a caption, and would be false negatives for each other in a contrastive batch). The layout
is a pure function of the set of finished videos, so a pack that was killed half-way is simply
redone identically; its pack record (``_ingest/packs/*.json``) is written last and names only
complete shards. :func:`finalize` publishes the three ``sizes.json`` files, ``shards.csv`` and
``manifest.csv`` from the records, whichever part finishes last.

The clip series is written here, from the staged tars (the only place that holds every frame of
a video together): the frames spread over the frame shards on purpose, so a clip cannot be put
together from one of them. Staged samples and utterances that SHARDS_DIR's blackouts hide
(:mod:`egoindex.dataset.blackouts`) never reach a shard. Its kill point is ``clip-shard-done`` (``shard-done`` counts the frame
series only, so kills aimed at the frame series land where they always did).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.core import failpoints
from egoindex.core.fsutil import remove_stale_tmp
from egoindex.dataset.blackouts import Blackouts, read_blackouts
from egoindex.dataset.layout import (NO_SPEAKER, SPEAKER_STATS, ShardsLayout, is_captioned, is_uncaptioned_name,
                                     publish_summaries, read_ingest_config, read_pack_records, read_transcript,
                                     write_pack_record)
from egoindex.dataset.shards import (CLIP_SHARD_RE, SHARD_RE, MemberRef, ShardWriter, TarReaders, clip_frame_member,
                                     clip_shard_name, index_tar, shard_name)
from egoindex.ingest.pairing import DEFAULT_MAX_GAP
from egoindex.media.discover import VideoFile
from egoindex.model.pooling import EPS, window_frames

#: Clips of one video stay together in runs of up to this many (see :func:`clip_order`).
CLIP_PIECE = 8
#: Utterance fields a clip's ``json`` carries beside ``id``, ``start`` and ``end``, when the
#: transcript has them (captions from a file may bring a source and verb/noun tags; a speaker
#: comes from a transcript or ``--rttm``).
CLIP_UTTERANCE_EXTRA = ("source", "tag_verb", "tag_noun", "speaker")

Indexes = dict[str, list[tuple[str, dict[str, MemberRef]]]]


def packed_uids(layout: ShardsLayout) -> set[str]:
    """Videos already in a shard (a pack record names them)."""
    return {u for rec in read_pack_records(layout) for u in rec["videos"]}


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def pack_split(layout: ShardsLayout, split: str, part: int, uids: list[str], shard_size: int,
               max_gap: float | None = None) -> list[dict[str, Any]]:
    """Pack the staged samples of ``uids`` into new shards; returns the frame shard rows written
    (the clip shard rows are in the pack record, under ``clips``).

    Videos are cut into pieces of ``shard_size // 4`` samples, pieces are ordered round-robin over
    videos, gathered into blocks of at least ``4 * shard_size`` samples and shuffled within each
    block (seeded by split, part and position), so every shard mixes many videos while reads stay
    local. That order is then dealt into two series (:func:`is_captioned`): captioned samples to
    the pair shards ``{split}-{part}-{n}.tar`` (what CLIP trainers read), the others, without
    their empty ``txt`` member, to ``uncaptioned/uncaptioned-{split}-{part}-{n}.tar`` (only the
    build reads them); each series numbers its shards on from this part's earlier packs. Then
    the clip series (:func:`video_clips`, :func:`clip_order`, :func:`_write_clips`), with
    ``max_gap`` (default: the recorded ``_ingest/config.json`` value, the pairing's).
    Deterministic: the same ``uids`` always give the same bytes.
    """
    if not uids:
        return []
    if max_gap is None:
        max_gap = float(read_ingest_config(layout).get("max_gap", DEFAULT_MAX_GAP))
    prior = [r for r in read_pack_records(layout, split) if r["split"] == split and r["part"] == part]
    number = max((int(r.get("number", -1)) for r in prior), default=-1) + 1
    first = {cap: max((s["index"] for r in prior for s in r["shards"] if is_uncaptioned_name(s["name"]) != cap),
                      default=-1) + 1 for cap in (True, False)}
    first_clip = max((s["index"] for r in prior for s in r.get("clips", [])), default=-1) + 1
    # Shards of this part at or beyond `first` were left by a killed pack: not referenced, remove.
    for cap in (True, False):
        _remove_unrecorded(layout.shard_dir(shard_name(split, part, 0, captioned=cap)), _stem(split, part, cap),
                           SHARD_RE, first[cap])
    _remove_unrecorded(layout.clips, clip_shard_name(split, part, 0)[: -len("00000.tar")], CLIP_SHARD_RE, first_clip)

    piece = max(1, shard_size // 4)
    blackouts = read_blackouts(layout.root)
    indexes = visible_samples(layout, {u: index_tar(layout.staged(u)) for u in sorted(uids)}, blackouts)
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
        clips: list[dict[str, Any]] = []
        stats = {"utterances": 0, "clips": 0, "without_frames": 0}
        by_speaker: dict[str, int] = {}  # clips per speaker: `train --speakers` counts a clip model's epoch with them
        for u in sorted(uids):
            made, n_utts = video_clips(layout, u, split, indexes[u], readers, max_gap, blackouts)
            clips += made
            stats["utterances"] += n_utts
            stats["clips"] += len(made)
            stats["without_frames"] += n_utts - len(made)
            for c in made:
                by_speaker[c["speaker"]] = by_speaker.get(c["speaker"], 0) + 1
        clip_rows = _write_clips(layout, split, part, first_clip, clip_order(clips, split, part, number),
                                 indexes, readers, shard_size)
    finally:
        readers.close()
    clip_stats: dict[str, Any] = {**stats, SPEAKER_STATS: dict(sorted(by_speaker.items()))}
    write_pack_record(layout, split, part, number, uids, rows, clip_rows, clip_stats)
    return rows


def visible_samples(layout: ShardsLayout, indexes: Indexes, blackouts: Blackouts) -> Indexes:
    """``indexes`` without the staged samples that blackouts hide (``hides_sample`` on their json):
    a video staged before its redaction, or by an ingest that did not know it, never reaches a shard."""
    if not any(blackouts.of(u) for u in indexes):
        return indexes
    readers = TarReaders()
    try:
        return {u: [(k, refs) for k, refs in samples
                    if not blackouts.hides_sample(json.loads(readers.read(layout.staged(u), refs["json"])))]
                for u, samples in indexes.items()}
    finally:
        readers.close()


def video_clips(layout: ShardsLayout, uid: str, split: str, samples: list[tuple[str, dict[str, MemberRef]]],
                readers: TarReaders, max_gap: float,
                blackouts: Blackouts | None = None) -> tuple[list[dict[str, Any]], int]:
    """The clips of one video, in utterance order, and its number of kept utterances.

    One clip per kept utterance (:func:`read_transcript`, sorted by start and end; ``k`` is that
    position, the key ``{uid}_u{k:05d}``) that has frames: :func:`window_frames` (the staged frames
    in ``[start, end]``, else the one nearest its middle) over the staged frame times, the nearest
    frame dropped when it is more than ``max_gap`` seconds outside the window (the pairing's
    limit: such a frame shows something else). Each clip is ``{"key", "uid", "txt", "json",
    "members", "speaker"}`` (``members``: positions in the staged tar, in time order; ``speaker``:
    the utterance's, or ``NO_SPEAKER``)."""
    staged = layout.staged(uid)
    metas = [json.loads(readers.read(staged, refs["json"])) for _, refs in samples]
    order = sorted(range(len(samples)), key=lambda j: (float(metas[j]["t"]), j))
    times = np.array([float(metas[j]["t"]) for j in order], dtype=np.float64)
    source = metas[0].get("source", "") if metas else ""
    blackouts = blackouts or Blackouts()
    utts = sorted((u for u in read_transcript(layout, uid) if not blackouts.hides_utterance(uid, u)),
                  key=lambda x: (float(x["start"]), float(x["end"])))
    out: list[dict[str, Any]] = []
    for k, utt in enumerate(utts):
        start, end = float(utt["start"]), float(utt["end"])
        idx = window_frames(times, start, end)
        if idx.size == 1:
            t = float(times[idx[0]])
            if max(start - t, t - end, 0.0) > max_gap + EPS:
                idx = idx[:0]
        if idx.size == 0:
            continue
        members = [order[int(i)] for i in idx]
        info = {"id": utt.get("id") or f"{uid}_u{k:05d}", "start": start, "end": end}
        info.update({f: utt[f] for f in CLIP_UTTERANCE_EXTRA if utt.get(f) is not None})
        meta = {"video_uid": uid, "source": source, "split": split, "utterance": info,
                "times": [float(times[i]) for i in idx], "frame_keys": [samples[j][0] for j in members]}
        out.append({"key": f"{uid}_u{k:05d}", "uid": uid, "txt": str(utt["text"]).encode("utf-8"),
                    "json": json.dumps(meta, ensure_ascii=False).encode("utf-8"), "members": members,
                    "speaker": utt.get("speaker") or NO_SPEAKER})
    return out, len(utts)


def clip_order(clips: list[dict[str, Any]], split: str, part: int, number: int) -> list[dict[str, Any]]:
    """The order of a pack's clips: each video's clips shuffled (seeded by its uid), cut into
    pieces of :data:`CLIP_PIECE`, and the pieces of all videos shuffled (seeded by split, part and
    pack number). Clips of one video so arrive in runs of up to 8, which lets a loader find a
    same-video clip (EgoNCE's scene-aware negative) within a small buffer, while every shard still
    mixes videos. Deterministic."""
    by_video: dict[str, list[dict[str, Any]]] = {}
    for c in clips:
        by_video.setdefault(c["uid"], []).append(c)
    pieces: list[list[dict[str, Any]]] = []
    for u in sorted(by_video):
        mine = sorted(by_video[u], key=lambda c: c["key"])  # time order (``{uid}_u{k:05d}``), then shuffled
        perm = np.random.default_rng(_seed("clips", u)).permutation(len(mine))
        shuffled = [mine[i] for i in perm]
        pieces += [shuffled[i : i + CLIP_PIECE] for i in range(0, len(shuffled), CLIP_PIECE)]
    perm = np.random.default_rng(_seed("clips", split, part, number)).permutation(len(pieces))
    return [c for i in perm for c in pieces[i]]


def _write_clips(layout: ShardsLayout, split: str, part: int, first: int, order: list[dict[str, Any]],
                 indexes: Indexes, readers: TarReaders, shard_size: int) -> list[dict[str, Any]]:
    """Write clips into clip shards numbered from ``first``; a shard closes once it holds at least
    ``shard_size`` frames (so its bytes are about a pair shard's) or at the end. Frames are the
    staged JPEG bytes, not re-encoded: the same bytes as the pair shards."""
    rows: list[dict[str, Any]] = []
    writer: ShardWriter | None = None
    vids: set[str] = set()
    frames = 0
    try:
        for pos, c in enumerate(order):
            if writer is None:
                layout.clips.mkdir(parents=True, exist_ok=True)
                writer = ShardWriter(layout.shard(clip_shard_name(split, part, first + len(rows))))
                vids, frames = set(), 0
            staged, samples, n = layout.staged(c["uid"]), indexes[c["uid"]], len(c["members"])
            members = {clip_frame_member(i, n): readers.read(staged, samples[j][1]["jpg"])
                       for i, j in enumerate(c["members"])}
            writer.write(c["key"], {**members, "json": c["json"], "txt": c["txt"]})
            vids.add(c["uid"])
            frames += n
            if frames >= shard_size or pos == len(order) - 1:
                count = writer.count
                size = writer.close()
                rows.append({"name": writer.path.name, "index": first + len(rows), "split": split, "count": count,
                             "frames": frames, "bytes": size, "videos": sorted(vids)})
                writer = None
                failpoints.hit("clip-shard-done")
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return rows


def _remove_unrecorded(folder: Path, stem: str, pattern: re.Pattern[str], first: int) -> None:
    """Delete a part's shards of one series (names ``{stem}NNNNN.tar`` matching ``pattern``) numbered
    ``first`` or more, and its temporaries: a killed pack left them, and no pack record names them."""
    for p in folder.glob(f"{stem}*.tar"):
        m = pattern.match(p.name)
        if m and int(m["index"]) >= first:
            p.unlink()
    remove_stale_tmp(folder, stem)


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
    """Regenerate the summary files from the records (``clips/sizes.json`` first, the root
    ``sizes.json``, which marks a finished ingest, last; clip shards stay out of ``shards.csv``
    and the manifest, whose readers count frames).

    Parts finishing at the same moment may each write these; each one re-reads the records after
    writing and repeats if they changed, so the last writer always publishes the complete state.
    """
    for _ in range(20):
        before = _state_signature(layout)
        publish_summaries(layout, [{"video_uid": v.video_uid, "source": v.source} for v in videos])
        if _state_signature(layout) == before:
            return
