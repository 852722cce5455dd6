"""A table's FAISS index kept in step with its rows: extend, rebuild, tune, save (``STORE/indexes``).

Why here and not in the build: both ``egoindex build`` (after each commit) and ``egoindex index
--rebuild`` (:func:`egoindex.store.report.rebuild_indexes`) keep indexes current, and the store
must not import a stage. The index mechanics (factory choice, training, tuning, search) are
:mod:`egoindex.store.ann`; this module decides *when* to extend and when to rebuild:

* an index that matches the table (same row count, same Lance version, same factory) is kept;
* rows are only ever appended (:mod:`egoindex.store.writer`), so when the table grew and the
  factory is still the one its size calls for, the new rows are added to the saved index;
* otherwise (another size class, or a factory asked for) it is rebuilt from scratch.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from egoindex.core import failpoints
from egoindex.store import ann
from egoindex.store.layout import StoreLayout
from egoindex.store.schema import sample_table_vectors, table_vector_batches
from egoindex.store.writer import open_dataset

#: Sampled queries that ``nprobe``/``k_factor`` are tuned on.
TUNE_QUERIES = 200


def update_index(layout: StoreLayout, table: str, factory: str | None, target_recall: float) -> dict[str, Any]:
    """Extend or (re)build ``table``'s FAISS index, tune nprobe, save; returns the saved
    :class:`ann.IndexInfo` as a dict ({} when the table is missing or empty)."""
    ds = open_dataset(layout, table)
    if ds is None:
        return {}
    n, version = ds.count_rows(), ds.version
    if n == 0:
        return {}
    uri = layout.uri(table)
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
    opts = layout.storage_options
    train = sample_table_vectors(uri, ann.training_size(n, want), storage_options=opts)
    index, facts = ann.build_index(train, table_vector_batches(uri, start, storage_options=opts), n, want, index=index)
    queries = ann.sample_queries(train, TUNE_QUERIES)
    truth = ann.exact_topk(table_vector_batches(uri, 0, storage_options=opts), queries, min(10, n))
    nprobe, k_factor, recall = ann.tune(index, queries, truth, target_recall)
    info = ann.IndexInfo(table=table, factory=want, ntotal=int(index.ntotal), dim=dim, table_version=version,
                         nprobe=nprobe, k_factor=k_factor, recall_at_10=round(recall, 4),
                         build_seconds=round(facts["build_seconds"], 3), trained_on=facts["trained_on"] or
                         (existing[1].trained_on if existing else 0), gpu=facts["gpu"])
    ann.save_index(index, info, layout.indexes)
    failpoints.hit("build-index-done")
    return asdict(info)


def rebuild_index(layout: StoreLayout, table: str, factory: str | None = None, target_recall: float = 0.95
                  ) -> dict[str, Any]:
    """Drop ``table``'s saved index and build it again from the table."""
    ann.remove_index(layout.indexes, table)
    return update_index(layout, table, factory, target_recall)
