"""Arrow schemas of the store's LanceDB tables (one place, so build, queries and docs agree).

Vectors are ``fixed_size_list<float32>[D]`` columns named ``vector`` (what LanceDB and FAISS both
want), always L2-normalised, so inner product = cosine. Times are seconds from the start of the
source video. ``unit`` names the build unit (a shard, or a bucket of videos) that wrote the row:
it is how an interrupted or appended build knows which rows are already committed.
"""

from __future__ import annotations

from collections.abc import Iterator

import lance
import numpy as np
import pyarrow as pa

TABLES = ("frames", "clips", "utterances", "videos")
VECTOR_TABLES = ("frames", "clips", "utterances")


def vector_type(dim: int) -> pa.DataType:
    return pa.list_(pa.float32(), dim)


def frames_schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("video_uid", pa.string()), ("t", pa.float64()), ("frame_index", pa.int32()), ("split", pa.string()),
        ("text", pa.string()), ("shard", pa.string()), ("key", pa.string()), ("unit", pa.string()),
        ("vector", vector_type(dim)),
    ])


def clips_schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("video_uid", pa.string()), ("start", pa.float64()), ("end", pa.float64()), ("n_frames", pa.int32()),
        ("split", pa.string()), ("text", pa.string()), ("unit", pa.string()), ("vector", vector_type(dim)),
    ])


def utterances_schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("utterance_id", pa.string()), ("video_uid", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
        ("split", pa.string()), ("text", pa.string()), ("no_speech_prob", pa.float32()),
        ("avg_logprob", pa.float32()), ("compression_ratio", pa.float32()), ("unit", pa.string()),
        ("vector", vector_type(dim)),
    ])


def videos_schema() -> pa.Schema:
    return pa.schema([
        ("video_uid", pa.string()), ("source", pa.string()), ("split", pa.string()), ("duration", pa.float64()),
        ("width", pa.int32()), ("height", pa.int32()), ("native_fps", pa.float64()), ("n_frames", pa.int32()),
        ("n_utterances", pa.int32()), ("unit", pa.string()),
    ])


def schema_for(table: str, dim: int) -> pa.Schema:
    return {"frames": frames_schema, "clips": clips_schema, "utterances": utterances_schema}[table](dim) \
        if table != "videos" else videos_schema()


def metadata_columns(schema: pa.Schema) -> list[str]:
    """A table's columns that hits carry: all but the vector (the metadata cache holds these)."""
    return [c for c in schema.names if c != "vector"]


def vectors_array(vecs: np.ndarray) -> pa.FixedSizeListArray:
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), vecs.shape[1])


def vectors_of(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """A ``vector`` column as a float32 [N, D] array without a Python loop."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        return np.zeros((0, dim), np.float32)
    return arr.values.to_numpy(zero_copy_only=False).reshape(len(arr), dim).astype(np.float32, copy=False)


def table_vector_batches(uri: str, start: int = 0, batch: int = 1 << 16) -> Iterator[np.ndarray]:
    """The ``vector`` column of a Lance table from row ``start`` on, one float32 batch at a time
    (index builds and exact ground truth never hold the whole table in memory)."""
    ds = lance.dataset(uri)
    dim = ds.schema.field("vector").type.list_size
    for b in ds.to_batches(columns=["vector"], offset=start, batch_size=batch):
        yield vectors_of(b.column(0), dim)


def sample_table_vectors(uri: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` vectors of a Lance table at seeded random rows (index training, tuning queries)."""
    ds = lance.dataset(uri)
    total = ds.count_rows()
    dim = ds.schema.field("vector").type.list_size
    idx = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    return vectors_of(ds.take(idx.tolist(), columns=["vector"]).column(0), dim)
