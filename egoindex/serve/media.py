"""Media for the web page: source videos with HTTP Range support, and moment thumbnails.

Videos: a ``<video>`` element seeks by asking for byte ranges, so ``/api/video/{uid}`` answers
``Range: bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` with 206 and exactly those bytes. A range
that is malformed or starts past the end gets 416 with ``Content-Range: bytes */SIZE`` (telling
the client the real size); several ranges at once (never sent by media elements) are answered
with the whole file, which RFC 9110 allows. Which file is served is decided by
:func:`resolve_video` alone: only the ``video_path`` of a uid the store knows, and only when its
resolved location is inside the store's ``videos_root``, so no request can name a path.

Thumbnails: decoding a frame costs tens of milliseconds and a result page asks for a dozen, so
JPEGs are cached by (video, time quantised to 0.1 s) in a byte-bounded in-memory LRU and,
when a cache folder is given (the CLI uses ``STORE/_thumbs``), on disk across restarts.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import NoReturn

from starlette.responses import Response, StreamingResponse

from egoindex.errors import EgoindexError, VideoError
from egoindex.media.sample import frames_at
from egoindex.store import Store, StoreError

log = logging.getLogger("egoindex.serve")

CHUNK = 256 * 1024
_VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska",
                ".webm": "video/webm", ".avi": "video/x-msvideo"}
_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class MediaRequestError(EgoindexError):
    """A media request that cannot be served; ``status`` is the HTTP status to answer with.

    Not :class:`egoindex.errors.MediaError` (a media *file* that cannot be read): this one is the
    server's answer to a request (404 unknown video, 416 bad range, 422 undecodable frame)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


# ---- videos ---------------------------------------------------------------------------------------

def resolve_video(store: Store, video_uid: str) -> Path:
    """The file to serve for ``video_uid``: the store's own path for a known uid, inside videos_root."""
    if video_uid not in store.videos:
        raise MediaRequestError(404, f"unknown video {video_uid!r}")
    root = store.meta.videos_root
    if not root:
        raise MediaRequestError(404, "the store does not know where its videos are (no videos_root)")
    try:
        path = store.video_path(video_uid).resolve()
        root_dir = Path(root).resolve()
    except (StoreError, OSError, ValueError) as e:
        raise MediaRequestError(404, f"video {video_uid} is not available: {e}") from None
    if not path.is_relative_to(root_dir):
        raise MediaRequestError(404, f"video {video_uid} is not inside the store's videos folder")
    if not path.is_file():
        raise MediaRequestError(404, f"the source file of video {video_uid} is missing")
    return path


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive byte positions asked for by a Range header, or None for the
    whole file (no header, another unit, several ranges). Raises MediaRequestError(416) for a range
    that is malformed or not satisfiable."""
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    m = _RANGE.match(spec)
    if not m or not (m.group(1) or m.group(2)):
        _unsatisfiable(size)
    first_s, last_s = m.group(1), m.group(2)
    if first_s:
        first = int(first_s)
        last = min(int(last_s), size - 1) if last_s else size - 1
        if last_s and int(last_s) < first:
            _unsatisfiable(size)
    else:  # suffix range: the last n bytes
        n = int(last_s)
        if n == 0:
            _unsatisfiable(size)
        first, last = max(size - n, 0), size - 1
    if first >= size:
        _unsatisfiable(size)
    return first, last


def _unsatisfiable(size: int) -> NoReturn:
    raise MediaRequestError(416, f"range not satisfiable (the file has {size} bytes)", {"Content-Range": f"bytes */{size}"})


def _iter_file(path: Path, first: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(first)
        left = length
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


def video_response(path: Path, range_header: str | None, if_range: str | None = None) -> Response:
    """200 (whole file) or 206 (one range) streaming ``path``; raises MediaRequestError(416)."""
    st = path.stat()
    size = st.st_size
    etag = '"' + hashlib.sha1(f"{path}:{st.st_mtime_ns}:{size}".encode()).hexdigest()[:20] + '"'
    last_modified = formatdate(st.st_mtime, usegmt=True)
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Last-Modified": last_modified,
               "Cache-Control": "private, max-age=3600"}
    media_type = _VIDEO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # If-Range: only honour the range when the client's copy is still this file.
    if if_range is not None and if_range.strip() not in (etag, last_modified):
        range_header = None
    rng = parse_range(range_header, size)
    if rng is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_iter_file(path, 0, size), status_code=200, media_type=media_type, headers=headers)
    first, last = rng
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    return StreamingResponse(_iter_file(path, first, last - first + 1), status_code=206, media_type=media_type,
                             headers=headers)


# ---- thumbnails -----------------------------------------------------------------------------------

class ByteLRU:
    """A thread-safe LRU of byte strings bounded by their total size."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple[str, int]) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[str, int], value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._data[key] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, dropped = self._data.popitem(last=False)
                self._size -= len(dropped)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._size = 0


class Thumbnails:
    """JPEG of the frame on screen at a moment of a store's video, cached (memory, optional disk)."""

    def __init__(self, store: Store, *, cache_dir: Path | None = None, max_bytes: int = 64 << 20,
                 short_side: int = 180, quality: int = 80, max_decodes: int = 2,
                 hidden: Callable[[str, float], bool] | None = None) -> None:
        self.store = store
        # whether a moment was redacted (egoindex.serve.live): checked at the time actually decoded
        self.hidden = hidden or (lambda uid, t: False)
        self.cache_dir = cache_dir
        self.short_side, self.quality = short_side, quality
        self.memory = ByteLRU(max_bytes)
        # Decoding is CPU-bound: a page of thumbnails must not take every core from searches.
        self._decodes = threading.BoundedSemaphore(max_decodes)
        self._disk_ok = cache_dir is not None

    def get(self, video_uid: str, t: float) -> bytes:
        """The thumbnail at ``t`` seconds (clamped to the video); MediaRequestError 404/422 when impossible."""
        path = resolve_video(self.store, video_uid)
        duration = float(self.store.videos[video_uid].get("duration") or 0.0)
        t = min(max(0.0, t), duration) if duration > 0 else max(0.0, t)
        key = (video_uid, int(round(t * 10)))
        if self.hidden(video_uid, key[1] / 10):  # t rounds into a redacted range
            raise MediaRequestError(410, f"the moment {key[1] / 10:g} s of video {video_uid!r} was redacted")
        got = self.memory.get(key)
        if got is None:
            got = self._disk_get(key)
            if got is None:
                got = self._decode(path, key[1] / 10)
                self._disk_put(key, got)
            self.memory.put(key, got)
        return got

    def forget(self, hidden: Callable[[str, float], bool] | None = None, uids: Iterable[str] = ()) -> int:
        """Drop the memory cache, and the disk cache's thumbnails at moments ``hidden`` now says were
        redacted (a redaction deletes the disk cache, but a request it raced may have written one
        back, and a cache folder other than ``STORE/_thumbs`` is not its to delete); returns how
        many files were deleted. ``uids``: the videos ``hidden`` may hide (those with blackouts; a
        wholly redacted one has left the store, its cached thumbnails may not have)."""
        self.memory.clear()
        if hidden is None or self.cache_dir is None or not self.cache_dir.is_dir():
            return 0
        removed = 0
        for uid in set(uids):
            folder = self.cache_dir / self._uid_dir(uid)
            if not folder.is_dir():
                continue
            for p in folder.glob("*_*.jpg"):
                q = p.name.partition("_")[0]
                if q.isdigit() and hidden(uid, int(q) / 10):
                    p.unlink(missing_ok=True)
                    removed += 1
        return removed

    def _decode(self, path: Path, t: float) -> bytes:
        with self._decodes:
            try:
                for _, _, jpeg in frames_at(path, [t], short_side=self.short_side, jpeg_quality=self.quality):
                    return jpeg
            except VideoError as e:
                raise MediaRequestError(422, f"cannot decode a frame of {path.name} at {t:.1f} s: {e}") from None
        raise MediaRequestError(422, f"no frame of {path.name} at {t:.1f} s")

    def _disk_path(self, key: tuple[str, int]) -> Path | None:
        if not self._disk_ok or self.cache_dir is None:
            return None
        return self.cache_dir / self._uid_dir(key[0]) / f"{key[1]}_{self.short_side}.jpg"

    @staticmethod
    def _uid_dir(video_uid: str) -> str:
        # The uid is hashed into the name: whatever a store's uids contain, the path stays inside.
        return hashlib.sha1(video_uid.encode()).hexdigest()[:20]

    def _disk_get(self, key: tuple[str, int]) -> bytes | None:
        p = self._disk_path(key)
        try:
            return p.read_bytes() if p is not None and p.is_file() else None
        except OSError:
            return None

    def _disk_put(self, key: tuple[str, int], jpeg: bytes) -> None:
        p = self._disk_path(key)
        if p is None:
            return
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(jpeg)
            os.replace(tmp, p)
        except OSError as e:  # a read-only store: keep serving from memory
            log.warning("thumbnail disk cache disabled (%s): %s", self.cache_dir, e)
            self._disk_ok = False
