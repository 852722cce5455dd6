"""SHARDS_DIR on disk: its paths and its small files, written and read here only.

::

    SHARDS_DIR/{train,val}-PPPP-NNNNN.tar     captioned (image, caption) pairs: what CLIP trainers read
    SHARDS_DIR/sizes.json                     pairs per pair shard (open_clip, training and the build read it)
    SHARDS_DIR/uncaptioned/uncaptioned-{train,val}-PPPP-NNNNN.tar   frames without a caption (the build only)
    SHARDS_DIR/uncaptioned/sizes.json         frames per uncaptioned shard
    SHARDS_DIR/clips/clips-{train,val}-PPPP-NNNNN.tar   one sample per kept utterance: its caption and frames
    SHARDS_DIR/clips/sizes.json               clips per clip shard (clip-level video models read it)
    SHARDS_DIR/manifest.csv                   one row per video: split, status, reason, counts
    SHARDS_DIR/shards.csv                     one row per shard
    SHARDS_DIR/transcripts/{uid}.json         every utterance with its scores and whether it was kept
    SHARDS_DIR/participants.json              ``--participants``: child, age, date, location per video uid
    SHARDS_DIR/_ingest/config.json            the IngestConfig that decides the output (resume checks it)
    SHARDS_DIR/_ingest/source.json            where the videos are (players, exports, benchmarks)
    SHARDS_DIR/_ingest/{videos,staging,packs}/ resumable per-video and per-pack state

Why two shard series: open_clip_train (and a plain ``wds.WebDataset(urls)`` loop) trains on every
sample that has a ``txt`` member and counts ``sizes.json`` as its epoch, so frames without speech
must not be in the shards a trainer is pointed at; the store still holds every frame, so the
build reads both series. Each ``sizes.json`` counts the shards beside it (the WebDataset
convention open_clip follows: it reads ``sizes.json`` from the folder of the first shard).
SHARDS_DIRs of egoindex 0.2 (:data:`SHARD_LAYOUT` 1) hold every frame in ``{split}-*.tar``, the
uncaptioned ones with an empty ``txt``; the build and egoindex's trainer still read them.

Why a third series (:data:`SHARD_LAYOUT` 3): a clip-level video model trains on the N frames of
one moment (an utterance), but the frame series spread a video's frames over many shards on
purpose, so no shard holds a moment. ``clips/`` stores each kept utterance once more as one sample
(its caption and the JPEG frames of its window, the same bytes), at the cost of the captioned
frames' bytes again. SHARDS_DIRs of layout 2 have no ``clips/``; frame training and the build read
them as they are.

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
                    "captioned_frames", "utterances", "utterances_dropped", "speech_s", "audio_s", "width", "height",
                    "native_fps", "warnings", "shards", "speech_seconds_by_speaker", "captions",
                    "dropped_by_reason", "language", "language_probability"]
SHARDS_CSV_COLUMNS = ["shard", "split", "captioned", "samples", "bytes", "videos", "path"]

#: Folder (under SHARDS_DIR) and file-name prefix of the uncaptioned-frame shards.
UNCAPTIONED = "uncaptioned"
#: Folder (under SHARDS_DIR) and file-name prefix of the clip shards (one sample per utterance).
CLIPS = "clips"
#: The shard layout this egoindex writes: 3 = captioned pairs in ``{split}-*.tar``, uncaptioned
#: frames in ``uncaptioned/``, one clip per kept utterance in ``clips/``; 2 = the same without
#: ``clips/``; 1 = egoindex 0.2 (every frame in ``{split}-*.tar``).
SHARD_LAYOUT = 3
#: The key of ``_ingest/config.json`` that records the shard layout (beside the IngestConfig fields).
SHARD_LAYOUT_KEY = "shard_layout"
#: The key of the per-speaker counts of a video record and the manifest (``speech_seconds_by_speaker``,
#: ``captioned_frames_by_speaker``) for captions without a speaker; ``egoindex train --speakers``
#: takes it as that speaker. A label spelled ``unknown`` means the same and is counted with them.
NO_SPEAKER = "unknown"
#: The key of a pack record's ``clip_stats`` that counts its clips per speaker (``NO_SPEAKER`` too).
SPEAKER_STATS = "clips_by_speaker"


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
        self.participants = self.root / "participants.json"
        self.uncaptioned = self.root / UNCAPTIONED
        self.uncaptioned_sizes = self.uncaptioned / "sizes.json"
        self.clips = self.root / CLIPS
        self.clip_sizes = self.clips / "sizes.json"

    def make(self) -> None:
        for d in (self.videos, self.staging, self.packs, self.transcripts, self.uncaptioned, self.clips):
            d.mkdir(parents=True, exist_ok=True)

    def record(self, uid: str) -> Path:
        return self.videos / f"{uid}.json"

    def staged(self, uid: str) -> Path:
        return self.staging / f"{uid}.tar"

    def transcript(self, uid: str) -> Path:
        return self.transcripts / f"{uid}.json"

    def pack(self, split: str, part: int, number: int) -> Path:
        return self.packs / f"{split}-{part:04d}-{number:05d}.json"

    def shard_dir(self, name: str) -> Path:
        """The folder of the shard called ``name`` (uncaptioned shards live in ``uncaptioned/``,
        clip shards in ``clips/``)."""
        if is_clip_name(name):
            return self.clips
        return self.uncaptioned if is_uncaptioned_name(name) else self.root

    def shard(self, name: str) -> Path:
        return self.shard_dir(name) / name


Where = str | Path | ShardsLayout


def as_layout(where: Where) -> ShardsLayout:
    """The layout of a SHARDS_DIR given as a path or already as a layout."""
    return where if isinstance(where, ShardsLayout) else ShardsLayout(where)


def is_uncaptioned_name(name: str) -> bool:
    """Whether a shard name is one of the uncaptioned series (``uncaptioned-{split}-...``)."""
    return name.startswith(UNCAPTIONED + "-")


def is_clip_name(name: str) -> bool:
    """Whether a shard name is one of the clip series (``clips-{split}-...``)."""
    return name.startswith(CLIPS + "-")


def is_captioned(txt: bytes | None) -> bool:
    """The one rule for "this frame has a caption" (it goes to a pair shard, trainers read it):
    a ``txt`` member that is not empty or blank."""
    return bool(txt and txt.strip())


def shard_layout(root: Where) -> int:
    """Which shard layout a SHARDS_DIR has (:data:`SHARD_LAYOUT`): the one recorded in
    ``_ingest/config.json``; without it (copied without ``_ingest/``), 3 when ``uncaptioned/sizes.json``
    and ``clips/sizes.json`` are there (ingest always writes both), 2 with the first only, else 1
    (egoindex 0.2); a folder without ``sizes.json`` (nothing finished yet) counts as the current
    layout."""
    lay = as_layout(root)
    recorded = read_ingest_config(lay).get(SHARD_LAYOUT_KEY)
    if recorded is not None:
        return int(recorded)
    if has_ingest_config(lay):  # an _ingest/config.json without the key: written by 0.2
        return 1
    if not lay.sizes.is_file():
        return SHARD_LAYOUT
    if lay.uncaptioned_sizes.is_file():
        return 3 if lay.clip_sizes.is_file() else 2
    return 1


# ----------------------------------------------------------------------------------------------
# manifest.csv, shards.csv, sizes.json (published by ingest's finalize, read by everyone)


def write_manifest(where: Where, rows: Iterable[Mapping[str, Any]]) -> None:
    """``manifest.csv`` from per-video records: ``warnings`` (a list) joined by ``"; "``,
    ``shards`` (a list of names) by spaces, a mapping (``speech_seconds_by_speaker``) as JSON
    with sorted keys, keys outside :data:`MANIFEST_COLUMNS` left out."""
    with atomic_open(as_layout(where).manifest, "w") as f:
        w = csv.DictWriter(f, MANIFEST_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for rec in rows:
            row = dict(rec)
            row["warnings"] = "; ".join(rec.get("warnings") or [])
            row["shards"] = " ".join(rec.get("shards") or [])
            for k, v in rec.items():
                if isinstance(v, Mapping):
                    row[k] = json.dumps(v, sort_keys=True, ensure_ascii=False)
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


def read_speech_by_speaker(row: Mapping[str, Any]) -> dict[str, float]:
    """A manifest row's (or video record's) ``speech_seconds_by_speaker`` as a dict ({} for a
    row written before the column existed, or of a video that was not ingested)."""
    v = row.get("speech_seconds_by_speaker")
    if isinstance(v, Mapping):
        return {str(k): float(x) for k, x in v.items()}
    return {str(k): float(x) for k, x in json.loads(v).items()} if v else {}


def write_shards_csv(where: Where, shard_rows: Iterable[Mapping[str, Any]]) -> None:
    """``shards.csv``: one row per shard (name, split, captioned 1/0, samples, bytes, number of
    videos, path under SHARDS_DIR) from the shard rows of the pack records (``name``, ``split``,
    ``count``, ``bytes``, ``videos``)."""
    lay = as_layout(where)
    with atomic_open(lay.shards_csv, "w") as f:
        w = csv.writer(f)
        w.writerow(SHARDS_CSV_COLUMNS)
        for s in shard_rows:
            name = s["name"]
            w.writerow([name, s["split"], int(not is_uncaptioned_name(name)), s["count"], s["bytes"],
                        len(s["videos"]), lay.shard(name).relative_to(lay.root).as_posix()])


def write_sizes(where: Where, sizes: Mapping[str, int]) -> None:
    """Both ``sizes.json`` files from samples per shard name: the pair shards' counts (pairs) in
    ``SHARDS_DIR/sizes.json``, the uncaptioned shards' in ``uncaptioned/sizes.json``. The
    uncaptioned file is written first: the root file is what marks a finished ingest."""
    lay = as_layout(where)
    counts = {str(k): int(v) for k, v in sizes.items()}
    lay.uncaptioned.mkdir(parents=True, exist_ok=True)
    write_json(lay.uncaptioned_sizes, {k: v for k, v in counts.items() if is_uncaptioned_name(k)})
    write_json(lay.sizes, {k: v for k, v in counts.items() if not is_uncaptioned_name(k)})


def publish_summaries(where: Where, videos: Iterable[Mapping[str, Any]]) -> None:
    """Regenerate the summary files from the pack and video records: ``clips/sizes.json``, both
    ``sizes.json`` (the root one, which marks a finished ingest, last of the three), ``shards.csv``
    and ``manifest.csv`` with one row per entry of ``videos`` (``video_uid``, ``source``; its
    record when it has one, else ``pending``). Clip shards stay out of ``shards.csv`` and the
    manifest, whose readers count frames. Ingest's finalize and a redaction both publish so."""
    lay = as_layout(where)
    records = read_pack_records(lay)
    shard_rows = sorted((s for r in records for s in r["shards"]), key=lambda s: s["name"])
    clip_rows = sorted((s for r in records for s in r.get("clips", [])), key=lambda s: s["name"])
    write_clip_sizes(lay, {s["name"]: s["count"] for s in clip_rows})
    write_sizes(lay, {s["name"]: s["count"] for s in shard_rows})
    by_video: dict[str, list[str]] = {}
    for s in shard_rows:
        for u in s["videos"]:
            by_video.setdefault(u, []).append(s["name"])
    write_shards_csv(lay, shard_rows)
    rows = []
    for v in videos:
        uid = str(v["video_uid"])
        rec = read_video_record(lay, uid) or {"video_uid": uid, "source": v.get("source", ""), "status": "pending"}
        rows.append({**rec, "shards": by_video.get(uid, [])})
    write_manifest(lay, rows)


def covered_seconds(spans: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by at least one ``(start, end)`` span: the record's and manifest's
    ``speech_s``. File narrations overlap (EgoClip's clip windows around each narration), and a
    sum would count those seconds twice."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(spans, key=lambda x: x[0]):  # by start only (stable): the order ingest always used
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def speech_seconds_by_speaker(utterances: Iterable[tuple[str | None, float, float]]) -> dict[str, float]:
    """The record's and manifest's ``speech_seconds_by_speaker`` from kept utterances as
    ``(speaker, start, end)``: for each speaker, :func:`covered_seconds` of its utterances (one
    speaker's overlapping narrations count once, two speakers talking at once both count); those
    without a speaker under :data:`NO_SPEAKER`. Rounded to the ms."""
    by: dict[str, list[tuple[float, float]]] = {}
    for who, s, e in utterances:
        by.setdefault(who if who is not None else NO_SPEAKER, []).append((float(s), float(e)))
    return {k: round(covered_seconds(v), 3) for k, v in sorted(by.items())}


def write_clip_sizes(where: Where, sizes: Mapping[str, int]) -> None:
    """``clips/sizes.json``: clips per clip shard (always written, empty when there are none, so
    a layout-3 folder is told apart without ``_ingest/``). Written before the root ``sizes.json``."""
    lay = as_layout(where)
    lay.clips.mkdir(parents=True, exist_ok=True)
    write_json(lay.clip_sizes, {str(k): int(v) for k, v in sizes.items()})


def read_clip_sizes(root: Where) -> dict[str, int]:
    """Clips per clip shard, from ``clips/sizes.json`` (a clip trainer's epoch). A SHARDS_DIR of
    shard layout 2 or 1 has none: it is refused with what to do."""
    lay = as_layout(root)
    if not lay.clip_sizes.is_file():
        if has_sizes(lay) and shard_layout(lay) < 3:
            raise DatasetError(
                f"{root} has no clip shards (shard layout {shard_layout(lay)}, written before clips/ existed): "
                "frame models train on it as it is; for a clip-level model ingest the videos into a new SHARDS_DIR")
        raise DatasetError(f"{root} has no clips/sizes.json: run `egoindex ingest` first (or let it finish)")
    return {str(k): int(v) for k, v in read_json(lay.clip_sizes).items()}


def has_sizes(root: Where) -> bool:
    return as_layout(root).sizes.is_file()


def read_pair_sizes(root: Where) -> dict[str, int]:
    """Samples per pair shard, from ``SHARDS_DIR/sizes.json`` (what open_clip reads). In a 0.2
    SHARDS_DIR (:func:`shard_layout` 1) these shards also hold the uncaptioned frames."""
    path = as_layout(root).sizes
    if not path.is_file():
        raise DatasetError(f"{root} has no sizes.json: run `egoindex ingest` first (or let it finish)")
    return {str(k): int(v) for k, v in read_json(path).items()}


def read_sizes(root: Where) -> dict[str, int]:
    """Samples per shard name over every shard the build reads: the pair shards and the
    uncaptioned ones (names are unique across the two series)."""
    sizes = read_pair_sizes(root)
    path = as_layout(root).uncaptioned_sizes
    if path.is_file():
        sizes.update({str(k): int(v) for k, v in read_json(path).items()})
    return sizes


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


def write_pack_record(where: Where, split: str, part: int, number: int, videos: Iterable[str],
                      shard_rows: list[dict[str, Any]], clip_rows: list[dict[str, Any]] | None = None,
                      clip_stats: Mapping[str, Any] | None = None) -> None:
    """Which ``videos`` the ``number``-th pack of a split and part put into which shards
    (``shard_rows``: ``name``, ``index``, ``split``, ``count``, ``bytes``, ``videos``, pair and
    uncaptioned shards; ``clip_rows``: the same for the clip shards, plus ``frames``, under
    ``clips``; ``clip_stats``: utterances, clips, utterances without frames, clips per speaker
    under :data:`SPEAKER_STATS`); written after the
    shards, so it names only complete ones. Clip rows sit apart from ``shards`` so that every
    reader of the frame series (sizes, ``shards.csv``, the manifest) sees what it saw before."""
    rec: dict[str, Any] = {"split": split, "part": part, "number": number, "videos": sorted(videos),
                           "shards": shard_rows}
    if clip_rows is not None:
        rec["clips"] = clip_rows
        rec["clip_stats"] = dict(clip_stats or {})
    write_json(as_layout(where).pack(split, part, number), rec)


def read_pack_records(root: Where, split: str | None = None) -> list[dict[str, Any]]:
    """Every readable pack record (of ``split`` when given), in file-name order; one cut short by
    a crash is passed over (its pack is redone)."""
    out = []
    for p in sorted(as_layout(root).packs.glob(f"{split}-*.json" if split else "*.json")):
        with contextlib.suppress(json.JSONDecodeError, OSError):
            out.append(read_json(p))
    return out


# ----------------------------------------------------------------------------------------------
# participants.json (``ingest --participants``; the build joins it into the store)


def write_participants(where: Where, by_uid: Mapping[str, Mapping[str, Any]]) -> None:
    """``participants.json``: ``{video_uid: {"child_id", "age_days", "date", "location", "extra"}}``
    for the videos the participants CSV names (``egoindex.ingest.participants``)."""
    write_json(as_layout(where).participants, {str(k): dict(v) for k, v in sorted(by_uid.items())})


def read_participants(root: Where) -> dict[str, dict[str, Any]]:
    """The participant of each video uid ({} without ``--participants``, or for a SHARDS_DIR
    ingested before it existed); a video it does not name has no participant."""
    path = as_layout(root).participants
    return {str(k): dict(v) for k, v in read_json(path).items()} if path.is_file() else {}


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
