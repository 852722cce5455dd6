"""``egoindex build``: embed every frame, clip and utterance of an ingest folder into a store.

Stages (each resumable; a kill at any point, then a rerun, gives the same rows as one clean run):

1. **Frames** (the heavy, distributed part; :mod:`egoindex.build.frames`). Shards are dealt
   round-robin to the ranks of a torchrun job (and to ``--num-parts`` array tasks); each finished
   shard is written as Lance *fragments* (data files, not yet visible) plus
   ``_build/frames/{shard}.json`` holding the fragment metadata: that json is the shard's "done" mark.
2. **Commit** (rank 0, after a barrier). All new fragments become visible in *one* Lance commit,
   in shard-name order, so a 2-rank build has exactly the rows, in the same order, of a 1-rank
   build. The commit is idempotent (:func:`egoindex.store.writer.commit_fragments`): before
   committing, rank 0 checks whether the table already has rows of those shards (a kill between
   commit and bookkeeping), and then only records it.
3. **Derived tables** (rank 0; :mod:`egoindex.build.derived`): ``clips``, ``utterances`` and
   ``videos`` for the videos that arrived with the new shards, in buckets (fragments + json per
   bucket, one commit per table, same idempotency check).
4. **Indexes** (rank 0): a FAISS index per vector table (:func:`egoindex.store.index.update_index`),
   extended with the new rows when the table only grew, rebuilt when the size class changes or
   ``--index`` asks.
5. ``egoindex.json`` (:class:`egoindex.store.layout.StoreMeta`) is written last: a store is usable
   once it exists, and readers always see a consistent Lance version (Lance is multi-version; a
   store being appended to stays readable).

Rows are only ever appended (never reordered; deleted only by ``egoindex redact``, which then
rebuilds the indexes): that keeps row offsets stable, and offsets are the FAISS ids. SHARDS_DIR's
blackouts (:mod:`egoindex.dataset.blackouts`) are never embedded; a SHARDS_DIR with an unfinished
redaction is refused, and a shard that a redaction rewrote is accepted at its new size. ``--append`` adds shards that a later ingest wrote; a shard that
changed after it was embedded, or a video split across old and new shards, is refused.

This module is the orchestration (resume checks, ranks, commit order); the config and the
``_build/`` state paths are :mod:`egoindex.build.config`.
"""

from __future__ import annotations

import os

if not os.environ.get("LANCE_LOG"):
    os.environ["LANCE_LOG"] = "error"  # lance warns on every fragment written to a new dataset

import datetime as dt
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from egoindex.version import __version__
from egoindex.build.config import BuildConfig, BuildLayout, BuildSummary
from egoindex.build.derived import build_derived
from egoindex.build.frames import embed_shards
from egoindex.build.stage import drop, pull, save
from egoindex.core import failpoints
from egoindex.core.fsutil import read_json, remove_stale_tmp
from egoindex.dataset.blackouts import add_blackouts, read_blackouts, redacted_shard_sizes, refuse_if_pending
from egoindex.dataset.layout import ShardsLayout, manifest_by_uid, read_sizes, videos_dir
from egoindex.dataset.shards import list_shards
from egoindex.errors import BuildError, DatasetError, StoreError
from egoindex.model.clip_video import load_embedding_model
from egoindex.model.embed import Embedder, resolve_device
from egoindex.model.openclip import Loaded
from egoindex.model.sources import checkpoint_sha256
from egoindex.store.encoders import export_text_encoder_quietly
from egoindex.store.index import update_index
from egoindex.store.layout import CLIPS_FRAME_MEAN, CLIPS_TEMPORAL_HEAD, StoreMeta
from egoindex.store.objectstore import is_remote
from egoindex.store.snapshots import publish_encoders
from egoindex.store.schema import VECTOR_TABLES
from egoindex.store.writer import (commit_fragments, fragments_present, index_column, outdated_tables, record_tables,
                                   write_meta)

__all__ = ["BuildConfig", "BuildError", "BuildSummary", "run"]


def _dist() -> tuple[int, int]:
    if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=dt.timedelta(hours=6))  # barrier only: gloo is enough
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def encoders_of(loaded: Loaded) -> dict[str, Any]:
    """``StoreMeta.encoders`` for a build with ``loaded``: which encoder makes each vector table."""
    video = loaded.video
    clips: dict[str, Any] = {"kind": CLIPS_FRAME_MEAN, "model": loaded.name}
    if video is not None:
        clips = {"kind": CLIPS_TEMPORAL_HEAD, "num_frames": int(video.num_frames), "model": loaded.name,
                 "video_config": dict(loaded.checkpoint.get("video_config") or {})}
    return {"frames": {"kind": "image-tower", "model": loaded.name}, "clips": clips,
            "utterances": {"kind": "text-tower", "model": loaded.name}}


def check_store(layout: BuildLayout, cfg: BuildConfig, model_name: str, sha: str,
                clips_kind: str = CLIPS_FRAME_MEAN) -> StoreMeta | None:
    """The store's StoreMeta (None for a new store), after refusing another model, another clip
    encoder (a clip checkpoint onto a frame-mean store or back) or other settings."""
    meta = None
    if layout.meta.is_file():
        try:
            meta = StoreMeta.read(layout.root)
        except StoreError as e:
            raise BuildError(f"{e}; build into a new STORE folder") from e
        have = meta.clips_encoder()["kind"]
        if have != clips_kind:  # also a different checkpoint (below), but this says what differs
            raise BuildError(f"{layout.root} holds clips made by {have} and this checkpoint makes them by {clips_kind}; "
                             "a store's clips come from one encoder: build into a new STORE folder.")
        if meta.model != model_name or meta.checkpoint_sha256 != sha:
            raise BuildError(f"{layout.root} was built with {meta.model} (checkpoint sha256 "
                             f"{str(meta.checkpoint_sha256)[:12]}...); this is {model_name} ({sha[:12]}...). "
                             "A store holds one model's vectors: build into a new STORE folder.")
    if layout.config.is_file():
        old = read_json(layout.config)
        want = {"model": model_name, "checkpoint_sha256": sha, **cfg.identity()}
        diff = {k: (old.get(k), v) for k, v in want.items() if old.get(k) != v}
        if diff:
            raise BuildError(f"{layout.root} is being built with other settings: " +
                             ", ".join(f"{k}: was {a}, now {b}" for k, (a, b) in diff.items()) +
                             ". Use the same settings, or a new STORE folder.")
    return meta


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run(cfg: BuildConfig) -> BuildSummary:
    """Build or extend the store ``cfg.store`` (see module docstring)."""
    t0 = time.perf_counter()
    rank, world = _dist()
    summary = BuildSummary()
    cfg.shards = Path(cfg.shards)
    cfg.store = cfg.store if is_remote(cfg.store) else Path(cfg.store)  # a folder or an s3:// URI
    # a store on object storage is built in a local stage per rank and part, its _build/ mirrored
    layout = BuildLayout(cfg.store, stage=f"rank{rank}-part{cfg.part_index}")
    pull(layout)  # s3://: the last commit and the shared _build/ state into the stage
    refuse_if_pending(cfg.shards, "build from it")
    try:
        sizes = read_sizes(cfg.shards)
    except DatasetError as e:
        raise BuildError(str(e)) from e
    shards = [p for p in list_shards(cfg.shards) if p.name in sizes]
    if not shards:
        raise BuildError(f"no shards in {cfg.shards}")

    device = resolve_device(cfg.device if world == 1 or cfg.device != "auto" else "auto")
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    # any checkpoint form (egoindex, open_clip_train, bare weights, hub folder or cached hf-hub: id),
    # or a clip checkpoint (kind clip_video: its towers + temporal head, .video)
    loaded = load_embedding_model(cfg.checkpoint, cfg.model, device=device)
    checkpoint = loaded.path or Path(cfg.checkpoint).resolve()  # what the store re-loads for queries
    sha = checkpoint_sha256(checkpoint)
    encoders = encoders_of(loaded)
    meta = check_store(layout, cfg, loaded.name, sha, encoders["clips"]["kind"])
    state = read_json(layout.state) if layout.state.is_file() else {"frames_units": [], "videos": []}
    committed = list(state["frames_units"])
    new_shards = [p for p in shards if p.name not in set(committed)]
    if meta is not None and new_shards and not cfg.append and committed:
        raise BuildError(f"{layout.root} is a finished store and {cfg.shards} has {len(new_shards)} shards it does not "
                         "hold; pass --append to add them")
    outdated = outdated_tables(layout, int(meta.embed_dim)) if meta is not None and new_shards else {}
    if outdated:  # rows with the speaker and participant columns cannot join a table without them
        table, cols = next(iter(outdated.items()))
        raise BuildError(f"{layout.root} was built before the {', '.join(cols)} columns existed (its {table} table "
                         "lacks them), so new rows cannot be appended to it; build a new STORE folder from "
                         f"{cfg.shards} (the old store stays searchable as it is)")
    rewritten = redacted_shard_sizes(cfg.shards)  # shards that `egoindex redact` rewrote (and the store with them)
    for name in committed:  # an embedded shard must not change under the store
        mark = read_json(layout.shard_mark(name))
        p = ShardsLayout(cfg.shards).shard(name)  # uncaptioned shards live in uncaptioned/
        if p.is_file() and p.stat().st_size not in (mark["size"], rewritten.get(name)):
            raise BuildError(f"shard {name} changed after it was embedded (size {mark['size']} -> {p.stat().st_size}); "
                             "build a new store from this ingest folder")
    if rank == 0:
        for d in (layout.frames, layout.derived, layout.indexes):
            d.mkdir(parents=True, exist_ok=True)
            remove_stale_tmp(d)
        for p in new_shards:  # a redaction since the kill removed the uncommitted fragments: redo the shard
            mark = layout.shard_mark(p.name)
            if mark.is_file() and not fragments_present(layout, "frames", read_json(mark)["fragments"]):
                drop(layout, mark)
        save(layout, layout.config, {"model": loaded.name, "checkpoint_sha256": sha, **cfg.identity()})
    _barrier(world)

    embedder = Embedder(loaded, device=device, precision=cfg.precision)
    todo = [p for i, p in enumerate(new_shards) if i % (world * cfg.num_parts) == cfg.part_index * world + rank
            and not layout.shard_mark(p.name).is_file()]
    summary.shards_reused = sum(layout.shard_mark(p.name).is_file() for p in new_shards)
    embed_shards(cfg, layout, todo, embedder, sizes, summary)
    _barrier(world)
    if rank != 0:
        return summary
    pull(layout, work_only=True)  # s3://: the marks that ranks on other nodes and other parts wrote
    missing = [p.name for p in new_shards if not layout.shard_mark(p.name).is_file()]
    if missing:  # other array parts still running: the last one to finish commits
        summary.seconds = time.perf_counter() - t0
        return summary

    marks = [read_json(layout.shard_mark(p.name)) for p in new_shards]
    known = set(state["videos"])
    new_videos = sorted({v for m in marks for v in m["videos"]})
    split = sorted(set(new_videos) & known)
    if split:
        raise BuildError(f"videos {', '.join(split[:3])} have frames in shards already in the store and in new shards; "
                         "an ingest folder must only grow by new videos to be appended")
    dim = embedder.dim
    if new_shards:
        commit_fragments(layout, "frames", [d for m in marks for d in m["fragments"]], dim, "unit",
                         [m["shard"] for m in marks])
        failpoints.hit("build-frames-committed")
        index_column(layout, "frames", "video_uid")  # a scalar index speeds up per-video reads
        manifest = manifest_by_uid(cfg.shards)
        build_derived(cfg, layout, embedder, new_videos, manifest, summary)
        state = {"frames_units": committed + [p.name for p in new_shards], "videos": sorted(known | set(new_videos))}
        save(layout, layout.state, state)
        summary.frames_added = sum(m["samples"] for m in marks)
    summary.skipped = [s for n in state["frames_units"] for s in read_json(layout.shard_mark(n))["skipped"]]

    for table in VECTOR_TABLES:
        summary.indexes[table] = update_index(layout, table, cfg.index, cfg.target_recall)
    blackouts = read_blackouts(cfg.shards)
    if blackouts:  # the store knows what it must never show (serve, later redactions)
        add_blackouts(layout.root, blackouts)
    # what readers open (Store): later, unfinished commits stay invisible
    summary.rows, versions = record_tables(layout)
    source_dir = cfg.videos or videos_dir(cfg.shards)
    if layout.remote is not None:  # the encoder goes up before the commit, so readers of it find one
        export_text_encoder_quietly(layout.root, loaded, sha)
        publish_encoders(layout, sha)
    write_meta(layout, StoreMeta(
        model=loaded.name,
        checkpoint=str(checkpoint),
        checkpoint_sha256=sha,
        checkpoint_form=loaded.form,
        checkpoint_run_name=loaded.run_name,
        embed_dim=dim,
        preprocessing=embedder.pp.as_dict(),
        egoindex_version=__version__,
        shards_dir=str(cfg.shards.resolve()),
        videos_root=str(source_dir) if source_dir else (meta.videos_root if meta else None),
        shards=state["frames_units"],
        clip_seconds=cfg.clip_seconds,
        clip_stride=cfg.clip_stride,
        built_at=(meta.built_at if meta else None) or _now(),
        updated_at=_now(),
        rows=summary.rows,
        table_versions=versions,
        skipped=summary.skipped,
        build_seconds=round(time.perf_counter() - t0, 2),
        encoders=encoders,
    ))
    if layout.remote is None:
        export_text_encoder_quietly(layout.root, loaded, sha)  # after the store is usable: an optional accelerator
    summary.committed = True
    summary.seconds = time.perf_counter() - t0
    return summary
