"""egoindex: turn a folder of egocentric video into a searchable, benchmarkable feature store."""

from egoindex.version import __version__

__all__ = ["__version__", "Store", "Filters", "Hit", "StoreError"]


def __getattr__(name: str):  # ``egoindex.Store`` without importing lancedb/torch for every CLI call
    if name in ("Store", "Filters", "Hit", "StoreError"):
        from egoindex import store

        return getattr(store, name)
    raise AttributeError(f"module 'egoindex' has no attribute {name!r}")
