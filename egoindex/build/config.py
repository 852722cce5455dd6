"""What a build is asked (:class:`BuildConfig`), what it did (:class:`BuildSummary`), and where it
keeps its resumable state (:class:`BuildLayout`, ``STORE/_build/``).

Why the state has its own paths: ``_build/`` is the build's private bookkeeping, not part of the
store's format. Readers never look at it; a rerun reads it to skip finished work:

    STORE/_build/config.json          model, checkpoint sha256 and clip settings of the runs filling this store
    STORE/_build/state.json           shards and videos already committed
    STORE/_build/frames/{shard}.json  a shard's "done" mark: its fragments, samples, videos, skipped members
    STORE/_build/derived/{bucket}.json  a bucket of videos' clips/utterances/videos fragments
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egoindex.store.layout import StoreLayout


@dataclass
class BuildConfig:
    """``egoindex build``'s options; ``identity()`` is the part that must not change between runs."""

    checkpoint: Path | str  # any form egoindex.model.clip_video.load_embedding_model takes (a frame checkpoint file,
    # a hub folder, hf-hub:ID, or a clip_video checkpoint, whose temporal head then makes the clips)
    shards: Path
    store: Path | str  # a folder, or an s3://BUCKET/PREFIX URI (egoindex.store.objectstore)
    model: str | None = None
    clip_seconds: float = 4.0
    clip_stride: float = 2.0
    batch_size: int = 256
    workers: int | None = None
    device: str = "auto"
    precision: str = "auto"
    decode: str = "auto"  # workers | device | auto (device on CUDA)
    index: str | None = None  # FAISS factory override
    target_recall: float = 0.95
    append: bool = False
    videos: Path | None = None
    num_parts: int = 1
    part_index: int = 0
    progress: bool = True

    def identity(self) -> dict[str, Any]:
        """What must not change between the runs that fill one store."""
        return {"clip_seconds": self.clip_seconds, "clip_stride": self.clip_stride}


@dataclass
class BuildSummary:
    """What one run did (printed by the CLI; ``committed`` is False for a part that left the commit to another)."""

    shards_embedded: int = 0
    shards_reused: int = 0
    frames_added: int = 0
    videos_added: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    committed: bool = False


class BuildLayout(StoreLayout):
    """STORE's paths plus the build's private state under ``_build/``.

    For a store on object storage the paths are its local stage (``stage``: one per rank and
    array part, so processes on one machine never share one) and ``_build/`` is mirrored to the
    store's ``_build/`` objects (:mod:`egoindex.build.stage`): ranks on other nodes, and a rerun
    on another machine, see the same marks."""

    def __init__(self, root: str | Path, stage: str = "0") -> None:
        super().__init__(root, stage=stage)
        self.config = self.work / "config.json"
        self.state = self.work / "state.json"
        self.frames = self.work / "frames"
        self.derived = self.work / "derived"

    def shard_mark(self, shard: str) -> Path:
        """The "done" mark of an embedded shard."""
        return self.frames / (Path(shard).stem + ".json")

    def bucket_mark(self, bucket: str) -> Path:
        """The "done" mark of a bucket of videos whose derived rows are written."""
        return self.derived / f"{bucket}.json"
