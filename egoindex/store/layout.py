"""STORE on disk: its paths and its ``egoindex.json`` (:class:`StoreMeta`), read and written here only.

A store is a folder (or an ``s3://BUCKET/PREFIX`` URI: its Lance tables there, the rest as objects
copied to a local cache; :mod:`egoindex.store.snapshots`)::

    STORE/egoindex.json        StoreMeta: what built it (model, checkpoint, its sha256 and form, dim,
                               preprocessing, shards, clip windows), the table versions readers open, skipped samples
    STORE/lance/{frames,clips,utterances,videos}.lance   LanceDB tables (versioned; see schema.py)
    STORE/indexes/{table}.faiss + .json                   FAISS index per vector table (ann.py)
    STORE/_cache/{table}-v{version}.arrow                 hits' metadata, memory-mapped (writer.py)
    STORE/_build/                                         resumable build state (egoindex.build.config)
    STORE/encoders/text.onnx + text.json + BPE vocabulary  the text tower for torch-free queries (store/encoders.py)
    STORE/_thumbs/                                        `egoindex serve`'s thumbnail cache (serve/media.py)
    STORE/_redactions/blackouts.json + log.jsonl          what `egoindex redact` removed (dataset/blackouts.py)

Who writes and who reads: :mod:`egoindex.store.writer` writes every part of it (tables, caches and,
last, ``egoindex.json``), :mod:`egoindex.store.index` the indexes, :class:`egoindex.store.store.Store`
reads; this module only names the paths and owns the ``egoindex.json`` record.

Why a typed record: the file used to be a dict read by key in seven modules, each with its own
default (``clip_seconds`` fell back to 4.0 in two places); one dataclass gives every reader the same
fields, the same defaults and one format-version check.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import read_json, write_json
from egoindex.dataset.blackouts import redactions_dir
from egoindex.errors import StoreError
from egoindex.store.objectstore import S3Location, S3Settings, is_remote, local_dir

META_FILE = "egoindex.json"
FORMAT_VERSION = 1
#: ``encoders["clips"]["kind"]``: a clip checkpoint's temporal head, or the normalised frame mean.
CLIPS_TEMPORAL_HEAD = "temporal-head"
CLIPS_FRAME_MEAN = "frame-mean"


class StoreLayout:
    """Paths inside STORE (the build's private state lives under ``work``).

    A store on object storage (``s3://BUCKET/PREFIX``; :mod:`egoindex.store.objectstore`) has
    its Lance tables there (:meth:`uri`, with :attr:`storage_options`) and every other path in a
    local folder: ``StoreLayout("s3://...")`` is the writer's local stage
    (``CACHE/stores/{hash}/build/{stage}``, one per build rank and part), and a reader's layout is a materialised snapshot made by
    :func:`egoindex.store.snapshots.open_snapshot` (``remote`` and ``encoders`` given)."""

    def __init__(self, root: str | Path, *, remote: S3Location | None = None, encoders: Path | None = None,
                 stage: str = "0") -> None:
        if is_remote(root):
            remote = S3Location.parse(str(root))
            root = local_dir(remote) / "build" / stage
        self.remote = remote
        #: where files that never leave this machine go (serve's thumbnails and access files): the
        #: store folder, or for a store on object storage its local folder ``CACHE/stores/{hash}``
        self.local_state = local_dir(remote) if remote is not None else Path(root)
        #: what the user named: the folder, or the ``s3://`` URI (for messages and reports)
        self.location = remote.uri if remote is not None else str(Path(root))
        self.root = Path(root)
        self.meta = self.root / META_FILE
        self.lance = self.root / "lance"
        self.indexes = self.root / "indexes"
        self.cache = self.root / "_cache"
        self.work = self.root / "_build"
        # query encoders exported from the checkpoint (model/text_onnx.py); an s3 reader's are shared by its snapshots
        self.encoders = encoders or self.root / "encoders"
        self.thumbs = self.local_state / "_thumbs"  # `egoindex serve`'s disk cache of thumbnails (serve/media.py)
        self.redactions = redactions_dir(self.root)  # blackouts and redaction log (egoindex.dataset.blackouts)
        self.bench = self.local_state / "bench"  # `egoindex bench`'s default report folder (egoindex.bench.result)

    @property
    def lance_uri(self) -> str:
        """The folder (or ``s3://`` prefix) of the Lance tables: what LanceDB connects to."""
        return self.remote.url("lance") if self.remote is not None else str(self.lance)

    @cached_property
    def storage_options(self) -> dict[str, str] | None:
        """Lance's ``storage_options`` (None for a folder: Lance needs none), from the environment
        when the layout is first used."""
        return S3Settings.from_env().storage_options() if self.remote is not None else None

    def uri(self, table: str) -> str:
        if self.remote is not None:
            return self.remote.url(f"lance/{table}.lance")
        return str(self.lance / f"{table}.lance")

    def refuse_remote(self, what: str) -> None:
        """A StoreError for an operation that a store on object storage does not support."""
        if self.remote is not None:
            raise StoreError(f"{what} is not supported for a store on object storage ({self.location}); "
                             "it works on a store folder (build one on disk from the same SHARDS_DIR)")

    def metadata_cache(self, table: str, version: int) -> Path:
        return self.cache / f"{table}-v{version}.arrow"


@dataclass(frozen=True)
class StoreMeta:
    """The contents of ``STORE/egoindex.json``.

    ``model`` is the open_clip name the vectors come from (``local-dir:FOLDER`` for a hub folder's
    unnamed architecture), ``checkpoint`` the file or folder the store re-loads to embed queries,
    ``checkpoint_sha256`` its fingerprint (:func:`egoindex.model.sources.checkpoint_sha256`),
    ``checkpoint_form`` one of ``egoindex.model.openclip.FORMS`` and ``checkpoint_run_name``
    open_clip_train's run name; ``preprocessing`` is the image transform every frame and query
    image went through (image_size, mean, std, interpolation, resize_mode). ``encoders`` says which
    encoder made which table: ``{"frames": image tower, "clips": {"kind": "temporal-head" |
    "frame-mean", ...}, "utterances": text tower}`` (:meth:`clips_encoder`; docs/store.md). Fields added later
    read with their defaults from older files ("" / None: not recorded), so older stores stay
    readable without a format bump.
    """

    model: str
    checkpoint: str
    checkpoint_sha256: str
    embed_dim: int
    preprocessing: dict[str, Any] = field(default_factory=dict)
    checkpoint_form: str = ""
    checkpoint_run_name: str | None = None
    egoindex_version: str = ""
    shards_dir: str | None = None
    videos_root: str | None = None
    shards: list[str] = field(default_factory=list)
    clip_seconds: float = 4.0
    clip_stride: float = 2.0
    built_at: str | None = None
    updated_at: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    table_versions: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    build_seconds: float | None = None
    encoders: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def clips_encoder(self) -> dict[str, Any]:
        """What made the ``clips`` vectors: ``{"kind": "temporal-head", "num_frames": N, "model": ...}``
        (a clip checkpoint's temporal head over N frames of each window) or ``{"kind": "frame-mean"}``
        (the normalised mean of the window's frames). A store written before ``encoders`` existed
        reads as frame-mean: that is how every such store was built."""
        got = self.encoders.get("clips") if isinstance(self.encoders, dict) else None
        return dict(got) if isinstance(got, dict) and got.get("kind") else {"kind": CLIPS_FRAME_MEAN}

    @classmethod
    def read(cls, root: str | Path) -> StoreMeta:
        """Read and check ``root/egoindex.json``; a missing file or another format is a StoreError."""
        layout = StoreLayout(root)
        if not layout.meta.is_file():
            hint = (" (a build was started but never committed: rerun `egoindex build`)"
                    if layout.work.is_dir() else "")
            raise StoreError(f"{layout.root} is not an egoindex store: no {META_FILE}{hint}")
        doc = read_json(layout.meta)
        if not isinstance(doc, dict) or doc.get("format_version") != FORMAT_VERSION:
            got = doc.get("format_version") if isinstance(doc, dict) else None
            raise StoreError(f"{layout.root}: store format {got} is not {FORMAT_VERSION}; rebuild it")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("model", "checkpoint_sha256", "embed_dim") if n not in doc]
        if missing:
            raise StoreError(f"{layout.meta} lacks {', '.join(missing)}; rebuild the store")
        known = {k: v for k, v in doc.items() if k in names}
        known.setdefault("checkpoint", "")
        return cls(**known)

    def write(self, root: str | Path) -> None:
        """Write atomically (readers see the old or the new file, never half of one)."""
        write_json(StoreLayout(root).meta, self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
