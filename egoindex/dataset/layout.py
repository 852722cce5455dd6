"""SHARDS_DIR on disk: its paths and its small files, written and read here only.

::

    SHARDS_DIR/{train,val}-PPPP-NNNNN.tar     WebDataset shards (shards.py), split by video
    SHARDS_DIR/sizes.json                     samples per shard (the build and training read it)
    SHARDS_DIR/manifest.csv                   one row per video: split, status, reason, counts
    SHARDS_DIR/shards.csv                     one row per shard
    SHARDS_DIR/transcripts/{uid}.json         every utterance with its scores and whether it was kept
    SHARDS_DIR/_ingest/config.json            the IngestConfig that decides the output (resume checks it)
    SHARDS_DIR/_ingest/source.json            where the videos are (players, exports, benchmarks)
    SHARDS_DIR/_ingest/{videos,staging,packs}/ resumable per-video and per-pack state

Why one owner: ingest writes these files and the build, training, export and benchmarks read them;
each reader used to spell the paths by hand. Each format's writer sits next to its reader here, so
a change of format is one edit. Every function takes the SHARDS_DIR path or its :class:`ShardsLayout`.

The per-video records (``_ingest/videos/{uid}.json``: status, reason, counts, file fingerprint)
and pack records (``_ingest/packs/{split}-{part}-{first}.json``: which videos went into which
shards, with each shard's row) are ingest's resume state; training reads them for the number of
captioned frames, so they are read here too.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import atomic_open, read_json, write_json
from egoindex.errors import DatasetError

MANIFEST_COLUMNS = ["video_uid", "source", "split", "status", "reason", "duration_s", "frames",
                    "utterances", "utterances_dropped", "speech_s", "audio_s", "width", "height",
                    "native_fps", "warnings", "shards"]
SHARDS_CSV_COLUMNS = ["shard", "split", "samples", "bytes", "videos"]


class ShardsLayout:
    """Paths inside SHARDS_DIR (one obvious place for each)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.work = self.root / "_ingest"
        self.config = self.work / "config.json"
        self.source = self.work / "source.json"
        self.videos = self.work / "videos"
        self.staging = self.work / "staging"
        self.packs = self.work / "packs"
        self.transcripts = self.root / "transcripts"
        self.sizes = self.root / "sizes.json"
        self.manifest = self.root / "manifest.csv"
        self.shards_csv = self.root / "shards.csv"

    def make(self) -> None:
        for d in (self.videos, self.staging, self.packs, self.transcripts):
            d.mkdir(parents=True, exist_ok=True)

    def record(self, uid: str) -> Path:
        return self.videos / f"{uid}.json"

    def staged(self, uid: str) -> Path:
        return self.staging / f"{uid}.tar"

    def transcript(self, uid: str) -> Path:
        return self.transcripts / f"{uid}.json"

    def pack(self, split: str, part: int, first: int) -> Path:
        return self.packs / f"{split}-{part:04d}-{first:05d}.json"


Where = str | Path | ShardsLayout


def as_layout(where: Where) -> ShardsLayout:
    """The layout of a SHARDS_DIR given as a path or already as a layout."""
    return where if isinstance(where, ShardsLayout) else ShardsLayout(where)


# ----------------------------------------------------------------------------------------------
# manifest.csv, shards.csv, sizes.json (published by ingest's finalize, read by everyone)


def write_manifest(where: Where, rows: Iterable[Mapping[str, Any]]) -> None:
    """``manifest.csv`` from per-video records: ``warnings`` (a list) joined by ``"; "``,
    ``shards`` (a list of names) by spaces, keys outside :data:`MANIFEST_COLUMNS` left out."""
    with atomic_open(as_layout(where).manifest, "w") as f:
        w = csv.DictWriter(f, MANIFEST_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for rec in rows:
            row = dict(rec)
            row["warnings"] = "; ".join(rec.get("warnings") or [])
            row["shards"] = " ".join(rec.get("shards") or [])
            w.writerow(row)


def read_manifest(root: Where) -> list[dict[str, str]]:
    """The rows of ``manifest.csv`` (every video ingest saw, landed or not)."""
    path = as_layout(root).manifest
    if not path.is_file():
        raise DatasetError(f"{root} has no manifest.csv: run `egoindex ingest` first (or let it finish)")
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def manifest_by_uid(root: Where) -> dict[str, dict[str, str]]:
    return {r["video_uid"]: r for r in read_manifest(root)}


def write_shards_csv(where: Where, shard_rows: Iterable[Mapping[str, Any]]) -> None:
    """``shards.csv``: one row per shard (name, split, samples, bytes, number of videos) from the
    shard rows of the pack records (``name``, ``split``, ``count``, ``bytes``, ``videos``)."""
    with atomic_open(as_layout(where).shards_csv, "w") as f:
        w = csv.writer(f)
        w.writerow(SHARDS_CSV_COLUMNS)
        for s in shard_rows:
            w.writerow([s["name"], s["split"], s["count"], s["bytes"], len(s["videos"])])


def write_sizes(where: Where, sizes: Mapping[str, int]) -> None:
    """``sizes.json``: samples per shard name (the file open_clip and the build read)."""
    write_json(as_layout(where).sizes, {str(k): int(v) for k, v in sizes.items()})


def has_sizes(root: Where) -> bool:
    return as_layout(root).sizes.is_file()


def read_sizes(root: Where) -> dict[str, int]:
    """Samples per shard name, from ``sizes.json``."""
    path = as_layout(root).sizes
    if not path.is_file():
        raise DatasetError(f"{root} has no sizes.json: run `egoindex ingest` first (or let it finish)")
    return {str(k): int(v) for k, v in read_json(path).items()}


# ----------------------------------------------------------------------------------------------
# _ingest/source.json, _ingest/config.json


def write_source(where: Where, videos: Path) -> None:
    """Record where the videos are (absolute), for players, exports and benchmarks."""
    write_json(as_layout(where).source, {"videos_dir": str(Path(videos).resolve())})


def videos_dir(root: Where) -> Path | None:
    """The folder the videos were ingested from, when ingest recorded it."""
    path = as_layout(root).source
    return Path(read_json(path)["videos_dir"]) if path.is_file() else None


def write_ingest_config(where: Where, config: Mapping[str, Any]) -> None:
    """Record the settings that decide the output (``asdict(IngestConfig)``), checked on rerun."""
    write_json(as_layout(where).config, dict(config))


def has_ingest_config(root: Where) -> bool:
    return as_layout(root).config.is_file()


def read_ingest_config(root: Where) -> dict[str, Any]:
    """The ingest configuration recorded in ``_ingest/config.json`` ({} when it is not there)."""
    path = as_layout(root).config
    return dict(read_json(path)) if path.is_file() else {}


# ----------------------------------------------------------------------------------------------
# _ingest/videos/{uid}.json, _ingest/packs/*.json (resume state)


def write_video_record(where: Where, record: Mapping[str, Any]) -> None:
    """A video's record (``video_uid``, ``status``, ``reason``, counts, fingerprint): written
    atomically, and its presence means the video is finished."""
    write_json(as_layout(where).record(str(record["video_uid"])), dict(record))


def read_video_record(root: Where, uid: str) -> dict[str, Any] | None:
    """A video's record, or None when the video is not finished."""
    path = as_layout(root).record(uid)
    return dict(read_json(path)) if path.is_file() else None


def write_pack_record(where: Where, split: str, part: int, first: int, videos: Iterable[str],
                      shard_rows: list[dict[str, Any]]) -> None:
    """Which ``videos`` one pack put into which shards (``shard_rows``: ``name``, ``index``,
    ``split``, ``count``, ``bytes``, ``videos``); written after the shards, so it names only
    complete ones."""
    write_json(as_layout(where).pack(split, part, first),
               {"split": split, "part": part, "first": first, "videos": sorted(videos), "shards": shard_rows})


def read_pack_records(root: Where, split: str | None = None) -> list[dict[str, Any]]:
    """Every readable pack record (of ``split`` when given), in file-name order; one cut short by
    a crash is passed over (its pack is redone)."""
    out = []
    for p in sorted(as_layout(root).packs.glob(f"{split}-*.json" if split else "*.json")):
        with contextlib.suppress(json.JSONDecodeError, OSError):
            out.append(read_json(p))
    return out


# ----------------------------------------------------------------------------------------------
# transcripts/{uid}.json


def write_transcript(where: Where, uid: str, transcript: Mapping[str, Any]) -> None:
    """A video's transcript: ``video_uid``, ``source``, ``model``, audio statistics, the
    thresholds and every utterance (``Utterance.to_json``: kept or not, with its scores)."""
    write_json(as_layout(where).transcript(uid), dict(transcript))


def read_transcript(root: Where, uid: str, *, kept_only: bool = True) -> list[dict[str, Any]]:
    """A video's utterances (``start``, ``end``, ``text`` and scores); by default only the kept,
    non-empty ones, which are what captions and the utterance table use."""
    path = as_layout(root).transcript(uid)
    if not path.is_file():
        return []
    utts = read_json(path).get("utterances", [])
    if not kept_only:
        return list(utts)
    return [u for u in utts if u.get("kept", True) and u.get("text", "").strip()]
