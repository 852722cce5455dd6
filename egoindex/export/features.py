"""Per-video feature rows on the Ego4D grid, from a store's frame embeddings or from the videos.

Why: the layouts in :mod:`egoindex.export.ego4d` need, for every video, one row per slot of the
official feature grid (:mod:`egoindex.export.windows`).  A store already holds an embedding for
every sampled frame, so when those frames are dense enough the rows are pooled from them without
touching a video (seconds per corpus); when they are too sparse (a 1 fps ingest against 1.875
features/s) the videos are decoded again at a rate that puts ``frames_per_window`` frames in each
window and embedded with the store's own model, so both sources describe the same embedding space.

The grid
--------
``FeatureGrid(rate)`` is the official grid scaled in time: windows of 32 and a stride of 16 frames
of a ``16 * rate`` fps timeline, so ``rate = 1.875`` *is* the official grid (30 fps, 32/16 frames,
back-padded last window) and any other rate keeps its shape (a window spans two strides).  A video
of ``duration`` seconds gets :func:`~egoindex.export.windows.num_features` rows, as the official
extractor counts them, each the L2-normalised mean of the frame embeddings inside its window
(:func:`~egoindex.export.windows.pool_windows`; at most ``frames_per_window`` evenly spaced ones;
an empty window takes the nearest frame, so no row is ever zero).

The "dense enough" rule (``source="auto"``)
------------------------------------------
A video's store frames are used when **both** hold:

1. their frame rate (1 / median gap between consecutive frame times) is at least the feature
   rate -- so every feature row has frames of its own at the grid's time resolution; and
2. at most one grid window holds no store frame at all (a single gap is tolerated: a frame lost
   to a decoding hiccup, or a duration header a little longer than the last sampled frame).

Otherwise the video is decoded (:func:`egoindex.media.frames.iter_frames`, same short side and JPEG
quality as the store's ingest when known) at ``decode_fps`` (default
``max(rate, frames_per_window / window_seconds)``, 3.75 fps for the official grid and 4 frames per
window) and embedded.  ``source="store"`` forces pooling the store frames whatever their density
(sparse windows then repeat the nearest frame), ``source="videos"`` forces decoding.  Which source
each video used, and why, is returned per video and written to the export summary.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.export import ego4d
from egoindex.export.windows import (
    FEATURE_RATE,
    OFFICIAL_STRIDE,
    OFFICIAL_WINDOW,
    feature_windows,
    num_features,
    pool_windows,
    vslnet_clip_slice,
)
from egoindex.core.fsutil import read_json, write_json
from egoindex.errors import ExportError

__all__ = [
    "SOURCES",
    "SUMMARY_FILE",
    "DEFAULT_FRAMES_PER_WINDOW",
    "DENSE_RULE",
    "ExportError",
    "FeatureGrid",
    "Density",
    "store_density",
    "VideoRef",
    "VideoFeatures",
    "Backend",
    "FeatureMaker",
    "resolve_videos",
    "split_name_of",
    "export_nlq",
    "export_mq",
    "write_demo_annotations",
]

SOURCES = ("auto", "store", "videos")
SUMMARY_FILE = "export_summary.json"
DEFAULT_FRAMES_PER_WINDOW = 4
DENSE_RULE = (
    "store frames are used when their frame rate (1 / median gap) >= the feature rate and at most one "
    "feature window holds no store frame; otherwise the video is decoded and embedded"
)
_STORE_BUCKET = 256  # videos per store query
_EMBED_BATCH = 128  # decoded frames per forward pass




# ----------------------------------------------------------------------------------------------
# the grid and the density rule


@dataclass(frozen=True)
class FeatureGrid:
    """The official Ego4D feature grid at ``rate`` features per second (see module docstring)."""

    rate: float = FEATURE_RATE
    window: int = OFFICIAL_WINDOW
    stride: int = OFFICIAL_STRIDE

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not math.isfinite(self.rate) \
                or not 0 < self.rate <= 1000:
            raise ValueError(f"rate must be a positive number of features per second, got {self.rate!r}")

    @property
    def fps(self) -> float:
        """Frame rate of the timeline the window/stride are counted on (30 for 1.875 features/s)."""
        return float(self.rate) * self.stride

    @property
    def window_seconds(self) -> float:
        return self.window / self.fps

    def count(self, duration: float) -> int:
        return num_features(duration, self.fps, self.window, self.stride)

    def windows(self, duration: float) -> np.ndarray:
        return feature_windows(duration, self.fps, self.window, self.stride)

    def decode_fps(self, frames_per_window: int | None) -> float:
        """Default decoding rate: ``frames_per_window`` frames per window, never below the feature rate."""
        k = DEFAULT_FRAMES_PER_WINDOW if frames_per_window is None else int(frames_per_window)
        return max(float(self.rate), k / self.window_seconds)

    def as_dict(self) -> dict[str, Any]:
        return {"rate": float(self.rate), "timeline_fps": self.fps, "window_frames": self.window,
                "stride_frames": self.stride, "window_seconds": self.window_seconds,
                "stride_seconds": self.stride / self.fps, "backpad_last": True}


@dataclass(frozen=True)
class Density:
    """How well a video's store frames cover the grid."""

    frame_rate: float  # 1 / median gap between consecutive frame times (0 for fewer than 2 frames)
    empty_windows: int  # grid windows without any store frame
    windows: int
    dense: bool
    reason: str


def store_density(times: np.ndarray, duration: float, grid: FeatureGrid) -> Density:
    """Apply the "dense enough" rule (module docstring) to one video's store frame times."""
    w = grid.windows(duration)
    t = np.unique(np.asarray(times, dtype=np.float64))
    if t.size == 0:
        return Density(0.0, len(w), len(w), False, "the store has no frames of this video")
    gaps = np.diff(t)
    rate = float(1.0 / np.median(gaps)) if gaps.size else 0.0
    lo = np.searchsorted(t, w[:, 0], side="left")
    hi = np.searchsorted(t, w[:, 1], side="left")
    hi[-1] = np.searchsorted(t, w[-1, 1], side="right")  # the last window also takes a frame on its end
    empty = int(np.sum(hi <= lo))
    if rate < grid.rate * (1 - 1e-6):
        return Density(rate, empty, len(w), False,
                       f"store frames at {rate:.3g} fps are sparser than {grid.rate:g} features/s")
    if empty > 1:
        return Density(rate, empty, len(w), False, f"{empty} of {len(w)} feature windows hold no store frame")
    return Density(rate, empty, len(w), True,
                   f"store frames at {rate:.3g} fps >= {grid.rate:g} features/s, {empty} empty window(s)")


# ----------------------------------------------------------------------------------------------
# videos and where their frames come from


@dataclass
class VideoRef:
    """A video known to the export: its egoindex uid, file and duration (seconds)."""

    uid: str
    source: str = ""  # path relative to the videos folder (POSIX), '' when unknown
    duration: float | None = None  # None: probed from the file when needed
    path: Path | None = None
    split: str = ""
    in_store: bool = False


@dataclass
class VideoFeatures:
    """The feature rows of one video and how they were made."""

    uid: str
    features: np.ndarray  # float32 [N, D], unit rows
    duration: float
    source: str  # "store" | "videos"
    frames: int  # frame embeddings pooled
    frame_rate: float  # store frame rate, or the decoding rate
    reason: str
    empty_windows: int = 0
    warnings: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason, "duration": self.duration,
                "features": int(self.features.shape[0]), "frames": self.frames,
                "frame_rate": round(self.frame_rate, 6), "empty_windows": self.empty_windows,
                "warnings": self.warnings}


def _ingest_config(store: Any) -> dict[str, Any]:
    shards = store.meta.get("shards_dir")
    p = Path(shards) / "_ingest" / "config.json" if shards else None
    if p is not None and p.is_file():
        try:
            cfg = read_json(p)
            return cfg if isinstance(cfg, dict) else {}
        except (OSError, ValueError):
            return {}
    return {}


class Backend:
    """The model and the video catalog an export works from: a store, or a checkpoint + a videos folder.

    ``model_source`` is a store folder (its model, checkpoint, frames and videos table are used;
    ``videos_dir`` overrides where its videos live) or a checkpoint file (then ``videos_dir`` is
    required, every video in it is a candidate and features always come from decoding).
    """

    def __init__(self, model_source: str | Path, videos_dir: str | Path | None = None, model: str | None = None,
                 device: str = "cpu") -> None:
        from egoindex.store.store import META_FILE, Store, StoreError

        src = Path(model_source)
        self.videos_dir = Path(videos_dir) if videos_dir is not None else None
        if self.videos_dir is not None and not self.videos_dir.is_dir():
            raise ExportError(f"videos folder not found: {self.videos_dir}")
        self.device = device
        self.store: Any = None
        self.checkpoint: Path | None = None
        self.model = model
        if src.is_dir():
            if not (src / META_FILE).is_file():
                raise ExportError(f"{src} is neither an egoindex store (no {META_FILE}) nor a checkpoint file")
            try:
                self.store = Store(src, device=device)
                self.store.check_checkpoint(model=model)
            except StoreError as e:
                raise ExportError(str(e)) from e
        elif src.is_file():
            if self.videos_dir is None:
                raise ExportError("exporting from a checkpoint needs the raw videos: pass --videos DIR")
            self.checkpoint = src
        else:
            raise ExportError(f"{src} does not exist (expected a store folder or a checkpoint file)")
        self.ingest = _ingest_config(self.store) if self.store is not None else {}

    @cached_property
    def embedder(self) -> Any:
        from egoindex.model.openclip import ModelError, load_model
        from egoindex.store.store import StoreError

        try:
            if self.store is not None:
                return self.store.embedder
            from egoindex.model.embed import Embedder

            return Embedder(load_model(self.checkpoint, self.model), device=self.device)  # type: ignore[arg-type]
        except (StoreError, ModelError, FileNotFoundError) as e:
            raise ExportError(str(e)) from e

    @cached_property
    def catalog(self) -> dict[str, VideoRef]:
        """uid -> VideoRef of every video this backend can export."""
        out: dict[str, VideoRef] = {}
        if self.store is not None:
            root = self.videos_dir or (Path(self.store.meta["videos_root"]) if self.store.meta.get("videos_root") else None)
            for uid, row in self.store.videos.items():
                src = str(row.get("source") or "")
                out[uid] = VideoRef(uid=uid, source=src, duration=float(row["duration"]) if row.get("duration") else None,
                                    path=(root / src) if (root is not None and src) else None,
                                    split=str(row.get("split") or ""), in_store=True)
        else:
            from egoindex.media.discover import find_videos

            for v in find_videos(self.videos_dir):  # type: ignore[arg-type]
                out[v.video_uid] = VideoRef(uid=v.video_uid, source=v.source, duration=None, path=v.path)
        return out

    def info(self) -> dict[str, Any]:
        if self.store is not None:
            return {"store": str(Path(self.store.root).resolve()), "model": self.store.model_name,
                    "checkpoint": self.store.meta.get("checkpoint"), "checkpoint_sha256": self.store.checkpoint_sha256,
                    "videos_dir": str(self.videos_dir or self.store.meta.get("videos_root") or "")}
        from egoindex.core.fsutil import sha256_file

        return {"store": None, "model": self.embedder.loaded.name, "checkpoint": str(self.checkpoint),
                "checkpoint_sha256": sha256_file(self.checkpoint), "videos_dir": str(self.videos_dir)}  # type: ignore[arg-type]


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


class FeatureMaker:
    """Feature rows per video from the store (pooling its frame embeddings) or from the videos.

    ``frames_per_window``: at most this many evenly spaced frames are pooled per window (``None``:
    all), and the default decoding rate gives each window that many.  ``decode_fps`` overrides
    the decoding rate (it must be at least the feature rate).
    """

    def __init__(self, backend: Backend, grid: FeatureGrid, frames_per_window: int | None = DEFAULT_FRAMES_PER_WINDOW,
                 source: str = "auto", decode_fps: float | None = None, short_side: int | None = None,
                 jpeg_quality: int | None = None) -> None:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if frames_per_window is not None and (int(frames_per_window) != frames_per_window or frames_per_window < 1):
            raise ValueError(f"frames_per_window must be a positive integer, got {frames_per_window!r}")
        if backend.store is None and source == "store":
            raise ExportError("--source store needs a store, not a checkpoint")
        self.backend, self.grid, self.fpw, self.source = backend, grid, frames_per_window, source
        if decode_fps is None:
            decode_fps = grid.decode_fps(frames_per_window)
        if not (math.isfinite(decode_fps) and decode_fps >= grid.rate * (1 - 1e-9)) or decode_fps > 60:
            raise ValueError(f"decode_fps must be between the feature rate {grid.rate:g} and 60, got {decode_fps!r}")
        self.decode_fps = float(decode_fps)
        self.short_side = int(short_side if short_side is not None else backend.ingest.get("short_side", 256))
        self.jpeg_quality = int(jpeg_quality if jpeg_quality is not None else backend.ingest.get("jpeg_quality", 90))

    def settings(self) -> dict[str, Any]:
        return {"grid": self.grid.as_dict(), "frames_per_window": self.fpw, "source": self.source,
                "decode_fps": self.decode_fps, "decode_short_side": self.short_side,
                "decode_jpeg_quality": self.jpeg_quality, "dense_rule": DENSE_RULE,
                "store_ingest_fps": self.backend.ingest.get("fps")}

    # ---- frames -----------------------------------------------------------------------------

    def _store_frames(self, uids: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from egoindex.store.filters import quote
        from egoindex.store.schema import vectors_of

        store = self.backend.store
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if store is None or not uids:
            return out
        got = store.table("frames").search().where(f"video_uid IN ({', '.join(quote(u) for u in uids)})") \
            .select(["video_uid", "t", "vector"]).limit(None).to_arrow()
        col = np.asarray(got["video_uid"].to_pylist(), dtype=object)
        times = got["t"].to_numpy()
        vecs = vectors_of(got["vector"], store.dim)
        for uid in uids:
            sel = col == uid
            order = np.argsort(times[sel], kind="stable")
            out[uid] = (times[sel][order], vecs[sel][order])
        return out

    def decode(self, ref: VideoRef) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Decode ``ref`` at ``decode_fps`` and embed every frame: (times, [F, D] vectors, warnings)."""
        import torch

        from egoindex.model.embed import crop_jpeg
        from egoindex.media.frames import DecodeStats, VideoError, iter_frames

        if ref.path is None:
            raise ExportError(f"video {ref.uid}: the videos folder is unknown (pass --videos DIR)")
        if not ref.path.is_file():
            raise ExportError(f"video {ref.uid}: {ref.path} not found (pass --videos DIR to say where the videos are)")
        emb = self.backend.embedder
        stats = DecodeStats()
        times: list[float] = []
        vecs: list[np.ndarray] = []
        crops: list[np.ndarray] = []

        def flush() -> None:
            if crops:
                vecs.append(emb.encode_crops(torch.from_numpy(np.stack(crops))))
                crops.clear()

        try:
            for fr in iter_frames(ref.path, self.decode_fps, self.short_side, self.jpeg_quality, stats):
                times.append(fr.t)
                crops.append(crop_jpeg(fr.jpeg, emb.pp))
                if len(crops) >= _EMBED_BATCH:
                    flush()
            flush()
        except VideoError as e:
            raise ExportError(f"video {ref.uid} ({ref.path}): {e.kind}: {e}") from e
        return np.asarray(times, np.float64), np.concatenate(vecs).astype(np.float32, copy=False), list(stats.warnings)

    def _duration(self, ref: VideoRef) -> float:
        if ref.duration is None or not ref.duration > 0:
            from egoindex.media.frames import VideoError, probe

            if ref.path is None or not ref.path.is_file():
                raise ExportError(f"video {ref.uid}: duration unknown and no video file to probe")
            try:
                ref.duration = round(float(probe(ref.path).duration), 3)  # as ingest records it
            except VideoError as e:
                raise ExportError(f"video {ref.uid} ({ref.path}): {e.kind}: {e}") from e
        return float(ref.duration)

    # ---- features ---------------------------------------------------------------------------

    def features(self, refs: Sequence[VideoRef]) -> Iterator[VideoFeatures]:
        """Feature rows of every video of ``refs``, in order (store frames are read in buckets)."""
        for i in range(0, len(refs), _STORE_BUCKET):
            bucket = refs[i:i + _STORE_BUCKET]
            need_store = self.source != "videos" and self.backend.store is not None
            frames = self._store_frames([r.uid for r in bucket if r.in_store]) if need_store else {}
            for ref in bucket:
                yield self._one(ref, frames.get(ref.uid))

    def _one(self, ref: VideoRef, store_frames: tuple[np.ndarray, np.ndarray] | None) -> VideoFeatures:
        duration = self._duration(ref)
        windows = self.grid.windows(duration)
        if self.source != "videos" and store_frames is not None and len(store_frames[0]):
            times, vecs = store_frames
            dens = store_density(times, duration, self.grid)
            if self.source == "store" or dens.dense:
                reason = dens.reason if dens.dense else f"forced (--source store): {dens.reason}"
                return VideoFeatures(ref.uid, pool_windows(times, vecs, windows, self.fpw), duration, "store",
                                     int(len(times)), dens.frame_rate, reason, dens.empty_windows)
            reason = dens.reason
        elif self.source == "store":
            raise ExportError(f"video {ref.uid}: the store has no frames of it (--source store)")
        elif self.source == "videos":
            reason = "forced (--source videos)"
        else:
            reason = "the store has no frames of this video" if self.backend.store is not None else "no store: decoding"
        if self.source == "auto" and (ref.path is None or not ref.path.is_file()):
            raise ExportError(
                f"video {ref.uid}: {reason}, and its file {ref.path or '(unknown)'} is not there to decode; "
                "pass --videos DIR, or --source store to pool the sparse store frames anyway")
        times, vecs, warns = self.decode(ref)
        feats = pool_windows(times, vecs, windows, self.fpw)
        empty = store_density(times, duration, self.grid).empty_windows
        return VideoFeatures(ref.uid, feats, duration, "videos", int(len(times)), self.decode_fps,
                             f"decoded at {self.decode_fps:g} fps: {reason}", empty, warns)


# ----------------------------------------------------------------------------------------------
# exports


def split_name_of(path: str | Path, prefix: str) -> str:
    """``nlq_train.json`` -> ``train``; ``nlq_test_unannotated.json`` -> ``test``; else the stem without the prefix."""
    stem = Path(path).name.split(".")[0]
    if stem.lower().startswith(prefix):
        stem = stem[len(prefix):]
    head = stem.split("_")[0].lower()
    return head if head in ("train", "val", "test") else stem


def _progress(enabled: bool, total: int, what: str) -> Any:
    import contextlib

    if not enabled:
        return contextlib.nullcontext(lambda n=1: None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    @contextlib.contextmanager
    def bar() -> Iterator[Callable[[int], None]]:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as p:
            task = p.add_task(what, total=total)
            yield lambda n=1: p.advance(task, n)

    return bar()


def _video_features(maker: FeatureMaker, refs: Sequence[VideoRef], progress: bool) -> dict[str, VideoFeatures]:
    out: dict[str, VideoFeatures] = {}
    with _progress(progress, len(refs), "video features") as advance:
        for vf in maker.features(refs):
            out[vf.uid] = vf
            advance(1)
    return out


def _prepare(backend: Backend, wanted: Sequence[str] | None, strict: bool) -> tuple[dict[str, VideoRef], list[str]]:
    if wanted is None:
        refs = dict(backend.catalog)
        if not refs:
            raise ExportError("no videos to export (empty store or videos folder)")
        return refs, []
    found, missing = resolve_videos(wanted, backend.catalog)
    if missing and strict:
        where = f"store {backend.store.root}" if backend.store is not None else f"videos folder {backend.videos_dir}"
        raise ExportError(f"{len(missing)} annotated video(s) are not in the {where}, e.g. {missing[:3]} "
                          "(pass --no-strict to export the others)")
    if not found:
        raise ExportError("none of the annotated videos is available")
    return found, missing


def export_nlq(
    backend: Backend,
    out_dir: str | Path,
    annotations: Sequence[str | Path] = (),
    grid: FeatureGrid | None = None,
    frames_per_window: int | None = DEFAULT_FRAMES_PER_WINDOW,
    source: str = "auto",
    decode_fps: float | None = None,
    strict: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """VSLNet features (+ dataset JSONs and query-text features when ``annotations`` are given).

    With annotation files (``nlq_train.json`` ...; the split is read from the file name), every
    annotated clip gets ``{clip_uid}.pt``: the rows of its video's grid that VSLNet's preparation
    keeps (:func:`~egoindex.export.windows.vslnet_clip_slice`, cut to the video), the split JSONs
    carry ``fps = rate`` and ``num_frames`` = the clip's rows, and every non-empty query text is
    embedded with the model's text tower (``text/sentence.{npy,pt}``, keyed by the query text as
    written in the annotations).  Without annotations every video gets ``{video_uid}.pt``.
    Writes ``export_summary.json`` (settings, per-video source and reason) and returns it.
    """
    grid = grid or FeatureGrid()
    maker = FeatureMaker(backend, grid, frames_per_window, source, decode_fps)
    out = Path(out_dir)
    loaded: list[dict[str, Any]] = []
    names: list[str] = []
    for p in annotations:
        name = split_name_of(p, "nlq_")
        try:
            loaded.append(ego4d.load_nlq_annotations(p, require_times=name != "test"))
        except ValueError as e:
            raise ExportError(str(e)) from e
        names.append(name)
    if len(set(names)) != len(names):
        raise ExportError(f"annotation files must be of distinct splits, got {names}")

    wanted = [v["video_uid"] for nlq in loaded for v in nlq["videos"]] if loaded else None
    refs, missing_videos = _prepare(backend, wanted, strict)
    uniq: dict[str, VideoRef] = {}
    for ref in refs.values():
        uniq.setdefault(ref.uid, ref)
    vfeats = _video_features(maker, list(uniq.values()), progress)

    warnings: list[str] = []
    if loaded:
        features: dict[str, np.ndarray] = {}
        bounds: dict[str, tuple[float, float, str]] = {}
        for nlq in loaded:
            for video in nlq["videos"]:
                ref = refs.get(video["video_uid"])
                if ref is None:
                    continue
                vf = vfeats[ref.uid]
                for clip in video["clips"]:
                    cid = clip["clip_uid"]
                    s, e = float(clip["video_start_sec"]), float(clip["video_end_sec"])
                    if cid in bounds:
                        if bounds[cid] != (s, e, video["video_uid"]):
                            raise ExportError(f"clip {cid} appears with different bounds or videos: "
                                              f"{bounds[cid]} vs {(s, e, video['video_uid'])}")
                        continue
                    bounds[cid] = (s, e, video["video_uid"])
                    rows = vslnet_clip_slice(s, e, grid.rate)
                    n = vf.features.shape[0]
                    if rows.start >= n:
                        raise ExportError(f"clip {cid} starts at {s} s, after the end of video {video['video_uid']} "
                                          f"({vf.duration} s, {n} feature rows)")
                    if e > vf.duration + 1.0:
                        warnings.append(f"clip {cid} ends at {e} s, past the end of its video ({vf.duration} s)")
                    features[cid] = vf.features[rows.start:min(rows.stop, n)]
        texts = sorted({q.query for nlq in loaded for q in ego4d.iter_nlq_queries(nlq) if q.query})
        qvecs = backend.embedder.encode_texts(texts) if texts else np.zeros((0, 1), np.float32)
        query_features = {t: qvecs[i] for i, t in enumerate(texts)} or None
        try:
            summary = ego4d.write_vslnet(out, features, grid.rate, annotations=loaded, query_features=query_features,
                                         split_names=names, strict=strict)
        except ValueError as e:
            raise ExportError(str(e)) from e
    else:
        try:
            summary = ego4d.write_vslnet(out, {uid: vf.features for uid, vf in vfeats.items()}, grid.rate)
        except ValueError as e:
            raise ExportError(str(e)) from e
    return _finish(out, "nlq", summary, backend, maker, refs, vfeats, missing_videos, warnings,
                   {"annotations": {n: str(p) for n, p in zip(names, annotations)}})


def export_mq(
    backend: Backend,
    out_dir: str | Path,
    moments: Sequence[str | Path],
    grid: FeatureGrid | None = None,
    frames_per_window: int | None = DEFAULT_FRAMES_PER_WINDOW,
    source: str = "auto",
    decode_fps: float | None = None,
    strict: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """VSGN features (``{video_uid}.pt`` [T, D], whole videos) and ``clip_annotations.json``.

    ``moments``: Ego4D ``moments_<split>.json`` files.  Feature files are named by the
    annotation's video uid; ``v_duration`` is the video's duration in the store (or probed from
    the file) and ``fps = T / v_duration``, so VSGN's slice of each clip lands on its rows.
    Writes ``export_summary.json`` and returns it.
    """
    if not moments:
        raise ExportError("give at least one moments annotation file (--moments moments_train.json)")
    grid = grid or FeatureGrid()
    maker = FeatureMaker(backend, grid, frames_per_window, source, decode_fps)
    out = Path(out_dir)
    files: list[dict[str, Any]] = []
    for p in moments:
        try:
            data = read_json(Path(p))
        except (OSError, ValueError) as e:
            raise ExportError(f"{p}: cannot read moments annotations: {e}") from e
        if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
            raise ExportError(f"{p}: not an Ego4D moments file (no 'videos' list)")
        files.append(data)
    wanted = [str(v.get("video_uid")) for data in files for v in data["videos"] if isinstance(v, dict)]
    refs, missing_videos = _prepare(backend, wanted, strict)
    uniq: dict[str, VideoRef] = {}
    for ref in refs.values():
        uniq.setdefault(ref.uid, ref)
    vfeats = _video_features(maker, list(uniq.values()), progress)
    video_features = {vid: vfeats[ref.uid].features for vid, ref in refs.items()}
    durations = {vid: vfeats[ref.uid].duration for vid, ref in refs.items()}
    counts = {vid: int(f.shape[0]) for vid, f in video_features.items()}
    clips: dict[str, dict[str, Any]] = {}
    try:
        for data in files:
            for cid, entry in ego4d.build_clip_annotations(data, durations, counts).items():
                if cid in clips:
                    clips[cid]["annotations"].extend(entry["annotations"])
                else:
                    clips[cid] = entry
        summary = ego4d.write_vsgn(out, video_features, clips, strict=strict)
    except ValueError as e:
        raise ExportError(str(e)) from e
    return _finish(out, "mq", summary, backend, maker, refs, vfeats, missing_videos, [],
                   {"moments": [str(p) for p in moments]})


def _finish(out: Path, task: str, summary: dict[str, Any], backend: Backend, maker: FeatureMaker,
            refs: Mapping[str, VideoRef], vfeats: Mapping[str, VideoFeatures], missing: list[str],
            warnings: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    by_source: dict[str, int] = {}
    for vf in vfeats.values():
        by_source[vf.source] = by_source.get(vf.source, 0) + 1
    names = {ref.uid: name for name, ref in refs.items()}
    videos = {}
    for uid, vf in vfeats.items():
        rec = vf.record()
        rec["file"] = refs[names[uid]].source if uid in names else ""
        if names.get(uid, uid) != uid:
            rec["annotation_video_uid"] = names[uid]
        videos[uid] = rec
    full = {"task": task, **backend.info(), **maker.settings(), **extra, "export": summary,
            "sources": by_source, "videos": videos, "missing_videos": missing,
            "warnings": warnings + [f"{u}: {w}" for u, vf in vfeats.items() for w in vf.warnings]}
    write_json(out / SUMMARY_FILE, full)
    full["summary_file"] = str(out / SUMMARY_FILE)
    return full


# ----------------------------------------------------------------------------------------------
# demo corpus annotations


def write_demo_annotations(demo_dir: str | Path, out_dir: str | Path, store: Any = None,
                           clip_seconds: float | None = 15.0) -> dict[str, list[str]]:
    """Ego4D-format ``nlq_<split>.json`` and ``moments_<split>.json`` for a demo corpus folder.

    Video uids are egoindex's (:func:`egoindex.media.discover.video_uid` of the ground-truth path), so
    clip uids equal store video uids.  With a store (an opened :class:`~egoindex.store.Store`),
    only its videos are annotated and each goes to its store split; without one, all videos go
    to ``train``.  Moments clips are ``clip_seconds`` long.  Returns split -> written files.
    """
    from egoindex.media.discover import video_uid

    demo = Path(demo_dir)
    gt_path = demo / "ground_truth.json"
    if not gt_path.is_file():
        raise ExportError(f"{demo} has no ground_truth.json (write one with `egoindex demo-data`)")
    gt = read_json(gt_path)
    by_split: dict[str, dict[str, str]] = {}
    for v in gt.get("videos", []):
        path = v.get("path") if isinstance(v, dict) else None
        if not isinstance(path, str):
            continue
        uid = video_uid(path)
        if store is not None:
            row = store.videos.get(uid)
            if row is None:
                continue
            split = str(row.get("split") or "train")
        else:
            split = "train"
        by_split.setdefault(split, {})[path] = uid
    if not by_split:
        raise ExportError("none of the demo videos is in the store" if store is not None else "the ground truth lists no videos")
    out = Path(out_dir)
    written: dict[str, list[str]] = {}
    for split in sorted(by_split):
        uids = by_split[split]
        nlq = ego4d.demo_nlq_annotations(gt, uids, split=split)
        mom = ego4d.demo_moments_annotations(gt, uids, split=split, clip_seconds=clip_seconds)
        paths = [out / f"nlq_{split}.json", out / f"moments_{split}.json"]
        write_json(paths[0], nlq)
        write_json(paths[1], mom)
        written[split] = [os.fspath(p) for p in paths]
    return written
