"""The build's ``_build/`` documents, written and (for a store on object storage) mirrored.

Why a mirror: a store on ``s3://`` is built in a local stage (:class:`egoindex.build.config.BuildLayout`),
but its resumable state must outlive the machine and be shared by ranks on other nodes and by
array parts, so every ``_build/`` document is uploaded as soon as it is written and rank 0 fetches
the others' before it commits (:mod:`egoindex.store.snapshots` owns the objects). For a store
folder these are plain atomic writes, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egoindex.build.config import BuildLayout
from egoindex.core.fsutil import write_json
from egoindex.store import snapshots


def save(layout: BuildLayout, path: Path, doc: Any) -> None:
    """Write a ``_build/`` document (atomically), and upload it for a store on object storage."""
    write_json(path, doc)
    if layout.remote is not None:
        snapshots.push(layout, path)


def drop(layout: BuildLayout, path: Path) -> None:
    """Delete a ``_build/`` document (and its object)."""
    if layout.remote is not None:
        snapshots.drop(layout, path)
    path.unlink(missing_ok=True)


def pull(layout: BuildLayout, *, work_only: bool = False) -> None:
    """For a store on object storage: make the stage the store's last commit plus its ``_build/``
    (``work_only``: only fetch the ``_build/`` documents other processes wrote). A folder needs nothing."""
    if layout.remote is not None:
        (snapshots.pull_work if work_only else snapshots.pull_stage)(layout)
