"""Access control wired into an app: :func:`install_access` is the one call ``create_app`` makes.

Without ``access`` it returns a gate that hides nothing (loopback without login, as before). With
it: the authentication middleware (innermost, so metrics and security headers see its 401/403s),
the login routes, and an OpenAPI schema that says what the server does: a security requirement
(session cookie or bearer token) and the 401/403/429/503 answers on every protected operation,
the ``X-CSRF-Token`` header on state-changing ones, and how the caller's scope limits each
scoped operation (:data:`SCOPE_NOTES`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from egoindex.errors import AccessError
from egoindex.serve.auth import (ADMIN_PATHS, CSRF_HEADER, PUBLIC_PATHS, SAFE_METHODS, SESSION_COOKIE, Access,
                                 AuthContext, AuthMiddleware)
from egoindex.serve.gate import Gate
from egoindex.serve.login import login_router
from egoindex.store import Store

_ANY_VIDEO = ("A video outside the caller's scope answers exactly like an unknown one (404, or 422 in a "
              "filter).")
#: What the caller's scope does to each scoped operation (appended to its OpenAPI description).
SCOPE_NOTES = {
    "/api/videos": "Scoped: only the videos of the caller's scope, and only the speakers it allows.",
    "/api/search": "Scoped: the caller's scope is ANDed into the filters before ranking, so no row outside it "
                   "is ranked or returned; a moment's utterances are cut to the scope. " + _ANY_VIDEO,
    "/api/search/image": "Scoped as GET /api/search. " + _ANY_VIDEO,
    "/api/search/like": "Scoped as GET /api/search; the example moment itself must be in the caller's scope "
                        "(for a speaker-limited scope: an in-scope row within 0.05 s of it), else 404. " + _ANY_VIDEO,
    "/api/videos/{video_uid}/transcript": "Scoped: a video outside the scope is 404; a speaker-limited scope gets "
                                          "only its speakers' lines.",
    "/api/thumb/{video_uid}": "Scoped: a video outside the scope is 404; for a speaker-limited scope, so is a time "
                              "with no in-scope row within 0.05 s.",
    "/api/video/{video_uid}": "Scoped: a video outside the scope is 404, every byte range included; a "
                              "speaker-limited scope gets 403 for every video (a file cannot be cut by speaker).",
}
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
PROTECTED_RESPONSES = {
    "401": {"description": "Not logged in: no session cookie or API token, or an expired or wrong one.",
            "content": _ERROR},
    "403": {"description": "Logged in but refused: a POST without the session's X-CSRF-Token, an admin-only "
                           "route, or (GET /api/video) a speaker-limited scope.", "content": _ERROR},
    "429": {"description": "Too many bad API tokens from this address: wait (Retry-After).", "content": _ERROR},
    "503": {"description": "The store, or the audit log, is unavailable.", "content": _ERROR},
}


def install_access(app: FastAPI, store: Store, access: Access | None) -> Gate:
    """Protect ``app`` as ``access`` says (call before adding other middleware); the handlers' gate."""
    if access is None:
        return Gate(store, enforced=False)
    ctx = AuthContext(access)
    if not ctx.users.load():
        raise AccessError(f"no users in {access.users}: add one with `egoindex users add STORE NAME --role admin "
                          "--all-videos`")
    app.state.auth = ctx
    app.add_middleware(AuthMiddleware, ctx=ctx)
    app.include_router(login_router(ctx))
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()
        if fresh:
            document_access(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return Gate(store, enforced=True)


def document_access(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the security schemes, requirements, answers and scope notes to an app's OpenAPI schema."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["session"] = {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                          "description": "Set by POST /login; POSTs made with it need X-CSRF-Token."}
    schemes["token"] = {"type": "http", "scheme": "bearer",
                        "description": "An API token from `egoindex users add --token` (no CSRF token needed)."}
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            if path in PUBLIC_PATHS:
                op["security"] = []
                continue
            op["security"] = [{"session": []}, {"token": []}]
            responses = op.setdefault("responses", {})
            for status, answer in PROTECTED_RESPONSES.items():
                responses.setdefault(status, answer)
            notes = [SCOPE_NOTES[path]] if path in SCOPE_NOTES else []
            if path in ADMIN_PATHS:
                notes.append("Role admin only (403 for role user).")
            if method.upper() not in SAFE_METHODS:
                op.setdefault("parameters", []).append({
                    "name": CSRF_HEADER, "in": "header", "required": False, "schema": {"type": "string",
                                                                                      "maxLength": 200},
                    "description": "The session's CSRF token (GET /api/session); required with the session cookie."})
            if notes:
                op["description"] = (op.get("description", "").rstrip() + "\n\n" + " ".join(notes)).strip()
    return schema
