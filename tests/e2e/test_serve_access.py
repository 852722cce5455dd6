"""Login, sessions, CSRF, lockout, roles, audit log and TLS of ``egoindex serve``, for real: the lab
store (:mod:`tests.lab_store`), users made with the ``egoindex users`` CLI (argon2 hashes), the app
through FastAPI's TestClient and, for TLS, a real uvicorn with a self-signed certificate (openssl).

The users file and the audit log live in tmp folders: the store is only read (checked at the end).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from egoindex.cli.main import app as cli_app
from egoindex.serve import create_app
from egoindex.serve.auth import ADMIN_PATHS, PUBLIC_PATHS, Access
from egoindex.store import Store
from tests.lab_store import lab_store_path
from tests.support import file_tree, torch_threads

PASSWORD = "correct horse battery"
SECRETS_NEVER_LOGGED = (PASSWORD, "wrong password 123")


class Clock:
    """A settable clock for session expiry and lockout times."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = lab_store_path(tmp_path_factory)
    before = file_tree(path)
    yield path
    assert file_tree(path) == before, "the server or the users commands wrote into the store"


@pytest.fixture(scope="module")
def store(lab: Path) -> Iterator[Store]:
    with torch_threads(1):
        s = Store(lab)
        s.embedder
        yield s


def users_cli(*args: str, password: str | None = PASSWORD) -> Any:
    r = CliRunner().invoke(cli_app, ["users", *args], input=None if password is None else password + "\n")
    return r


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A users file made through the CLI: an admin, users scoped by child / split / speaker, a token user."""
    path = tmp_path_factory.mktemp("access") / "users.json"
    for args in (["root", "--role", "admin"], ["sam", "--child", "S"], ["vic", "--split", "val"],
                 ["fem", "--speaker", "FEM"], ["zoe", "--child", "B"]):
        r = users_cli("add", str(path), *args, "--password-stdin")
        assert r.exit_code == 0, r.output
    r = users_cli("add", str(path), "bot", "--child", "A", "--no-password", "--token", password=None)
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    assert token.startswith("egx_") and token not in path.read_text()
    return {"path": path, "token": token}


def make_app(store: Store, users: dict[str, Any], tmp_path: Path, **kw: Any) -> Any:
    return create_app(store, access=Access(users["path"], audit=tmp_path / "audit.jsonl", **kw))


def client(app: Any, ip: str = "10.0.0.1") -> TestClient:
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False, client=(ip, 50000))


def set_cookie(r: httpx.Response, name: str) -> Any:
    """The ``Set-Cookie`` of ``name`` in a response (one header per cookie)."""
    for header in r.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return SimpleCookie(header)[name]
    raise AssertionError(f"no Set-Cookie {name} in {r.headers.get_list('set-cookie')}")


def login_form(c: TestClient) -> str:
    r = c.get("/login")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    return re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)


def login(c: TestClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return c.post("/login", data={"username": name, "password": password, "csrf_token": login_form(c)})


def logged_in(app: Any, name: str, ip: str = "10.0.0.1") -> tuple[TestClient, str]:
    """A client with a session of ``name`` and that session's CSRF token."""
    c = client(app, ip)
    r = login(c, name)
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return c, c.get("/api/session").json()["csrf_token"]


def png() -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(b, "PNG")
    return b.getvalue()


@pytest.fixture(scope="module")
def app(store: Store, users: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_app(store, users, tmp_path_factory.mktemp("audit"))


# ---- nothing without a login ------------------------------------------------------------------------

def test_every_route_needs_a_login(app: Any, store: Store) -> None:
    """Every route the app has (the schema's and the rest: the page, the schema itself, static
    files) answered without credentials: 401 (the page: a redirect to /login), except /health,
    the login page and the static assets; and /health says nothing private."""
    c = client(app)
    uid = next(iter(store.videos))
    seen = set()
    routes = list(app.routes)
    for route in routes:
        if hasattr(route, "original_router"):  # an included router (the login routes): its own routes
            routes.extend(route.original_router.routes)
            continue
        path = getattr(route, "path", "")
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            url = path.replace("{video_uid}", uid)
            if path == "/static":
                url = "/static/app.js"
            seen.add(f"{method} {path}")
            r = c.request(method, url, files={"image": ("x.png", png(), "image/png")} if method == "POST" else None)
            if path in PUBLIC_PATHS or path == "/static":
                assert r.status_code in (200, 403, 405), (method, path, r.status_code)  # POST /login: no form token
            elif path == "/" and method in ("GET", "HEAD"):
                assert r.status_code == 303 and r.headers["location"] == "/login"
            else:
                assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
                assert "www-authenticate" in r.headers
                assert method == "HEAD" or r.json()["detail"].startswith("log in first")
    assert {"GET /api/search", "GET /api/video/{video_uid}", "POST /api/classify", "GET /openapi.json", "GET /",
            "POST /logout", "GET /api/session"} <= seen
    h = c.get("/health")
    assert h.json() == {"ok": True, "auth": True, "classify": True, "store": None, "model": None, "rows": None,
                        "version": None, "classifier": None}
    assert str(store.root) not in h.text and store.model_name not in h.text
    # a made-up cookie or token is no login either
    assert c.get("/api/videos", cookies={"egoindex_session": "x" * 43}).status_code == 401
    assert c.get("/api/videos", headers={"Authorization": "Bearer egx_not-a-token"}).status_code == 401


def test_login_sets_a_session_cookie_and_logout_ends_it(store: Store, users: dict[str, Any], tmp_path: Path) -> None:
    app = make_app(store, users, tmp_path)
    c = client(app)
    page = c.get("/login")
    assert "default-src 'self'" in page.headers["content-security-policy"] and 'type="password"' in page.text
    form_cookie = set_cookie(page, "egoindex_login")
    assert form_cookie["httponly"] and form_cookie["samesite"].lower() == "strict" and form_cookie["path"] == "/login"
    bad = login(c, "sam", "wrong password 123")
    assert bad.status_code == 401 and "Wrong user name or password" in bad.text
    assert "egoindex_session" not in bad.headers.get("set-cookie", "")
    r = login(c, "sam")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = set_cookie(r, "egoindex_session")
    assert cookie["httponly"] and cookie["samesite"].lower() == "strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP here; under TLS see test_tls_serves_secure_cookies
    me = c.get("/api/session").json()
    assert me["user"] == "sam" and me["role"] == "user" and me["scope"]["child_ids"] == ["S"] and me["csrf_token"]
    assert c.get("/").status_code == 200  # the page
    assert c.post("/logout", headers={"X-CSRF-Token": me["csrf_token"]}).json() == {"ok": True}
    assert c.get("/api/videos").status_code == 401 and c.get("/").status_code == 303
    secure = TestClient(make_app(store, users, tmp_path, secure_cookies=True), base_url="https://testserver",
                        follow_redirects=False)  # a Secure cookie only travels over https
    r = login(secure, "sam")
    assert r.status_code == 303, r.text
    assert set_cookie(r, "egoindex_session")["secure"]


def test_login_itself_is_csrf_protected(store: Store, users: dict[str, Any], tmp_path: Path) -> None:
    """A login POST needs the form's token, equal to its cookie and signed by this server, and a
    same-site Origin; none of these refusals counts as a failed login."""
    app = make_app(store, users, tmp_path, max_client_failures=2)
    c = client(app)
    no_cookie = c.post("/login", data={"username": "sam", "password": PASSWORD, "csrf_token": "x.y"})
    assert no_cookie.status_code == 403 and "expired" in no_cookie.text
    token = login_form(c)
    assert c.post("/login", data={"username": "sam", "password": PASSWORD,
                                  "csrf_token": token[:-1] + ("1" if token[-1] != "1" else "2")}
                  ).status_code == 403  # not the cookie's
    forged = "mynonce.0123456789abcdef0123456789abcdef"  # cookie == form, but not signed by the server
    assert client(app).post("/login", data={"username": "sam", "password": PASSWORD, "csrf_token": forged},
                            headers={"Cookie": f"egoindex_login={forged}"}).status_code == 403
    token = login_form(c)
    cross = c.post("/login", data={"username": "sam", "password": PASSWORD, "csrf_token": token},
                   headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    token = login_form(c)
    cross = c.post("/login", data={"username": "sam", "password": PASSWORD, "csrf_token": token},
                   headers={"Sec-Fetch-Site": "cross-site", "Origin": "null"})
    assert cross.status_code == 403
    assert login(c, "sam").status_code == 303  # the client was never locked out by these
    events = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [e["reason"] for e in events if e["event"] == "denied"] == ["login form without its CSRF token"] * 5


def test_uploads_and_logout_need_the_csrf_token(app: Any, store: Store, users: dict[str, Any]) -> None:
    c, csrf = logged_in(app, "root")
    video = (Path(store.meta.videos_root) / next(iter(store.videos.values()))["source"]).read_bytes()
    for url, files, data in (("/api/search/image", {"image": ("x.png", png(), "image/png")}, {}),
                             ("/api/classify", {"video": ("v.mp4", video, "video/mp4")}, {"labels": "a ball, a cup"})):
        for headers in ({}, {"X-CSRF-Token": "nope"}, {"X-CSRF-Token": csrf + "x"}):
            r = c.post(url, files=files, data=data, headers=headers)
            assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"], (url, headers, r.text)
        r = c.post(url, files=files, data=data, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, (url, r.text[:300])
    assert c.post("/logout").status_code == 403 and c.get("/api/videos").status_code == 200  # still logged in
    # an API token is not sent by browsers on their own: no CSRF token needed
    bot = client(app)
    r = bot.post("/api/search/image", files={"image": ("x.png", png(), "image/png")},
                 headers={"Authorization": f"Bearer {users['token']}"})
    assert r.status_code == 200 and {h["child_id"] for h in r.json()["hits"]} <= {"A"}


# ---- lockout ----------------------------------------------------------------------------------------

def test_lockout_after_repeated_failures(store: Store, users: dict[str, Any], tmp_path: Path) -> None:
    """5 wrong passwords lock the user out for 15 minutes, from every address and even with the right
    password (429, Retry-After); other users are not locked; the lock ends; an address that tries
    many names is locked out as a whole."""
    clock = Clock()
    app = make_app(store, users, tmp_path, max_user_failures=5, max_client_failures=8, lockout_minutes=15, clock=clock)
    for i in range(5):
        r = login(client(app, f"10.1.0.{i}"), "sam", "wrong password 123")
        assert r.status_code == 401, (i, r.status_code)
    locked = login(client(app, "10.1.0.99"), "sam")  # the right password, from a new address
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 800 and "Too many" in locked.text
    assert login(client(app, "10.1.0.99"), "vic").status_code == 303  # another user is fine
    clock.now += 15 * 60 + 1
    assert login(client(app, "10.1.0.99"), "sam").status_code == 303  # the lock is over

    prober = client(app, "10.9.9.9")
    for i in range(8):
        assert login(prober, f"nobody{i}", "wrong password 123").status_code == 401
    assert login(prober, "vic").status_code == 429  # this address is locked, whatever the name
    assert login(client(app, "10.9.9.8"), "vic").status_code == 303
    for i in range(8):  # bad API tokens count too
        assert client(app, "10.7.7.7").get("/api/videos", headers={"Authorization": f"Bearer bad{i}"}).status_code == 401
    assert client(app, "10.7.7.7").get("/api/videos", headers={"Authorization": f"Bearer {users['token']}"}
                                       ).status_code == 429
    events = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    sam = [e for e in events if e.get("user") == "sam"]
    assert [e["event"] for e in sam] == ["login_failed"] * 5 + ["login_refused", "login"]
    assert sam[4]["locked_out"] is True
    assert all(e["user"] is None for e in events if e.get("reason") == "unknown user name")  # names not logged


def test_sessions_end_when_idle_expired_or_the_user_changes(store: Store, users: dict[str, Any],
                                                            tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "users.json"
    shutil.copy(users["path"], path)
    mine = {"path": path, "token": users["token"]}
    app = make_app(store, mine, tmp_path, session_hours=1, idle_minutes=10, clock=clock)
    c, _ = logged_in(app, "vic")
    clock.now += 9 * 60
    assert c.get("/api/videos").status_code == 200
    clock.now += 9 * 60  # 18 min in, but used 9 min ago
    assert c.get("/api/videos").status_code == 200
    clock.now += 11 * 60
    assert c.get("/api/videos").status_code == 401  # idle too long
    c, _ = logged_in(app, "vic")
    for _ in range(7):
        clock.now += 9 * 60
        status = c.get("/api/videos").status_code
    assert status == 401  # 63 minutes after the login: past session_hours whatever the activity
    c, _ = logged_in(app, "vic")
    bot = client(app)
    assert bot.get("/api/videos", headers={"Authorization": f"Bearer {users['token']}"}).status_code == 200
    r = users_cli("add", str(path), "vic", "--split", "train", "--replace", "--password-stdin")
    assert r.exit_code == 0, r.output
    assert c.get("/api/videos").status_code == 401  # a changed scope ends the session at once
    assert users_cli("remove", str(path), "bot", password=None).exit_code == 0
    assert bot.get("/api/videos", headers={"Authorization": f"Bearer {users['token']}"}).status_code == 401


# ---- roles and scopes at a glance (the property test is test_serve_scopes.py) ------------------------

def test_roles_and_scopes(app: Any, store: Store) -> None:
    root, _ = logged_in(app, "root")
    sam, _ = logged_in(app, "sam")
    for path in ADMIN_PATHS:
        assert root.get(path).status_code == 200
        r = sam.get(path)
        assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert {v["video_uid"] for v in root.get("/api/videos").json()} == set(store.videos)
    mine = {u for u, v in store.videos.items() if v["child_id"] == "S"}
    assert {v["video_uid"] for v in sam.get("/api/videos").json()} == mine
    other = next(u for u in store.videos if u not in mine)
    assert sam.get(f"/api/video/{other}").status_code == 404 and root.get(f"/api/video/{other}").status_code == 200
    assert sam.get("/api/search", params={"q": "a ball", "video": other}).status_code == 422  # as if unknown
    fem, _ = logged_in(app, "fem")
    own = next(v["video_uid"] for v in fem.get("/api/videos").json())
    r = fem.get(f"/api/video/{own}")
    assert r.status_code == 403 and "speaker" in r.json()["detail"]
    lines = fem.get(f"/api/videos/{own}/transcript").json()["utterances"]
    assert lines and {u["speaker"] for u in lines} == {"FEM"}
    assert len(lines) < len(root.get(f"/api/videos/{own}/transcript").json()["utterances"])


def test_openapi_documents_login_and_scopes(app: Any) -> None:
    root, _ = logged_in(app, "root")
    schema = root.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"session", "token"}
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if path in PUBLIC_PATHS:
                assert op["security"] == [], path
                continue
            assert op["security"] and {"401", "403"} <= set(op["responses"]), (method, path)
            if method == "post":
                assert any(p["name"] == "X-CSRF-Token" for p in op["parameters"]), path
    for path in ("/api/search", "/api/search/like", "/api/thumb/{video_uid}", "/api/video/{video_uid}",
                 "/api/videos"):
        assert "Scoped" in schema["paths"][path]["get"]["description"], path
    assert "Scoped" in schema["paths"]["/api/search/image"]["post"]["description"]


# ---- audit ------------------------------------------------------------------------------------------

def test_the_audit_log_records_who_did_what_and_no_secret(store: Store, users: dict[str, Any],
                                                          tmp_path: Path) -> None:
    app = make_app(store, users, tmp_path)
    c, csrf = logged_in(app, "sam")
    assert login(client(app, "10.5.5.5"), "sam", "wrong password 123").status_code == 401
    uid = next(u for u, v in store.videos.items() if v["child_id"] == "S")
    other = next(u for u, v in store.videos.items() if v["child_id"] != "S")
    assert c.get("/api/search", params={"q": "the red ball", "level": "utterances"}).status_code == 200
    assert c.get("/api/search/like", params={"moment": f"{uid}@2"}).status_code == 200
    assert c.get(f"/api/videos/{uid}/transcript").status_code == 200
    assert c.get(f"/api/thumb/{uid}", params={"t": 3}).status_code == 200
    assert c.get(f"/api/video/{uid}", headers={"Range": "bytes=0-99"}).status_code == 206
    assert c.get(f"/api/video/{other}").status_code == 404
    bot = client(app)
    assert bot.get("/api/videos", headers={"Authorization": f"Bearer {users['token']}"}).status_code == 200
    assert c.post("/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    text = (tmp_path / "audit.jsonl").read_text()
    events = [json.loads(x) for x in text.splitlines()]
    got = [(e["event"], e.get("user"), e.get("status")) for e in events]
    assert got == [("login", "sam", 303), ("login_failed", "sam", 401), ("search", "sam", 200),
                   ("search_like", "sam", 200), ("open", "sam", 200), ("thumbnail", "sam", 200),
                   ("stream", "sam", 206), ("stream", "sam", 404), ("videos", "bot", 200), ("logout", "sam", 200)]
    assert events[2]["params"] == {"q": "the red ball", "level": "utterances"}
    assert events[6]["params"] == {"video_uid": uid, "range": "bytes=0-99"} and events[1]["client"] == "10.5.5.5"
    session_cookie = c.cookies.get("egoindex_session") or ""
    for secret in (*SECRETS_NEVER_LOGGED, users["token"], csrf, "$argon2"):
        assert secret not in text, secret
    assert not session_cookie or session_cookie not in text

    r = CliRunner().invoke(cli_app, ["audit", str(tmp_path / "audit.jsonl"), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["events"] == 10 and summary["unreadable_lines"] == 0
    sam = summary["users"]["sam"]
    assert (sam["logins"], sam["failed_logins"], sam["searches"], sam["opened"], sam["thumbnails"], sam["streams"],
            sam["refused"]) == (1, 1, 2, 1, 1, 2, 1)
    r = CliRunner().invoke(cli_app, ["audit", str(tmp_path / "audit.jsonl"), "--recent", "3"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "per user" in r.output and "latest 3 events" in r.output and "logout" in r.output


def test_no_audit_no_service(store: Store, users: dict[str, Any], tmp_path: Path) -> None:
    """An audit log that cannot be written stops the server from serving (503), logins included."""
    blocked = tmp_path / "audit.jsonl"
    blocked.mkdir()  # a folder where the log should be: every append fails
    app = create_app(store, access=Access(users["path"], audit=blocked))
    c = client(app)
    r = login(c, "sam")
    assert r.status_code == 503 and "audit" in r.json()["detail"]
    r = c.get("/api/videos", headers={"Authorization": f"Bearer {users['token']}"})
    assert r.status_code == 503 and "audit" in r.json()["detail"]
    assert c.get("/health").status_code == 200


# ---- the CLI ------------------------------------------------------------------------------------------

def test_users_cli(tmp_path: Path, lab: Path) -> None:
    path = tmp_path / "users.json"
    r = users_cli("add", str(path), "amy", "--password-stdin")
    assert r.exit_code == 2 and "--all-videos" in r.output  # a user needs a scope, said explicitly
    r = users_cli("add", str(path), "amy", "--split", "val", "--password-stdin", password="short")
    assert r.exit_code == 2 and "10 to 1024" in r.output
    r = users_cli("add", str(path), "amy", "--child", "S", "--child", "A", "--age-max", "300", "--password-stdin")
    assert r.exit_code == 0 and "child S, A; age -300 days" in r.output
    r = users_cli("add", str(path), "boss", "--role", "admin", "--child", "S", "--password-stdin")
    assert r.exit_code == 2 and "every video" in r.output
    r = users_cli("list", str(path), "--json")
    listed = [json.loads(x) for x in r.output.splitlines()]
    assert listed == [{"name": "amy", "role": "user", "scope": "child S, A; age -300 days", "password": True,
                       "token": False, "created_at": listed[0]["created_at"], "updated_at": listed[0]["updated_at"]}]
    r = CliRunner().invoke(cli_app, ["users", "list", str(path)], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "amy" in r.output and "argon2" not in r.output
    assert users_cli("remove", str(path), "amy").exit_code == 0
    r = users_cli("remove", str(path), "amy")
    assert r.exit_code == 2 and "no user" in r.output
    r = users_cli("list", str(lab / "lance"))
    assert r.exit_code == 2 and "not an egoindex store" in r.output


def test_serve_refuses_unsafe_binds(tmp_path: Path, lab: Path, users: dict[str, Any]) -> None:
    runner = CliRunner()
    r = runner.invoke(cli_app, ["serve", str(lab), "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "add a user first" in " ".join(r.output.split())
    r = runner.invoke(cli_app, ["serve", str(lab), "--host", "0.0.0.0", "--users", str(users["path"])])
    assert r.exit_code == 2 and "--tls-cert" in r.output
    r = runner.invoke(cli_app, ["serve", str(lab), "--tls-cert", str(users["path"])])
    assert r.exit_code == 2 and "both --tls-cert and --tls-key" in r.output
    r = runner.invoke(cli_app, ["serve", str(lab), "--users", str(tmp_path / "none.json")])
    assert r.exit_code == 2 and "no users file" in r.output


# ---- TLS under a real uvicorn -----------------------------------------------------------------------------

@pytest.fixture
def tls_server(store: Store, users: dict[str, Any], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is missing: cannot make a test certificate")
    import uvicorn

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    app = make_app(store, users, tmp_path, secure_cookies=True)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                        ssl_certfile=str(cert), ssl_keyfile=str(key)))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not srv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"https://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}", cert
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def test_tls_serves_secure_cookies(tls_server: tuple[str, Path]) -> None:
    url, cert = tls_server
    trust = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=url, verify=trust, follow_redirects=False, timeout=30) as c:
        assert c.get("/health").json()["auth"] is True
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"username": "sam", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303
        cookie = set_cookie(r, "egoindex_session")
        assert cookie["secure"] and cookie["httponly"] and cookie["samesite"].lower() == "strict"
        hits = c.get("/api/search", params={"q": "a ball", "k": 5}).json()["hits"]
        assert hits and {h["child_id"] for h in hits} == {"S"}
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port is no way in
        httpx.get(url.replace("https://", "http://") + "/api/videos", timeout=10).raise_for_status()
