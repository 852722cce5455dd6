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
each reader used to spell the paths by hand.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import read_json
from egoindex.errors import DatasetError

MANIFEST_COLUMNS = ["video_uid", "source", "split", "status", "reason", "duration_s", "frames",
                    "utterances", "utterances_dropped", "speech_s", "audio_s", "width", "height",
                    "native_fps", "warnings", "shards"]


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


def read_manifest(root: str | Path) -> list[dict[str, str]]:
    """The rows of ``manifest.csv`` (every video ingest saw, landed or not)."""
    path = ShardsLayout(root).manifest
    if not path.is_file():
        raise DatasetError(f"{root} has no manifest.csv: run `egoindex ingest` first (or let it finish)")
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def manifest_by_uid(root: str | Path) -> dict[str, dict[str, str]]:
    return {r["video_uid"]: r for r in read_manifest(root)}


def read_sizes(root: str | Path) -> dict[str, int]:
    """Samples per shard name, from ``sizes.json``."""
    path = ShardsLayout(root).sizes
    if not path.is_file():
        raise DatasetError(f"{root} has no sizes.json: run `egoindex ingest` first (or let it finish)")
    return {str(k): int(v) for k, v in read_json(path).items()}


def videos_dir(root: str | Path) -> Path | None:
    """The folder the videos were ingested from, when ingest recorded it."""
    path = ShardsLayout(root).source
    return Path(read_json(path)["videos_dir"]) if path.is_file() else None


def read_ingest_config(root: str | Path) -> dict[str, Any]:
    """The ingest configuration recorded in ``_ingest/config.json`` ({} when it is not there)."""
    path = ShardsLayout(root).config
    return dict(read_json(path)) if path.is_file() else {}


def read_transcript(root: str | Path, uid: str, *, kept_only: bool = True) -> list[dict[str, Any]]:
    """A video's utterances (``start``, ``end``, ``text`` and scores); by default only the kept,
    non-empty ones, which are what captions and the utterance table use."""
    path = ShardsLayout(root).transcript(uid)
    if not path.is_file():
        return []
    utts = read_json(path).get("utterances", [])
    if not kept_only:
        return list(utts)
    return [u for u in utts if u.get("kept", True) and u.get("text", "").strip()]
