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

import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from egoindex.dataset.layout import (has_sizes, is_captioned, read_pack_records, read_pair_sizes, read_video_record,
                                     shard_layout)
from egoindex.dataset.shards import list_pair_shards, read_shard
from egoindex.errors import DatasetError


@dataclass
class Batch:
    images: torch.Tensor  # [B, 3, H, W]
    tokens: torch.Tensor  # [B, context]
    text_keys: torch.Tensor  # [B] int64
    utt_keys: torch.Tensor  # [B] int64

    def to(self, device: torch.device) -> Batch:
        nb = device.type == "cuda"
        return Batch(self.images.to(device, non_blocking=nb), self.tokens.to(device, non_blocking=nb),
                     self.text_keys.to(device), self.utt_keys.to(device))


def key64(s: str) -> int:
    """A signed 64-bit hash (stable across processes and machines, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


def normalize_text(text: str) -> str:
    """Captions that differ only in case or spacing are the same caption to the text tower's eyes."""
    return " ".join(text.lower().split())


def count_train_samples(shards_dir: Path) -> tuple[int, str]:
    """Samples per pass over the train shards and where the number came from.

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


def decode_samples(src: Iterator[dict[str, Any]], faults: FaultLog, split: str, **prepare_kw: Any) -> Iterator[tuple]:
    """``prepare`` each sample; one that cannot be decoded (not a JPEG, bad UTF-8, bad JSON) is
    recorded and skipped, and the rest of its shard goes on."""
    for sample in src:
        try:
            yield prepare(sample, **prepare_kw)
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


def prepare(sample: dict[str, Any], preprocess: Callable[[Image.Image], torch.Tensor], word_drop: float = 0.0) -> tuple:
    """Raw tar members -> (image tensor, caption, text key, utterance key).

    The text key is the hash of the *original* caption even when words were dropped: frames of
    one utterance stay duplicates of each other for the loss whatever their augmented text.
    """
    with Image.open(io.BytesIO(sample["jpg"])) as im:
        image = preprocess(im.convert("RGB"))
    text = sample["txt"].decode("utf-8").strip()
    meta = json.loads(sample["json"])
    utt = meta.get("utterance") or {}
    utt_id = utt.get("id") or f"{meta.get('video_uid')}/{text}"
    return image, drop_words(text, word_drop, random), key64(normalize_text(text)), key64(utt_id)


def collate(samples: list[tuple], tokenizer: Callable[[list[str]], torch.Tensor]) -> Batch:
    """Stack a batch; captions are tokenised per batch in the worker (cheaper than per sample)."""
    images, texts, tkeys, ukeys = zip(*samples)
    return Batch(torch.stack(images), tokenizer(list(texts)), torch.tensor(tkeys, dtype=torch.int64),
                 torch.tensor(ukeys, dtype=torch.int64))


def _loader(dataset: IterableDataset, workers: int, pin: bool) -> DataLoader:
    return DataLoader(
        dataset, batch_size=None, num_workers=workers, pin_memory=pin,
        multiprocessing_context="spawn" if workers > 0 else None,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
    )


def train_loader(shards_dir: Path, *, preprocess: Callable, tokenizer: Callable, batch_size: int, workers: int,
                 rank: int, world_size: int, seed: int, start_pass: float = 0.0, resampled: bool = False,
                 shuffle_buffer: int = 1000, pin: bool = False, word_drop: float = 0.0,
                 faults: FaultLog | None = None) -> DataLoader:
    """Endless loader of training batches for this rank (``batch_size`` per rank); damaged
    samples and shards go to ``faults``."""
    faults = faults or FaultLog(None, rank)
    urls = [str(p) for p in list_pair_shards(Path(shards_dir), "train")]
    if not urls:
        raise DatasetError(f"no train-*.tar shards in {shards_dir}")
    pipeline = wds.DataPipeline(
        ShardStream(urls, rank=rank, world_size=world_size, seed=seed, start_pass=start_pass, resampled=resampled),
        partial(read_samples, faults=faults, split="train"),
        wds.select(has_text),
        ReaderShuffle(shuffle_buffer, rank=rank, world_size=world_size, seed=seed, start_pass=start_pass),
        partial(decode_samples, faults=faults, split="train", preprocess=preprocess, word_drop=word_drop),
        wds.batched(batch_size, collation_fn=partial(collate, tokenizer=tokenizer), partial=False),
    )
    return _loader(pipeline, workers, pin)


class ValShards(IterableDataset):
    """This rank's val shards, each read once and in order (split over loader workers too)."""

    def __init__(self, urls: list[str], rank: int, world_size: int):
        super().__init__()
        self.urls, self.rank, self.world_size = urls, rank, world_size

    def __iter__(self) -> Iterator[dict[str, str]]:
        slot, slots = _reader_slot(self.rank, self.world_size)
        for url in self.urls[slot::slots]:
            yield {"url": url}


def val_loader(shards_dir: Path, *, preprocess: Callable, tokenizer: Callable, batch_size: int, workers: int,
               rank: int, world_size: int, pin: bool = False, faults: FaultLog | None = None) -> DataLoader | None:
    """Loader over this rank's share of the val shards (None when there are no val shards).

    Batches keep their last partial batch, so every captioned val frame is scored exactly once.
    """
    urls = [str(p) for p in list_pair_shards(Path(shards_dir), "val")]
    if not urls:
        return None
    mine = len(urls[rank::world_size])  # a rank without val shards still joins the gather, empty
    faults = faults or FaultLog(None, rank)
    pipeline = wds.DataPipeline(
        ValShards(urls, rank, world_size),
        partial(read_samples, faults=faults, split="val"),
        wds.select(has_text),
        partial(decode_samples, faults=faults, split="val", preprocess=preprocess),
        wds.batched(batch_size, collation_fn=partial(collate, tokenizer=tokenizer), partial=True),
    )
    return _loader(pipeline, min(workers, mine), pin)
