"""FAISS indexes over the store's vector tables: choice by size, build, tuning, search, report.

Why FAISS beside Lance: Lance keeps the rows and evaluates filters; FAISS answers unfiltered and
broadly filtered nearest-neighbour queries in well under a millisecond and can build on a GPU.
A FAISS id is the row's *offset* in its Lance table (0..N-1 in table order). Offsets are stable
because egoindex never reorders rows of a committed table and deletes them only in a redaction:
a build or ``--append`` only adds fragments at the end (see ``egoindex/build/``), so an appended
index just adds the new rows; a redaction (:mod:`egoindex.store.redact`) rebuilds every index.

The factory is chosen like autofaiss does, by size (``choose_factory``):

* up to ``EXACT_MAX`` vectors: ``Flat`` (exact inner product; a few ms even at 100k x 512);
* up to 2M: ``IVF{nlist},PQ{D/2}x4fs,RFlat`` - fast-scan PQ shortlist re-ranked with the exact
  vectors (REFERENCE.md: plain IVF-PQ has recall ~0.4, the refine stage brings it to ~1.0);
* beyond: ``IVF{nlist},PQ{D/2}x4fs,Refine(SQ8)`` - the refine stage keeps 8-bit vectors
  (D bytes per vector instead of 4D), so 10M x 512 fits in ~6 GB of RAM (6.10 GB measured).

The coarse quantizer stays flat (exact) at every size, even at 16k-64k lists where an HNSW graph
over the centroids looks cheaper: on clustered data (what embeddings of a few homes are) the
graph search strands queries in the wrong cluster. Measured at 1M clustered vectors with 16,384
lists (``benchmarks/ann_recall.py``; figures in docs/benchmarks.md): an HNSW quantizer
(efSearch 16) put 4.85 % of vectors in a wrong list and stalled recall@10 at 0.71 whatever
nprobe; the same centroids searched exactly reach 0.955 (SQ8 refine) at nprobe 64. The flat
quantizer costs one 16k x D product per query (~1 ms), which fits the 10 ms budget.

What the flat quantizer makes slow is *adding*: 10M vectors x 16k centroids x 512 is 8e13
multiply-adds, ~18 min on two cores (11 s per 100k vectors, measured). So from
``TWO_LEVEL_MIN_NLIST`` lists on, ``build_index`` assigns added vectors with a throw-away
two-level index over the centroids (``two_level_assigner``): 99.88 % of vectors land in the list
the exact search would pick, 3.1x faster at 16k lists; queries still use the exact quantizer
that is saved.

Training: ``training_size`` rows (about 40 per IVF list, at least 256k, at most 1M: FAISS warns
below 39 per centroid). Large k-means (>= 4096 lists) assign points with an HNSW index over the
centroids instead of brute force, which makes training several times faster; k-means tolerates
the few wrong assignments (the centroids it returns are then searched exactly).

``nprobe`` and the refine ``k_factor`` are tuned after the build: the first pair (nprobe first,
k_factor within ``refine_k_factors``' byte budget) whose recall@10 against exact search on sampled
queries reaches ``target_recall`` (default 0.95), recorded in the index's json.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from egoindex.core.fsutil import atomic_open, write_json

EXACT_MAX = 100_000
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TWO_LEVEL_MIN_NLIST = 8192  # from here on, added vectors are assigned through a two-level index
TWO_LEVEL_NPROBE = 8
K_FACTORS = (8.0, 16.0, 32.0, 64.0, 128.0)
REFINE_FLOATS_PER_RESULT = 32  # the refine cost accepted: k_factor 32 x one float32 vector, per result


def choose_factory(n: int, dim: int) -> str:
    if n <= EXACT_MAX:
        return "Flat"
    nlist = 1 << max(4, min(16, int(round(math.log2(4 * math.sqrt(n))))))
    m = dim // 2 if dim % 2 == 0 and dim // 2 <= 256 else dim
    if n <= 2_000_000:
        return f"IVF{nlist},PQ{m}x4fs,RFlat"
    return f"IVF{nlist},PQ{m}x4fs,Refine(SQ8)"


def nlist_of(factory: str) -> int | None:
    """The number of IVF lists a factory string asks for (``IVF4096,...`` -> 4096), else None."""
    head = factory.split(",")[0]
    if not head.startswith("IVF"):
        return None
    digits = head[3:].split("_")[0]
    return int(digits) if digits.isdigit() else None


def training_size(n: int, factory: str) -> int:
    """How many sampled rows to train an index on: ~40 per IVF list, within [256k, 1M]."""
    nlist = nlist_of(factory)
    want = 256 * 1024 if nlist is None else min(1 << 20, max(256 * 1024, 40 * nlist))
    return min(n, want)


@dataclass
class IndexInfo:
    """What ``indexes/{table}.json`` records beside ``{table}.faiss``."""

    table: str
    factory: str
    ntotal: int
    dim: int
    table_version: int
    nprobe: int | None = None
    k_factor: float | None = None
    recall_at_10: float | None = None
    build_seconds: float = 0.0
    trained_on: int = 0
    gpu: bool = False
    extra: dict = field(default_factory=dict)


def _gpu_resources() -> object | None:
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        return faiss.StandardGpuResources()
    return None


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF part of an index (inside a refine or pre-transform wrapper), or None for a flat one."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def set_search_params(index: faiss.Index, nprobe: int | None, k_factor: float | None) -> None:
    ivf = ivf_of(index)
    if ivf is not None and nprobe:
        ivf.nprobe = int(nprobe)
    if k_factor and isinstance(index, faiss.IndexRefine):
        index.k_factor = float(k_factor)


def exact_topk(batches: Iterable[np.ndarray], queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids over vectors streamed in batches (ids = running offsets): the ground truth
    for recall, in memory bounded by one batch."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.full((len(queries), k), -1, np.int64)
    base = 0
    for b in batches:
        s = queries @ b.T
        kk = min(k, b.shape[0])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], 1)
        cand_i = np.concatenate([best_i, part + base], 1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
        base += b.shape[0]
    return best_i


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true top-k found in the returned top-k (the usual recall@k)."""
    k = truth.shape[1]
    hits = [len(set(f[:k].tolist()) & set(t.tolist())) / k for f, t in zip(found, truth)]
    return float(np.mean(hits)) if hits else 1.0


def sample_queries(vectors: np.ndarray, n: int, seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """Queries near the data (stored vectors plus noise, re-normalised): what real queries look
    like to an index (a text query lands near the frames it describes, not on one of them)."""
    rng = np.random.default_rng(seed)
    q = vectors[rng.choice(len(vectors), size=min(n, len(vectors)), replace=False)].astype(np.float32)
    q = q + rng.normal(0, noise, size=q.shape).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def build_index(sample: np.ndarray, batches: Iterable[np.ndarray], n: int, factory: str | None = None,
                index: faiss.Index | None = None) -> tuple[faiss.Index, dict]:
    """Train a new index on ``sample`` (or extend ``index``) and add ``batches`` (ids continue from
    ``index.ntotal``), holding one batch in memory at a time. On a GPU when faiss-gpu sees one (the
    result is always a CPU index, for saving and mmap serving)."""
    dim = sample.shape[1]
    t0 = time.perf_counter()
    trained_on = 0
    use_gpu = False
    if index is None:
        factory = factory or choose_factory(n, dim)
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        res = _gpu_resources()
        if res is not None:
            try:
                co = faiss.GpuClonerOptions()
                co.useFloat16LookupTables = True  # PQ >= 56 sub-quantizers needs it on the GPU
                index = faiss.index_cpu_to_gpu(res, 0, index, co)
                use_gpu = True
            except RuntimeError:  # not every factory has a GPU version (e.g. fast-scan PQ): build on CPU
                pass
        if not index.is_trained:
            ivf = None if use_gpu else ivf_of(index)
            assigner = None
            if ivf is not None and ivf.nlist >= 4096:  # k-means assignment by HNSW, not brute force
                assigner = faiss.IndexHNSWFlat(dim, 32)
                ivf.clustering_index = assigner
            index.train(np.ascontiguousarray(sample, dtype=np.float32))
            if ivf is not None:
                ivf.clustering_index = None  # only needed for training; not saved
            del assigner
            trained_on = len(sample)
    ivf = None if use_gpu else ivf_of(index)
    with _two_level_assignment(ivf):
        for b in batches:
            index.add(np.ascontiguousarray(b, dtype=np.float32))
    if use_gpu:
        index = faiss.index_gpu_to_cpu(index)
    return index, {"factory": factory, "build_seconds": time.perf_counter() - t0, "trained_on": trained_on,
                   "gpu": use_gpu}


def two_level_assigner(centroids: np.ndarray, metric: int) -> faiss.IndexIVFFlat:
    """An ``IVF{c},Flat`` index over an IVF's centroids (c ~ 2 sqrt(nlist), ``TWO_LEVEL_NPROBE``
    probes): nearest-centroid search for adding vectors, 3.1x faster than exact search at 16k
    lists and 99.88 % in agreement with it (``benchmarks/ann_recall.py`` prints both)."""
    nlist, dim = centroids.shape
    coarse = faiss.IndexFlat(dim, metric)
    n_coarse = 1 << int(round(math.log2(2 * math.sqrt(nlist))))
    two_level = faiss.IndexIVFFlat(coarse, dim, n_coarse, metric)
    two_level.cp.min_points_per_centroid = 1  # k-means over the centroids themselves: quiet
    two_level.train(centroids)
    two_level.add(centroids)
    two_level.make_direct_map()  # IVF-PQ asks its quantizer for centroids (residuals) by list number
    two_level.nprobe = TWO_LEVEL_NPROBE
    return two_level


@contextmanager
def _two_level_assignment(ivf: faiss.IndexIVF | None) -> Iterator[None]:
    """While adding, let ``ivf`` assign vectors to lists through a ``two_level_assigner`` instead
    of its exact quantizer, which is put back afterwards, for queries and for saving. A no-op
    below ``TWO_LEVEL_MIN_NLIST`` lists or when the quantizer is not flat (e.g. an older store's
    HNSW)."""
    quantizer = None if ivf is None else faiss.downcast_index(ivf.quantizer)
    if ivf is None or ivf.nlist < TWO_LEVEL_MIN_NLIST or not isinstance(quantizer, faiss.IndexFlat):
        yield
        return
    two_level = two_level_assigner(quantizer.reconstruct_n(0, quantizer.ntotal), quantizer.metric_type)
    ivf.quantizer = two_level  # own_fields is unchanged: the ivf still owns (and frees) ``quantizer``
    try:
        yield
    finally:
        ivf.quantizer = quantizer


def stored_lists(index: faiss.Index) -> np.ndarray:
    """The IVF list each stored id sits in (-1 for none): where ``build_index`` put each vector."""
    ivf = ivf_of(index)
    out = np.full(index.ntotal, -1, np.int64)
    for lst in range(ivf.nlist):
        size = ivf.invlists.list_size(lst)
        if size:
            out[faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), size)] = lst
    return out


def refine_k_factors(index: faiss.Index) -> tuple[float | None, ...]:
    """The refine shortlist lengths ``tune`` may try: as many refine bytes per result as an RFlat
    refine reads at k_factor 32 (float32 vectors), so SQ8 codes (4x smaller) go up to 128. At 10M
    the PQ shortlist is noisier and k_factor, not nprobe, is what lifts recall past 0.95."""
    if not isinstance(index, faiss.IndexRefine):
        return (None,)
    budget = REFINE_FLOATS_PER_RESULT * 4 * index.d
    return tuple(f for f in K_FACTORS if f * index.refine_index.sa_code_size() <= budget)


def tune(index: faiss.Index, queries: np.ndarray, truth: np.ndarray,
         target_recall: float = 0.95) -> tuple[int | None, float | None, float]:
    """Cheapest (nprobe, refine k_factor) reaching ``target_recall`` against exact ``truth``;
    returns (nprobe, k_factor, recall). Both knobs matter: when the PQ shortlist limits recall,
    more lists do not help but a longer shortlist (k_factor) does."""
    k = truth.shape[1]
    ivf = ivf_of(index)
    if ivf is None:
        return None, None, recall_at(index.search(queries, k)[1], truth)
    factors = refine_k_factors(index)
    best: tuple[int | None, float | None, float] = (ivf.nlist, factors[-1], 0.0)
    for nprobe in [p for p in NPROBES if p < ivf.nlist] + [ivf.nlist]:
        for k_factor in factors:
            set_search_params(index, nprobe, k_factor)
            r = recall_at(index.search(queries, k)[1], truth)
            if r > best[2]:
                best = (nprobe, k_factor, r)
            if r >= target_recall:
                set_search_params(index, nprobe, k_factor)
                return nprobe, k_factor, r
    set_search_params(index, best[0], best[1])
    return best


def save_index(index: faiss.Index, info: IndexInfo, directory: Path) -> None:
    """Write ``{table}.faiss`` then ``{table}.json`` (the json last: it vouches for the file)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = faiss.serialize_index(index)
    with atomic_open(directory / f"{info.table}.faiss", "wb") as f:
        f.write(data.tobytes())
    write_json(directory / f"{info.table}.json", asdict(info))


def remove_index(directory: Path, table: str) -> None:
    """Delete a table's saved index (the json first: without it the .faiss is not trusted)."""
    for ext in ("json", "faiss"):
        (directory / f"{table}.{ext}").unlink(missing_ok=True)


def load_index(directory: Path, table: str, mmap: bool = False) -> tuple[faiss.Index, IndexInfo] | None:
    meta, path = directory / f"{table}.json", directory / f"{table}.faiss"
    if not (meta.is_file() and path.is_file()):
        return None
    info = IndexInfo(**json.loads(meta.read_text(encoding="utf-8")))
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    index = faiss.read_index(str(path), flags)
    set_search_params(index, info.nprobe, info.k_factor)
    return index, info


def search(index: faiss.Index, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
           nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, offsets); ``allowed`` restricts the search to those offsets (prefilter).

    With a filter, an IVF index probes proportionally more lists (the tuned ``nprobe`` times
    ``ntotal / len(allowed)``, at most every list): the tuned nprobe finds enough true neighbours
    when every row may answer, but when only 1 row in 7 is allowed the same lists hold 7x fewer
    candidates and recall drops (measured: 0.8 instead of 0.95 at 1/7)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if allowed is None:
        return index.search(queries, k)
    sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
    ivf = ivf_of(index)
    if ivf is not None and nprobe is None and len(allowed):
        nprobe = min(ivf.nlist, math.ceil(ivf.nprobe * index.ntotal / len(allowed)))
    if isinstance(index, faiss.IndexRefine):
        base = faiss.SearchParametersIVF(sel=sel, nprobe=int(nprobe or (ivf.nprobe if ivf else 1)))
        params = faiss.IndexRefineSearchParameters(k_factor=index.k_factor, base_index_params=base, sel=sel)
    elif ivf is not None:
        params = faiss.SearchParametersIVF(sel=sel, nprobe=int(nprobe or ivf.nprobe))
    else:
        params = faiss.SearchParameters(sel=sel)
    return index.search(queries, k, params=params)
