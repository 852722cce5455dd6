"""The store a running server answers from, reopened when a build or a redaction changes it, and
the redactions it must honour meanwhile.

Why: ``egoindex redact`` rewrites a store in place (new table versions, old versions and their
files purged, indexes rebuilt, thumbnails dropped) and ``egoindex build --append`` commits new
rows. A server that kept the :class:`~egoindex.store.Store` it started with would answer from
table versions a redaction removed (still cached in memory, or with their files gone), keep
thumbnails of redacted moments in its memory cache and stream a raw file that still holds the
range. So before every request :meth:`LiveStore.refresh` compares the signature of the files
that say what the store is (``egoindex.json``, ``_redactions/blackouts.json``,
``_redactions/log.jsonl``: three ``stat`` calls) with the last one; when it changed it reopens the
store (keeping the loaded model), rereads the blackouts and tells the caches to forget.

What redactions do to requests (the rule of :mod:`egoindex.dataset.blackouts`, read there):

* a hit (row or merged moment) that meets a blacked-out range is dropped: a redaction records
  its blackouts first and rewrites the tables later, so for that while the tables still hold it;
* a transcript line that meets a range is left out, and a wholly redacted video is left out of
  the video list and its transcript refused (410 Gone), for the same reason;
* a thumbnail or a ``like`` moment at a time in a range is refused (410 Gone);
* a video with any redacted range is not streamed (410), unless every range was also blanked in
  the raw file (``egoindex redact --delete-source``, from the redaction log: :func:`blanked_ranges`).
  Why the whole file: a player asks for byte ranges, and bytes cannot be mapped to times safely
  (container indexes, B-frames, audio interleaving), so no byte range of a partly redacted file
  can be proven free of the range.

A store on object storage (``s3://``) is not watched: it cannot be redacted (the command refuses
it) and a server keeps the commit it opened, like every reader (docs/store.md).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from egoindex.dataset.blackouts import LOG_FILE, Blackouts, blackouts_path, blanked_ranges, read_blackouts
from egoindex.serve.media import MediaRequestError
from egoindex.store import Store
from egoindex.store.moments import Hit, Moment, Utterance
from egoindex.store.objectstore import is_remote

log = logging.getLogger("egoindex.serve")

#: HTTP status for a moment or video that was redacted (not "unknown": it existed and was removed).
GONE = 410

Signature = tuple[tuple[int, int, int] | None, ...]


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class LiveStore:
    """A :class:`Store` that follows the folder it was opened from (module docstring).

    Attribute access is passed to the current store, so handlers written against a ``Store``
    keep working; what one request reads after a swap comes from the newer store, which is never
    less redacted than the older one.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self.watched = not is_remote(store.location)
        self.generation = 0
        self._signature = self._read_signature()
        self.blackouts, self.blanked = self._read_redactions()

    def __getattr__(self, name: str) -> Any:  # only for names LiveStore itself lacks
        return getattr(self._store, name)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every reopen (the server's caches forget what they hold)."""
        self._listeners.append(listener)

    def _read_signature(self) -> Signature:
        if not self.watched:
            return ()
        layout = self._store.layout
        return (_stat(layout.meta), _stat(blackouts_path(layout.root)), _stat(layout.redactions / LOG_FILE))

    def _read_redactions(self) -> tuple[Blackouts, Blackouts]:
        root = self._store.root
        return read_blackouts(root), blanked_ranges(root)

    def refresh(self) -> bool:
        """Reopen the store if its files changed since the last look; returns whether it did.
        A store that cannot be opened now (a build or a redaction half way) keeps the last one
        and the new blackouts, and is tried again on the next request."""
        if not self.watched:
            return False
        sig = self._read_signature()
        if sig == self._signature:
            return False
        with self._lock:
            if sig == self._signature:
                return False
            old = self._store
            blackouts, blanked = self._read_redactions()  # first: they hold even if the reopen fails
            self.blackouts, self.blanked = blackouts, blanked
            try:
                new = Store(old.location, device=old.device, mmap=old.mmap)
                new.adopt_models(old)
            except Exception as e:  # noqa: BLE001 - any failure keeps serving the last good store
                log.warning("store %s changed but cannot be reopened yet (%s); trying again on the next request",
                            old.location, e)
                self._notify()
                return False
            self._store, self._signature = new, sig
            self.generation += 1
            log.info("store %s changed on disk: reopened (generation %d, %d blackouts)", old.location,
                     self.generation, len(blackouts))
        self._notify()
        return True

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()

    # ---- what redactions hide ---------------------------------------------------------------------
    def hits(self, hits: Iterable[Hit]) -> list[Hit]:
        """Search results less those that meet a blacked-out range (a moment: its whole span)."""
        bl = self.blackouts
        if not bl:
            return list(hits)
        return [h for h in hits if not bl.hides_span(h.video_uid, h.start, h.end)
                and not (isinstance(h, Moment) and any(bl.hides_span(h.video_uid, u.start, u.end)
                                                      for u in h.utterances))]

    def utterances(self, video_uid: str, lines: Iterable[Utterance]) -> list[Utterance]:
        """Transcript lines of ``video_uid`` less those that meet a blacked-out range (the tables
        may still hold them while a redaction runs, or when the reopen failed)."""
        bl = self.blackouts
        return [u for u in lines if not bl.hides_span(video_uid, u.start, u.end)]

    def video_rows(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Video rows less those of wholly blacked-out videos (their row goes at the redaction's
        table step; from its first step on the server already leaves them out)."""
        bl = self.blackouts
        return [r for r in rows if not bl.whole(str(r["video_uid"]))]

    def check_video(self, video_uid: str) -> None:
        """410 when the whole of ``video_uid`` was redacted (its transcript, its facts)."""
        if self.blackouts.whole(video_uid):
            raise MediaRequestError(GONE, f"video {video_uid!r} was redacted")

    def hidden(self, video_uid: str, t: float) -> bool:
        return self.blackouts.hides_time(video_uid, t)

    def check_moment(self, video_uid: str, t: float) -> None:
        """410 unless ``t`` of ``video_uid`` is outside every blacked-out range."""
        if self.blackouts.hides_time(video_uid, t):
            raise MediaRequestError(GONE, f"the moment {t:g} s of video {video_uid!r} was redacted")

    def check_stream(self, video_uid: str) -> None:
        """410 when the video has a blacked-out range its raw file was not blanked in."""
        if self.blackouts.of(video_uid) and not self.blackouts.within(video_uid, self.blanked):
            raise MediaRequestError(GONE, f"video {video_uid!r} has redacted ranges that are still in its source file, and "
                           "no byte range of it can be shown to be free of them; `egoindex redact "
                           "--delete-source` blanks them in the file, after which it streams again")
