"""What an export works from: a store, or a checkpoint + a videos folder; and the videos it can export.

Why a separate object: both exports (NLQ, MQ) need the same three things -- the model that makes
the features (the store's own, so every source describes one embedding space), the catalog of
videos with their files and durations, and the ingest's frame geometry for decoding -- whether
the features then come from the store's frames or from the videos (:mod:`egoindex.export.rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from egoindex.dataset.layout import read_ingest_config
from egoindex.errors import ExportError, ModelError, StoreError
from egoindex.media.discover import find_videos
from egoindex.model.clip_video import load_embedding_model
from egoindex.model.embed import Embedder
from egoindex.model.sources import CONFIG_FILE, HF_HUB_PREFIX, checkpoint_sha256
from egoindex.store.layout import META_FILE
from egoindex.store.store import Store

__all__ = ["VideoRef", "Backend", "resolve_videos"]


@dataclass
class VideoRef:
    """A video known to the export: its egoindex uid, file and duration (seconds)."""

    uid: str
    source: str = ""  # path relative to the videos folder (POSIX), '' when unknown
    duration: float | None = None  # None: probed from the file when needed
    path: Path | None = None
    split: str = ""
    in_store: bool = False


def _ingest_config(store: Store) -> dict[str, Any]:
    """The store's ingest configuration (frame geometry), {} when its SHARDS_DIR is gone or unreadable."""
    shards = store.meta.shards_dir
    if not shards:
        return {}
    try:
        return read_ingest_config(Path(shards))
    except (OSError, ValueError):
        return {}


class Backend:
    """The model and the video catalog an export works from: a store, or a checkpoint + a videos folder.

    ``model_source`` is a store folder (its model, checkpoint, frames and videos table are used;
    ``videos_dir`` overrides where its videos live) or a checkpoint file (then ``videos_dir`` is
    required, every video in it is a candidate and features always come from decoding).
    """

    def __init__(self, model_source: str | Path, videos_dir: str | Path | None = None, model: str | None = None,
                 device: str = "cpu") -> None:
        src = Path(model_source)
        self.videos_dir = Path(videos_dir) if videos_dir is not None else None
        if self.videos_dir is not None and not self.videos_dir.is_dir():
            raise ExportError(f"videos folder not found: {self.videos_dir}")
        self.device = device
        self.store: Store | None = None
        self.checkpoint: Path | None = None
        self.model = model
        hub = str(model_source).startswith(HF_HUB_PREFIX) or (src / CONFIG_FILE).is_file()  # a model folder
        if src.is_dir() and not hub:
            if not (src / META_FILE).is_file():
                raise ExportError(f"{src} is neither an egoindex store (no {META_FILE}) nor a checkpoint file")
            try:
                self.store = Store(src, device=device)
                self.store.check_checkpoint(model=model)
            except StoreError as e:
                raise ExportError(str(e)) from e
        elif src.is_file() or hub:
            if self.videos_dir is None:
                raise ExportError("exporting from a checkpoint needs the raw videos: pass --videos DIR")
            self.checkpoint = src
        else:
            raise ExportError(f"{src} does not exist (expected a store folder or a checkpoint file)")
        self.ingest = _ingest_config(self.store) if self.store is not None else {}

    @cached_property
    def embedder(self) -> Embedder:
        try:
            if self.store is not None:
                return self.store.embedder
            # a frame or a clip checkpoint (its temporal head then pools the feature windows)
            return Embedder(load_embedding_model(self.checkpoint, self.model), device=self.device)  # type: ignore[arg-type]
        except (StoreError, ModelError, FileNotFoundError) as e:
            raise ExportError(str(e)) from e

    @cached_property
    def catalog(self) -> dict[str, VideoRef]:
        """uid -> VideoRef of every video this backend can export."""
        out: dict[str, VideoRef] = {}
        if self.store is not None:
            root = self.videos_dir or (Path(self.store.meta.videos_root) if self.store.meta.videos_root else None)
            for uid, row in self.store.videos.items():
                src = str(row.get("source") or "")
                duration = float(row["duration"]) if row.get("duration") else None
                out[uid] = VideoRef(uid=uid, source=src, duration=duration,
                                    path=(root / src) if (root is not None and src) else None,
                                    split=str(row.get("split") or ""), in_store=True)
        else:
            for v in find_videos(self.videos_dir):  # type: ignore[arg-type]
                out[v.video_uid] = VideoRef(uid=v.video_uid, source=v.source, duration=None, path=v.path)
        return out

    def info(self) -> dict[str, Any]:
        """What made the features, for the export summary."""
        if self.store is not None:
            return {"store": str(Path(self.store.root).resolve()), "model": self.store.model_name,
                    "checkpoint": self.store.meta.checkpoint or None, "checkpoint_sha256": self.store.checkpoint_sha256,
                    "videos_dir": str(self.videos_dir or self.store.meta.videos_root or "")}
        return {"store": None, "model": self.embedder.loaded.name, "checkpoint": str(self.checkpoint),
                "checkpoint_sha256": checkpoint_sha256(self.checkpoint), "videos_dir": str(self.videos_dir)}  # type: ignore[arg-type]


def resolve_videos(wanted: Iterable[str], catalog: Mapping[str, VideoRef]) -> tuple[dict[str, VideoRef], list[str]]:
    """Map annotation video uids to catalog videos: the same uid, else the video whose file stem is the uid.

    Why the stem: egoindex names a video by a hash of its path, while Ego4D files are stored as
    ``{video_uid}.mp4``; ingesting Ego4D's ``full_scale`` folder therefore gives store videos
    whose file stem is the Ego4D uid.  Stems shared by several videos are not used.
    """
    stems: dict[str, list[VideoRef]] = {}
    for ref in catalog.values():
        if ref.source:
            stems.setdefault(Path(ref.source).stem, []).append(ref)
    found: dict[str, VideoRef] = {}
    missing: list[str] = []
    for uid in dict.fromkeys(wanted):
        if uid in catalog:
            found[uid] = catalog[uid]
        elif len(stems.get(uid, ())) == 1:
            found[uid] = stems[uid][0]
        else:
            missing.append(uid)
    return found, missing
