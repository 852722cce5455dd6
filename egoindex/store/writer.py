"""Everything that writes STORE: Lance fragments, one commit per table, the metadata cache, StoreMeta.

Why one writer: the reader (:class:`egoindex.store.store.Store`) relies on promises that only hold
if every writer keeps them, so they are kept here once:

* rows are only ever appended, never reordered, and deleted only by a redaction
  (:mod:`egoindex.store.redact`, which then rebuilds every index): a row's offset in its table is
  its FAISS id, so an index stays valid when a table grows;
* new rows become visible in *one* Lance commit per table (:func:`commit_fragments`), after their
  data files are written (:func:`write_fragments`), and a commit is idempotent: a commit that a
  killed run already made is recognised by its ``unit`` names and not made twice;
* readers open the table versions that ``egoindex.json`` records, so a store being appended to
  stays readable; hence :class:`StoreMeta` is written last (:func:`write_meta`), after the
  tables, indexes and metadata caches it vouches for (:func:`record_tables`).

``egoindex build`` and the search benchmark's synthetic store both write through here.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lance
import lancedb
import numpy as np
import pyarrow as pa
from lance.fragment import FragmentMetadata, write_fragments as lance_write_fragments

from egoindex.core.fsutil import atomic_open
from egoindex.errors import StoreError
from egoindex.store.filters import in_list
from egoindex.store.layout import StoreLayout, StoreMeta
from egoindex.store.snapshots import files_of, publish
from egoindex.store.schema import (TABLES, VECTOR_TABLES, metadata_columns, missing_columns, schema_for, vectors_array,
                                   with_missing_as_null)

#: Rows per Lance data file (the build's and the benchmark's).
MAX_ROWS_PER_FILE = 1 << 20
#: How many unit names the "already committed?" probe asks about (any one of them answers).
PROBE_UNITS = 64


def open_dataset(layout: StoreLayout, table: str, version: int | None = None) -> lance.LanceDataset | None:
    """The table's Lance dataset (latest version unless given), or None when it was never written."""
    try:
        return lance.dataset(layout.uri(table), version=version, storage_options=layout.storage_options)
    except (ValueError, FileNotFoundError, OSError):
        return None


def write_fragments(layout: StoreLayout, table: str, rows: list[dict[str, Any]], vecs: np.ndarray | None,
                    dim: int) -> list[str]:
    """Write ``rows`` (and their vectors) as Lance data files of ``table``, not yet visible to
    readers; returns the fragments' metadata as JSON documents for :func:`commit_fragments`
    (a build keeps them in its resumable state until the commit)."""
    schema = schema_for(table, dim)
    # a column a row lacks is null (the speaker and participant columns of rows made without them)
    cols: dict[str, Any] = {n: [r.get(n) for r in rows] for n in schema.names if n != "vector"}
    if vecs is not None:
        cols["vector"] = vectors_array(vecs) if len(rows) else pa.array([], schema.field("vector").type)
    tbl = pa.table(cols, schema=schema)
    if tbl.num_rows == 0:
        return []
    frags = lance_write_fragments(tbl, layout.uri(table), schema=schema, max_rows_per_file=MAX_ROWS_PER_FILE,
                                  storage_options=layout.storage_options)
    return [json.dumps(f.to_json()) for f in frags]


def commit_fragments(layout: StoreLayout, table: str, docs: list[str], dim: int, unit_col: str,
                     units: list[str]) -> bool:
    """Make written fragments visible in one commit, unless a previous (killed) run already did:
    rows of any of ``units`` in ``unit_col`` mean the commit happened. Returns whether it committed."""
    frags = [FragmentMetadata.from_json(d) for d in docs]
    if not frags:
        return False
    uri = layout.uri(table)
    ds = open_dataset(layout, table)
    if ds is not None:
        if ds.count_rows(filter=in_list(unit_col, units[:PROBE_UNITS])) > 0:
            return False  # committed before the kill
    if not fragments_present(layout, table, docs):  # committing them would name missing files
        raise StoreError(f"data files of {table} written by this build are gone (an `egoindex redact` removed "
                         "them while the build ran); rerun `egoindex build`: it writes them again")
    opts = layout.storage_options  # on S3, Lance commits with a conditional put (If-None-Match; docs/store.md)
    if ds is not None:
        lance.LanceDataset.commit(uri, lance.LanceOperation.Append(frags), read_version=ds.version,
                                  storage_options=opts)
    else:
        lance.LanceDataset.commit(uri, lance.LanceOperation.Overwrite(schema_for(table, dim), frags),
                                  storage_options=opts)
    return True


def fragments_present(layout: StoreLayout, table: str, docs: Iterable[str]) -> bool:
    """Whether the data files of written fragments (their JSON documents, as :func:`write_fragments`
    returns them) are all still there. A redaction removes every file that no table version uses
    (:func:`egoindex.store.redact.purge_old_versions`), so a build resumed after one asks this of
    its uncommitted work and redoes what is gone."""
    if layout.remote is not None:
        names = set(files_of(layout).files(f"lance/{table}.lance/data"))
        return all(f.path in names for d in docs for f in FragmentMetadata.from_json(d).files)
    data = Path(layout.uri(table)) / "data"
    return all((data / f.path).is_file() for d in docs for f in FragmentMetadata.from_json(d).files)


def write_table(layout: StoreLayout, table: str, data: pa.Table | Iterable[pa.RecordBatch], dim: int, *,
                max_rows_per_file: int = MAX_ROWS_PER_FILE) -> None:
    """Write a whole table in one go (replacing it), streaming record batches of ``schema_for(table)``
    (columns it lacks of the speaker and participant ones are added as nulls): for stores made
    outside a build (the search benchmark's synthetic millions of rows)."""
    schema = schema_for(table, dim)
    if isinstance(data, pa.Table):
        data = with_missing_as_null(data, schema)
    else:
        data = pa.RecordBatchReader.from_batches(schema, (with_missing_as_null(b, schema) for b in data))
    if layout.remote is None:
        layout.lance.mkdir(parents=True, exist_ok=True)
    lance.write_dataset(data, layout.uri(table), schema=schema, mode="overwrite", max_rows_per_file=max_rows_per_file,
                        storage_options=layout.storage_options)


def outdated_tables(layout: StoreLayout, dim: int) -> dict[str, list[str]]:
    """``{table: columns it lacks}`` for the store's tables written before columns of this
    egoindex's schema existed (the speaker and participant columns): an ``--append`` would give
    their new rows columns the old rows have not, which one Lance table cannot hold."""
    out = {}
    for table in TABLES:
        ds = open_dataset(layout, table)
        if ds is not None and (missing := missing_columns(table, ds.schema, dim)):
            out[table] = missing
    return out


def index_column(layout: StoreLayout, table: str, column: str) -> None:
    """A scalar index on ``column`` (per-video reads of frames); optional, so a failure is ignored."""
    tbl = lancedb.connect(layout.lance_uri, storage_options=layout.storage_options).open_table(table)
    with contextlib.suppress(Exception):  # lancedb raises several types by version; the index only speeds reads
        with warnings.catch_warnings():  # lancedb 0.40 deprecates the name, not the call
            warnings.simplefilter("ignore", DeprecationWarning)
            tbl.create_scalar_index(column, replace=True)


def write_metadata_cache(layout: StoreLayout, table: str, dataset: lance.LanceDataset) -> Path:
    """Write the non-vector columns of a Lance dataset version as an Arrow IPC file (atomically)
    and drop the files of older versions; see :meth:`egoindex.store.store.Store.metadata`."""
    path = layout.metadata_cache(table, dataset.version)
    if not path.is_file():
        data = dataset.to_table(columns=metadata_columns(dataset.schema))
        with atomic_open(path, "wb") as f, pa.ipc.new_file(f, data.schema) as writer:
            writer.write_table(data)
    for old in path.parent.glob(f"{table}-v*.arrow"):
        if old != path:
            old.unlink(missing_ok=True)
    return path


def record_tables(layout: StoreLayout) -> tuple[dict[str, int], dict[str, int]]:
    """Rows and the current version of every table (0 rows for a table not written), writing the
    vector tables' metadata caches for those versions: what :class:`StoreMeta` then records."""
    rows: dict[str, int] = {}
    versions: dict[str, int] = {}
    for table in TABLES:
        rows[table] = 0
        ds = open_dataset(layout, table)
        if ds is None:
            continue
        rows[table], versions[table] = ds.count_rows(), ds.version
        if table in VECTOR_TABLES:  # hits' metadata, memory-mapped by readers (Store.metadata)
            write_metadata_cache(layout, table, ds)
    return rows, versions


def write_meta(layout: StoreLayout, meta: StoreMeta) -> None:
    """Write ``egoindex.json`` (atomically), the last step of every write: a store is usable once
    it exists, and it names the table versions readers open. A store on object storage then
    uploads its stage's snapshot and, last, ``egoindex.json`` (:func:`egoindex.store.snapshots.publish`)."""
    meta.write(layout.root)
    if layout.remote is not None:
        publish(layout)
