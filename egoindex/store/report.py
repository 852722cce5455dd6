"""``egoindex index``: rebuild a store's FAISS indexes, or measure them against exact search.

The report is what a user needs to trust an approximate index: recall@10 against exact
inner-product search on sampled queries, and per-query latency of a full search (FAISS plus
fetching the rows' metadata from Lance) next to Lance's exact brute-force search.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from egoindex.store import ann
from egoindex.store.filters import Filters
from egoindex.store.index import rebuild_index
from egoindex.store.schema import VECTOR_TABLES, sample_table_vectors, table_vector_batches
from egoindex.store.store import Store


def _ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q)) if samples else float("nan")


def index_report(store: Store, n_queries: int = 200, k: int = 10, seed: int = 0) -> list[dict[str, Any]]:
    rows = []
    for table in VECTOR_TABLES:
        got = store.index(table)
        n = store.count(table)
        if n == 0:
            continue
        uri = store.layout.uri(table)
        opts = store.layout.storage_options
        queries = ann.sample_queries(sample_table_vectors(uri, 100_000, seed, storage_options=opts), n_queries, seed + 1)
        truth = ann.exact_topk(table_vector_batches(uri, 0, storage_options=opts), queries, min(k, n))
        lat, exact_lat = [], []
        found = []
        for q in queries:
            t0 = time.perf_counter()
            hits = store.search_vector(q, table, k, Filters())
            lat.append(time.perf_counter() - t0)
            found.append([h.offset for h in hits])
        for q in queries[: min(len(queries), 50)]:
            t0 = time.perf_counter()
            store.exact_search(q, table, k, None)
            exact_lat.append(time.perf_counter() - t0)
        info = got[1] if got else None
        width = max(len(f) for f in found) if found else 0
        arr = np.array([f + [-1] * (width - len(f)) for f in found], np.int64)
        rows.append({"table": table, "rows": n, "factory": info.factory if info else "none (exact)",
                     "nprobe": info.nprobe if info else None,
                     "recall_at_10": ann.recall_at(arr, truth) if got else 1.0,
                     "p50_ms": _ms(lat, 50), "p99_ms": _ms(lat, 99), "exact_p50_ms": _ms(exact_lat, 50),
                     "queries": len(queries)})
    return rows


def rebuild_indexes(store: Store, factory: str | None = None) -> None:
    """Drop and rebuild every vector table's FAISS index (``egoindex index --rebuild``)."""
    for table in VECTOR_TABLES:
        rebuild_index(store.layout, table, factory, 0.95)
