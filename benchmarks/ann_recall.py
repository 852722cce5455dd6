"""Recall@10 of FAISS factory strings over a grid of nprobe x k_factor, on the search benchmark's
synthetic data, in memory: a quick way to see whether an index family can reach the 0.95 goal
before spending an hour on ``benchmarks.search`` at 10M.

Why it exists: at 10M, ``ann.choose_factory`` used to pick ``IVF16384_HNSW32,PQ256x4fs,Refine(SQ8)``
and ``benchmarks.search`` measured recall@10 0.64 (``results/search-10m-stopped.log``). This script
reproduced the plateau at 1M (0.71-0.74 for nprobe 64-256 and k_factor 32-128, with SQ8 or SQfp16
refinement alike), where ``IVF4096,PQ256x4fs,RFlat`` reaches 0.969 and ``IVF16384,PQ256x4fs,RFlat``
(flat quantizer) 0.970 at nprobe 64, while ``IVF4096_HNSW32,PQ256x4fs,RFlat`` stalls at 0.84: the
HNSW coarse quantizer is what limited recall, not the list count or the refine stage. Hence the
flat quantizer and the two-level add-time assignment in ``egoindex/store/ann.py``.

Usage:
    python -m benchmarks.ann_recall "IVF16384,PQ256x4fs,Refine(SQ8)" "IVF16384_HNSW32,PQ256x4fs,Refine(SQ8)"
    python -m benchmarks.ann_recall "IVF16384,PQ256x4fs,Refine(SQ8)" --nprobe 16 32 64 128 --k-factor 32 64 128
    python -m benchmarks.ann_recall --n 300000 --clusters 300 "IVF1024_HNSW32,PQ256x4fs,Refine(SQfp16)"
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from benchmarks.search import ClusterModel
from egoindex.store import ann


def assignment(index: faiss.Index, x: np.ndarray) -> None:
    """How many of ``x`` (the first stored vectors) sit in the list exact search picks, and, for
    a flat quantizer, how long exact and two-level assignment take on them."""
    ivf = ann.ivf_of(index)
    if ivf is None:
        return
    quantizer = faiss.downcast_index(ivf.quantizer)
    centroids = quantizer.reconstruct_n(0, quantizer.ntotal)
    exact = faiss.IndexFlat(ivf.d, quantizer.metric_type)
    exact.add(centroids)
    t = time.perf_counter()
    want = exact.search(x, 1)[1][:, 0]
    exact_s = time.perf_counter() - t
    agree = float(np.mean(ann.stored_lists(index)[:len(x)] == want))
    line = f"  in the list exact search picks: {agree:.2%} of the first {len(x):,} vectors"
    if isinstance(quantizer, faiss.IndexFlat):
        two_level = ann.two_level_assigner(centroids, quantizer.metric_type)
        t = time.perf_counter()
        two_level.search(x, 1)
        line += (f"; assigning them: exact {exact_s:.1f} s, two-level "
                 f"(IVF{two_level.nlist},Flat nprobe {two_level.nprobe}) {time.perf_counter() - t:.1f} s")
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("factories", nargs="+")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--clusters", type=int, default=1000, help="as benchmarks.search: N/1000 within 1,000-10,000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--train", type=int, default=655_360, help="training sample (the build's ~40 rows per list at 16384)")
    ap.add_argument("--nprobe", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--k-factor", type=float, nargs="+", default=[32, 128])
    args = ap.parse_args()

    model = ClusterModel(args.clusters, args.dim, 0.03, 0)
    chunk = 100_000
    x = np.concatenate([model.chunk(i, min(chunk, args.n - i * chunk)) for i in range((args.n + chunk - 1) // chunk)])
    rng = np.random.default_rng(1)
    q = ann.sample_queries(x[rng.choice(args.n, 200, replace=False)], 200, seed=1)
    _, truth = faiss.knn(q, x, 10, metric=faiss.METRIC_INNER_PRODUCT)
    train = x[rng.choice(args.n, min(args.train, args.n), replace=False)]
    print(f"{args.n:,} x {args.dim}, {args.clusters} clusters; 200 queries; recall@10 against exact search")
    for factory in args.factories:
        t = time.perf_counter()
        index, _ = ann.build_index(train, (x[i:i + 200_000] for i in range(0, args.n, 200_000)), args.n, factory)
        built = time.perf_counter() - t
        assignment(index, x[:100_000])
        for nprobe in args.nprobe:
            for kf in args.k_factor:
                ann.set_search_params(index, nprobe, kf)
                _, found = index.search(q, 10)
                print(f"  {factory:<45} nprobe {nprobe:>5}  k_factor {kf:>5g}  recall@10 {ann.recall_at(found, truth):.3f}"
                      f"  (built in {built:.0f} s)", flush=True)
        del index


if __name__ == "__main__":
    main()
