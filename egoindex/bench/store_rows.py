"""Rows and vectors of a store's tables as the benchmarks read them, and how a clip is named.

Why here and not in each benchmark: EgoMCQ, MIR and retrieval all read "the val clips with text"
and must agree on which rows those are, and on the clip ids (``VIDEO_UID@START-END``) that class
annotation files and ``{name}_clips.csv`` use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from egoindex.errors import BenchError
from egoindex.store.schema import vectors_of

__all__ = ["clip_id", "read_rows", "read_vectors", "val_text_clips", "window_key"]


def read_rows(store: Any, name: str, columns: list[str], where: str | None = None) -> list[dict[str, Any]]:
    """Rows of a store table (no vectors) in table order."""
    ds = store.table(name).to_lance()
    return ds.to_table(columns=columns, filter=where).to_pylist()


def read_vectors(store: Any, name: str, columns: list[str], where: str | None) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rows (``columns``) and their ``vector`` column as float32 [N, D], in table order."""
    tbl = store.table(name).to_lance().to_table(columns=[*columns, "vector"], filter=where)
    vecs = vectors_of(tbl["vector"], store.dim)
    return tbl.drop_columns(["vector"]).to_pylist(), vecs


def clip_id(video_uid: str, start: float, end: float) -> str:
    """A store clip's id in benchmark files: ``VIDEO_UID@START-END`` (seconds, 3 decimals)."""
    return f"{video_uid}@{float(start):.3f}-{float(end):.3f}"


def window_key(video_uid: str, start: float, end: float) -> tuple[str, int, int]:
    """Match windows by millisecond: store times are rounded to 6 decimals, JSON may print fewer."""
    return str(video_uid), round(float(start) * 1000), round(float(end) * 1000)


def val_text_clips(store: Any) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The val clips with non-empty text and their stored vectors (the clip side of MIR and R@K)."""
    rows, vecs = read_vectors(store, "clips", ["video_uid", "start", "end", "text"], "split = 'val'")
    keep = [i for i, r in enumerate(rows) if (r["text"] or "").strip()]
    if not keep:
        raise BenchError("the store has no val clips with text (no val split, or no speech in the val videos)")
    return [rows[i] for i in keep], vecs[keep]
