"""Server-side login sessions and the login limiter of ``egoindex serve``.

Sessions live in the server's memory, keyed by the SHA-256 of a 256-bit random cookie value: the
cookie carries no data to forge or sign, expiry is the server's decision (an absolute lifetime and
an idle timeout), logging out or removing a user ends a session at once, and a restart logs
everyone out (which is the safe direction). Each session has its own CSRF token, which the page
sends back in ``X-CSRF-Token`` on every state-changing request.

The limiter counts failed logins per user name and per client address in a sliding window; past
the limit that name or address is locked out for a while, even with the right password. Per-user
limits stop guessing one account from many addresses, per-client limits stop one address from
trying many accounts. (A per-user lockout lets someone lock a known user out for the lockout time:
the usual trade-off, kept short by default.) Both tables are bounded, so a flood of made-up names
cannot grow the server's memory without limit.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Session:
    user: str
    stamp: str  # the user's User.stamp when the session began
    csrf: str
    created: float
    last_seen: float
    expires: float


class Sessions:
    """Live sessions: ``ttl`` seconds at most, ended after ``idle`` seconds without a request."""

    def __init__(self, *, ttl: float = 8 * 3600, idle: float = 3600, max_sessions: int = 10_000,
                 clock: Clock = time.time) -> None:
        self.ttl, self.idle, self.max_sessions, self.clock = ttl, idle, max_sessions, clock
        self._lock = threading.Lock()
        self._live: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str, stamp: str) -> tuple[str, Session]:
        """A new session for ``user``: the cookie value (shown once) and the session."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(user, stamp, secrets.token_urlsafe(32), now, now, now + self.ttl)
        with self._lock:
            self._live[_key(token)] = session
            while len(self._live) > self.max_sessions:  # the oldest go first
                self._live.popitem(last=False)
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value (its idle clock restarted), or None."""
        if not token or len(token) > 200:
            return None
        now = self.clock()
        key = _key(token)
        with self._lock:
            s = self._live.get(key)
            if s is None:
                return None
            if now >= s.expires or now - s.last_seen >= self.idle:
                del self._live[key]
                return None
            s.last_seen = now
            return s

    def drop(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._live.pop(_key(token), None)

    def __len__(self) -> int:
        return len(self._live)


class LoginLimiter:
    """Failed logins per user name and per client; ``blocked`` says for how long one is locked out."""

    def __init__(self, *, max_user_failures: int = 5, max_client_failures: int = 20, window: float = 900.0,
                 lockout: float = 900.0, max_tracked: int = 50_000, clock: Clock = time.time) -> None:
        self.max_user, self.max_client = max_user_failures, max_client_failures
        self.window, self.lockout, self.max_tracked, self.clock = window, lockout, max_tracked, clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def _keys(self, user: str | None, client: str) -> list[tuple[str, int]]:
        keys = [(f"c:{client}", self.max_client)]
        if user is not None:
            keys.append((f"u:{user}", self.max_user))
        return keys

    def blocked(self, user: str | None, client: str) -> float:
        """Seconds left of a lockout of this user name or client (0: may try)."""
        now = self.clock()
        with self._lock:
            left = 0.0
            for key, _ in self._keys(user, client):
                until = self._locked.get(key)
                if until is not None:
                    if until <= now:
                        del self._locked[key]
                    else:
                        left = max(left, until - now)
            return left

    def failed(self, user: str | None, client: str) -> bool:
        """Record a failed attempt; True when it locked the user or client out."""
        now = self.clock()
        locked = False
        with self._lock:
            for key, limit in self._keys(user, client):
                times = self._failures.pop(key, None) or deque()
                times.append(now)
                while times and times[0] <= now - self.window:
                    times.popleft()
                self._failures[key] = times  # most recent last
                if len(times) >= limit:
                    self._locked[key] = now + self.lockout
                    times.clear()
                    locked = True
            while len(self._failures) > self.max_tracked:
                self._failures.popitem(last=False)
        return locked

    def succeeded(self, user: str) -> None:
        """A good login forgets that user's failures (not the client's: one good account does not
        license guessing others)."""
        with self._lock:
            self._failures.pop(f"u:{user}", None)
