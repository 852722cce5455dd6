"""What every benchmark run returns and records: :class:`BenchResult`, the report folder, and the
report's ``meta`` (which store, model and checkpoint sha256 produced the numbers).

Why one place: numbers from different checkpoints are only comparable when every report says the
same things about what produced it, in the same keys (``egoindex bench compare`` heads its columns
with ``model @ checkpoint_sha256``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egoindex.version import __version__
from egoindex.store.layout import StoreLayout
from egoindex.store.objectstore import is_remote

__all__ = ["BenchResult", "default_out_dir", "report_meta", "store_report_meta"]


@dataclass
class BenchResult:
    """What a run produced: the report's metrics and meta, and the files written (by kind)."""

    name: str
    metrics: dict[str, Any]
    meta: dict[str, Any]
    written: dict[str, Path]
    notes: list[str] = field(default_factory=list)


def default_out_dir(store_root: str | Path) -> Path:
    """Reports go to ``STORE/bench`` unless the user names a folder (``StoreLayout.bench``: a
    redaction deletes the reports there that name a redacted video)."""
    return StoreLayout(store_root).bench


def store_report_meta(store: Any) -> dict[str, Any]:
    """The store facts every report carries: model, checkpoint (and its sha256), store path, clip windows."""
    m = store.meta
    return {
        "model": m.model,
        "checkpoint_sha256": m.checkpoint_sha256,
        "checkpoint": m.checkpoint,
        "store": location if is_remote(location := getattr(store, "location", None)) else str(Path(store.root).resolve()),
        "embed_dim": m.embed_dim,
        "clip_seconds": m.clip_seconds,
        "clip_stride": m.clip_stride,
    }


def report_meta(store: Any | None, bench: str, **settings: Any) -> dict[str, Any]:
    """A report's ``meta``: the store's facts (or no model, for matrices scored without a store),
    the benchmark's name and settings, the egoindex version and the time of the run."""
    base = store_report_meta(store) if store is not None else {"model": None, "checkpoint_sha256": None}
    base.update({"bench": bench, **settings})
    base["egoindex_version"] = __version__
    base["created_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return base
