"""The feature store: LanceDB tables + FAISS indexes, and the ``Store`` API over them."""

from egoindex.store.filters import LEVELS, Filters
from egoindex.store.store import Hit, Store, StoreError

__all__ = ["LEVELS", "Filters", "Hit", "Store", "StoreError"]
