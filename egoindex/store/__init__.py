"""The feature store: LanceDB tables + FAISS indexes, and the ``Store`` API over them.

``Store`` and ``Hit`` load lazily: importing any ``egoindex.store.*`` module (the layout, the
filters) must not pull lancedb and faiss (~1.5 s), or ``egoindex --help`` and every light
command would pay for them.
"""

from typing import Any

from egoindex.errors import StoreError
from egoindex.store.filters import LEVELS, Filters

__all__ = ["LEVELS", "Filters", "Hit", "Store", "StoreError"]


def __getattr__(name: str) -> Any:
    if name in ("Store", "Hit"):
        from egoindex.store import store as reader

        return getattr(reader, name)
    raise AttributeError(f"module 'egoindex.store' has no attribute {name!r}")
