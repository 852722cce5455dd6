"""WebDataset input pipelines for training and validation (webdataset 1.x).

Training streams the ``train-*.tar`` pair shards of an ``egoindex ingest`` folder forever (the
frames without a caption are in ``uncaptioned/``, which training never reads): each
(rank, loader worker) pair reads its own share of the shards, so the epoch length is a number of
steps fixed by the loop, every rank takes the same number of steps (no DDP hang on uneven
data), and a resumed run starts where the killed one approximately was. Two ways to share:

* split (default): every pass over the data is one seeded permutation of the shards, dealt out
  round-robin to the ``world_size * workers`` readers (each shard read once per pass; with fewer
  shards than readers, shards are repeated so that every reader has one).
* resampled: every reader draws shards with replacement from its own seeded stream
  (open_clip's ``--dataset-resampled``), for corpora too big to ever finish a pass.

Samples with an empty caption are still dropped before their JPEG is decoded: the pair shards of
an egoindex 0.2 SHARDS_DIR hold the frames without speech too.
Damaged samples and shards are skipped and recorded (``FaultLog``), never silently cut short.
Each sample carries two 64-bit keys: ``text_key`` (hash of the normalised caption, used by the
loss to stop identical captions acting as negatives of each other) and ``utt_key`` (hash of the
utterance id, used by validation to group the frames of one utterance).

Speakers (``--speakers FEM,MAL``): only the samples whose utterance's speaker is one of these
(:func:`speaker_key`: the sample json's ``utterance.speaker``, ``NO_SPEAKER`` without one) are
trained and validated on, the rest are left out before their JPEG is decoded, as child-vision
studies train on the adults' speech only: a frame during the child's own babble is not a pair of
that run at all (rather than a frame with an empty caption, which the contrastive loss cannot
use). The epoch counts those pairs only (:func:`count_train_samples`: the ingest records'
captioned frames per speaker; clips: the pack records' clips per speaker).

Loader workers are started with ``spawn``: forking a process that has touched LanceDB (or CUDA)
can crash the child.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from egoindex.dataset.layout import (NO_SPEAKER, SPEAKER_STATS, has_sizes, is_captioned, read_clip_sizes,
                                     read_pack_records, read_pair_sizes, read_video_record, shard_layout)
from egoindex.dataset.shards import clip_sample_frames, list_clip_shards, list_pair_shards, read_shard
from egoindex.errors import DatasetError
from egoindex.metrics.egomcq import EGOCLIP_NOUN_DIM, EGOCLIP_VERB_DIM, tag_index
from egoindex.metrics.tags import tag_text
from egoindex.model.pooling import segment_indices
from egoindex.train.shuffle import ShuffledCaptions


@dataclass
class Batch:
    """One batch. ``images`` is ``[B, 3, H, W]`` for frame models and ``[B, T, 3, H, W]`` for clip
    models; ``verbs``/``nouns`` are EgoNCE's multi-hot tags (``--loss egonce`` only). With scene-aware
    negatives the batch holds ``2B`` rows: the B anchors, then one clip of the same video at another
    time for each (``negatives`` counts those rows that really are same-video clips)."""

    images: torch.Tensor
    tokens: torch.Tensor  # [B, context]
    text_keys: torch.Tensor  # [B] int64
    utt_keys: torch.Tensor  # [B] int64
    verbs: torch.Tensor | None = None  # [B, EGOCLIP_VERB_DIM] uint8
    nouns: torch.Tensor | None = None  # [B, EGOCLIP_NOUN_DIM] uint8
    negatives: int = 0

    def to(self, device: torch.device) -> Batch:
        nb = device.type == "cuda"
        tags = [t.to(device) if t is not None else None for t in (self.verbs, self.nouns)]
        return Batch(self.images.to(device, non_blocking=nb), self.tokens.to(device, non_blocking=nb),
                     self.text_keys.to(device), self.utt_keys.to(device), tags[0], tags[1], self.negatives)


def key64(s: str) -> int:
    """A signed 64-bit hash (stable across processes and machines, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


def normalize_text(text: str) -> str:
    """Captions that differ only in case or spacing are the same caption to the text tower's eyes."""
    return " ".join(text.lower().split())


def speaker_key(meta: dict[str, Any]) -> str:
    """The speaker a sample (frame or clip json) trains as: its utterance's, else ``NO_SPEAKER``."""
    who = (meta.get("utterance") or {}).get("speaker")
    return str(who) if who is not None else NO_SPEAKER


def has_speaker(sample: dict[str, Any], speakers: frozenset[str]) -> bool:
    """Whether a raw sample's utterance is one of ``speakers`` (its json read, its JPEG not)."""
    return speaker_key(json.loads(sample["json"])) in speakers


def _speaker_stage(speakers: list[str] | None) -> list[Any]:
    """The pipeline stage that keeps ``speakers``' samples only ([] for all)."""
    return [wds.select(partial(has_speaker, speakers=frozenset(speakers)))] if speakers else []


def count_speaker_pairs(root: Path, names: set[str], speakers: list[str]) -> tuple[int, str]:
    """Captioned train frames of ``speakers`` in the pair shards ``names``, from the ingest records
    (``captioned_frames_by_speaker``); refused for records written before it existed, and when
    no pair has one of these speakers (naming the speakers there are)."""
    packs = read_pack_records(root, "train")
    videos = sorted({u for rec in packs for s in rec["shards"] if s["name"] in names for u in s["videos"]})
    records = {u: read_video_record(root, u) for u in videos}
    old = [u for u, r in records.items() if r is None or "captioned_frames_by_speaker" not in r]
    if not videos or old:
        why = f"the records of {len(old)} train videos lack them" if old else "there are no records of its train shards"
        raise DatasetError(f"--speakers counts the epoch with the ingest records' captioned frames per speaker, and in "
                           f"{root} {why} (ingested before speakers existed, or copied without _ingest/): ingest again "
                           "into a new SHARDS_DIR, or pass --train-num-samples")
    found: dict[str, int] = {}
    for r in records.values():
        for who, n in (r or {}).get("captioned_frames_by_speaker", {}).items():
            found[who] = found.get(who, 0) + int(n)
    n = sum(found.get(s, 0) for s in speakers)
    if n == 0:
        raise DatasetError(f"no train captions of {', '.join(speakers)} in {root}; its train pairs' speakers: "
                           + (", ".join(f"{k} {v}" for k, v in sorted(found.items())) or "none"))
    return n, f"captioned frames of {','.join(speakers)} in _ingest records"


def count_train_samples(shards_dir: Path, speakers: list[str] | None = None) -> tuple[int, str]:
    """Samples per pass over the train shards and where the number came from (with ``speakers``:
    :func:`count_speaker_pairs`).

    The pair shards hold only captioned frames, so ``sizes.json`` (the number open_clip_train
    uses too) is exact. In an egoindex 0.2 SHARDS_DIR they also hold the frames with an empty
    caption, which training skips: there the captioned-frame counts of the ingest records are
    used, or the ``sizes.json`` total (all frames) when the records are not there (shards copied
    without ``_ingest/``).
    """
    root = Path(shards_dir)
    names = {p.name for p in list_pair_shards(root, "train")}
    if not names:
        raise DatasetError(f"no train-*.tar shards in {root}")
    if speakers:
        return count_speaker_pairs(root, names, speakers)
    if shard_layout(root) >= 2 and has_sizes(root):
        return sum(n for name, n in read_pair_sizes(root).items() if name in names), "sizes.json (captioned pairs)"
    packs = read_pack_records(root, "train")
    videos = {u for rec in packs for s in rec["shards"] if s["name"] in names for u in s["videos"]}
    records = [read_video_record(root, u) for u in videos]
    if packs and videos and all(r is not None for r in records):
        return sum(int(r.get("captioned_frames", 0)) for r in records if r), "captioned frames in _ingest records"
    if has_sizes(root):
        return sum(n for name, n in read_pair_sizes(root).items() if name in names), "sizes.json (all frames)"
    raise DatasetError(f"cannot tell how many samples {root} holds: no _ingest records and no sizes.json; "
                       "pass --train-num-samples")


def _reader_slot(rank: int, world_size: int) -> tuple[int, int]:
    """(this reader's index, number of readers) over all ranks and loader workers."""
    info = get_worker_info()
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nw + wid, world_size * nw


class ShardStream(IterableDataset):
    """Endless ``{"url": ...}`` stream of this reader's shards (see module docstring)."""

    def __init__(self, urls: list[str], *, rank: int, world_size: int, seed: int, start_pass: float = 0.0,
                 resampled: bool = False):
        super().__init__()
        self.urls, self.rank, self.world_size = list(urls), rank, world_size
        self.seed, self.start_pass, self.resampled = seed, start_pass, resampled

    def __iter__(self) -> Iterator[dict[str, str]]:
        slot, slots = _reader_slot(self.rank, self.world_size)
        if self.resampled:
            rng = random.Random(f"resampled/{self.seed}/{slot}/{self.start_pass:.6f}")
            while True:
                yield {"url": rng.choice(self.urls)}
        pass_no, frac = int(self.start_pass), self.start_pass % 1.0
        while True:
            perm = random.Random(f"pass/{self.seed}/{pass_no}").sample(self.urls, len(self.urls))
            dealt = [perm[i % len(perm)] for i in range(max(len(perm), slots))]
            mine = dealt[slot::slots]
            for url in mine[int(frac * len(mine)):]:
                yield {"url": url}
            pass_no, frac = pass_no + 1, 0.0


class ReaderShuffle(wds.utils.PipelineStage):
    """webdataset's buffer shuffle, seeded per reader (a fixed seed would shuffle alike everywhere)."""

    def __init__(self, bufsize: int, *, rank: int, world_size: int, seed: int, start_pass: float):
        self.bufsize, self.rank, self.world_size = bufsize, rank, world_size
        self.seed, self.start_pass = seed, start_pass

    def run(self, src: Iterator[Any]) -> Iterator[Any]:
        slot, _ = _reader_slot(self.rank, self.world_size)
        rng = random.Random(f"shuffle/{self.seed}/{slot}/{self.start_pass:.6f}")
        return wds.shuffle(self.bufsize, min(self.bufsize, 100), rng=rng)(src)


class FaultLog:
    """Damaged samples and shards the readers skip: a warning each, and one JSON line each in
    ``path`` (``RUN_DIR/data_faults.jsonl``: time, rank, split, shard, key, reason), so a run that
    trained on less than its shards hold says so in its run dir, as the build does in its
    metadata. One line per encounter: a damaged sample is met again every pass.

    Loader workers are spawned processes: each appends its own lines (one small ``O_APPEND``
    write per line), so nothing is lost between workers or ranks sharing the file."""

    def __init__(self, path: Path | None, rank: int = 0):
        self.path = str(path) if path is not None else None
        self.rank = rank

    def record(self, split: str, url: str, key: str | None, reason: str) -> None:
        shard = Path(url).name
        warnings.warn(f"skipped {'sample ' + key if key else 'the rest of the shard'} of {shard}: {reason}",
                      stacklevel=2)
        if self.path is None:
            return
        line = json.dumps({"time": round(time.time(), 3), "rank": self.rank, "split": split, "shard": shard,
                           "key": key, "reason": reason}, ensure_ascii=False)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def count(self) -> int:
        """Lines recorded so far (by every rank and worker)."""
        if self.path is None or not Path(self.path).is_file():
            return 0
        with open(self.path, "rb") as f:
            return sum(1 for _ in f)


def read_samples(src: Iterator[dict[str, str]], faults: FaultLog, split: str) -> Iterator[dict[str, Any]]:
    """``{"url"}`` items -> WebDataset samples (``__key__``, ``__url__``, one entry per member),
    through the build's tar reader: it notices a tar that stops at a corrupt member header, which
    Python's tarfile (and so webdataset) treats as a silent end of the archive."""
    for item in src:
        url = item["url"]
        for key, sample in read_shard(Path(url)):
            if key is None:
                faults.record(split, url, None, str(sample))
                break
            yield {"__key__": key, "__url__": url, **sample}  # type: ignore[dict-item]


def decode_samples(src: Iterator[dict[str, Any]], faults: FaultLog, split: str, prepare_fn: Callable[..., Any] | None = None,
                   **prepare_kw: Any) -> Iterator[Any]:
    """``prepare_fn`` (default :func:`prepare`; :func:`prepare_clip` for clip shards) each sample;
    one that cannot be decoded (not a JPEG, bad UTF-8, bad JSON, missing frames) is recorded and
    skipped, and the rest of its shard goes on."""
    fn = prepare_fn or prepare
    for sample in src:
        try:
            yield fn(sample, **prepare_kw)
        except Exception as e:
            faults.record(split, sample.get("__url__", ""), sample.get("__key__"), repr(e)[:300])


def has_text(sample: dict[str, Any]) -> bool:
    return is_captioned(sample.get("txt"))


def drop_words(text: str, p: float, rng: Any) -> str:
    """Caption word dropout: with probability 1/2 keep each word with probability 1 - p.

    ``rng`` is the ``random`` module in loader workers (torch seeds it per worker) or a Random.
    """
    if p <= 0 or rng.random() < 0.5:
        return text
    words = text.split()
    kept = [w for w in words if rng.random() >= p]
    return " ".join(kept) if kept else rng.choice(words) if words else text


def tag_ids(utterance: dict[str, Any] | None, text: str) -> tuple[list[int], list[int]]:
    """EgoNCE's verb and noun tag ids of a caption.

    The caption file's own tags when it carries them (EgoClip's ``tag_verb``/``tag_noun``, Ego4D
    taxonomy ids), else the package's offline tagger (:func:`egoindex.metrics.tags.tag_text`) with
    each word hashed into the same index space (:func:`egoindex.metrics.egomcq.tag_index`, the ids
    generated EgoMCQ files carry). Hashing can make two different words share an id (1 in 118 for
    verbs); a false action-positive then needs a verb AND a noun collision."""
    utt = utterance or {}
    tv, tn = utt.get("tag_verb"), utt.get("tag_noun")
    if isinstance(tv, list) and isinstance(tn, list):
        return ([int(i) % EGOCLIP_VERB_DIM for i in tv], [int(i) % EGOCLIP_NOUN_DIM for i in tn])
    verbs, nouns = tag_text(text)
    return [tag_index(w, EGOCLIP_VERB_DIM) for w in verbs], [tag_index(w, EGOCLIP_NOUN_DIM) for w in nouns]


def multi_hot(ids: list[list[int]], dim: int) -> torch.Tensor:
    out = torch.zeros((len(ids), dim), dtype=torch.uint8)
    for i, row in enumerate(ids):
        if row:
            out[i, torch.tensor(row, dtype=torch.int64)] = 1
    return out


def prepare(sample: dict[str, Any], preprocess: Callable[[Image.Image], torch.Tensor], word_drop: float = 0.0,
            with_tags: bool = False, captions: ShuffledCaptions | None = None) -> tuple:
    """Raw tar members -> (image tensor, caption, text key, utterance key, verb ids, noun ids).

    The text key is the hash of the *original* caption even when words were dropped: frames of
    one utterance stay duplicates of each other for the loss whatever their augmented text. Tags
    (of the original caption) only with ``with_tags`` (EgoNCE), else None. With ``captions`` (the
    shuffled-pairs control) the sample carries the caption and tags its utterance was given there.
    """
    with Image.open(io.BytesIO(sample["jpg"])) as im:
        image = preprocess(im.convert("RGB"))
    text = sample["txt"].decode("utf-8").strip()
    meta = json.loads(sample["json"])
    utt = meta.get("utterance") or {}
    utt_id = utt.get("id") or f"{meta.get('video_uid')}/{text}"
    if captions is not None:
        text, utt = captions.apply(utt_id, text, utt)
    verbs, nouns = tag_ids(utt, text) if with_tags else (None, None)
    return image, drop_words(text, word_drop, random), key64(normalize_text(text)), key64(utt_id), verbs, nouns


def collate(samples: list[tuple], tokenizer: Callable[[list[str]], torch.Tensor], negatives: int = 0) -> Batch:
    """Stack a batch; captions are tokenised per batch in the worker (cheaper than per sample)."""
    images, texts, tkeys, ukeys, verbs, nouns = zip(*samples)
    tagged = verbs[0] is not None
    return Batch(torch.stack(images), tokenizer(list(texts)), torch.tensor(tkeys, dtype=torch.int64),
                 torch.tensor(ukeys, dtype=torch.int64),
                 multi_hot(list(verbs), EGOCLIP_VERB_DIM) if tagged else None,
                 multi_hot(list(nouns), EGOCLIP_NOUN_DIM) if tagged else None, negatives)


# ----------------------------------------------------------------------------------------------
# Clip samples (clip-level video models): SHARDS_DIR/clips/clips-{split}-*.tar, one moment each


@dataclass
class ClipSample:
    """One decoded training clip (a moment of a video with its caption)."""

    video: torch.Tensor  # [T, 3, H, W]
    text: str
    text_key: int
    utt_key: int
    verbs: list[int] | None
    nouns: list[int] | None
    video_uid: str
    start: float
    end: float

    def row(self) -> tuple:
        return self.video, self.text, self.text_key, self.utt_key, self.verbs, self.nouns


def same_crop(preprocess: Callable[[Image.Image], torch.Tensor], images: list[Image.Image], seed: int) -> torch.Tensor:
    """``preprocess`` every frame of a clip with the SAME random crop and flip: torch's RNG is
    reseeded identically before each frame (and restored after), so the random-resized crop of
    open_clip's train transform draws the same box for all of them. Independent crops per frame
    would move the object between frames and make motion (the point of a clip model) noise."""
    out = []
    for im in images:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out.append(preprocess(im))
    return torch.stack(out)


def prepare_clip(sample: dict[str, Any], preprocess: Callable[[Image.Image], torch.Tensor], num_frames: int,
                 train: bool, word_drop: float = 0.0, with_tags: bool = False,
                 captions: ShuffledCaptions | None = None) -> ClipSample:
    """A clip-shard sample -> ``num_frames`` preprocessed frames (:func:`egoindex.model.pooling.segment_indices`:
    random frame per segment in training, segment middles otherwise) and its caption, keys and tags."""
    meta, jpegs = clip_sample_frames(sample)
    if not jpegs:
        raise DatasetError("clip sample without frames")
    rng = np.random.default_rng(random.getrandbits(63)) if train else None
    idx = segment_indices(len(jpegs), num_frames, rng)
    images = []
    for i in idx.tolist():
        with Image.open(io.BytesIO(jpegs[i])) as im:
            images.append(im.convert("RGB"))
    video = same_crop(preprocess, images, random.getrandbits(63) if train else 0)
    text = sample["txt"].decode("utf-8").strip()
    utt = meta.get("utterance") or {}
    uid = str(meta.get("video_uid"))
    utt_id = utt.get("id") or f"{uid}/{text}"
    if captions is not None:
        text, utt = captions.apply(utt_id, text, utt)
    verbs, nouns = tag_ids(utt, text) if with_tags else (None, None)
    return ClipSample(video, drop_words(text, word_drop, random) if train else text, key64(normalize_text(text)),
                      key64(utt_id), verbs, nouns, uid, float(utt.get("start", 0.0)), float(utt.get("end", 0.0)))


class SceneNegatives(wds.utils.PipelineStage):
    """EgoNCE's scene-aware negatives: pair every clip with a clip of the SAME video at another time.

    Clip shards keep a video's clips together in runs of up to 8 (``egoindex.ingest.pack``), so a
    small per-video memory finds a partner without a second read: each incoming clip is paired
    with a random remembered clip of its video that does not overlap it in time and has another
    caption; a clip with no partner yet waits (per video) and is paired with the next clip of its
    video that fits. When more than ``max_waiting`` clips wait (videos with a single moment), the
    oldest goes out with a clip of another video instead, so no clip is ever lost; such rows are
    counted (``(anchor, negative, same_video)`` items) and the loop logs the fraction."""

    def __init__(self, *, rank: int, world_size: int, seed: int, start_pass: float, memory: int = 8,
                 max_waiting: int = 64):
        self.rank, self.world_size, self.seed, self.start_pass = rank, world_size, seed, start_pass
        self.memory, self.max_waiting = memory, max_waiting

    @staticmethod
    def fits(a: ClipSample, b: ClipSample) -> bool:
        return a.video_uid == b.video_uid and a.text_key != b.text_key and (a.end <= b.start or b.end <= a.start)

    def run(self, src: Iterator[ClipSample]) -> Iterator[tuple[ClipSample, ClipSample, bool]]:
        slot, _ = _reader_slot(self.rank, self.world_size)
        rng = random.Random(f"scene/{self.seed}/{slot}/{self.start_pass:.6f}")
        recent: dict[str, list[ClipSample]] = {}
        waiting: list[ClipSample] = []
        for clip in src:
            still: list[ClipSample] = []
            for w in waiting:
                if self.fits(w, clip):
                    yield w, clip, True
                else:
                    still.append(w)
            waiting = still
            mem = recent.setdefault(clip.video_uid, [])
            partners = [c for c in mem if self.fits(clip, c)]
            if partners:
                yield clip, rng.choice(partners), True
            else:
                waiting.append(clip)
            mem.append(clip)
            del mem[:-self.memory]
            if len(recent) > 4 * self.max_waiting:  # forget the videos seen longest ago
                for uid in list(recent)[: len(recent) - 4 * self.max_waiting]:
                    del recent[uid]
            while len(waiting) > self.max_waiting:
                old = waiting.pop(0)
                others = [c for m in recent.values() for c in m[-1:] if c.video_uid != old.video_uid]
                yield old, (rng.choice(others) if others else clip), False
        last = [m[-1] for m in recent.values()]
        for old in waiting:  # the stream ended (validation-sized inputs, tests): nobody is lost
            others = [c for c in last if c.video_uid != old.video_uid]
            yield old, (rng.choice(others) if others else old), False


def collate_clips(samples: list[Any], tokenizer: Callable[[list[str]], torch.Tensor]) -> Batch:
    """Stack clips (``[B, T, 3, H, W]``); (anchor, negative, same_video) triples give ``2B`` rows,
    anchors first (EgoVLP's order: the batch, then its negatives)."""
    if samples and isinstance(samples[0], tuple):
        rows = [a.row() for a, _, _ in samples] + [n.row() for _, n, _ in samples]
        return collate(rows, tokenizer, negatives=sum(1 for _, _, same in samples if same))
    return collate([c.row() for c in samples], tokenizer)


def clip_urls(shards_dir: Path, split: str) -> list[str]:
    return [str(p) for p in list_clip_shards(Path(shards_dir), split)]


def count_train_clips(shards_dir: Path, speakers: list[str] | None = None) -> tuple[int, str]:
    """Clips per pass over the train clip shards (``clips/sizes.json``; with ``speakers``, the
    pack records' clips of those speakers)."""
    names = {Path(u).name for u in clip_urls(shards_dir, "train")}
    if not names:
        raise DatasetError(f"no clip shards (clips/clips-train-*.tar) in {shards_dir}: clip models train on the "
                           "clip series that `egoindex ingest` writes since shard layout 3; ingest into a new "
                           "SHARDS_DIR to get them")
    if speakers:
        packs = [r for r in read_pack_records(Path(shards_dir), "train") if r.get("clips")]
        if not packs or any(SPEAKER_STATS not in r.get("clip_stats", {}) for r in packs):
            raise DatasetError(f"--speakers counts the epoch with the pack records' clips per speaker, which "
                               f"{shards_dir} lacks (ingested before speakers existed): ingest again into a new "
                               "SHARDS_DIR, or pass --train-num-samples")
        found: dict[str, int] = {}
        for r in packs:
            for who, n in r["clip_stats"][SPEAKER_STATS].items():
                found[who] = found.get(who, 0) + int(n)
        n = sum(found.get(s, 0) for s in speakers)
        if n == 0:
            raise DatasetError(f"no train clips of {', '.join(speakers)} in {shards_dir}; its clips' speakers: "
                               + (", ".join(f"{k} {v}" for k, v in sorted(found.items())) or "none"))
        return n, f"clips of {','.join(speakers)} in _ingest pack records"
    sizes = read_clip_sizes(Path(shards_dir))
    return sum(n for name, n in sizes.items() if name in names), "clips/sizes.json"


def clip_train_loader(shards_dir: Path, *, preprocess: Callable, tokenizer: Callable, batch_size: int, workers: int,
                      rank: int, world_size: int, seed: int, num_frames: int, start_pass: float = 0.0,
                      resampled: bool = False, shuffle_buffer: int = 1000, pin: bool = False, word_drop: float = 0.0,
                      with_tags: bool = False, scene_negatives: bool = False,
                      captions: ShuffledCaptions | None = None, faults: FaultLog | None = None,
                      speakers: list[str] | None = None) -> DataLoader:
    """Endless loader of training clip batches (``batch_size`` anchors per rank; with
    ``scene_negatives`` each batch also carries a same-video clip per anchor, :class:`SceneNegatives`;
    with ``speakers`` only those speakers' clips)."""
    faults = faults or FaultLog(None, rank)
    urls = clip_urls(shards_dir, "train")
    if not urls:
        count_train_clips(shards_dir)  # raises the explanation
    stages: list[Any] = [
        ShardStream(urls, rank=rank, world_size=world_size, seed=seed, start_pass=start_pass, resampled=resampled),
        partial(read_samples, faults=faults, split="train"),
        wds.select(has_text),
        *_speaker_stage(speakers),
        partial(decode_samples, faults=faults, split="train", prepare_fn=prepare_clip, preprocess=preprocess,
                num_frames=num_frames,
                train=True, word_drop=word_drop, with_tags=with_tags, captions=captions),
    ]
    if scene_negatives:
        stages.append(SceneNegatives(rank=rank, world_size=world_size, seed=seed, start_pass=start_pass))
    stages += [
        ReaderShuffle(max(1, shuffle_buffer // 8), rank=rank, world_size=world_size, seed=seed, start_pass=start_pass),
        wds.batched(batch_size, collation_fn=partial(collate_clips, tokenizer=tokenizer), partial=False),
    ]
    return _loader(wds.DataPipeline(*stages), workers, pin)


def clip_val_loader(shards_dir: Path, *, preprocess: Callable, tokenizer: Callable, batch_size: int, workers: int,
                    rank: int, world_size: int, num_frames: int, pin: bool = False,
                    faults: FaultLog | None = None, speakers: list[str] | None = None) -> DataLoader | None:
    """This rank's share of the val clip shards (of ``speakers`` only, when given), each clip
    once, frames at segment middles."""
    prepare_fn = partial(prepare_clip, preprocess=preprocess, num_frames=num_frames, train=False)
    return _val_loader(clip_urls(shards_dir, "val"), prepare_fn, partial(collate_clips, tokenizer=tokenizer),
                       batch_size, workers, rank, world_size, pin, faults, speakers)


def _val_loader(urls: list[str], prepare_fn: Callable[..., Any], collation_fn: Callable[[list[Any]], Batch],
                batch_size: int, workers: int, rank: int, world_size: int, pin: bool,
                faults: FaultLog | None, speakers: list[str] | None = None) -> DataLoader | None:
    """This rank's share of ``urls``, each sample once (``prepare_fn``, then ``collation_fn``); the
    last partial batch is kept, so every val sample is scored exactly once. None without urls."""
    if not urls:
        return None
    mine = len(urls[rank::world_size])  # a rank without val shards still joins the gather, empty
    faults = faults or FaultLog(None, rank)
    pipeline = wds.DataPipeline(
        ValShards(urls, rank, world_size),
        partial(read_samples, faults=faults, split="val"),
        wds.select(has_text),
        *_speaker_stage(speakers),
        partial(decode_samples, faults=faults, split="val", prepare_fn=prepare_fn),
        wds.batched(batch_size, collation_fn=collation_fn, partial=True),
    )
    return _loader(pipeline, min(workers, mine), pin)


def _loader(dataset: IterableDataset, workers: int, pin: bool) -> DataLoader:
    return DataLoader(
        dataset, batch_size=None, num_workers=workers, pin_memory=pin,
        multiprocessing_context="spawn" if workers > 0 else None,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
    )


def train_loader(shards_dir: Path, *, preprocess: Callable, tokenizer: Callable, batch_size: int, workers: int,
                 rank: int, world_size: int, seed: int, start_pass: float = 0.0, resampled: bool = False,
                 shuffle_buffer: int = 1000, pin: bool = False, word_drop: float = 0.0, with_tags: bool = False,
                 captions: ShuffledCaptions | None = None, faults: FaultLog | None = None,
                 speakers: list[str] | None = None) -> DataLoader:
    """Endless loader of training batches for this rank (``batch_size`` per rank; of ``speakers``
    only, when given); damaged samples and shards go to ``faults``."""
    faults = faults or FaultLog(None, rank)
    urls = [str(p) for p in list_pair_shards(Path(shards_dir), "train")]
    if not urls:
        raise DatasetError(f"no train-*.tar shards in {shards_dir}")
    pipeline = wds.DataPipeline(
        ShardStream(urls, rank=rank, world_size=world_size, seed=seed, start_pass=start_pass, resampled=resampled),
        partial(read_samples, faults=faults, split="train"),
        wds.select(has_text),
        *_speaker_stage(speakers),
        ReaderShuffle(shuffle_buffer, rank=rank, world_size=world_size, seed=seed, start_pass=start_pass),
        partial(decode_samples, faults=faults, split="train", preprocess=preprocess, word_drop=word_drop,
                with_tags=with_tags, captions=captions),
        wds.batched(batch_size, collation_fn=partial(collate, tokenizer=tokenizer), partial=False),
    )
    return _loader(pipeline, workers, pin)


def val_share(urls: list[str], rank: int, world_size: int, worker: int = 0, workers: int = 1) -> list[str]:
    """The val shards one loader worker of one rank reads: the rank's share first (``urls[rank::world]``),
    then split over that rank's workers. Rank first because ranks may run different numbers of
    workers (a rank gets no more workers than it has shards, none when it has no shard): slots
    counted over all (rank, worker) pairs would then read some shards twice and others never."""
    return urls[rank::world_size][worker::workers]


class ValShards(IterableDataset):
    """This rank's val shards (:func:`val_share`), each read once and in order."""

    def __init__(self, urls: list[str], rank: int, world_size: int):
        super().__init__()
        self.urls, self.rank, self.world_size = urls, rank, world_size

    def __iter__(self) -> Iterator[dict[str, str]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for url in val_share(self.urls, self.rank, self.world_size, wid, nw):
            yield {"url": url}


def val_loader(shards_dir: Path, *, preprocess: Callable, tokenizer: Callable, batch_size: int, workers: int,
               rank: int, world_size: int, pin: bool = False, faults: FaultLog | None = None,
               speakers: list[str] | None = None) -> DataLoader | None:
    """Loader over this rank's share of the val shards (None when there are no val shards).

    Batches keep their last partial batch, so every captioned val frame (of ``speakers``, when
    given) is scored exactly once.
    """
    return _val_loader([str(p) for p in list_pair_shards(Path(shards_dir), "val")],
                       partial(prepare, preprocess=preprocess), partial(collate, tokenizer=tokenizer), batch_size,
                       workers, rank, world_size, pin, faults, speakers)
