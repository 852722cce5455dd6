"""Per-video feature cache of a probe run, so a rerun (or a killed run) does not re-embed.

Why one small file per video, named by a hash of everything the vector depends on (the file's
path, size and mtime; the model and checkpoint; fps and clip windows): a kill loses at most the
video in flight, a changed file or setting misses the cache instead of silently reusing a stale
vector, and there is no index file to keep consistent. Vectors are ``.npz`` (read without
pickle); a video that could not be decoded is cached as ``.skip.json`` with its reason, so the
rerun reports it again without decoding it again (touching or replacing the file retries it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.core.fsutil import atomic_open, read_json, remove_stale_tmp, write_json

__all__ = ["FeatureCache"]


class FeatureCache:
    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.settings = dict(settings)
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(self.folder)

    def key(self, path: Path, rel: str) -> str:
        st = path.stat()
        ident = {"rel": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns, **self.settings}
        return hashlib.sha256(json.dumps(ident, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()[:32]

    def get(self, key: str) -> tuple[np.ndarray | None, str | None]:
        """(vector, None) when cached, (None, reason) for a cached skip, (None, None) when unknown."""
        npz, skip = self.folder / f"{key}.npz", self.folder / f"{key}.skip.json"
        if npz.is_file():
            try:
                with np.load(npz, allow_pickle=False) as z:
                    return np.asarray(z["vector"], np.float32), None
            except (OSError, ValueError, KeyError):
                npz.unlink(missing_ok=True)  # damaged: embed again
        if skip.is_file():
            try:
                return None, str(read_json(skip)["reason"])
            except (OSError, ValueError, KeyError):
                skip.unlink(missing_ok=True)
        return None, None

    def put(self, key: str, vector: np.ndarray, rel: str, n_frames: int, n_clips: int) -> None:
        with atomic_open(self.folder / f"{key}.npz", "wb") as f:
            np.savez(f, vector=np.asarray(vector, np.float32), rel=np.array(rel), n_frames=n_frames, n_clips=n_clips)

    def put_skip(self, key: str, rel: str, reason: str) -> None:
        write_json(self.folder / f"{key}.skip.json", {"video": rel, "reason": reason})
