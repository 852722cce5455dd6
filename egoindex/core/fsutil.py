"""Atomic file writes.

Every file that another process (a resumed run, a training job, a SLURM array task) may read is
written to a temporary name in the same directory and renamed into place, so a kill at any moment
leaves either the old complete file or the new complete file, never a half-written one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def tmp_name(path: Path) -> Path:
    """A hidden sibling name, unique per process, that globs like ``train-*.tar`` never match."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling for writing; on success fsync and rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    kwargs = {"encoding": "utf-8"} if "b" not in mode else {}
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as pretty, UTF-8 JSON (non-ASCII kept readable)."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False, sort_keys=False)
        f.write("\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def remove_stale_tmp(directory: Path, prefixes: str | tuple[str, ...] = "") -> int:
    """Delete temporary files (``.NAME.tmp-PID``) left by killed writers; returns how many.

    ``prefixes`` (of NAME) restricts the clean-up to names this process owns, so concurrent array
    tasks never delete each other's in-flight files. One directory listing whatever their number.
    """
    removed = 0
    if not directory.is_dir():
        return 0
    owned = tuple("." + x for x in ((prefixes,) if isinstance(prefixes, str) else prefixes))
    for p in directory.iterdir():
        if owned and p.name.startswith(owned) and ".tmp-" in p.name:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed += 1
    return removed


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """The hex SHA-256 of a file's bytes, read in 4 MiB chunks (checkpoints are identified by it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()
