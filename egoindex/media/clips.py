"""A video file -> its decoded frames, and a bounded cache of them: what video backbones read.

Decoding is the project's own (:func:`egoindex.media.frames.iter_frames`, the ingest's PyAV
path): the video at ``fps`` on the grid ``t_k = k / fps``, short side ``short_side``, as uint8
``(N, H, W, 3)``. :class:`ClipCache` keeps decoded videos (bounded by bytes, least recently used
out first) so a second epoch does not decode again. Which of the frames make a clip is
:mod:`egoindex.media.clip_sampling`.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from egoindex.errors import VideoError
from egoindex.media.frames import iter_frames

__all__ = ["ClipCache", "DecodedVideo", "decode_video"]


@dataclass
class DecodedVideo:
    frames: np.ndarray  # (N, H, W, 3) uint8, frame k shown at k / fps
    fps: float

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)


def decode_video(path: str | Path, fps: float, short_side: int, start: float = 0.0, end: float | None = None) -> DecodedVideo:
    """All frames of ``path`` at ``fps`` (optionally only ``[start, end)`` s), short side ``short_side``.

    Raises :class:`~egoindex.errors.VideoError` (with the ingest's ``kind``) for a file that is
    not a decodable video, or when the range holds no frame."""
    out: list[np.ndarray] = []
    for f in iter_frames(Path(path), fps, short_side=short_side, jpeg_quality=95):
        if f.t < start - 1e-9:
            continue
        if end is not None and f.t >= end - 1e-9:
            break
        out.append(np.asarray(Image.open(io.BytesIO(f.jpeg)).convert("RGB")))
    if not out:
        raise VideoError("bad-segment", f"{Path(path).name}: no frame in [{start:g}, {end if end is not None else 'end'}) s")
    return DecodedVideo(np.stack(out), fps)


class ClipCache:
    """Decoded videos by (path, size, mtime, fps, short side), at most ``max_bytes`` in all (LRU).

    Per process: DataLoader workers each hold their own, so give each ``budget / workers``. A
    video larger than the whole budget is decoded every time (never cached)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[tuple[Any, ...], DecodedVideo] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, path: Path, fps: float, short_side: int) -> DecodedVideo:
        st = Path(path).stat()
        key = (str(path), st.st_size, st.st_mtime_ns, float(fps), int(short_side))
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return hit
        video = decode_video(path, fps, short_side)
        with self._lock:
            self.misses += 1
            if video.nbytes <= self.max_bytes and key not in self._items:
                self._items[key] = video
                self._bytes += video.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= old.nbytes
        return video
