"""The audit log of ``egoindex serve`` (``STORE/_access/audit.jsonl``): written and read here only.

One JSON object per line, appended: who (user, client address) did what (``event``: login,
login_failed, login_refused, logout, search, search_like, search_image, videos, open, thumbnail,
stream, classify, denied, request), on which route with which parameters (the query text, filters,
video uid, moment, time, byte range) and the status answered. Never a password, a token, a session
or CSRF value, nor uploaded content: :func:`safe_params` keeps only the parameters named in
:data:`RECORDED_PARAMS`, and login events carry the user name only when it is a known user (a
password typed into the name field must not land in the log).

Why appended this way: each event is one ``write`` of one whole line to a file opened with
``O_APPEND`` and then ``fsync``-ed, under a lock, before the server sends the answer's first byte
(:class:`~egoindex.serve.auth.AuthMiddleware`): concurrent requests never interleave lines, a crash
loses at most the line being written (a torn last line is skipped by the reader and counted), and
nothing is served that was not recorded. If the log cannot be written the server answers 503.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from egoindex.errors import AccessError

#: Request parameters worth recording (what was searched, opened or streamed); nothing else is.
RECORDED_PARAMS = ("q", "level", "k", "video", "split", "start", "end", "merge", "min_score", "gap", "speaker",
                   "child", "age_min", "age_max", "moment", "t", "video_uid", "range", "top_k")
MAX_VALUE_CHARS = 300
MAX_VALUES = 50

#: Events that count as a search, as opening or streaming a moment, in the summary.
SEARCHES = ("search", "search_like", "search_image")
VIEWS = ("open", "thumbnail", "stream")


def safe_params(params: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The recordable parameters of a request (repeated ones as lists), each value clipped."""
    out: dict[str, Any] = {}
    for k, v in params:
        if k not in RECORDED_PARAMS:
            continue
        v = str(v)[:MAX_VALUE_CHARS]
        if k in out:
            if not isinstance(out[k], list):
                out[k] = [out[k]]
            if len(out[k]) < MAX_VALUES:
                out[k].append(v)
        else:
            out[k] = v
    return out


class AuditLog:
    """Appends events to ``path`` (created 0600 in a 0700 folder when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def write(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Append one event (a ``ts`` is added first) and fsync; raises OSError when it cannot."""
        record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **event}
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
        return record


def read_events(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every event of an audit log in order, and how many lines could not be read (a torn last
    line after a crash, or damage). A missing file is an AccessError saying where it was looked for."""
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise AccessError(f"no audit log at {path}: `egoindex serve` writes one there once someone logs in") from None
    events, bad = [], 0
    with f:
        for line in f:
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(e, dict):
                events.append(e)
            else:
                bad += 1
    return events, bad


@dataclass
class UserSummary:
    """One user's (or, for unknown names, one client's) activity in the log."""

    logins: int = 0
    failed_logins: int = 0
    searches: int = 0
    opened: int = 0
    thumbnails: int = 0
    streams: int = 0
    refused: int = 0
    first: str = ""
    last: str = ""
    events: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"logins": self.logins, "failed_logins": self.failed_logins, "searches": self.searches,
                "opened": self.opened, "thumbnails": self.thumbnails, "streams": self.streams,
                "refused": self.refused, "first": self.first, "last": self.last, "events": dict(self.events)}


def iter_user_events(events: Iterable[Mapping[str, Any]], user: str | None) -> Iterator[Mapping[str, Any]]:
    return (e for e in events if user is None or e.get("user") == user)


def summarise(events: Iterable[Mapping[str, Any]]) -> dict[str, UserSummary]:
    """Per user: logins and failures, searches, moments opened (transcripts), thumbnails, streamed
    requests and refused (4xx) answers, first and last event. Failed logins with an unknown name
    are kept under ``?CLIENT`` (the address), so probing from one machine shows up."""
    out: dict[str, UserSummary] = {}
    for e in events:
        who = e.get("user") or f"?{e.get('client') or 'unknown'}"
        s = out.setdefault(str(who), UserSummary())
        kind = str(e.get("event") or "request")
        s.events[kind] += 1
        s.logins += kind == "login"
        s.failed_logins += kind in ("login_failed", "login_refused")
        s.searches += kind in SEARCHES
        s.opened += kind == "open"
        s.thumbnails += kind == "thumbnail"
        s.streams += kind == "stream"
        status = e.get("status")
        s.refused += isinstance(status, int) and 400 <= status < 500 and kind not in ("login_failed", "login_refused")
        ts = str(e.get("ts") or "")
        s.first = s.first or ts
        s.last = ts or s.last
    return out
