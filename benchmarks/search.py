"""Search latency and recall at 1M-10M vectors: egoindex's FAISS index + Lance metadata vs exact
search, numpy brute force and LanceDB's own vector search, on the same queries in the same run.

Data: synthetic clustered 512-d L2-normalised vectors (Gaussian clusters of uneven sizes and
spreads, ``--clusters`` of them, default N/1000 clamped to 1,000-10,000), generated chunk by chunk
from a fixed seed straight into a Lance table with the store's ``clips`` schema (video_uid, start,
end, n_frames, split, text, unit, vector), so 10M vectors never sit in RAM. Everything after that
reads the table back in batches, as ``egoindex build`` does.

Per size (each size runs in its own process, so peak RSS is per size):

* **egoindex index**: ``ann.choose_factory`` + ``ann.build_index`` on the build's training sample
  (``ann.training_size`` random rows, as the build), ``ann.tune`` to recall@10 0.95 on the build's
  tuning queries (``ann.sample_queries(train, 200)``). Build time, tuning time, ``.faiss`` size.
* Queries for the comparison are *other* stored vectors plus noise (``ann.sample_queries``, seed 1);
  exact ground truth from FAISS ``IndexFlatIP`` search, batched over the table.
* Single-query latency (p50/p99 over ``--queries`` queries, after warm-up on tuning queries) and
  recall@10 for:

  - ``egoindex ANN``: ``ann.search`` alone (ids, no metadata);
  - ``egoindex ANN+meta``: ``ann.search`` + LanceDB ``take_offsets`` of the 10 hits' metadata
    columns (every non-vector column) -> python rows: the fetch ``Store`` did before it kept a
    memory-mapped Arrow copy of those columns (``Store.metadata``), kept as the baseline;
  - ``Store.search``: the public API (FAISS + the memory-mapped metadata that the build writes,
    written here the same way with the table), ``Store(root).search(vector=q, level="clips", k=10)``, on a
    store folder made of the table and the saved index (loaded from disk, no mmap);
  - ``faiss Flat``: exact ``IndexFlatIP``;
  - ``numpy brute``: ``vecs @ q`` + ``argpartition`` (on the Flat index's own memory, no copy);
  - ``lance exact``: LanceDB ``search`` without an index (brute force), metadata included;
  - ``lance IVF_PQ``: LanceDB's IVF_PQ index (defaults, ``dot``), tuned like egoindex's: the
    smallest ``refine_factor`` (10, 30, 100), then the smallest ``nprobes``, reaching recall 0.95
    on tuning queries (else the best pair seen); built only up to ``--lance-index-max-n`` rows and
    within ``--lance-index-timeout`` seconds (in a child process), otherwise skipped with the
    reason recorded;
  - ``egoindex ANN kf-tuned`` (refine indexes only): a what-if, not what egoindex does today:
    the same index at the *fastest* (nprobe, k_factor up to 128) pair reaching the target
    (``ann.tune`` takes the first one, nprobe first, k_factor within its refine byte budget:
    up to 32 for RFlat, 128 for SQ8).

  ``egoindex ANN+meta`` and ``Store.search`` also check each hit's metadata against the row at
  the hit's offset (the synthetic rows' video_uid and start follow from the offset) and record
  the fraction that carry another row's metadata (``metadata_mismatch``).

  ``faiss Flat`` and ``numpy brute`` need the float32 matrix resident (N x 512 x 4 bytes: 20.5 GB
  at 10M). They run only when that fits in ``--max-exact-gb`` (default 35 % of RAM); otherwise
  they are skipped with the reason recorded (a disk-backed or float16 brute force would measure
  the disk, not the method). Slow methods stop after ``--budget-s`` seconds once
  ``--min-queries`` queries are done (the JSON records how many queries each figure rests on).

The goal reported against: ``Store.search`` (metadata included) p50 <= 10 ms with recall@10
>= 0.95 at 10M on this machine.

Usage:
    python -m benchmarks.search                          # 1M and 10M -> results/search-cpu.json/.png
    python -m benchmarks.search --sizes 1000000          # one size
    python -m benchmarks.search --sizes 10000000 --merge # add one size to the saved results
    python -m benchmarks.search --quick --out /tmp/search-quick.json   # 100k + 300k smoke check
Data go to ``--work`` (default ~/.cache/egoindex/bench-search; ~21 GB at 10M), deleted after each
size unless ``--keep`` (a kept table is reused by a later run with the same data parameters).
"""

from __future__ import annotations

import os

if not os.environ.get("LANCE_LOG"):  # an empty value (set in some shells) would mean "warn"
    os.environ["LANCE_LOG"] = "error"

import argparse
import gc
import json
import math
import multiprocessing as mp
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path.home() / ".cache" / "egoindex" / "bench-search"
DIM = 512
K = 10
GEN_CHUNK = 1 << 16  # rows generated per step (128 MB of float32)
CLIPS_PER_VIDEO = 1800
LANCE_NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LANCE_REFINE = (10, 30, 100)
KFACTORS = (8, 16, 32, 64, 128)  # one hour of video at the build's 2 s clip stride
PACKAGES = ("faiss-cpu", "lancedb", "pylance", "numpy", "pyarrow")
META_COLS_NOTE = "take_offsets fetches every non-vector column of clips (video_uid, start, end, n_frames, split, text, unit), as Store._fetch"


@dataclass
class Params:
    dim: int = DIM
    seed: int = 0
    clusters: int = 0  # 0 = auto
    spread: float = 0.03  # per-dimension std of a cluster (times a per-cluster lognormal factor)
    fragment_rows: int = 1 << 20  # the build's max_rows_per_file
    queries: int = 200
    budget_s: float = 60.0
    min_queries: int = 30
    warmup: int = 5
    max_exact_gb: float = 0.0
    lance_index_max_n: int = 1_000_000
    lance_index_timeout: float = 1800.0
    lance_tune_queries: int = 50
    target_recall: float = 0.95
    faiss_threads: int = 0  # 0 = FAISS's default (all cores)
    work: str = str(CACHE)
    keep: bool = False


def auto_clusters(n: int) -> int:
    return int(min(10_000, max(1_000, n // 1000)))


# ---- data -------------------------------------------------------------------------------------


class ClusterModel:
    """Gaussian clusters on the unit sphere with uneven sizes (lognormal weights: some scenes are
    far more common than others) and spreads; row ``i`` of chunk ``c`` depends only on
    (seed, c), so any N reproduces the same rows and 10M is written chunk by chunk."""

    def __init__(self, n_clusters: int, dim: int, spread: float, seed: int) -> None:
        rng = np.random.default_rng([seed, 0xC1])
        c = rng.standard_normal((n_clusters, dim), dtype=np.float32)
        self.centres = c / np.linalg.norm(c, axis=1, keepdims=True)
        w = rng.lognormal(0.0, 1.0, n_clusters)
        self.cum = np.cumsum(w / w.sum())
        self.sigma = (spread * rng.lognormal(0.0, 0.25, n_clusters)).astype(np.float32)
        self.dim, self.seed = dim, seed

    def chunk(self, index: int, rows: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index])
        cid = np.minimum(np.searchsorted(self.cum, rng.random(rows)), len(self.cum) - 1)
        x = rng.standard_normal((rows, self.dim), dtype=np.float32)
        x *= self.sigma[cid, None]
        x += self.centres[cid]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x


def _texts() -> list[str]:
    who = ["the baby", "mommy", "daddy", "the toddler", "grandma", "the dog", "my sister", "we"]
    act = ["grabs", "drops", "shakes", "rolls", "looks at", "throws", "hides", "stacks"]
    col = ["red", "blue", "green", "yellow", "purple", "orange", "pink", "white"]
    obj = ["ball", "cup", "block", "spoon", "book", "teddy bear", "car", "star"]
    where = ["on the rug", "in the kitchen", "by the window", "in the living room", "on the table", "outside",
             "in the bath", "near the stairs"]
    return [f"{a} {b} the {c} {d} {e}" for a in who for b in act for c in col for d in obj for e in where][:4096]


def _video_uid(v: int) -> str:
    h = (v * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & ((1 << 128) - 1)
    s = f"{h:032x}"
    return f"{s[:8]}-{s[8:12]}-{s[12:16]}-{s[16:20]}-{s[20:32]}"


def clip_batches(n: int, model: ClusterModel) -> Iterator[Any]:
    """RecordBatches of the clips schema: vectors from ``model``, plausible metadata."""
    import pyarrow as pa

    from egoindex.store.schema import clips_schema, core_schema, vectors_array

    schema = core_schema(clips_schema(model.dim))  # no speakers or participants: write_table adds them as nulls
    texts = pa.array(_texts())
    for ci, lo in enumerate(range(0, n, GEN_CHUNK)):
        hi = min(n, lo + GEN_CHUNK)
        off = np.arange(lo, hi, dtype=np.int64)
        vid = off // CLIPS_PER_VIDEO
        v0 = int(vid[0])
        uids = pa.array([_video_uid(v) for v in range(v0, int(vid[-1]) + 1)])
        start = (off % CLIPS_PER_VIDEO).astype(np.float64) * 2.0
        tidx = np.random.default_rng([model.seed, ci, 7]).integers(0, len(texts), hi - lo)
        yield pa.RecordBatch.from_arrays([
            uids.take(pa.array(vid - v0)), pa.array(start), pa.array(start + 4.0),
            pa.array(np.full(hi - lo, 4, np.int32)), pa.array(np.where(vid % 10 == 0, "val", "train")),
            texts.take(pa.array(tidx)), pa.array(["bench"] * (hi - lo)), vectors_array(model.chunk(ci, hi - lo)),
        ], schema=schema)


def write_store(root: Path, n: int, p: Params, clusters: int) -> dict[str, Any]:
    """A store folder (egoindex.json, lance/clips + lance/videos) holding ``n`` synthetic clips,
    written through ``egoindex.store.writer`` as the build writes one (tables, the clips metadata
    cache, then StoreMeta last); reused when a kept one with the same data parameters exists."""
    import pyarrow as pa

    from egoindex.store.layout import StoreLayout, StoreMeta
    from egoindex.store.schema import core_schema, videos_schema
    from egoindex.store.writer import record_tables, write_meta, write_table

    ident = {"n": n, "dim": p.dim, "seed": p.seed, "clusters": clusters, "spread": p.spread,
             "fragment_rows": p.fragment_rows, "gen_chunk": GEN_CHUNK, "version": 1}
    layout = StoreLayout(root)
    mark = root / "data.json"
    if mark.is_file() and json.loads(mark.read_text()) == ident and layout.meta.is_file():
        return {"reused": True, "write_s": None}
    if root.exists():
        shutil.rmtree(root)
    t0 = time.perf_counter()
    model = ClusterModel(clusters, p.dim, p.spread, p.seed)
    write_table(layout, "clips", clip_batches(n, model), p.dim, max_rows_per_file=p.fragment_rows)
    write_s = time.perf_counter() - t0
    nv = math.ceil(n / CLIPS_PER_VIDEO)
    write_table(layout, "videos", pa.table({
        "video_uid": [_video_uid(v) for v in range(nv)], "source": [f"home_{v % 7}/day_{v // 7:05d}.MP4" for v in range(nv)],
        "split": ["val" if v % 10 == 0 else "train" for v in range(nv)],
        "duration": [CLIPS_PER_VIDEO * 2.0 + 2.0] * nv, "width": [1280] * nv, "height": [720] * nv,
        "native_fps": [30.0] * nv, "n_frames": [CLIPS_PER_VIDEO + 1] * nv, "n_utterances": [0] * nv, "unit": ["bench"] * nv,
    }, schema=core_schema(videos_schema())), p.dim)
    layout.indexes.mkdir()
    rows, versions = record_tables(layout)  # writes the clips metadata cache, as the build does
    write_meta(layout, StoreMeta(model="synthetic", checkpoint="", checkpoint_sha256="", embed_dim=p.dim,
                                 clip_seconds=4.0, clip_stride=2.0, rows=rows, table_versions=versions))
    mark.write_text(json.dumps(ident))
    return {"reused": False, "write_s": round(write_s, 2)}


# ---- measuring --------------------------------------------------------------------------------


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def peak_rss_gb(who: int = resource.RUSAGE_SELF) -> float:
    return round(resource.getrusage(who).ru_maxrss / 2**20, 2)  # ru_maxrss is KiB on Linux


def current_rss_gb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 2**20, 2)
    except OSError:
        pass
    return None


def time_queries(fn: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, warm: np.ndarray, p: Params,
                 extra: dict[str, list[float]] | None = None) -> tuple[list[float], np.ndarray]:
    """Single-query latencies (s) and found ids; stops after ``budget_s`` once ``min_queries`` ran."""
    for q in warm[:p.warmup]:
        fn(q)
    if extra is not None:
        for v in extra.values():
            v.clear()
    lat, found = [], []
    t_start = time.perf_counter()
    for i, q in enumerate(queries):
        t = time.perf_counter()
        ids = fn(q)
        lat.append(time.perf_counter() - t)
        row = np.full(K, -1, np.int64)
        ids = np.asarray(ids, np.int64)[:K]
        row[:len(ids)] = ids
        found.append(row)
        if i + 1 >= p.min_queries and time.perf_counter() - t_start > p.budget_s:
            break
    return lat, np.stack(found)


def summarise(name: str, lat: list[float], found: np.ndarray, truth: np.ndarray, **kw: Any) -> dict[str, Any]:
    from egoindex.store.ann import recall_at

    ms = np.asarray(lat) * 1e3
    r = {"method": name, "queries": len(lat), "recall_at_10": round(recall_at(found, truth[:len(found)]), 4),
         "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
         "mean_ms": round(float(ms.mean()), 3), "skipped": None}
    r.update(kw)
    mm = f"  metadata of another row on {r['metadata_mismatch']:.0%} of hits" if r.get("metadata_mismatch") else ""
    print(f"    {name:<18} recall@10 {r['recall_at_10']:.3f}  p50 {r['p50_ms']:9.3f} ms  p99 {r['p99_ms']:9.3f} ms"
          f"  ({len(lat)} queries){mm}", flush=True)
    return r


def skipped(name: str, reason: str, **kw: Any) -> dict[str, Any]:
    print(f"    {name:<18} skipped: {reason}", flush=True)
    return {"method": name, "queries": 0, "recall_at_10": None, "p50_ms": None, "p99_ms": None, "mean_ms": None,
            "skipped": reason, **kw}


def metadata_mismatch(pairs: list[tuple[int, dict[str, Any]]]) -> float | None:
    """Fraction of returned hits whose metadata is not that of the row at the hit's offset (the
    synthetic rows' video_uid and start follow from their offset)."""
    if not pairs:
        return None
    bad = sum(1 for off, r in pairs if r["video_uid"] != _video_uid(off // CLIPS_PER_VIDEO)
              or float(r["start"]) != (off % CLIPS_PER_VIDEO) * 2.0)
    return round(bad / len(pairs), 4)


def rowids_to_offsets(ds: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Lance row ids (fragment << 32 | row) -> table offsets (= FAISS ids), as Store.offsets_for."""
    frags = sorted((f.fragment_id, f.count_rows()) for f in ds.get_fragments())
    ids = np.array([f for f, _ in frags], np.int64)
    base = np.concatenate([[0], np.cumsum([c for _, c in frags])[:-1]]).astype(np.int64)

    def conv(rowids: np.ndarray) -> np.ndarray:
        rowids = np.asarray(rowids, np.int64)
        return base[np.searchsorted(ids, rowids >> 32)] + (rowids & 0xFFFFFFFF)

    return conv


def _lance_index_child(uri: str) -> None:
    import lancedb

    p = Path(uri)
    tbl = lancedb.connect(str(p.parent)).open_table(p.name.removesuffix(".lance"))
    tbl.create_index(metric="dot", vector_column_name="vector", index_type="IVF_PQ")


def kfactor_whatif(index: Any, tune_q: np.ndarray, truth_tune: np.ndarray, eval_q: np.ndarray, truth: np.ndarray,
                   p: Params, build_kw: dict[str, Any]) -> dict[str, Any]:
    """The same index with (nprobe, k_factor) both tuned: for each k_factor the smallest nprobe
    reaching the target on the tuning queries, then the fastest of those pairs (timed on tuning
    queries). ``ann.tune`` instead takes the first pair that reaches the target, nprobe first; this
    shows what that order costs in latency."""
    from egoindex.store import ann

    ivf = ann.ivf_of(index)
    probes = [x for x in ann.NPROBES if x < ivf.nlist] + [ivf.nlist]
    sweep, cands = [], []
    for kf in KFACTORS:
        for nprobe in probes:
            ann.set_search_params(index, nprobe, kf)
            r = ann.recall_at(index.search(tune_q, K)[1], truth_tune)
            sweep.append({"k_factor": kf, "nprobe": nprobe, "recall": round(r, 4)})
            if r >= p.target_recall:
                cands.append((kf, nprobe))
                break
    if not cands:
        return skipped("egoindex ANN kf-tuned", f"no (nprobe, k_factor up to {KFACTORS[-1]}) reaches recall "
                                                f"{p.target_recall} on the tuning queries", sweep=sweep)
    timed = []
    for kf, nprobe in cands:
        ann.set_search_params(index, nprobe, kf)
        lat, _ = time_queries(lambda q: index.search(q[None], K)[1][0], tune_q[:50], tune_q, Params(**{**asdict(p), "min_queries": 50}))
        timed.append((statistics.median(lat), kf, nprobe))
    _, kf, nprobe = min(timed)
    ann.set_search_params(index, nprobe, kf)
    lat, found = time_queries(lambda q: ann.search(index, q[None], K)[1][0], eval_q, tune_q, p)
    return summarise("egoindex ANN kf-tuned", lat, found, truth, **build_kw, params={"nprobe": nprobe, "k_factor": kf},
                     sweep=sweep, note="what-if, not egoindex today: ann.tune with k_factor tuned too")


# ---- one size ---------------------------------------------------------------------------------


def run_size(n: int, p: Params) -> dict[str, Any]:
    import faiss
    import lance
    import lancedb

    from egoindex.store import ann
    from egoindex.store.schema import sample_table_vectors, table_vector_batches, vectors_of
    from egoindex.store.store import Store
    from egoindex.store.index import TUNE_QUERIES

    clusters = p.clusters or auto_clusters(n)
    root = Path(p.work) / f"n{n}"
    out: dict[str, Any] = {"n": n, "dim": p.dim, "clusters": clusters, "spread": p.spread, "seed": p.seed,
                           "faiss_build_threads": faiss.omp_get_max_threads(), "methods": []}
    print(f"\n== {n:,} vectors x {p.dim}, {clusters} clusters ==", flush=True)

    # data
    got = write_store(root, n, p, clusters)
    uri = str(root / "lance" / "clips.lance")
    ds = lance.dataset(uri)
    assert ds.count_rows() == n
    out.update(data_reused=got["reused"], lance_write_s=got["write_s"], lance_table_bytes=du(Path(uri)),
               lance_fragments=len(ds.get_fragments()))
    print(f"  table: {out['lance_table_bytes'] / 2**30:.2f} GB in {out['lance_fragments']} fragments"
          + (" (reused)" if got["reused"] else f", written in {got['write_s']:.1f} s"), flush=True)

    # the build's training sample and tuning queries; other stored rows + noise for evaluation
    t0 = time.perf_counter()
    factory = ann.choose_factory(n, p.dim)
    train = sample_table_vectors(uri, ann.training_size(n, factory))
    tune_q = ann.sample_queries(train, TUNE_QUERIES)
    rng = np.random.default_rng([p.seed, 1])
    src = np.sort(rng.choice(n, size=min(p.queries, n), replace=False))
    src_vecs = vectors_of(ds.take(src.tolist(), columns=["vector"]).column(0), p.dim)
    eval_q = ann.sample_queries(src_vecs, len(src), seed=1)
    out["sample_s"] = round(time.perf_counter() - t0, 2)

    # exact ground truth (FAISS IndexFlatIP over table batches) + the Flat index, if it fits
    need_gb = n * p.dim * 4 / 2**30
    flat_ok = need_gb <= p.max_exact_gb
    flat = faiss.IndexFlatIP(p.dim) if flat_ok else None
    allq = np.ascontiguousarray(np.concatenate([tune_q, eval_q]))
    heap = faiss.ResultHeap(len(allq), K, keep_max=True)
    gt_s = flat_add_s = 0.0
    t_pass = time.perf_counter()
    base = 0
    for b in table_vector_batches(uri, 0):
        b = np.ascontiguousarray(b)
        t = time.perf_counter()
        d, i = faiss.knn(allq, b, K, metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(d, np.where(i >= 0, i + base, -1))
        gt_s += time.perf_counter() - t
        if flat is not None:
            t = time.perf_counter()
            flat.add(b)
            flat_add_s += time.perf_counter() - t
        base += len(b)
    heap.finalize()
    truth_tune, truth = heap.I[:len(tune_q)], heap.I[len(tune_q):]
    out.update(ground_truth_s=round(gt_s, 2), truth_pass_s=round(time.perf_counter() - t_pass, 2))
    print(f"  ground truth for {len(allq)} queries: {gt_s:.1f} s", flush=True)

    # egoindex: choose, build, tune, save (as egoindex.store.index.update_index)
    print(f"  egoindex index {factory}: building ...", flush=True)
    index, facts = ann.build_index(train, table_vector_batches(uri, 0), n, factory)
    t = time.perf_counter()
    nprobe, k_factor, tune_recall = ann.tune(index, tune_q, truth_tune, p.target_recall)
    tune_s = time.perf_counter() - t
    info = ann.IndexInfo(table="clips", factory=factory, ntotal=int(index.ntotal), dim=p.dim, table_version=ds.version,
                         nprobe=nprobe, k_factor=k_factor, recall_at_10=round(tune_recall, 4),
                         build_seconds=round(facts["build_seconds"], 3), trained_on=facts["trained_on"], gpu=facts["gpu"])
    ann.save_index(index, info, root / "indexes")
    index_bytes = du(root / "indexes" / "clips.faiss")
    del train
    gc.collect()
    out.update(factory=factory, nprobe=nprobe, k_factor=k_factor, tune_recall=round(tune_recall, 4),
               index_build_s=round(facts["build_seconds"], 2), index_tune_s=round(tune_s, 2), index_bytes=index_bytes,
               index_gpu=facts["gpu"], trained_on=facts["trained_on"], peak_rss_after_build_gb=peak_rss_gb(),
               rss_after_build_gb=current_rss_gb())
    print(f"  built in {facts['build_seconds']:.1f} s, tuned in {tune_s:.1f} s: nprobe {nprobe}, k_factor {k_factor}, "
          f"tuning recall@10 {tune_recall:.3f}; {index_bytes / 2**30:.2f} GB on disk", flush=True)
    build_kw = {"build_s": out["index_build_s"], "tune_s": out["index_tune_s"], "size_bytes": index_bytes}

    # (a) egoindex index alone
    if p.faiss_threads:  # queries only: the build above used every core
        faiss.omp_set_num_threads(p.faiss_threads)
    out["faiss_query_threads"] = faiss.omp_get_max_threads()
    res = out["methods"]
    lat, found = time_queries(lambda q: ann.search(index, q[None], K)[1][0], eval_q, tune_q, p)
    res.append(summarise("egoindex ANN", lat, found, truth, **build_kw, params={"nprobe": nprobe, "k_factor": k_factor}))

    # (e) egoindex index + Lance take_offsets of the hits' metadata (Store._fetch)
    tbl = lancedb.connect(str(root / "lance")).open_table("clips")
    cols = [c for c in tbl.schema.names if c != "vector"]
    parts: dict[str, list[Any]] = {"faiss": [], "fetch": [], "rows": []}

    def with_meta(q: np.ndarray) -> np.ndarray:
        t1 = time.perf_counter()
        _, offs = ann.search(index, q[None], K)
        t2 = time.perf_counter()
        o = [int(x) for x in offs[0] if x >= 0]
        wanted = sorted(set(o))  # take_offsets answers in offset order: map back, as Store._fetch does
        by_offset = dict(zip(wanted, tbl.take_offsets(wanted).select(cols).to_arrow().to_pylist()))
        rows = [by_offset[x] for x in o]
        t3 = time.perf_counter()
        parts["faiss"].append(t2 - t1)
        parts["fetch"].append(t3 - t2)
        parts["rows"].append((o, rows))  # checked after timing: is row i the row at offset o[i]?
        return offs[0]

    lat, found = time_queries(with_meta, eval_q, tune_q, p, extra=parts)
    pairs = [(off, r) for o, rows in parts["rows"] for off, r in zip(o, rows)]
    res.append(summarise("egoindex ANN+meta", lat, found, truth, **build_kw,
                         fetch_p50_ms=round(statistics.median(parts["fetch"]) * 1e3, 3),
                         fetch_p99_ms=round(float(np.percentile(parts["fetch"], 99)) * 1e3, 3),
                         ann_p50_ms=round(statistics.median(parts["faiss"]) * 1e3, 3),
                         metadata_mismatch=metadata_mismatch(pairs), note=META_COLS_NOTE))
    # what-if (not what egoindex does): tune k_factor as well as nprobe on the same tuning queries
    if isinstance(index, faiss.IndexRefine):
        res.append(kfactor_whatif(index, tune_q, truth_tune, eval_q, truth, p, build_kw))
        ann.set_search_params(index, nprobe, k_factor)
    index = tbl = None  # free the built index before the Store loads its own copy
    gc.collect()

    # (e') the public API on the store folder (index loaded from disk, as a server does)
    store = Store(root)
    t = time.perf_counter()
    loaded = store.index("clips")
    load_s = time.perf_counter() - t
    if loaded is None:
        res.append(skipped("Store.search", "Store did not load the saved index (stale or missing)"))
    else:
        hits: dict[str, list[Any]] = {"hits": []}

        def api(q: np.ndarray) -> list[int]:
            got = store.search(vector=q, level="clips", k=K)
            hits["hits"].extend(got)
            return [h.offset for h in got]

        lat, found = time_queries(api, eval_q, tune_q, p, extra=hits)
        pairs = [(h.offset, {"video_uid": h.video_uid, "start": h.start}) for h in hits["hits"]]
        res.append(summarise("Store.search", lat, found, truth, **build_kw, index_load_s=round(load_s, 2),
                             rss_serving_gb=current_rss_gb(), metadata_mismatch=metadata_mismatch(pairs)))
    store = loaded = None
    gc.collect()

    # (b) exact FAISS Flat and (c) numpy brute force on the Flat index's memory
    why = (f"needs the {need_gb:.1f} GB float32 matrix resident, over --max-exact-gb {p.max_exact_gb:.1f} "
           f"(a disk-backed or float16 copy would time the disk or fp16 conversion, not the method)")
    if flat is not None:
        lat, found = time_queries(lambda q: flat.search(q[None], K)[1][0], eval_q, tune_q, p)
        res.append(summarise("faiss Flat", lat, found, truth, build_s=round(flat_add_s, 2), size_bytes=n * p.dim * 4))
        xb = faiss.rev_swig_ptr(flat.get_xb(), n * p.dim).reshape(n, p.dim)

        def brute(q: np.ndarray) -> np.ndarray:
            s = xb @ q
            top = np.argpartition(-s, K)[:K]
            return top[np.argsort(-s[top], kind="stable")]

        lat, found = time_queries(brute, eval_q, tune_q, p)
        res.append(summarise("numpy brute", lat, found, truth, build_s=round(flat_add_s, 2), size_bytes=n * p.dim * 4))
        del xb, flat
        gc.collect()
    else:
        res.append(skipped("faiss Flat", why, size_bytes=n * p.dim * 4))
        res.append(skipped("numpy brute", why, size_bytes=n * p.dim * 4))

    # (d) LanceDB's own search: brute force, then IVF_PQ + refine
    tbl = lancedb.connect(str(root / "lance")).open_table("clips")
    to_off = rowids_to_offsets(lance.dataset(uri))
    meta = ["video_uid", "start", "end", "text", "_distance"]

    def lance_search(q: np.ndarray, nprobes: int | None = None, exact: bool = False, refine: int = 10) -> np.ndarray:
        qb = tbl.search(q, vector_column_name="vector").distance_type("dot").limit(K).select(meta).with_row_id(True)
        if exact:
            qb = qb.bypass_vector_index()
        if nprobes is not None:
            qb = qb.nprobes(nprobes).refine_factor(refine)
        r = qb.to_arrow()
        return to_off(r["_rowid"].to_numpy())

    lat, found = time_queries(lambda q: lance_search(q, exact=True), eval_q, tune_q, p)
    res.append(summarise("lance exact", lat, found, truth, size_bytes=out["lance_table_bytes"],
                         build_s=out["lance_write_s"], note="metadata (video_uid, start, end, text) and score in the same call"))

    if n > p.lance_index_max_n:
        res.append(skipped("lance IVF_PQ", f"not built above --lance-index-max-n {p.lance_index_max_n:,} rows "
                                           "(IVF_PQ builds are slow on CPU: REFERENCE.md, 86 s for 100k x 512)"))
    else:
        print(f"  lance IVF_PQ: building (timeout {p.lance_index_timeout:.0f} s) ...", flush=True)
        before = du(Path(uri))
        ctx = mp.get_context("spawn")  # lancedb does not survive fork
        proc = ctx.Process(target=_lance_index_child, args=(uri,))
        t = time.perf_counter()
        proc.start()
        proc.join(p.lance_index_timeout)
        build_s = time.perf_counter() - t
        if proc.is_alive():
            proc.kill()
            proc.join()
            res.append(skipped("lance IVF_PQ", f"index build did not finish within --lance-index-timeout "
                                               f"{p.lance_index_timeout:.0f} s", build_s=round(build_s, 1)))
        elif proc.exitcode != 0:
            res.append(skipped("lance IVF_PQ", f"index build failed (exit code {proc.exitcode})", build_s=round(build_s, 1)))
        else:
            tbl = lancedb.connect(str(root / "lance")).open_table("clips")
            idx_bytes = du(Path(uri)) - before
            stats: dict[str, Any] = {}
            try:
                name = tbl.list_indices()[0].name
                s = tbl.index_stats(name)
                stats = {"num_indices": getattr(s, "num_indices", None), "index_type": str(getattr(s, "index_type", "")),
                         "num_partitions": getattr(s, "num_partitions", None) if hasattr(s, "num_partitions") else None}
            except Exception as e:  # stats are informative only
                stats = {"error": str(e)[:200]}
            tq, tt = tune_q[:p.lance_tune_queries], truth_tune[:p.lance_tune_queries]
            chosen, chosen_r, tried = (None, None), 0.0, []
            for refine in LANCE_REFINE:  # smallest refine, then smallest nprobes, reaching the target
                prev = -1.0
                for nprobes in LANCE_NPROBES:
                    f = np.stack([np.pad(lance_search(q, nprobes, refine=refine), (0, K), constant_values=-1)[:K] for q in tq])
                    r = ann.recall_at(f, tt)
                    tried.append({"nprobes": nprobes, "refine_factor": refine, "recall": round(r, 4)})
                    if r > chosen_r:
                        chosen, chosen_r = (nprobes, refine), r
                    if r >= p.target_recall or r <= prev + 1e-3:  # reached, or more partitions no longer help
                        break
                    prev = r
                if chosen_r >= p.target_recall:
                    break
            lat, found = time_queries(lambda q: lance_search(q, chosen[0], refine=chosen[1]), eval_q, tune_q, p)
            res.append(summarise("lance IVF_PQ", lat, found, truth, build_s=round(build_s, 1), size_bytes=idx_bytes,
                                 params={"nprobes": chosen[0], "refine_factor": chosen[1], "tune_recall": round(chosen_r, 4),
                                         "tried": tried, **stats},
                                 peak_rss_build_child_gb=peak_rss_gb(resource.RUSAGE_CHILDREN),
                                 note="LanceDB defaults (IVF_PQ, metric dot); metadata in the same call"))

    out["peak_rss_gb"] = peak_rss_gb()
    out["note"] = ("peak_rss_gb: this size's process (build + all methods); the Lance IVF_PQ build ran in a child "
                   "process, reported with that method")
    if not p.keep:
        shutil.rmtree(root, ignore_errors=True)
    return out


# ---- report -----------------------------------------------------------------------------------


def goal_rows(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for s in sizes:
        for m in s["methods"]:
            if m["method"] in ("Store.search", "egoindex ANN+meta") and m["p50_ms"] is not None:
                rows.append({"n": s["n"], "method": m["method"], "p50_ms": m["p50_ms"], "recall_at_10": m["recall_at_10"],
                             "met": bool(m["p50_ms"] <= 10.0 and m["recall_at_10"] >= 0.95),
                             "metadata_mismatch": m.get("metadata_mismatch")})
    return rows


def print_table(sizes: list[dict[str, Any]], info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"single-query search, k={K} ({info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB)")
    for col in ("N", "method", "recall@10", "p50 ms", "p99 ms", "queries", "build s", "size GB", "note"):
        t.add_column(col, justify="left" if col in ("method", "note") else "right")
    for s in sizes:
        for m in s["methods"]:
            note = (m["skipped"] or "")[:60]
            if m["method"] == "egoindex ANN":
                note = f"{s['factory']} nprobe {s['nprobe']} k_factor {s['k_factor']}"
            elif m["method"] == "egoindex ANN kf-tuned" and not m["skipped"]:
                note = f"what-if: nprobe {m['params']['nprobe']} k_factor {m['params']['k_factor']}"
            elif m["method"] == "egoindex ANN+meta":
                note = f"fetch p50 {m['fetch_p50_ms']:.2f} ms"
            if m.get("metadata_mismatch"):
                note = "; ".join(x for x in (note, f"WRONG metadata on {m['metadata_mismatch']:.0%} of hits") if x)
            elif m["method"] == "lance IVF_PQ" and not m["skipped"]:
                note = f"nprobes {m['params']['nprobes']}, refine {m['params']['refine_factor']}"
            t.add_row(f"{s['n']:,}", m["method"], "-" if m["recall_at_10"] is None else f"{m['recall_at_10']:.3f}",
                      "-" if m["p50_ms"] is None else f"{m['p50_ms']:.2f}", "-" if m["p99_ms"] is None else f"{m['p99_ms']:.2f}",
                      str(m["queries"]), "-" if m.get("build_s") is None else f"{m['build_s']:.1f}",
                      "-" if m.get("size_bytes") is None else f"{m['size_bytes'] / 2**30:.2f}", note)
        t.add_section()
    Console(width=max(150, Console().width)).print(t)
    for s in sizes:
        print(f"  {s['n']:,}: peak RSS {s['peak_rss_gb']} GB (after index build {s['peak_rss_after_build_gb']} GB); "
              f"ground truth {s['ground_truth_s']} s")


def plot(sizes: list[dict[str, Any]], path: Path, info: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods: dict[str, list[tuple[int, float]]] = {}
    for s in sizes:
        for m in s["methods"]:
            if m["p50_ms"] is not None:
                methods.setdefault(m["method"], []).append((s["n"], m["p50_ms"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in methods.items():
        pts.sort()
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=name)
    ax.axhline(10.0, color="grey", linestyle="--", linewidth=1, label="goal: 10 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("vectors (512-d)")
    ax.set_ylabel("p50 single-query latency (ms)")
    ax.set_title(f"search latency, k={K} ({info['cores']} cores, {info['cpu'][:40]})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


DATA_PARAMS = ("dim", "seed", "clusters", "spread", "queries", "target_recall")


def merge_sizes(path: Path, new: list[dict[str, Any]], p: Params) -> list[dict[str, Any]]:
    """Sizes from an earlier results file plus this run's, sorted by N; a size run now replaces the
    old one. Refused when the data parameters differ, since the sizes would not be comparable."""
    if not path.exists():
        return new
    old = json.loads(path.read_text())
    mismatch = {k: (old["params"].get(k), getattr(p, k)) for k in DATA_PARAMS if old["params"].get(k) != getattr(p, k)}
    if mismatch:
        raise SystemExit(f"--merge: {path} was made with other data parameters {mismatch}; rerun all sizes instead")
    ran = {r["n"] for r in new}
    kept = [r for r in old["sizes"] if r["n"] not in ran]
    for r in kept:  # sizes saved before per-size run facts existed carry the machine facts of their file
        r.setdefault("run", {"finished": None, "load_average": old["machine"].get("load_average")})
    return sorted(kept + new, key=lambda r: r["n"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--quick", action="store_true", help="smoke check: sizes 100000 300000, Lance IVF_PQ only at 100k")
    ap.add_argument("--queries", type=int, default=200, help="evaluation queries per size")
    ap.add_argument("--clusters", type=int, default=0, help="Gaussian clusters (default N/1000 within 1,000-10,000)")
    ap.add_argument("--spread", type=float, default=Params.spread, help="per-dimension std of a cluster")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fragment-rows", type=int, default=Params.fragment_rows, help="Lance rows per data file")
    ap.add_argument("--budget-s", type=float, default=Params.budget_s, help="seconds per method after --min-queries")
    ap.add_argument("--min-queries", type=int, default=Params.min_queries)
    ap.add_argument("--max-exact-gb", type=float, default=None,
                    help="largest float32 matrix Flat/numpy may hold (default 35%% of RAM)")
    ap.add_argument("--lance-index-max-n", type=int, default=None, help="largest N to build LanceDB IVF_PQ at (default 1M)")
    ap.add_argument("--lance-index-timeout", type=float, default=Params.lance_index_timeout)
    ap.add_argument("--faiss-threads", type=int, default=0, help="OpenMP threads for FAISS queries (default: all cores)")
    ap.add_argument("--work", type=Path, default=CACHE, help="where the tables and indexes go")
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the generated tables")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other sizes already in the results file (same data parameters) and replace "
                         "only the sizes run now: a 10M run takes an hour, so sizes can be measured one at a time")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/search-{cpu|gpu}.json); "
                                                            "the plot goes beside it as .png")
    ap.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:  # one size in its own process: {"n", "params", "out"}
        job = json.loads(args.child)
        res = run_size(int(job["n"]), Params(**job["params"]))
        Path(job["out"]).write_text(json.dumps(res))
        return

    from benchmarks.machine import describe, result_path, save

    info = describe(PACKAGES)
    sizes = [100_000, 300_000] if args.quick else args.sizes
    mem = info["memory_gb"] or 16.0
    p = Params(seed=args.seed, clusters=args.clusters, spread=args.spread, fragment_rows=args.fragment_rows,
               queries=args.queries, budget_s=args.budget_s, min_queries=args.min_queries,
               max_exact_gb=args.max_exact_gb if args.max_exact_gb is not None else round(0.35 * mem, 1),
               lance_index_max_n=args.lance_index_max_n if args.lance_index_max_n is not None
               else (100_000 if args.quick else 1_000_000),
               lance_index_timeout=args.lance_index_timeout, faiss_threads=args.faiss_threads, work=str(args.work), keep=args.keep)
    results = []
    for n in sizes:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            tmp = Path(f.name)
        job = json.dumps({"n": n, "params": asdict(p), "out": str(tmp)})
        rc = subprocess.call([sys.executable, "-m", "benchmarks.search", "--child", job],
                             cwd=Path(__file__).resolve().parent.parent)
        if rc != 0 or tmp.stat().st_size == 0:
            results.append({"n": n, "failed": f"exit code {rc}", "methods": []})
            print(f"size {n:,} failed (exit code {rc})", flush=True)
        else:
            results.append(json.loads(tmp.read_text()))
        # each size records when it ran and how busy the machine was, since merged sizes come from different runs
        results[-1]["run"] = {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "load_average": [round(x, 2) for x in os.getloadavg()]}
        tmp.unlink(missing_ok=True)

    out_path = args.out if args.out is not None else result_path("search", info)
    if args.merge:
        results = merge_sizes(out_path, results, p)
    done = [r for r in results if "failed" not in r]
    if done:
        print_table(done, info)
    goal = goal_rows(done)
    for g in goal:
        print(f"  goal (p50 <= 10 ms, recall@10 >= 0.95) at {g['n']:,}, {g['method']}: p50 {g['p50_ms']:.2f} ms, "
              f"recall {g['recall_at_10']:.3f} -> {'met' if g['met'] else 'NOT met'}"
              + (f"; and {g['metadata_mismatch']:.0%} of its hits carry another row's metadata" if g["metadata_mismatch"] else ""))
    payload = {"k": K, "params": asdict(p), "sizes": results, "goal": goal,
               "note": "single-query latency on one thread of queries; queries = other stored vectors + N(0, 0.05) "
                       "noise, re-normalised (ann.sample_queries); recall@10 against exact IndexFlatIP"}
    if args.out is None:
        path = save("search", payload, packages=PACKAGES)
    else:
        path = out_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"benchmark": "search", "machine": info, **payload}, indent=1) + "\n")
    if done:
        plot(done, path.with_suffix(".png"), info)
        print(f"wrote {path} and {path.with_suffix('.png')}")
    else:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
