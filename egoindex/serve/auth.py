"""Authentication for ``egoindex serve``: who is asking, on every request, before any route runs.

:class:`AuthMiddleware` is a raw ASGI middleware in front of every route, so a route added later
(by anyone) is protected without having to remember to be: apart from :data:`PUBLIC_PATHS`
(``/health``, the login page) and ``/static/`` (the page's code and style, no data), a request
needs a live session cookie or an API token, or it gets 401 (the page ``/``: a redirect to the
login page). Then:

* a state-changing request (any method but GET/HEAD/OPTIONS) made with the session cookie must
  carry the session's CSRF token in ``X-CSRF-Token``, or it gets 403: a page on another site can
  make the browser send the cookie, but cannot read the token. API tokens are sent by the client
  itself (``Authorization: Bearer``), never by a browser on its own, so they need none;
* :data:`ADMIN_PATHS` (``/metrics``, ``/api/info``: the server's and the store's internals) are for
  role admin only (403);
* the user is put in :data:`egoindex.serve.gate.CURRENT` for the handlers' :class:`Gate`;
* the request is written to the audit log (:mod:`egoindex.serve.audit`) before the first byte of
  the answer leaves; when the log cannot be written the answer is replaced by a 503.

Bad API tokens count as failed logins of the client (:class:`~egoindex.serve.sessions.LoginLimiter`),
so they cannot be guessed at speed either.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from egoindex.serve.audit import AuditLog, safe_params
from egoindex.serve.gate import CURRENT
from egoindex.serve.sessions import LoginLimiter, Session, Sessions
from egoindex.serve.users import User, UsersFile

log = logging.getLogger("egoindex.serve")

SESSION_COOKIE = "egoindex_session"
LOGIN_COOKIE = "egoindex_login"
CSRF_HEADER = "X-CSRF-Token"
#: Routes anyone may call: liveness (which then says nothing private) and the login page itself.
PUBLIC_PATHS = frozenset({"/health", "/login"})
STATIC_PREFIX = "/static/"
#: Routes for role admin only.
ADMIN_PATHS = frozenset({"/metrics", "/api/info"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Route template -> audit event name (anything else is ``request``).
EVENTS = {"/api/search": "search", "/api/search/like": "search_like", "/api/search/image": "search_image",
          "/api/videos": "videos", "/api/videos/{video_uid}/transcript": "open",
          "/api/thumb/{video_uid}": "thumbnail", "/api/video/{video_uid}": "stream", "/api/classify": "classify",
          "/logout": "logout"}
#: Not worth a line each: the page itself and its session bookkeeping.
NOT_AUDITED = frozenset({"/", "/api/session"})


@dataclass(frozen=True)
class Access:
    """How ``create_app(..., access=...)`` authenticates: the users file, the audit log (None: none),
    cookie ``Secure`` (set it under TLS), session lifetimes and the login limits."""

    users: Path
    audit: Path | None = None
    secure_cookies: bool = False
    session_hours: float = 8.0
    idle_minutes: float = 60.0
    max_user_failures: int = 5
    max_client_failures: int = 20
    lockout_minutes: float = 15.0
    clock: Callable[[], float] = time.time


class AuthContext:
    """The live authentication state of one app: users, sessions, limiter, audit log, login secret."""

    def __init__(self, access: Access) -> None:
        self.access = access
        self.users = UsersFile(access.users)
        self.sessions = Sessions(ttl=access.session_hours * 3600, idle=access.idle_minutes * 60, clock=access.clock)
        self.limiter = LoginLimiter(max_user_failures=access.max_user_failures,
                                    max_client_failures=access.max_client_failures,
                                    window=access.lockout_minutes * 60, lockout=access.lockout_minutes * 60,
                                    clock=access.clock)
        self.audit = AuditLog(access.audit) if access.audit is not None else None
        self._secret = secrets.token_bytes(32)  # signs login-form tokens; new at every start

    # ---- login form tokens (CSRF for the login itself) -------------------------------------------
    def login_token(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign(nonce)}"

    def valid_login_token(self, token: str) -> bool:
        nonce, _, sig = token.partition(".")
        return bool(nonce) and hmac.compare_digest(sig, self._sign(nonce))

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    # ---- who is asking -----------------------------------------------------------------------------
    def session_user(self, cookie: str | None) -> tuple[User, Session] | None:
        """The user of a live session cookie whose grant (role, scope, credentials) is unchanged."""
        session = self.sessions.get(cookie)
        if session is None:
            return None
        user = self.users.current().get(session.user)
        if user is None or user.stamp != session.stamp:
            self.sessions.drop(cookie)
            return None
        return user, session

    def record(self, event: dict[str, Any]) -> None:
        """Append to the audit log (if any); OSError when it cannot be written."""
        if self.audit is not None:
            self.audit.write(event)


def client_of(scope: Scope) -> str:
    """The client's address as the server sees it (uvicorn takes X-Forwarded-For only from a local proxy)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def cookies_of(scope: Scope) -> dict[str, str]:
    return cookie_parser(Headers(scope=scope).get("cookie", ""))


def bearer_token(headers: Headers) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def deny(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def request_event(scope: Scope, user: User | None, status: int) -> dict[str, Any]:
    """The audit record of a routed request: event name, who, route template, recordable params."""
    route = scope.get("route")
    template = str(getattr(route, "path", "") or "unmatched")
    params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    params += [(k, str(v)) for k, v in (scope.get("path_params") or {}).items()]
    rng = Headers(scope=scope).get("range")
    if rng is not None:
        params.append(("range", rng))
    event = {"event": EVENTS.get(template, "request"), "user": user.name if user else None,
             "role": user.role if user else None, "client": client_of(scope), "method": scope.get("method"),
             "route": template, "status": status, "params": safe_params(params)}
    if template == "unmatched":  # /openapi.json, or a path that is no route: which one, clipped
        event["path"] = str(scope.get("path", ""))[:200]
    return event


class AuthMiddleware:
    """Authenticates, checks CSRF and role, sets the current user, audits; see the module docstring."""

    def __init__(self, app: ASGIApp, ctx: AuthContext) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if path in PUBLIC_PATHS or path.startswith(STATIC_PREFIX):
            await self.app(scope, receive, send)
            return
        response, user = await self._authenticate(scope, path, method)
        if response is not None:
            # A refusal reads no body, so the app-wide body limit (which would turn the refusal of a
            # large upload into a bare text 413) is lifted for it, as a route's own limit would be.
            await RequestBodyLimitMiddleware(response, max_body_size=sys.maxsize)(scope, receive, send)
            return
        token = CURRENT.set(user)
        try:
            await self.app(scope, receive, self._audited(scope, user, send))
        finally:
            CURRENT.reset(token)

    async def _authenticate(self, scope: Scope, path: str, method: str) -> tuple[Response | None, User | None]:
        ctx, client = self.ctx, client_of(scope)
        headers = Headers(scope=scope)
        bearer = bearer_token(headers)
        session = None
        if bearer is not None:
            left = ctx.limiter.blocked(None, client)
            if left:
                return deny(429, f"too many failed logins from {client}; try again in {left / 60:.0f} min",
                            {"Retry-After": str(int(left) + 1)}), None
            user = ctx.users.by_token(bearer) if bearer else None
            if user is None:
                ctx.limiter.failed(None, client)
                await self._record({"event": "login_failed", "user": None, "client": client, "reason": "bad API token",
                                    "route": path, "status": 401})
        else:
            got = ctx.session_user(cookies_of(scope).get(SESSION_COOKIE))
            user, session = got if got else (None, None)
        if user is None:
            if path == "/" and method in ("GET", "HEAD"):
                return RedirectResponse("/login", status_code=303), None
            return deny(401, "log in first: POST /login (the page at /login), or send Authorization: Bearer TOKEN",
                        {"WWW-Authenticate": 'Bearer realm="egoindex"'}), None
        reason = None
        if method not in SAFE_METHODS and session is not None:
            sent = headers.get(CSRF_HEADER)
            if not sent or not secrets.compare_digest(sent.encode(), session.csrf.encode()):
                reason = f"missing or wrong {CSRF_HEADER} header (the page sends it; GET /api/session gives it)"
        if reason is None and path in ADMIN_PATHS and not user.is_admin:
            reason = f"{path} is for role admin"
        if reason is not None:
            await self._record({"event": "denied", "user": user.name, "role": user.role, "client": client,
                                "method": method, "route": path, "status": 403, "reason": reason.split(" (")[0]})
            return deny(403, reason), None
        return None, user

    async def _record(self, event: dict[str, Any]) -> bool:
        try:
            await anyio.to_thread.run_sync(self.ctx.record, event)
            return True
        except OSError as e:
            log.error("cannot write the audit log %s: %s", self.ctx.access.audit, e)
            return False

    def _audited(self, scope: Scope, user: User | None, send: Send) -> Send:
        """``send`` that writes the request's audit record before the answer's first byte, and
        answers 503 instead when the record cannot be written."""
        failed = False

        async def audited_send(message: Message) -> None:
            nonlocal failed
            if failed:
                return
            if message["type"] == "http.response.start" and self.ctx.audit is not None \
                    and scope.get("path") not in NOT_AUDITED:
                if not await self._record(request_event(scope, user, int(message["status"]))):
                    failed = True
                    body = b'{"detail":"the audit log cannot be written, so nothing is served; tell the admin"}'
                    await send({"type": "http.response.start", "status": 503,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
            await send(message)

        return audited_send
