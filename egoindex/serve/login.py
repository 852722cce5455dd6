"""The login page and the session routes: ``GET/POST /login``, ``POST /logout``, ``GET /api/session``.

The login form is a plain HTML form (it works without JavaScript), rendered here with every value
escaped. Its own CSRF protection: ``GET /login`` sets a short-lived ``egoindex_login`` cookie
(HttpOnly, SameSite=Strict) holding a token signed with a secret of this server start, and puts
the same token in the form; ``POST /login`` needs both, equal and correctly signed, and no sign
from the browser that the form came from elsewhere (:func:`same_origin`). So another site can neither log a
visitor in under its own account nor make the browser submit the form.

A good login sets the session cookie ``egoindex_session`` (HttpOnly, SameSite=Strict, Path=/,
Secure under TLS; the session's expiry is the server's, :mod:`egoindex.serve.sessions`) and
redirects to the page. Failures say nothing about which part was wrong, and a locked-out name or
address gets 429 with Retry-After (:class:`~egoindex.serve.sessions.LoginLimiter`).
"""

from __future__ import annotations

import html
import secrets
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from egoindex.serve.auth import LOGIN_COOKIE, SESSION_COOKIE, AuthContext, bearer_token, client_of
from egoindex.serve.models import ErrorOut, LogoutOut, SessionOut
from egoindex.serve.users import MAX_PASSWORD, verify_password, verify_unknown

HTML = {"text/html": {}}
LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>egoindex · log in</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/style.css">
</head>
<body class="login-body">
<main id="login-panel">
  <h1>egoindex</h1>
  <p id="login-message" data-testid="login-message" class="{css}">{message}</p>
  <form method="post" action="/login" data-testid="login-form" autocomplete="on">
    <input type="hidden" name="csrf_token" value="{token}">
    <label>User name
      <input name="username" data-testid="login-user" autocomplete="username" required maxlength="64" autofocus>
    </label>
    <label>Password
      <input name="password" type="password" data-testid="login-password" autocomplete="current-password"
             required maxlength="1024">
    </label>
    <button type="submit" data-testid="login-button">Log in</button>
  </form>
</main>
</body>
</html>
"""


def same_origin(request: Request) -> bool:
    """Whether the login POST comes from this server's own form, as far as the browser says:
    ``Sec-Fetch-Site`` (modern browsers) must be same-origin; else an ``Origin`` must name this host.
    ``Origin: null`` (what browsers send under this server's no-referrer policy) and no header at all
    (scripts) leave it to the form token, which is the protection that does not depend on the browser."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def login_router(ctx: AuthContext) -> APIRouter:
    """The routes of :mod:`egoindex.serve.login` over ``ctx``."""
    router = APIRouter(tags=["session"])
    secure = ctx.access.secure_cookies

    def page(status: int, message: str = "", error: bool = False, headers: dict[str, str] | None = None) -> Response:
        token = ctx.login_token()
        body = LOGIN_PAGE.format(token=html.escape(token), message=html.escape(message),
                                 css="error" if error else "")
        r = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})
        r.set_cookie(LOGIN_COOKIE, token, max_age=3600, path="/login", httponly=True, samesite="strict", secure=secure)
        return r

    def record(event: dict[str, Any]) -> None:
        try:
            ctx.record(event)
        except OSError:
            raise HTTPException(503, "the audit log cannot be written, so nobody can log in; tell the admin") from None

    @router.get("/login", response_class=HTMLResponse, responses={200: {"content": HTML, "description": "The form."}})
    def login_page() -> Response:
        """The login form (sets the form's CSRF cookie)."""
        return page(200)

    @router.post("/login", response_class=HTMLResponse, status_code=303, responses={
        303: {"description": "Logged in: the session cookie is set; on to the page.",
              "headers": {"Location": {"schema": {"type": "string"}}}},
        401: {"content": HTML, "description": "Wrong user name or password (the form again)."},
        403: {"content": HTML, "description": "The form's CSRF token or cookie is missing or wrong: reload it."},
        429: {"content": HTML, "description": "Too many failed logins for this name or address: wait."},
        503: {"model": ErrorOut, "description": "The audit log cannot be written."}})
    def login_submit(request: Request,
                     username: Annotated[str, Form(max_length=200)] = "",
                     password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
                     csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
        """Log in with the form's user name and password; counts failures, locks out past the limit."""
        client = client_of(request.scope)
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not (cookie and csrf_token and secrets.compare_digest(cookie.encode(), csrf_token.encode())
                and ctx.valid_login_token(csrf_token) and same_origin(request)):
            record({"event": "denied", "user": None, "client": client, "route": "/login", "status": 403,
                    "reason": "login form without its CSRF token"})
            return page(403, "This login form has expired or did not come from this server: try again.", True)
        name = username.strip()
        user = ctx.users.current().get(name)
        known = name if user is not None else None  # never record what might be a mistyped password
        left = ctx.limiter.blocked(known, client)
        if left:
            record({"event": "login_refused", "user": known, "client": client, "route": "/login", "status": 429,
                    "reason": "locked out"})
            return page(429, f"Too many failed logins: try again in {max(1, round(left / 60))} min.", True,
                        {"Retry-After": str(int(left) + 1)})
        ok = verify_password(user.password_hash, password) if user is not None else verify_unknown(password)
        if not ok or user is None:
            locked = ctx.limiter.failed(known, client)
            record({"event": "login_failed", "user": known, "client": client, "route": "/login", "status": 401,
                    "reason": "wrong password" if known else "unknown user name", "locked_out": locked})
            return page(401, "Wrong user name or password.", True)
        ctx.limiter.succeeded(name)
        token, session = ctx.sessions.create(name, user.stamp)
        record({"event": "login", "user": name, "role": user.role, "client": client, "route": "/login", "status": 303})
        r = RedirectResponse("/", status_code=303)
        r.set_cookie(SESSION_COOKIE, token, max_age=int(ctx.sessions.ttl), path="/", httponly=True,
                     samesite="strict", secure=secure)
        r.delete_cookie(LOGIN_COOKIE, path="/login", httponly=True, samesite="strict", secure=secure)
        return r

    @router.post("/logout", response_model=LogoutOut)
    def logout(request: Request) -> Response:
        """End this session (the cookie's); an API token stays valid until removed with ``egoindex users``."""
        ctx.sessions.drop(request.cookies.get(SESSION_COOKIE))
        r = JSONResponse({"ok": True})
        r.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure)
        return r

    @router.get("/api/session", response_model=SessionOut)
    def session_info(request: Request) -> SessionOut:
        """Who is logged in, their role and scope, and the CSRF token the page sends with uploads
        (``X-CSRF-Token``; null for an API token, which needs none)."""
        got = None if bearer_token(request.headers) is not None else \
            ctx.session_user(request.cookies.get(SESSION_COOKIE))
        user = got[0] if got else ctx.users.by_token(bearer_token(request.headers) or "")
        if user is None:
            raise HTTPException(401, "log in first")
        session = got[1] if got else None
        return SessionOut(user=user.name, role=user.role, scope=user.scope.as_dict(),
                          scope_text="every video" if user.is_admin else user.scope.describe(),
                          csrf_token=session.csrf if session else None,
                          expires_at=session.expires if session else None)

    return router
