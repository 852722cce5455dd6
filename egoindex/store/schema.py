"""Arrow schemas of the store's LanceDB tables (one place, so build, queries and docs agree).

Vectors are ``fixed_size_list<float32>[D]`` columns named ``vector`` (what LanceDB and FAISS both
want), always L2-normalised, so inner product = cosine. Times are seconds from the start of the
source video. ``unit`` names the build unit (a shard, or a bucket of videos) that wrote the row:
it is how an interrupted or appended build knows which rows are already committed.

Speakers and participants (:data:`SPEAKER_COLUMNS`, :data:`PARTICIPANT_COLUMNS`): every vector
row carries ``speaker`` (the utterance's, a frame's paired utterance's, a clip window's by the
overlap rule of :mod:`egoindex.media.speakers`) and the video's ``child_id`` and ``age_days``, so
filters on them apply before ranking; ``videos`` carries the whole participant row. All nullable:
rows without them hold null, and a table written before they existed simply lacks them
(:func:`missing_columns`; readers take a missing column as null).
"""

from __future__ import annotations

from collections.abc import Iterator

import lance
import numpy as np
import pyarrow as pa

TABLES = ("frames", "clips", "utterances", "videos")
VECTOR_TABLES = ("frames", "clips", "utterances")


#: Who spoke, on every vector table: null for a row without a speaker (or speech).
SPEAKER_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (("speaker", pa.string()),)
#: The participant's columns that every vector table repeats (the structured filters' columns).
PARTICIPANT_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (("child_id", pa.string()), ("age_days", pa.int32()))
#: The videos table's participant columns: the typed ones, and the other CSV columns as a JSON object.
VIDEO_PARTICIPANT_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    *PARTICIPANT_COLUMNS, ("date", pa.string()), ("location", pa.string()), ("participant", pa.string()))


def vector_type(dim: int) -> pa.DataType:
    return pa.list_(pa.float32(), dim)


def frames_schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("video_uid", pa.string()), ("t", pa.float64()), ("frame_index", pa.int32()), ("split", pa.string()),
        ("text", pa.string()), ("shard", pa.string()), ("key", pa.string()), ("unit", pa.string()),
        *SPEAKER_COLUMNS, *PARTICIPANT_COLUMNS, ("vector", vector_type(dim)),
    ])


def clips_schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("video_uid", pa.string()), ("start", pa.float64()), ("end", pa.float64()), ("n_frames", pa.int32()),
        ("split", pa.string()), ("text", pa.string()), ("unit", pa.string()), *SPEAKER_COLUMNS, *PARTICIPANT_COLUMNS,
        ("vector", vector_type(dim)),
    ])


def utterances_schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("utterance_id", pa.string()), ("video_uid", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
        ("split", pa.string()), ("text", pa.string()), ("no_speech_prob", pa.float32()),
        ("avg_logprob", pa.float32()), ("compression_ratio", pa.float32()), ("unit", pa.string()),
        *SPEAKER_COLUMNS, *PARTICIPANT_COLUMNS, ("vector", vector_type(dim)),
    ])


def videos_schema() -> pa.Schema:
    return pa.schema([
        ("video_uid", pa.string()), ("source", pa.string()), ("split", pa.string()), ("duration", pa.float64()),
        ("width", pa.int32()), ("height", pa.int32()), ("native_fps", pa.float64()), ("n_frames", pa.int32()),
        ("n_utterances", pa.int32()), ("unit", pa.string()), *VIDEO_PARTICIPANT_COLUMNS,
    ])


def schema_for(table: str, dim: int) -> pa.Schema:
    return {"frames": frames_schema, "clips": clips_schema, "utterances": utterances_schema}[table](dim) \
        if table != "videos" else videos_schema()


def missing_columns(table: str, have: pa.Schema, dim: int) -> list[str]:
    """The columns of this egoindex's ``table`` schema that a stored table lacks (written before
    they existed): what an ``--append`` cannot add rows to, and what a filter cannot ask."""
    return [n for n in schema_for(table, dim).names if n not in have.names]


def core_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` without the speaker and participant columns: what a writer that has none of
    them makes (the search benchmark's synthetic store); ``write_table`` adds them as nulls."""
    optional = {n for n, _ in (*SPEAKER_COLUMNS, *VIDEO_PARTICIPANT_COLUMNS)}
    return pa.schema([f for f in schema if f.name not in optional])


def with_missing_as_null(data: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table | pa.RecordBatch:
    """``data`` with the nullable columns of ``schema`` it lacks added as nulls, in schema order:
    rows made before the speaker and participant columns existed (or by a writer that has none)
    still fit the table."""
    have = set(data.schema.names)
    if have >= set(schema.names):
        return data
    cols = [data.column(f.name) if f.name in have else pa.nulls(data.num_rows, f.type) for f in schema]
    return type(data).from_arrays(cols, schema=schema)


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


def table_vector_batches(uri: str, start: int = 0, batch: int = 1 << 16,
                         storage_options: dict[str, str] | None = None) -> Iterator[np.ndarray]:
    """The ``vector`` column of a Lance table from row ``start`` on, one float32 batch at a time
    (index builds and exact ground truth never hold the whole table in memory)."""
    ds = lance.dataset(uri, storage_options=storage_options)
    dim = ds.schema.field("vector").type.list_size
    for b in ds.to_batches(columns=["vector"], offset=start, batch_size=batch):
        yield vectors_of(b.column(0), dim)


def sample_table_vectors(uri: str, n: int, seed: int = 0, storage_options: dict[str, str] | None = None) -> np.ndarray:
    """``n`` vectors of a Lance table at seeded random rows (index training, tuning queries)."""
    ds = lance.dataset(uri, storage_options=storage_options)
    total = ds.count_rows()
    dim = ds.schema.field("vector").type.list_size
    idx = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    return vectors_of(ds.take(idx.tolist(), columns=["vector"]).column(0), dim)
