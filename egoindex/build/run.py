"""``egoindex build``: embed every frame, clip and utterance of an ingest folder into a store.

Stages (each resumable; a kill at any point, then a rerun, gives the same rows as one clean run):

1. **Frames** (the heavy, distributed part). Shards are dealt round-robin to the ranks of a
   torchrun job (and to ``--num-parts`` array tasks). Loader workers (``spawn``: LanceDB and
   CUDA do not survive ``fork``) read a shard and decode its JPEGs to the model's input crop
   (``egoindex.model.embed``); on a GPU they only read bytes and the GPU decodes. Each finished shard
   is written as Lance *fragments* (data files, not yet visible) plus ``_build/frames/{shard}.json``
   holding the fragment metadata: that json is the shard's "done" mark.
2. **Commit** (rank 0, after a barrier). All new fragments become visible in *one* Lance commit,
   in shard-name order, so a 2-rank build has exactly the rows, in the same order, of a 1-rank
   build. The commit is idempotent: before committing, rank 0 checks whether the table already
   has rows of those shards (a kill between commit and bookkeeping), and then only records it.
3. **Derived tables** (rank 0): ``clips`` (sliding windows, vector = normalised mean of the
   frames' vectors), ``utterances`` (Whisper text embedded with the text tower) and ``videos``,
   for the videos that arrived with the new shards, in buckets of ``VIDEOS_PER_BUCKET`` videos
   (fragments + json per bucket, one commit per table, same idempotency check).
4. **Indexes** (rank 0): a FAISS index per vector table (``egoindex.store.ann``), extended with
   the new rows when the table only grew, rebuilt when the size class changes or ``--index`` asks.
5. ``egoindex.json`` is written last: a store is usable once it exists, and readers always see a
   consistent Lance version (Lance is multi-version; a store being appended to stays readable).

Rows are only ever appended (never deleted or reordered): that keeps row offsets stable, and
offsets are the FAISS ids. ``--append`` adds shards that a later ingest wrote; a shard that
changed after it was embedded, or a video split across old and new shards, is refused.
"""

from __future__ import annotations

import os

if not os.environ.get("LANCE_LOG"):
    os.environ["LANCE_LOG"] = "error"  # lance warns on every fragment written to a new dataset

import contextlib
import datetime as dt
import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lance
import lancedb
import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
from lance.fragment import FragmentMetadata, write_fragments
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from egoindex import __version__
from egoindex.core import failpoints
from egoindex.model.embed import Embedder, Preprocessing, crop_jpeg, resolve_device
from egoindex.core.fsutil import read_json, remove_stale_tmp, write_json
from egoindex.model.openclip import load_model
from egoindex.core.resources import available_cpus
from egoindex.dataset.shards import list_shards, read_shard
from egoindex.store import ann
from egoindex.store.filters import quote
from egoindex.store.schema import (VECTOR_TABLES, sample_table_vectors, schema_for, table_vector_batches,
                                   vectors_array, vectors_of)
from egoindex.core.fsutil import sha256_file
from egoindex.store.store import FORMAT_VERSION, META_FILE, write_metadata_cache
from egoindex.dataset.layout import manifest_by_uid, read_sizes, read_transcript, videos_dir
from egoindex.errors import BuildError, DatasetError

VIDEOS_PER_BUCKET = 256
TUNE_QUERIES = 200




@dataclass
class BuildConfig:
    checkpoint: Path
    shards: Path
    store: Path
    model: str | None = None
    clip_seconds: float = 4.0
    clip_stride: float = 2.0
    batch_size: int = 256
    workers: int | None = None
    device: str = "auto"
    precision: str = "auto"
    decode: str = "auto"  # workers | device | auto (device on CUDA)
    index: str | None = None  # FAISS factory override
    target_recall: float = 0.95
    append: bool = False
    videos: Path | None = None
    num_parts: int = 1
    part_index: int = 0
    progress: bool = True

    def identity(self) -> dict[str, Any]:
        """What must not change between the runs that fill one store."""
        return {"clip_seconds": self.clip_seconds, "clip_stride": self.clip_stride}


@dataclass
class BuildSummary:
    shards_embedded: int = 0
    shards_reused: int = 0
    frames_added: int = 0
    videos_added: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    committed: bool = False


class Layout:
    """Paths inside STORE."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta = root / META_FILE
        self.lance = root / "lance"
        self.indexes = root / "indexes"
        self.work = root / "_build"
        self.config = self.work / "config.json"
        self.state = self.work / "state.json"
        self.frames = self.work / "frames"
        self.derived = self.work / "derived"

    def uri(self, table: str) -> str:
        return str(self.lance / f"{table}.lance")

    def shard_mark(self, shard: str) -> Path:
        return self.frames / (Path(shard).stem + ".json")


# ---- clip windows ------------------------------------------------------------------------------


def clip_windows(duration: float, seconds: float, stride: float) -> list[tuple[float, float]]:
    """Windows ``[k*stride, k*stride + seconds)`` from 0 until one reaches the end of the video
    (the last is cut at ``duration``); a video shorter than ``seconds`` gives one window."""
    if seconds <= 0 or stride <= 0:
        raise ValueError("clip seconds and stride must be positive")
    n = 1 + max(0, int(np.ceil((duration - seconds) / stride - 1e-9)))
    return [(round(k * stride, 6), round(min(k * stride + seconds, duration), 6)) for k in range(n)]


def clip_rows(uid: str, split: str, times: np.ndarray, vecs: np.ndarray, duration: float, utts: list[dict[str, Any]],
              seconds: float, stride: float) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Clips of one video: rows and their vectors (normalised mean of member frames; empty
    windows are skipped). ``text`` joins the utterances that overlap the window."""
    rows, out = [], []
    for s, e in clip_windows(max(duration, float(times.max()) if len(times) else 0.0), seconds, stride):
        last = e >= duration - 1e-6
        m = (times >= s) & ((times <= e) if last else (times < e))
        if not m.any():
            continue
        v = vecs[m].mean(axis=0)
        out.append(v / (np.linalg.norm(v) or 1.0))
        text = " ".join(u["text"] for u in utts if u["start"] < e and u["end"] > s)
        rows.append({"video_uid": uid, "start": s, "end": e, "n_frames": int(m.sum()), "split": split, "text": text})
    return rows, np.asarray(out, np.float32).reshape(len(out), vecs.shape[1])


# ---- reading shards -------------------------------------------------------------------------


class ShardChunks(IterableDataset):
    """Chunks of ``batch_size`` samples of whole shards: decoded crops (``decode='workers'``) or raw
    JPEG bytes (``'device'``), plus metadata. Shards are split over loader workers."""

    def __init__(self, shards: list[Path], pp: Preprocessing, batch_size: int, decode: str) -> None:
        super().__init__()
        self.shards, self.pp, self.batch_size, self.decode = shards, pp, batch_size, decode

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
                jpg = sample["jpg"]
                img = crop_jpeg(jpg, self.pp) if self.decode == "workers" else jpg
                text = sample.get("txt", b"").decode("utf-8", errors="replace").strip()
                rows.append({"video_uid": str(meta["video_uid"]), "t": float(meta["t"]),
                             "frame_index": int(meta.get("frame_index", -1)), "split": str(meta.get("split", "")),
                             "text": text, "shard": path.name, "key": key})
                imgs.append(img)
            except Exception as e:  # a corrupt member: recorded, the rest of the shard goes on
                skipped.append({"shard": path.name, "key": str(key), "reason": f"{type(e).__name__}: {e}"[:300]})
            if len(rows) >= self.batch_size:
                yield chunk(False)
        yield chunk(True)


# ---- the job --------------------------------------------------------------------------------


def _dist() -> tuple[int, int]:
    if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=dt.timedelta(hours=6))  # barrier only: gloo is enough
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def _fragment_json(frags: list[FragmentMetadata]) -> list[str]:
    return [json.dumps(f.to_json()) for f in frags]


def _fragments(docs: list[str]) -> list[FragmentMetadata]:
    return [FragmentMetadata.from_json(d) for d in docs]


def _write_fragments(layout: Layout, table: str, rows: list[dict[str, Any]], vecs: np.ndarray | None, dim: int) -> list[str]:
    schema = schema_for(table, dim)
    cols: dict[str, Any] = {n: [r[n] for r in rows] for n in schema.names if n != "vector"}
    if vecs is not None:
        cols["vector"] = vectors_array(vecs) if len(rows) else pa.array([], schema.field("vector").type)
    tbl = pa.table(cols, schema=schema)
    if tbl.num_rows == 0:
        return []
    return _fragment_json(write_fragments(tbl, layout.uri(table), schema=schema, max_rows_per_file=1 << 20))


def _commit(layout: Layout, table: str, docs: list[str], dim: int, unit_col: str, units: list[str]) -> bool:
    """Make fragments visible in one commit, unless a previous (killed) run already did."""
    uri = layout.uri(table)
    frags = _fragments(docs)
    if not frags:
        return False
    schema = schema_for(table, dim)
    try:
        ds = lance.dataset(uri)
    except (ValueError, FileNotFoundError, OSError):
        ds = None
    if ds is not None:
        probe = f"{unit_col} IN ({', '.join(quote(u) for u in units[:64])})"
        if ds.count_rows(filter=probe) > 0:
            return False  # committed before the kill
        lance.LanceDataset.commit(uri, lance.LanceOperation.Append(frags), read_version=ds.version)
    else:
        lance.LanceDataset.commit(uri, lance.LanceOperation.Overwrite(schema, frags))
    return True


def _check_store(layout: Layout, cfg: BuildConfig, model_name: str, sha: str) -> dict[str, Any] | None:
    if layout.meta.is_file():
        meta = read_json(layout.meta)
        if meta.get("model") != model_name or meta.get("checkpoint_sha256") != sha:
            raise BuildError(f"{layout.root} was built with {meta.get('model')} (checkpoint sha256 "
                             f"{str(meta.get('checkpoint_sha256'))[:12]}...); this is {model_name} ({sha[:12]}...). "
                             "A store holds one model's vectors: build into a new STORE folder.")
    if layout.config.is_file():
        old = read_json(layout.config)
        want = {"model": model_name, "checkpoint_sha256": sha, **cfg.identity()}
        diff = {k: (old.get(k), v) for k, v in want.items() if old.get(k) != v}
        if diff:
            raise BuildError(f"{layout.root} is being built with other settings: " +
                             ", ".join(f"{k}: was {a}, now {b}" for k, (a, b) in diff.items()) +
                             ". Use the same settings, or a new STORE folder.")
    return read_json(layout.meta) if layout.meta.is_file() else None


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=not enabled, transient=False)


def embed_shards(cfg: BuildConfig, layout: Layout, shards: list[Path], embedder: Embedder, sizes: dict[str, int],
                 summary: BuildSummary) -> None:
    """Stage 1 for this rank's pending shards."""
    if not shards:
        return
    decode = cfg.decode if cfg.decode != "auto" else ("device" if embedder.device.type == "cuda" else "workers")
    workers = cfg.workers if cfg.workers is not None else max(1, min(len(shards), available_cpus() - 1, 8))
    ds = ShardChunks(shards, embedder.pp, cfg.batch_size, decode)
    loader = DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context="spawn" if workers else None,
                        prefetch_factor=4 if workers else None, pin_memory=embedder.device.type == "cuda")
    pending: dict[str, dict[str, Any]] = {}
    total = sum(sizes.get(p.name, 0) for p in shards)
    with _progress(cfg.progress) as prog:
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
                _finish_shard(layout, cfg.shards / c["shard"], acc, embedder.dim, summary)
                del pending[c["shard"]]


def _finish_shard(layout: Layout, path: Path, acc: dict[str, Any], dim: int, summary: BuildSummary) -> None:
    rows = acc["rows"]
    for r in rows:
        r["unit"] = path.name
    vecs = np.concatenate(acc["vecs"]) if acc["vecs"] else np.zeros((0, dim), np.float32)
    docs = _write_fragments(layout, "frames", rows, vecs, dim)
    skipped = list(acc["skipped"])
    if acc["error"]:
        skipped.append({"shard": path.name, "key": "", "reason": acc["error"]})
    st = path.stat()
    write_json(layout.shard_mark(path.name), {
        "shard": path.name, "samples": len(rows), "videos": sorted({r["video_uid"] for r in rows}),
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "skipped": skipped, "fragments": docs})
    summary.shards_embedded += 1
    summary.skipped.extend(skipped)
    failpoints.hit("build-shard-done")




def build_derived(cfg: BuildConfig, layout: Layout, embedder: Embedder, new_videos: list[str],
                  manifest: dict[str, dict[str, str]], summary: BuildSummary) -> None:
    """Stage 3: clips, utterances and videos rows of ``new_videos``, bucket by bucket."""
    if not new_videos:
        return
    frames = lancedb.connect(str(layout.lance)).open_table("frames")
    dim = embedder.dim
    buckets = [new_videos[i:i + VIDEOS_PER_BUCKET] for i in range(0, len(new_videos), VIDEOS_PER_BUCKET)]
    with _progress(cfg.progress) as prog:
        task = prog.add_task("clips and utterances", total=len(new_videos))
        for bucket in buckets:
            name = f"{bucket[0]}_{bucket[-1]}_{len(bucket)}"
            mark = layout.derived / f"{name}.json"
            if mark.is_file():
                prog.advance(task, len(bucket))
                continue
            where = f"video_uid IN ({', '.join(quote(u) for u in bucket)})"
            got = frames.search().where(where).select(["video_uid", "t", "vector"]).limit(None).to_arrow()
            uids_col = np.asarray(got["video_uid"].to_pylist(), dtype=object)
            times_all = got["t"].to_numpy()
            vecs_all = vectors_of(got["vector"], dim)
            c_rows, c_vecs, u_rows, u_texts, v_rows = [], [], [], [], []
            for uid in bucket:
                m = manifest.get(uid, {})
                split = m.get("split", "")
                sel = uids_col == uid
                order = np.argsort(times_all[sel], kind="stable")
                times, vecs = times_all[sel][order], vecs_all[sel][order]
                utts = read_transcript(cfg.shards, uid)
                duration = float(m.get("duration_s") or (times.max() if len(times) else 0.0))
                rows, cv = clip_rows(uid, split, times, vecs, duration, utts, cfg.clip_seconds, cfg.clip_stride)
                for r in rows:
                    r["unit"] = name
                c_rows += rows
                c_vecs.append(cv)
                for u in utts:
                    u_rows.append({"utterance_id": u["id"], "video_uid": uid, "start": float(u["start"]),
                                   "end": float(u["end"]), "split": split, "text": u["text"].strip(),
                                   "no_speech_prob": float(u.get("no_speech_prob", 0.0)),
                                   "avg_logprob": float(u.get("avg_logprob", 0.0)),
                                   "compression_ratio": float(u.get("compression_ratio", 0.0)), "unit": name})
                    u_texts.append(u["text"].strip())
                v_rows.append({"video_uid": uid, "source": m.get("source", ""), "split": split, "duration": duration,
                               "width": int(m.get("width") or 0), "height": int(m.get("height") or 0),
                               "native_fps": float(m.get("native_fps") or 0.0), "n_frames": int(sel.sum()),
                               "n_utterances": len(utts), "unit": name})
            u_vecs = embedder.encode_texts(u_texts) if u_texts else np.zeros((0, dim), np.float32)
            write_json(mark, {
                "videos": bucket,
                "clips": _write_fragments(layout, "clips", c_rows, np.concatenate(c_vecs) if c_vecs else None, dim),
                "utterances": _write_fragments(layout, "utterances", u_rows, u_vecs, dim),
                "videos_rows": _write_fragments(layout, "videos", v_rows, None, dim),
            })
            failpoints.hit("build-derived-done")
            prog.advance(task, len(bucket))
    marks = [read_json(layout.derived / f"{b[0]}_{b[-1]}_{len(b)}.json") for b in buckets]
    units = [f"{b[0]}_{b[-1]}_{len(b)}" for b in buckets]
    for table, key in (("clips", "clips"), ("utterances", "utterances"), ("videos", "videos_rows")):
        _commit(layout, table, [d for m in marks for d in m[key]], dim, "unit", units)
    summary.videos_added = len(new_videos)


def update_index(layout: Layout, table: str, factory: str | None, target_recall: float) -> dict[str, Any]:
    """Stage 4 for one table: extend or (re)build its FAISS index, tune nprobe, save."""
    uri = layout.uri(table)
    try:
        ds = lance.dataset(uri)
    except (ValueError, FileNotFoundError, OSError):
        return {}
    n, version = ds.count_rows(), ds.version
    if n == 0:
        return {}
    dim = ds.schema.field("vector").type.list_size
    existing = ann.load_index(layout.indexes, table)
    want = factory or ann.choose_factory(n, dim)
    index, start = None, 0
    if existing is not None:
        idx, info = existing
        if info.ntotal == n and info.table_version == version and (factory is None or factory == info.factory):
            return asdict(info)
        if info.ntotal <= n and info.factory == want:
            index, start = idx, info.ntotal  # rows were only appended: add the new ones
    train = sample_table_vectors(uri, ann.training_size(n, want))
    index, facts = ann.build_index(train, table_vector_batches(uri, start), n, want, index=index)
    queries = ann.sample_queries(train, TUNE_QUERIES)
    truth = ann.exact_topk(table_vector_batches(uri, 0), queries, min(10, n))
    nprobe, k_factor, recall = ann.tune(index, queries, truth, target_recall)
    info = ann.IndexInfo(table=table, factory=want, ntotal=int(index.ntotal), dim=dim, table_version=version,
                         nprobe=nprobe, k_factor=k_factor, recall_at_10=round(recall, 4),
                         build_seconds=round(facts["build_seconds"], 3), trained_on=facts["trained_on"] or
                         (existing[1].trained_on if existing else 0), gpu=facts["gpu"])
    ann.save_index(index, info, layout.indexes)
    failpoints.hit("build-index-done")
    return asdict(info)


def run(cfg: BuildConfig) -> BuildSummary:
    """Build or extend the store ``cfg.store`` (see module docstring)."""
    t0 = time.perf_counter()
    rank, world = _dist()
    summary = BuildSummary()
    cfg.shards, cfg.store = Path(cfg.shards), Path(cfg.store)
    layout = Layout(cfg.store)
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
    loaded = load_model(Path(cfg.checkpoint), cfg.model, device=device)
    sha = sha256_file(Path(cfg.checkpoint))
    meta = _check_store(layout, cfg, loaded.name, sha)
    state = read_json(layout.state) if layout.state.is_file() else {"frames_units": [], "videos": []}
    committed = list(state["frames_units"])
    new_shards = [p for p in shards if p.name not in set(committed)]
    if meta is not None and new_shards and not cfg.append and committed:
        raise BuildError(f"{layout.root} is a finished store and {cfg.shards} has {len(new_shards)} shards it does not "
                         "hold; pass --append to add them")
    for name in committed:  # an embedded shard must not change under the store
        mark = read_json(layout.shard_mark(name))
        p = cfg.shards / name
        if p.is_file() and p.stat().st_size != mark["size"]:
            raise BuildError(f"shard {name} changed after it was embedded (size {mark['size']} -> {p.stat().st_size}); "
                             "build a new store from this ingest folder")
    if rank == 0:
        for d in (layout.frames, layout.derived, layout.indexes):
            d.mkdir(parents=True, exist_ok=True)
            remove_stale_tmp(d)
        write_json(layout.config, {"model": loaded.name, "checkpoint_sha256": sha, **cfg.identity()})
    _barrier(world)

    embedder = Embedder(loaded, device=device, precision=cfg.precision)
    todo = [p for i, p in enumerate(new_shards) if i % (world * cfg.num_parts) == cfg.part_index * world + rank
            and not layout.shard_mark(p.name).is_file()]
    summary.shards_reused = sum(layout.shard_mark(p.name).is_file() for p in new_shards)
    embed_shards(cfg, layout, todo, embedder, sizes, summary)
    _barrier(world)
    if rank != 0:
        return summary
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
        _commit(layout, "frames", [d for m in marks for d in m["fragments"]], dim, "unit", [m["shard"] for m in marks])
        failpoints.hit("build-frames-committed")
        frames = lancedb.connect(str(layout.lance)).open_table("frames")
        with contextlib.suppress(Exception):  # a scalar index speeds up per-video reads; optional
            with warnings.catch_warnings():  # lancedb 0.40 deprecates the name, not the call
                warnings.simplefilter("ignore", DeprecationWarning)
                frames.create_scalar_index("video_uid", replace=True)
        manifest = manifest_by_uid(cfg.shards)
        build_derived(cfg, layout, embedder, new_videos, manifest, summary)
        state = {"frames_units": committed + [p.name for p in new_shards], "videos": sorted(known | set(new_videos))}
        write_json(layout.state, state)
        summary.frames_added = sum(m["samples"] for m in marks)
    summary.skipped = [s for m in [read_json(layout.shard_mark(n)) for n in state["frames_units"]] for s in m["skipped"]]

    db = lancedb.connect(str(layout.lance))
    for table in VECTOR_TABLES:
        summary.indexes[table] = update_index(layout, table, cfg.index, cfg.target_recall)
    versions: dict[str, int] = {}  # what readers open (Store): later, unfinished commits stay invisible
    for table in ("frames", "clips", "utterances", "videos"):
        summary.rows[table] = 0
        if table in db.list_tables().tables:
            t = db.open_table(table)
            summary.rows[table], versions[table] = t.count_rows(), t.version
            if table in VECTOR_TABLES:  # hits' metadata, memory-mapped by readers (Store.metadata)
                write_metadata_cache(layout.root, table, lance.dataset(layout.uri(table), version=t.version))
    source_dir = cfg.videos or videos_dir(cfg.shards)
    old = meta or {}
    write_json(layout.meta, {
        "format_version": FORMAT_VERSION,
        "model": loaded.name,
        "checkpoint": str(Path(cfg.checkpoint).resolve()),
        "checkpoint_sha256": sha,
        "embed_dim": dim,
        "preprocessing": embedder.pp.as_dict(),
        "egoindex_version": __version__,
        "shards_dir": str(cfg.shards.resolve()),
        "videos_root": str(source_dir) if source_dir else old.get("videos_root"),
        "shards": state["frames_units"],
        "clip_seconds": cfg.clip_seconds,
        "clip_stride": cfg.clip_stride,
        "built_at": old.get("built_at") or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": summary.rows,
        "table_versions": versions,
        "skipped": summary.skipped,
        "build_seconds": round(time.perf_counter() - t0, 2),
    })
    summary.committed = True
    summary.seconds = time.perf_counter() - t0
    return summary

