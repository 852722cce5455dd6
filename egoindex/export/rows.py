"""Per-video feature rows on the export's grid: pooled from the store's frames, or from the video decoded again.

Why two sources: a store already holds an embedding for every sampled frame, so when those frames
are dense enough for the grid (:func:`~egoindex.export.grid.store_density`) the rows are pooled
from them without touching a video (seconds per corpus); when they are too sparse (a 1 fps ingest
against 1.875 features/s) the video is decoded again at a rate that puts ``frames_per_window``
frames in each window (:func:`egoindex.model.video.embed_video`: the ingest's own JPEGs, the
store's own model), so both sources describe the same embedding space.  ``source="store"``
forces pooling the store frames whatever their density (sparse windows then repeat the nearest
frame), ``source="videos"`` forces decoding.  Which source each video used, and why, is recorded
per video (:meth:`VideoFeatures.record`) for the export summary.

Which encoder pools a window: the store's clips encoder (``StoreMeta.encoders``). A frame-mean
store (and a frame checkpoint) averages the window's frames (:func:`~egoindex.export.windows.pool_windows`,
at most ``frames_per_window``); a clip checkpoint's store, or a clip checkpoint, runs its temporal
head over ``num_frames`` of them (:func:`~egoindex.export.windows.encode_windows`), so NLQ/MQ
features are what the store's clips are.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from egoindex.errors import ExportError, VideoError
from egoindex.export.backend import Backend, VideoRef
from egoindex.export.grid import DEFAULT_FRAMES_PER_WINDOW, DENSE_RULE, FeatureGrid, store_density
from egoindex.export.windows import encode_windows, pool_windows
from egoindex.media.frames import probe
from egoindex.model.video import INGEST_JPEG_QUALITY, INGEST_SHORT_SIDE, embed_video
from egoindex.store.filters import in_list
from egoindex.store.layout import CLIPS_FRAME_MEAN, CLIPS_TEMPORAL_HEAD
from egoindex.store.schema import vectors_of

__all__ = ["SOURCES", "EMBED_BATCH", "STORE_BUCKET", "VideoFeatures", "FeatureMaker"]

SOURCES = ("auto", "store", "videos")
STORE_BUCKET = 256  # videos per store query
EMBED_BATCH = 128  # decoded frames per forward pass


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


class FeatureMaker:
    """Feature rows per video from the store (pooling its frame embeddings) or from the videos.

    ``frames_per_window``: at most this many evenly spaced frames are pooled per window (``None``:
    all), and the default decoding rate gives each window that many.  ``decode_fps`` overrides
    the decoding rate (it must be at least the feature rate).  ``short_side`` / ``jpeg_quality``
    of decoded frames default to the store's ingest (else the ingest's defaults).
    """

    def __init__(self, backend: Backend, grid: FeatureGrid, frames_per_window: int | None = DEFAULT_FRAMES_PER_WINDOW,
                 source: str = "auto", decode_fps: float | None = None, short_side: int | None = None,
                 jpeg_quality: int | None = None) -> None:
        if source not in SOURCES:
            raise ExportError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if frames_per_window is not None and (int(frames_per_window) != frames_per_window or frames_per_window < 1):
            raise ExportError(f"frames_per_window must be a positive integer, got {frames_per_window!r}")
        if backend.store is None and source == "store":
            raise ExportError("--source store needs a store, not a checkpoint")
        self.backend, self.grid, self.fpw, self.source = backend, grid, frames_per_window, source
        if decode_fps is None:
            decode_fps = grid.decode_fps(frames_per_window)
        if not (math.isfinite(decode_fps) and decode_fps >= grid.rate * (1 - 1e-9)) or decode_fps > 60:
            raise ExportError(f"decode_fps must be between the feature rate {grid.rate:g} and 60, got {decode_fps!r}")
        self.decode_fps = float(decode_fps)
        ingest = backend.ingest
        self.short_side = int(short_side if short_side is not None else ingest.get("short_side", INGEST_SHORT_SIDE))
        self.jpeg_quality = int(jpeg_quality if jpeg_quality is not None
                                else ingest.get("jpeg_quality", INGEST_JPEG_QUALITY))

    @property
    def temporal_head(self) -> bool:
        """Whether windows are pooled by a clip model's temporal head: the store's recorded clips
        encoder (no model load for a frame-mean store), or a checkpoint backend's model."""
        store = self.backend.store
        if store is not None:
            return store.clips_encoder["kind"] == CLIPS_TEMPORAL_HEAD
        return self.backend.embedder.video is not None

    def pool(self, times: np.ndarray, vecs: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """Feature rows of one video's frames: the temporal head's or the frame mean (module docstring)."""
        if self.temporal_head:
            return encode_windows(self.backend.embedder, times, vecs, windows)
        return pool_windows(times, vecs, windows, self.fpw)

    def settings(self) -> dict[str, Any]:
        encoder = ({"kind": CLIPS_TEMPORAL_HEAD, "num_frames": self.backend.embedder.num_frames}
                   if self.temporal_head else {"kind": CLIPS_FRAME_MEAN, "frames_per_window": self.fpw})
        return {"grid": self.grid.as_dict(), "frames_per_window": self.fpw, "window_encoder": encoder,
                "source": self.source,
                "decode_fps": self.decode_fps, "decode_short_side": self.short_side,
                "decode_jpeg_quality": self.jpeg_quality, "dense_rule": DENSE_RULE,
                "store_ingest_fps": self.backend.ingest.get("fps")}

    # ---- frames -----------------------------------------------------------------------------

    def _store_frames(self, uids: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        store = self.backend.store
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if store is None or not uids:
            return out
        got = store.table("frames").search().where(in_list("video_uid", uids)) \
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
        """Decode ``ref`` at ``decode_fps`` over its duration and embed every frame.

        Returns (times, [F, D] vectors, warnings)."""
        if ref.path is None:
            raise ExportError(f"video {ref.uid}: the videos folder is unknown (pass --videos DIR)")
        if not ref.path.is_file():
            raise ExportError(f"video {ref.uid}: {ref.path} not found (pass --videos DIR to say where the videos are)")
        duration = self._duration(ref)
        try:
            got = embed_video(self.backend.embedder, ref.path, self.decode_fps, duration=duration,
                              short_side=self.short_side, jpeg_quality=self.jpeg_quality, batch_size=EMBED_BATCH)
        except VideoError as e:
            raise ExportError(f"video {ref.uid} ({ref.path}): {e.kind}: {e}") from e
        return got.times, got.vectors, list(got.warnings)

    def _duration(self, ref: VideoRef) -> float:
        if ref.duration is None or not ref.duration > 0:
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
        for i in range(0, len(refs), STORE_BUCKET):
            bucket = refs[i:i + STORE_BUCKET]
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
                return VideoFeatures(ref.uid, self.pool(times, vecs, windows), duration, "store",
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
        feats = self.pool(times, vecs, windows)
        empty = store_density(times, duration, self.grid).empty_windows
        return VideoFeatures(ref.uid, feats, duration, "videos", int(len(times)), self.decode_fps,
                             f"decoded at {self.decode_fps:g} fps: {reason}", empty, warns)
