"""``egoindex.Store``: the one Python API over a built store (CLI, benchmarks and server use it).

A store is a folder (its paths and ``egoindex.json``: :mod:`egoindex.store.layout`; everything
that writes it: :mod:`egoindex.store.writer`; this module only reads)::

    STORE/egoindex.json        StoreMeta: what built it (model, checkpoint sha256, dim, preprocessing, shards ...)
    STORE/lance/{frames,clips,utterances,videos}.lance   LanceDB tables (versioned; see schema.py)
    STORE/indexes/{table}.faiss + .json                   FAISS index per vector table (ann.py, index.py)
    STORE/_build/                                         resumable build state (egoindex/build/)
    STORE/_cache/{table}-v{version}.arrow                 hits' metadata, memory-mapped (writer.py)

Searching: a text, an image, a moment of a video (``like``) or a raw vector becomes a query
vector with the store's own model; filters become SQL that Lance evaluates *before* ranking, so a
filtered query still returns k results when k rows match. Unfiltered and broad filters go through
FAISS (restricted to the matching offsets); selective filters (at most ``EXACT_FILTERED`` rows)
are ranked exactly by Lance's brute-force prefiltered search, which is faster there and exact.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from egoindex.model.sources import checkpoint_sha256
from egoindex.errors import EgoindexError, FilterError, StoreError
from egoindex.model.text_onnx import OnnxTextEncoder
from egoindex.store import ann
from egoindex.store.filters import LEVELS, Filters
from egoindex.store.layout import StoreLayout, StoreMeta
from egoindex.store.objectstore import is_remote
from egoindex.store.snapshots import open_snapshot
from egoindex.store.moments import Hit, Utterance, attach_utterances, collect_moments
from egoindex.store.schema import VECTOR_TABLES, metadata_columns, vectors_of
from egoindex.store.encoders import TEXT_ENCODER_ENV, current_text_encoder

#: Filters matching at most this many rows are ranked exactly by Lance, not through FAISS.
EXACT_FILTERED = 50_000


def _filter_error(e: Exception) -> FilterError:
    """What a raw ``--where`` that Lance rejects becomes (structured filters are always valid SQL)."""
    return FilterError(f"the --where filter failed: {' '.join(str(e).split())}")


def parse_like(spec: str) -> tuple[str, float]:
    """``VIDEO_UID@SECONDS`` -> (uid, seconds)."""
    uid, sep, t = spec.rpartition("@")
    try:
        if not sep or not uid:
            raise ValueError
        seconds = float(t)
        if not math.isfinite(seconds):  # "nan"/"inf" parse as floats but name no moment
            raise ValueError
        return uid, seconds
    except ValueError:
        raise StoreError(f"--like wants VIDEO_UID@SECONDS (e.g. 3ec0ab15-...@12.5), got {spec!r}") from None


class Store:
    """An opened store. Thread-safe for searches (the server shares one)."""

    def __init__(self, root: str | Path, *, device: str = "cpu", mmap: bool = False) -> None:
        # a folder, or an s3:// URI: then its current commit's files are copied to a local snapshot
        # (Lance reads the tables on the object store) and this Store answers from that commit
        self.layout = open_snapshot(root) if is_remote(root) else StoreLayout(root)
        self.root = self.layout.root  # local files: the folder, or the snapshot of an s3:// store
        self.location = self.layout.location  # what the user named (messages, reports)
        self.meta: StoreMeta = StoreMeta.read(self.root)  # a missing file or another format: StoreError
        self.device, self.mmap = device, mmap
        self.dim = int(self.meta.embed_dim)
        self._lock = threading.RLock()
        self._indexes: dict[str, tuple[Any, ann.IndexInfo] | None] = {}
        self._tables: dict[str, Any] = {}
        self._datasets: dict[str, Any] = {}
        self._offsets: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        # (level, table version) -> the metadata table, its record batches and their first offsets
        self._metadata: dict[tuple[str, int], tuple[pa.Table, list[pa.RecordBatch], np.ndarray]] = {}

    # ---- metadata -------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return str(self.meta.model)

    @property
    def checkpoint_sha256(self) -> str:
        return str(self.meta.checkpoint_sha256)

    def check_checkpoint(self, checkpoint: str | Path | None = None, model: str | None = None) -> None:
        """Refuse a checkpoint or model other than the one the store was built with."""
        if model and model != self.model_name:
            raise StoreError(f"store {self.location} was built with model {self.model_name}, not {model}")
        if checkpoint is not None:
            sha = checkpoint_sha256(checkpoint)  # a file's sha256, or a hub folder's config + weights
            if sha != self.checkpoint_sha256:
                raise StoreError(f"store {self.location} was built with checkpoint sha256 "
                                 f"{self.checkpoint_sha256[:12]}..., "
                                 f"but {checkpoint} is {sha[:12]}...; build a new store for this checkpoint")

    @cached_property
    def db(self) -> Any:
        """The LanceDB connection, opened on first use. Why lazily: ``import lancedb`` costs ~1 s
        (its REST namespace client), most of a cold text query; reads that need no LanceDB query
        builder (counts, versions, the metadata cache, FAISS searches) go through :meth:`dataset`,
        and only exact or filtered searches import it."""
        import lancedb

        return lancedb.connect(self.layout.lance_uri, storage_options=self.layout.storage_options)

    def table(self, name: str) -> Any:
        """The LanceDB table at the version the store's last finished build recorded (a build or
        ``--append`` in progress, or killed, commits newer versions that readers must not see)."""
        with self._lock:
            if name not in self._tables:
                version = self.meta.table_versions.get(name)
                try:
                    self._tables[name] = (self.db.open_table(name, version=version) if version
                                          else self.db.open_table(name))
                except Exception as e:  # lancedb raises ValueError/FileNotFoundError by version
                    raise StoreError(f"store {self.location} has no {name!r} table ({e})") from e
            return self._tables[name]

    def dataset(self, name: str) -> Any:
        """The same table version as :meth:`table`, as a plain ``lance`` dataset (``import lance``
        costs ~0.3 s, LanceDB ~1.3 s): counts, fragments, versions and column scans."""
        with self._lock:
            if name not in self._datasets:
                import lance

                version = self.meta.table_versions.get(name)
                try:
                    self._datasets[name] = lance.dataset(str(self.layout.uri(name)), version=version or None,
                                                         storage_options=self.layout.storage_options)
                except Exception as e:  # lance raises ValueError/OSError for a missing table or version
                    raise StoreError(f"store {self.location} has no {name!r} table ({e})") from e
            return self._datasets[name]

    def count_rows(self, name: str, sql: str | None = None) -> int:
        """Rows of a table version, optionally matching a filter."""
        ds = self.dataset(name)
        if not sql:
            return int(ds.count_rows())
        try:
            return int(ds.count_rows(filter=sql))
        except (ValueError, OSError) as e:  # only a raw --where can be invalid SQL
            raise _filter_error(e) from e

    def count(self, level: str, filters: Filters | None = None) -> int:
        if filters:
            self.check_filter_columns(level, filters)
        return self.count_rows(level, filters.sql(level) if filters else None)

    def check_filter_columns(self, level: str, filters: Filters) -> None:
        """Refuse a speaker or participant filter on a table built before those columns existed
        (Lance would fail on the unknown column; the store simply cannot say)."""
        missing = sorted(filters.columns() - set(self.dataset(level).schema.names))
        if missing:
            raise FilterError(f"store {self.location} was built before the {', '.join(missing)} column(s) existed, so "
                              "it cannot filter by speaker, child or age: build a new STORE from the same SHARDS_DIR "
                              "(ingested with --rttm / --participants or speaker transcripts)")

    def info(self) -> dict[str, Any]:
        tables = {}
        for name in ("frames", "clips", "utterances", "videos"):
            t = self.dataset(name)
            tables[name] = {"rows": t.count_rows(), "version": t.version}
            if name in VECTOR_TABLES:
                got = self.index(name)
                tables[name]["index"] = None if got is None else {
                    k: v for k, v in got[1].__dict__.items()
                    if k in ("factory", "ntotal", "nprobe", "k_factor", "recall_at_10", "gpu")}
        keep = ("model", "checkpoint", "checkpoint_sha256", "embed_dim", "preprocessing", "egoindex_version",
                "shards_dir", "videos_root", "clip_seconds", "clip_stride", "built_at", "build_seconds", "skipped")
        encoders = {**self.meta.encoders, "clips": self.clips_encoder}  # an older store: frame-mean clips
        return {"store": self.location, **{k: getattr(self.meta, k) for k in keep}, "encoders": encoders,
                "tables": tables}

    # ---- indexes ----------------------------------------------------------------------------

    def index(self, level: str) -> tuple[Any, ann.IndexInfo] | None:
        """The FAISS index of a table, or None when missing or stale (then search is exact)."""
        with self._lock:
            if level not in self._indexes:
                got = ann.load_index(self.layout.indexes, level, mmap=self.mmap)
                n = self.count_rows(level)
                if got is not None and (got[1].ntotal != n or got[0].ntotal != n):
                    got = None  # built for other rows (an --append in progress or interrupted): exact search
                self._indexes[level] = got
            return self._indexes[level]

    def offsets_for(self, level: str, sql: str) -> np.ndarray:
        """Table offsets (= FAISS ids) of the rows matching ``sql``: the ``allowed`` set that
        restricts a FAISS search to a filter (Lance row ids are fragment << 32 | row, mapped
        through the fragments' first offsets, cached per table version)."""
        ds = self.dataset(level)
        key = (level, ds.version)
        if key not in self._offsets:
            frags = sorted((f.fragment_id, f.count_rows()) for f in ds.get_fragments())
            ids = np.array([f for f, _ in frags], np.int64)
            base = np.concatenate([[0], np.cumsum([c for _, c in frags])[:-1]]).astype(np.int64)
            self._offsets[key] = (ids, base)
        ids, base = self._offsets[key]
        got = ds.to_table(columns=[], filter=sql, with_row_id=True)
        rowids = got["_rowid"].to_numpy().astype(np.int64)
        frag, local = rowids >> 32, rowids & 0xFFFFFFFF
        return base[np.searchsorted(ids, frag)] + local

    # ---- query vectors --------------------------------------------------------------------

    @cached_property
    def embedder(self) -> Any:
        """The store's own model, loaded on the first query that needs it (text or image)."""
        # local: these pull in torch and open_clip, which info, vector and `like` searches never need
        from egoindex.model.clip_video import load_embedding_model
        from egoindex.model.embed import Embedder

        ckpt = Path(self.meta.checkpoint)
        if not ckpt.exists():  # a checkpoint file or a hub folder
            raise StoreError(f"the store's checkpoint {ckpt} is gone; it is needed to embed queries")
        self.check_checkpoint(ckpt)
        # a frame checkpoint, or a clip one (its towers, plus the temporal head that made the clips table)
        embedder = Embedder(load_embedding_model(ckpt, self.model_name), device=self.device)
        if embedder.clip_kind != self.clips_encoder["kind"]:
            raise StoreError(f"store {self.location} records clips made by {self.clips_encoder['kind']}, but its "
                             f"checkpoint {ckpt} makes them by {embedder.clip_kind}; rebuild the store")
        return embedder

    def adopt_models(self, other: Store) -> None:
        """Take ``other``'s loaded query models (PyTorch and ONNX) when both stores were built from
        the same checkpoint with the same clip encoder. Why: a server that reopens its store after
        a redaction or an append (:mod:`egoindex.serve.live`) should not reload the model."""
        if (other.checkpoint_sha256, other.model_name, other.clips_encoder) != \
                (self.checkpoint_sha256, self.model_name, self.clips_encoder) or other.device != self.device:
            return
        for name in ("embedder", "text_encoder"):
            if name in other.__dict__ and name not in self.__dict__:  # loaded there (cached_property), not here
                self.__dict__[name] = other.__dict__[name]

    @property
    def clips_encoder(self) -> dict[str, Any]:
        """What made the clips table's vectors (:meth:`egoindex.store.layout.StoreMeta.clips_encoder`):
        ``kind`` ``temporal-head`` (with ``num_frames``) or ``frame-mean`` (older stores too)."""
        return self.meta.clips_encoder()

    @cached_property
    def text_encoder(self) -> Any:
        """The store's exported ONNX text tower (:mod:`egoindex.store.encoders`), or None: then text
        queries load the PyTorch model (:attr:`embedder`). Why: importing torch and open_clip and
        loading the checkpoint cost seconds per cold query; the ONNX tower and the pure tokenizer
        need neither. ``EGOINDEX_TEXT_ENCODER=torch`` forces the PyTorch path (benchmarks compare
        the two), ``=onnx`` makes a missing or stale encoder an error instead of a silent fallback."""
        mode = os.environ.get(TEXT_ENCODER_ENV, "auto").strip().lower() or "auto"
        if mode not in ("auto", "onnx", "torch"):
            raise StoreError(f"{TEXT_ENCODER_ENV} must be auto, onnx or torch, not {mode!r}")
        if mode == "torch":
            return None
        facts = current_text_encoder(self.layout, self.checkpoint_sha256)
        if facts is None:
            if mode == "onnx":
                raise StoreError(f"store {self.location} has no text encoder exported from its checkpoint; "
                                 f"run `egoindex encoders {self.location}`")
            return None
        if facts.embed_dim != self.dim:
            raise StoreError(f"the text encoder of {self.location} gives {facts.embed_dim}-d vectors, the store "
                             f"{self.dim}-d; run `egoindex encoders {self.location} --force`")
        return OnnxTextEncoder(facts)

    def text_vector(self, text: str) -> np.ndarray:
        """A text query's unit vector: through the ONNX encoder when the store has a current one
        (no torch imported), else through the PyTorch model; both give the same vector (< 1e-4)."""
        if not text.strip():
            raise StoreError("the query text is empty")
        with self._lock:  # one cached encoder per store, shared by the server's threads
            encoder = self.text_encoder
        if encoder is not None:
            return encoder.encode_texts([text])[0]
        return self.embedder.encode_texts([text])[0]

    def image_vector(self, image: Image.Image | str | Path) -> np.ndarray:
        if not isinstance(image, Image.Image):
            try:
                with Image.open(image) as im:
                    image = im.convert("RGB")
            except (OSError, ValueError) as e:
                raise StoreError(f"cannot read the query image {image}: {e}") from e
        return self.embedder.encode_pil([image])[0]

    def moment_vector(self, video_uid: str, t: float) -> np.ndarray:
        """The embedding of a moment: the mean of the frames within half a clip of ``t``."""
        half = float(self.meta.clip_seconds) / 2
        near = Filters(video_uids=(video_uid,), start=t - half, end=t + half).sql("frames")
        rows = self.dataset("frames").to_table(columns=["t", "vector"], filter=near)
        if rows.num_rows == 0:
            raise StoreError(f"no frames of video {video_uid} near {t:.2f} s in this store")
        v = vectors_of(rows["vector"], self.dim).mean(axis=0)
        return (v / np.linalg.norm(v)).astype(np.float32)

    # ---- search ---------------------------------------------------------------------------

    def search(self, text: str | None = None, *, image: Image.Image | str | Path | None = None, like: str | None = None,
               vector: np.ndarray | None = None, level: str = "clips", k: int = 10,
               filters: Filters | None = None, exclude_self: bool = True, merge: bool = False,
               min_score: float | None = None, gap: float | None = None,
               max_span: float | None = None) -> list[Hit]:
        """Top-k rows of ``level`` for exactly one of text / image / like / vector.

        ``merge=True``: k :class:`~egoindex.store.moments.Moment` s instead (overlapping or adjacent
        rows of one video merged, with the utterances in their span; the rule and the over-fetch
        are :mod:`egoindex.store.moments`'); ``gap`` widens "adjacent" (seconds; default 0 for clips
        and utterances, one frame interval for frames); ``max_span`` bounds a moment's length
        (default 2 clip lengths: a window and its two neighbours). ``min_score``: rows scoring below
        it are left out (raw or merged). Raw rows stay the default: benchmarks and tests count rows."""
        if level not in LEVELS:
            raise StoreError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        if sum(x is not None for x in (text, image, like, vector)) != 1:
            raise StoreError("give exactly one of a text, an image, a moment (like) or a vector")
        if not 1 <= k <= 10_000:
            raise StoreError("k must be between 1 and 10000")
        filters = filters or Filters()
        if like is not None:
            uid, t = parse_like(like)
            vector = self.moment_vector(uid, t)
            if exclude_self:  # "more like this" means elsewhere: skip the moment's own neighbourhood
                half = float(self.meta.clip_seconds)
                filters = replace(filters, exclude=filters.exclude + ((uid, t - half, t + half),))
        elif text is not None:
            vector = self.text_vector(text)
        elif image is not None:
            vector = self.image_vector(image)
        q = np.asarray(vector, np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise StoreError(f"query vector has dimension {q.shape[0]}, the store {self.dim}")
        q = q / (np.linalg.norm(q) or 1.0)
        if min_score is not None and not math.isfinite(min_score):
            raise StoreError(f"min_score must be a finite number, not {min_score}")
        if not merge:
            hits = self.search_vector(q, level, k, filters)
            return hits if min_score is None else [h for h in hits if h.score >= min_score]
        gap = self.default_gap(level) if gap is None else float(gap)
        if not (math.isfinite(gap) and gap >= 0):
            raise StoreError(f"the merge gap must be a finite number of seconds >= 0, not {gap}")
        span = 2 * float(self.meta.clip_seconds) if max_span is None else float(max_span)
        if not (math.isfinite(span) and span > 0):
            raise StoreError(f"max_span must be a positive number of seconds, not {max_span}")
        moments = collect_moments(lambda n: self.search_vector(q, level, n, filters), k,
                                  first=k * self.rows_per_moment(level), gap=gap, max_span=span,
                                  min_score=min_score)
        attach_utterances(moments, self.transcript)
        return list(moments)

    def default_gap(self, level: str) -> float:
        """Seconds between two rows that still makes them one moment: one frame interval for
        frames (consecutive frames are one moment), 0 (overlapping or touching) otherwise."""
        return self.frame_interval if level == "frames" else 0.0

    def rows_per_moment(self, level: str) -> int:
        """How many rows a moment typically merges: the first over-fetch is k times this (a 4 s
        event spans 3 windows at a 2 s stride, 8 frames at 2 fps), so one fetch usually suffices."""
        clip = float(self.meta.clip_seconds)
        if level == "clips":
            return math.ceil(clip / max(float(self.meta.clip_stride), 1e-3)) + 1
        if level == "frames":
            return max(2, min(64, math.ceil(clip / max(self.frame_interval, 1e-3))))
        return 2

    @cached_property
    def frame_interval(self) -> float:
        """The seconds between consecutive sampled frames of a video (1 / the ingest fps), read
        from the frames table: the median step between the sorted times of a few videos' frames
        (rows are not stored in time order); 1.0 for a table too small to say."""
        meta = self.metadata("frames")
        steps = []
        for uid in list(dict.fromkeys(meta["video_uid"].slice(0, 1000).to_pylist()))[:3]:
            t = np.sort(meta.filter(pc.equal(meta["video_uid"], uid))["t"].to_numpy(zero_copy_only=False))
            steps.append(np.diff(t.astype(np.float64)))
        step = np.concatenate(steps) if steps else np.zeros(0)
        step = step[step > 1e-6]
        return float(np.median(step)) if len(step) else 1.0

    @cached_property
    def _transcripts(self) -> tuple[pa.Table, dict[str, tuple[int, int]]]:
        """The utterances table's text columns sorted by (video, start), and each video's row range
        (built once: the table version is fixed for this Store's life)."""
        meta = self.metadata("utterances")
        meta = meta.select(["video_uid", "utterance_id", "start", "end", "text",
                            *(["speaker"] if "speaker" in meta.column_names else [])])
        meta = meta.sort_by([("video_uid", "ascending"), ("start", "ascending")])
        uids = meta["video_uid"].to_pylist()
        ranges: dict[str, tuple[int, int]] = {}
        for i, u in enumerate(uids):
            lo, _ = ranges.get(u, (i, i))
            ranges[u] = (lo, i + 1)
        return meta, ranges

    def transcript(self, video_uid: str) -> list[Utterance]:
        """A video's utterances (speech segments kept by ingest) in time order; [] for a video
        without speech or unknown to the store."""
        meta, ranges = self._transcripts
        lo, hi = ranges.get(video_uid, (0, 0))
        return [Utterance(str(r["utterance_id"]), float(r["start"]), float(r["end"]), r["text"] or "", r.get("speaker"))
                for r in meta.slice(lo, hi - lo).to_pylist()]

    @cached_property
    def video_speakers(self) -> dict[str, list[str]]:
        """Each video's speaker labels (sorted; videos without any are left out), from the
        utterances table: what the page offers as speaker filters. {} for a store built before
        speakers existed."""
        meta = self.metadata("utterances")
        if "speaker" not in meta.column_names:
            return {}
        out: dict[str, set[str]] = {}
        for uid, who in zip(meta["video_uid"].to_pylist(), meta["speaker"].to_pylist()):
            if who is not None:
                out.setdefault(uid, set()).add(who)
        return {uid: sorted(v) for uid, v in out.items()}

    def search_vector(self, q: np.ndarray, level: str, k: int, filters: Filters) -> list[Hit]:
        """Top-k rows of ``level`` for a unit query vector ``q`` (what :meth:`search` ends in):
        through FAISS when the table has a current index and the filter matches no rows or more
        than ``EXACT_FILTERED``, else (or when FAISS finds fewer than k allowed rows) exactly.
        For callers that hold vectors already (``egoindex index`` reports, benchmarks).
        A raw ``where`` that Lance rejects (a plain ValueError) becomes a FilterError."""
        self.check_filter_columns(level, filters)
        try:
            return self._ranked(q, level, k, filters)
        except (ValueError, OSError) as e:  # lance raises OSError ("Invalid user input"), LanceDB ValueError
            if filters.where is None or isinstance(e, EgoindexError):
                raise
            raise _filter_error(e) from e

    def _ranked(self, q: np.ndarray, level: str, k: int, filters: Filters) -> list[Hit]:
        sql = filters.sql(level)
        got = self.index(level)
        n = self.count_rows(level, sql)
        if n == 0:
            return []
        if got is not None and (sql is None or n > EXACT_FILTERED):
            allowed = None if sql is None else self.offsets_for(level, sql)
            scores, offs = ann.search(got[0], q[None], min(k, n), allowed)
            keep = offs[0] >= 0
            if keep.sum() >= min(k, n):
                return self._fetch(level, offs[0][keep], scores[0][keep])
        return self.exact_search(q, level, k, sql)

    def exact_search(self, q: np.ndarray, level: str, k: int, sql: str | None) -> list[Hit]:
        """Brute-force ranking by Lance over the rows matching ``sql`` (prefilter): exact top-k,
        the reference an approximate index is measured against. Hits carry no offset (-1)."""
        # lance's own nearest-neighbour scan (what LanceDB's query builder calls), so that a
        # filtered query need not import LanceDB; no vector index is ever built on these tables
        # (FAISS is the index), so this is a brute-force scan of the rows passing the prefilter
        rows = self.dataset(level).to_table(
            nearest={"column": "vector", "q": np.asarray(q, np.float32), "k": int(k), "metric": "dot"},
            filter=sql, prefilter=True, with_row_id=True)
        rows = rows.drop_columns([c for c in ("_distance",) if c in rows.column_names])
        vecs = vectors_of(rows["vector"], self.dim)
        scores = vecs @ q
        rows = rows.drop_columns(["vector"])
        order = np.argsort(-scores, kind="stable")
        return [self._hit(level, rows.slice(int(i), 1).to_pylist()[0], float(scores[i]), -1) for i in order]

    def metadata(self, level: str) -> pa.Table:
        """Every non-vector column of the table version, in table (= FAISS offset) order.

        Why: fetching the 10 hits' rows from Lance costs ~18-30 ms (random reads of several
        column pages per row), many times the FAISS search itself; a row from an Arrow table
        costs microseconds. ``egoindex build`` writes ``_cache/{table}-v{version}.arrow``
        (:func:`egoindex.store.writer.write_metadata_cache`), which is memory-mapped here, so only touched pages use
        RAM. Without it (a store built before, or another version) the columns are read into
        memory once. Readers never write into the store."""
        return self._metadata_entry(level)[0]

    def _metadata_entry(self, level: str) -> tuple[pa.Table, list[pa.RecordBatch], np.ndarray]:
        """:meth:`metadata` with its record batches and their first offsets (plus the row count
        last), loaded once per table version."""
        ds = self.dataset(level)
        key = (level, ds.version)
        with self._lock:
            if key not in self._metadata:
                path = self.layout.metadata_cache(level, ds.version)
                if path.is_file():
                    meta = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
                else:
                    meta = ds.to_table(columns=metadata_columns(ds.schema))
                batches = meta.to_batches()
                starts = np.concatenate([[0], np.cumsum([b.num_rows for b in batches])]).astype(np.int64)
                self._metadata[key] = (meta, batches, starts)
            return self._metadata[key]

    def _fetch(self, level: str, offsets: np.ndarray, scores: np.ndarray) -> list[Hit]:
        _, batches, starts = self._metadata_entry(level)
        n = int(starts[-1])
        if len(offsets) and not 0 <= int(np.min(offsets)) <= int(np.max(offsets)) < n:
            raise StoreError(f"index and table {level} disagree (ids outside the table's {n} rows); "
                             f"run `egoindex index {self.location} --rebuild`")
        # one row at a time from its record batch: Arrow's take over a many-chunk column would
        # first concatenate the whole column (~50 ms at 1M rows)
        hits = []
        for o, sc in zip(offsets, scores):
            b = int(np.searchsorted(starts, int(o), side="right")) - 1
            row = batches[b].slice(int(o) - int(starts[b]), 1).to_pylist()[0]
            hits.append(self._hit(level, row, float(sc), int(o)))
        return hits

    def _hit(self, level: str, row: dict[str, Any], score: float, offset: int) -> Hit:
        start = float(row.get("start", row.get("t", 0.0)))
        end = float(row.get("end", row.get("t", 0.0)))
        extra = {k: v for k, v in row.items()
                 if k in ("split", "n_frames", "utterance_id", "frame_index", "shard", "key", "speaker", "child_id",
                          "age_days")}
        return Hit(level, row["video_uid"], start, end, score, row.get("text") or "", self.source_of(row["video_uid"]),
                   offset, extra)

    # ---- videos -------------------------------------------------------------------------------

    @cached_property
    def videos(self) -> dict[str, dict[str, Any]]:
        return {r["video_uid"]: r for r in self.dataset("videos").to_table().to_pylist()}

    def source_of(self, video_uid: str) -> str:
        v = self.videos.get(video_uid)
        return v["source"] if v else ""

    def video_path(self, video_uid: str) -> Path:
        """The source file of a video (under the ingest's videos folder), for players and exports."""
        v = self.videos.get(video_uid)
        if v is None:
            raise StoreError(f"unknown video {video_uid}")
        root = self.meta.videos_root
        if not root:
            raise StoreError("the store does not know where its videos are (no videos_root)")
        return Path(root) / v["source"]
