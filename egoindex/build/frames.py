"""Build stage 1: embed the frames of this rank's shards and write them as uncommitted fragments.

The shards are both series of SHARDS_DIR (:func:`egoindex.dataset.shards.list_shards`): the pair
shards and ``uncaptioned/``, so the store holds every frame, captioned or not.

Loader workers (``spawn``: LanceDB and CUDA do not survive ``fork``) read a shard
(:func:`egoindex.dataset.shards.read_shard`) and decode its JPEGs to the model's input crop
(:func:`egoindex.model.embed.crop_jpeg`); on a GPU they only read bytes and the GPU decodes. Each
finished shard is written as Lance fragments (:func:`egoindex.store.writer.write_fragments`: data
files, not yet visible) plus ``_build/frames/{shard}.json`` holding the fragments' metadata: that
json is the shard's "done" mark, and the commit (``egoindex.build.run``) makes them visible.

A corrupt member is a record (``skipped``), not an exception: the rest of its shard goes on. A
sample that SHARDS_DIR's blackouts hide (``egoindex redact``; :mod:`egoindex.dataset.blackouts`)
is passed over, so a rebuild from shards that still hold it never brings it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from egoindex.build.config import BuildConfig, BuildLayout, BuildSummary
from egoindex.build.stage import save
from egoindex.core import failpoints
from egoindex.core.progress import progress_bar
from egoindex.core.resources import available_cpus
from egoindex.dataset.blackouts import Blackouts, read_blackouts
from egoindex.dataset.layout import ShardsLayout, read_participants
from egoindex.dataset.shards import read_shard
from egoindex.model.embed import Embedder, Preprocessing, crop_jpeg
from egoindex.store.writer import write_fragments


class ShardChunks(IterableDataset):
    """Chunks of ``batch_size`` samples of whole shards: decoded crops (``decode='workers'``) or raw
    JPEG bytes (``'device'``), plus metadata: the frame's speaker (its utterance's, from the
    sample's json) and its video's ``child_id`` / ``age_days`` (``participants``: SHARDS_DIR's
    participants by video uid). Shards are split over loader workers."""

    def __init__(self, shards: list[Path], pp: Preprocessing, batch_size: int, decode: str,
                 participants: dict[str, dict[str, Any]] | None = None, blackouts: Blackouts | None = None) -> None:
        super().__init__()
        self.shards, self.pp, self.batch_size, self.decode = shards, pp, batch_size, decode
        self.participants = participants or {}
        self.blackouts = blackouts or Blackouts()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        wi = get_worker_info()
        mine = self.shards[wi.id::wi.num_workers] if wi else self.shards
        for path in mine:
            yield from self._chunks(path)

    def _chunks(self, path: Path) -> Iterator[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        imgs: list[Any] = []
        skipped: list[dict[str, str]] = []
        error = None

        def chunk(last: bool) -> dict[str, Any]:
            if self.decode == "workers":
                data: Any = torch.from_numpy(np.stack(imgs)) if imgs else None
            else:
                data = list(imgs)
            c = {"shard": path.name, "rows": list(rows), "images": data, "last": last, "skipped": list(skipped),
                 "error": error}
            rows.clear(), imgs.clear(), skipped.clear()
            return c

        for key, sample in read_shard(path):
            if key is None:
                error = sample  # type: ignore[assignment]
                break
            try:
                meta = json.loads(sample["json"].decode("utf-8"))
                if self.blackouts.hides_sample(meta):  # redacted: never embedded (egoindex.dataset.blackouts)
                    continue
                jpg = sample["jpg"]
                img = crop_jpeg(jpg, self.pp) if self.decode == "workers" else jpg
                text = sample.get("txt", b"").decode("utf-8", errors="replace").strip()
                uid = str(meta["video_uid"])
                rows.append({"video_uid": uid, "t": float(meta["t"]),
                             "frame_index": int(meta.get("frame_index", -1)), "split": str(meta.get("split", "")),
                             "text": text, "shard": path.name, "key": key,
                             "speaker": (meta.get("utterance") or {}).get("speaker"),
                             **participant_columns(self.participants.get(uid))})
                imgs.append(img)
            except Exception as e:  # a corrupt member (any decoder error): recorded, the rest of the shard goes on
                skipped.append({"shard": path.name, "key": str(key), "reason": f"{type(e).__name__}: {e}"[:300]})
            if len(rows) >= self.batch_size:
                yield chunk(False)
        yield chunk(True)


def participant_columns(p: dict[str, Any] | None) -> dict[str, Any]:
    """The participant columns every vector row carries (``child_id``, ``age_days``; None
    without a participant): one rule for frames, clips and utterances."""
    p = p or {}
    return {"child_id": p.get("child_id"), "age_days": p.get("age_days")}


def embed_shards(cfg: BuildConfig, layout: BuildLayout, shards: list[Path], embedder: Embedder,
                 sizes: dict[str, int], summary: BuildSummary) -> None:
    """Stage 1 for this rank's pending ``shards`` (``sizes``: samples per shard, for the bar)."""
    if not shards:
        return
    decode = cfg.decode if cfg.decode != "auto" else ("device" if embedder.device.type == "cuda" else "workers")
    workers = cfg.workers if cfg.workers is not None else max(1, min(len(shards), available_cpus() - 1, 8))
    ds = ShardChunks(shards, embedder.pp, cfg.batch_size, decode, read_participants(cfg.shards),
                     read_blackouts(cfg.shards))
    loader = DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context="spawn" if workers else None,
                        prefetch_factor=4 if workers else None, pin_memory=embedder.device.type == "cuda")
    pending: dict[str, dict[str, Any]] = {}
    total = sum(sizes.get(p.name, 0) for p in shards)
    with progress_bar(enabled=cfg.progress) as prog:
        task = prog.add_task("embedding frames", total=total or None)
        for c in loader:
            acc = pending.setdefault(c["shard"], {"rows": [], "vecs": [], "skipped": [], "error": None})
            if c["rows"]:
                crops = c["images"] if decode == "workers" else embedder.crops_from_jpegs_on_device(c["images"])
                acc["vecs"].append(embedder.encode_crops(crops))
                acc["rows"].extend(c["rows"])
                prog.advance(task, len(c["rows"]))
            acc["skipped"].extend(c["skipped"])
            acc["error"] = acc["error"] or c["error"]
            if c["last"]:
                finish_shard(layout, ShardsLayout(cfg.shards).shard(c["shard"]), acc, embedder.dim, summary)
                del pending[c["shard"]]


def finish_shard(layout: BuildLayout, path: Path, acc: dict[str, Any], dim: int, summary: BuildSummary) -> None:
    """Write one embedded shard's fragments, then its "done" mark (the mark last: it vouches for them)."""
    rows = acc["rows"]
    for r in rows:
        r["unit"] = path.name
    vecs = np.concatenate(acc["vecs"]) if acc["vecs"] else np.zeros((0, dim), np.float32)
    docs = write_fragments(layout, "frames", rows, vecs, dim)
    skipped = list(acc["skipped"])
    if acc["error"]:
        skipped.append({"shard": path.name, "key": "", "reason": acc["error"]})
    st = path.stat()
    save(layout, layout.shard_mark(path.name), {
        "shard": path.name, "samples": len(rows), "videos": sorted({r["video_uid"] for r in rows}),
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "skipped": skipped, "fragments": docs})
    summary.shards_embedded += 1
    summary.skipped.extend(skipped)
    failpoints.hit("build-shard-done")
