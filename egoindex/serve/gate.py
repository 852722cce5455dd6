"""The scope of the user behind the current request, applied to everything the server reads from the store.

:class:`Gate` is what the handlers of :mod:`egoindex.serve.app` ask, and the only thing they ask:
which videos this user sees (a video outside the scope answers exactly like an unknown one),
the search filters ANDed with the scope (:func:`~egoindex.serve.scopes.conjoin`), whether a moment
(a thumbnail, a ``like`` query) or a whole video file may be served, and the transcript lines and
moment utterances to leave in. Who the user is comes from :data:`CURRENT`, set by the
authentication middleware for the request (a context variable: FastAPI copies it into the thread
that runs the handler). Without authentication the gate lets everything through, which is how
``egoindex serve`` on loopback without a users file behaves.

Deny by default: with authentication on, no current user means 401, and a scope the store cannot
answer (a store built before the child/age/speaker columns) means no video at all, logged.

Moments of a speaker-limited user: a thumbnail at ``t`` or a ``like`` query at ``t`` is served only
when an in-scope row (frame, clip or utterance) lies within :data:`MOMENT_SLACK` seconds of ``t``
(the thumbnails' 0.1 s grid); a whole video file never is, since a file cannot be cut by speaker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import Any

from fastapi import HTTPException

from egoindex.errors import EgoindexError
from egoindex.serve.scopes import Scope, conjoin
from egoindex.serve.users import User
from egoindex.store import Filters, Store
from egoindex.store.filters import LEVELS
from egoindex.store.moments import Hit, Moment, Utterance

log = logging.getLogger("egoindex.serve")

#: The user of the request being handled (None: nobody logged in, or authentication off).
CURRENT: ContextVar[User | None] = ContextVar("egoindex_user", default=None)
#: Seconds around a moment within which an in-scope row makes it servable to a speaker-limited user.
MOMENT_SLACK = 0.05


class ScopeView:
    """A scope resolved against one store: the set of videos it admits (computed once)."""

    def __init__(self, store: Store, scope: Scope) -> None:
        self.store, self.scope = store, scope
        self.filters = scope.filters()
        self.visible = self._visible()

    def _uids(self, table: str, filters: Filters) -> set[str]:
        self.store.check_filter_columns(table, filters)
        rows = self.store.dataset(table).to_table(columns=["video_uid"], filter=filters.sql(table))
        return set(rows.column("video_uid").to_pylist())

    def _visible(self) -> frozenset[str]:
        try:
            uids = set(self.store.videos)
            if self.scope.video_filters().sql("videos"):
                uids &= self._uids("videos", self.scope.video_filters())
            if self.scope.row_limited:  # a video without one row of these speakers is not theirs
                rows: set[str] = set()
                for level in LEVELS:
                    rows |= self._uids(level, self.filters)
                uids &= rows
            return frozenset(uids)
        except (EgoindexError, ValueError, OSError) as e:
            log.warning("scope %s cannot be applied to store %s (%s): it admits no video", self.scope.describe(),
                        self.store.root, e)
            return frozenset()

    def covers(self, video_uid: str, t: float) -> bool:
        """Whether an in-scope row of ``video_uid`` lies within MOMENT_SLACK of ``t``."""
        if video_uid not in self.visible:
            return False
        if not self.scope.row_limited:
            return True
        near = conjoin(self.filters, Filters((video_uid,), start=t - MOMENT_SLACK, end=t + MOMENT_SLACK))
        if near is None:
            return False
        try:
            return any(self.store.count_rows(level, near.sql(level)) > 0 for level in LEVELS)
        except (EgoindexError, ValueError, OSError):
            return False


class Gate:
    """The current user's view of ``store``; ``enforced=False`` (no authentication) sees everything."""

    def __init__(self, store: Store, *, enforced: bool) -> None:
        self.store, self.enforced = store, enforced
        self._views: dict[Scope, ScopeView] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Resolve every scope again on its next use (the store was reopened: its videos changed)."""
        with self._lock:
            self._views.clear()

    def user(self) -> User | None:
        """The logged-in user (None only without authentication); 401 when enforced and nobody is."""
        user = CURRENT.get()
        if self.enforced and user is None:
            raise HTTPException(401, "log in first")
        return user

    def view(self) -> ScopeView | None:
        """The current user's resolved scope; None when nothing is hidden (no auth, an admin, all videos)."""
        user = self.user()
        if user is None or user.is_admin or user.scope.all_videos:
            return None
        with self._lock:
            v = self._views.get(user.scope)
        if v is None:
            v = ScopeView(self.store, user.scope)
            with self._lock:
                self._views[user.scope] = v
        return v

    # ---- videos ---------------------------------------------------------------------------------
    def sees(self, video_uid: str) -> bool:
        """Whether the video exists for this user (outside the scope it answers as unknown)."""
        v = self.view()
        return video_uid in self.store.videos if v is None else video_uid in v.visible

    def video_rows(self) -> list[dict[str, Any]]:
        """The store's video rows this user sees."""
        v = self.view()
        rows = self.store.videos.values()
        return list(rows) if v is None else [r for r in rows if r["video_uid"] in v.visible]

    def speakers(self, names: Sequence[str]) -> list[str]:
        """A video's speaker labels, less those outside a speaker-limited scope."""
        v = self.view()
        if v is None or not v.scope.speakers:
            return list(names)
        return [s for s in names if s in v.scope.speakers]

    # ---- rows -------------------------------------------------------------------------------------
    def restrict(self, filters: Filters) -> Filters | None:
        """The request's filters ANDed with the scope; None when no row can match both."""
        v = self.view()
        return filters if v is None else conjoin(filters, v.filters)

    def utterances(self, lines: Iterable[Utterance]) -> list[Utterance]:
        """Transcript lines of a visible video, less other speakers' for a speaker-limited scope."""
        v = self.view()
        if v is None or not v.scope.speakers:
            return list(lines)
        return [u for u in lines if u.speaker in v.scope.speakers]

    def hits(self, hits: Iterable[Hit]) -> list[Hit]:
        """Search results with each moment's utterances cut to the scope (its rows already are:
        they come from the scoped search)."""
        out = list(hits)
        v = self.view()
        if v is not None and v.scope.speakers:
            for h in out:
                if isinstance(h, Moment):
                    h.utterances = self.utterances(h.utterances)
        return out

    # ---- media ------------------------------------------------------------------------------------
    def check_moment(self, video_uid: str, t: float) -> None:
        """404 unless this user may see the moment ``t`` of ``video_uid`` (thumbnails, like queries)."""
        v = self.view()
        if v is None:
            return
        if video_uid not in v.visible:
            raise HTTPException(404, f"unknown video {video_uid!r}")
        if not v.covers(video_uid, t):
            raise HTTPException(404, f"no moment of video {video_uid!r} at {t:g} s is in your scope")

    def check_stream(self, video_uid: str) -> None:
        """404 for a video outside the scope; 403 for any video when the scope is limited by speaker."""
        v = self.view()
        if v is None:
            return
        if video_uid not in v.visible:
            raise HTTPException(404, f"unknown video {video_uid!r}")
        if v.scope.row_limited:
            raise HTTPException(403, "your access is limited to some speakers' moments, and a video file cannot be "
                                     "cut by speaker: search results, thumbnails and transcript lines are yours, "
                                     "whole videos are not")
