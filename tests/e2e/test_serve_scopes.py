"""A scoped user never receives a row, thumbnail or video byte outside their scope; and the API,
fuzzed over its own OpenAPI schema without and with a login, never answers 200 to nobody.

* A Hypothesis property over random scopes (video uids, children, split, speakers, age range) and
  random requests: text searches (raw and merged, every level, with request filters of their own),
  ``like`` moments inside and outside the scope, thumbnails, direct ``/api/video`` requests with and
  without byte ranges, transcripts and the video list. The oracle is plain Python over the store's
  own rows (not the server's code): every hit, moment row and utterance must be in scope; raw
  searches must return exactly the rows matching scope AND request (the AND neither leaks nor
  over-restricts); a thumbnail or a like moment is served exactly when an in-scope row lies within
  0.05 s of it; video bytes exactly for visible videos of scopes not limited by speaker.
* Schemathesis over every operation, positive and negative, with no credentials (every answer 401
  but ``/health`` and the login form; no 5xx) and logged in as a scoped user through the real login
  form (session cookie + CSRF token; no 5xx, everything as documented, no out-of-scope uid in any
  answer).

Over the lab store (:mod:`tests.lab_store`), read-only (checked at the end of the module).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from egoindex.errors import AccessError
from egoindex.serve import create_app
from egoindex.serve.auth import Access
from egoindex.serve.gate import MOMENT_SLACK
from egoindex.serve.scopes import Scope
from egoindex.serve.users import UsersFile, hash_password, make_user, new_token, token_digest
from egoindex.store import Store
from tests.lab_store import CHILDREN, SPEAKERS, lab_store_path
from tests.support import file_tree, torch_threads

LEVELS = ("clips", "frames", "utterances")
PASSWORD = "a long enough password"
PROPERTY = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
QUERIES = ("the red ball", "a big truck", "time for a bath", "x")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = lab_store_path(tmp_path_factory)
    before = file_tree(path)
    with torch_threads(1):
        s = Store(path)
        s.embedder
        yield s
    assert file_tree(path) == before, "the server wrote into the store"


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The users file: ``probe`` (API token; its scope is replaced per example) and ``sam`` (password,
    children S; for the logged-in fuzzing)."""
    path = tmp_path_factory.mktemp("scopes") / "users.json"
    token = new_token()
    f = UsersFile(path)
    f.put(make_user("probe", "user", Scope.build(split="val"), token_sha256=token_digest(token)))
    f.put(make_user("sam", "user", Scope.build(child_ids=["S"]), password_hash=hash_password(PASSWORD)))
    return {"path": path, "file": f, "token": token}


@pytest.fixture(scope="module")
def app(store: Store, users: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    # Schemathesis' own ignored-auth check sends bad tokens by the hundred from one address: the
    # limiter would (rightly) answer 429; it is tested in test_serve_access.py, so it is wide open here.
    return create_app(store, max_upload_bytes=256 << 10, max_image_bytes=128 << 10,
                      access=Access(users["path"], audit=tmp_path_factory.mktemp("audit") / "audit.jsonl",
                                    max_client_failures=10**9, max_user_failures=10**9))


@pytest.fixture(scope="module")
def truth(store: Store) -> dict[str, Any]:
    """The store's rows, videos and files as plain Python: the oracle's data."""
    rows = {}
    for level in LEVELS:
        cols = ["video_uid", "t"] if level == "frames" else ["video_uid", "start", "end"]
        table = store.dataset(level).to_table(columns=cols + ["split", "speaker", "child_id", "age_days"]).to_pylist()
        for r in table:
            r["lo"], r["hi"] = (r["t"], r["t"]) if level == "frames" else (r["start"], r["end"])
        rows[level] = table
    root = Path(store.meta.videos_root)
    files = {uid: (root / v["source"]).read_bytes() for uid, v in store.videos.items()}
    return {"rows": rows, "videos": store.videos, "files": files,
            "utterances": {uid: store.transcript(uid) for uid in store.videos}}


# ---- the oracle ---------------------------------------------------------------------------------------

def video_level_ok(scope: Scope, r: dict[str, Any]) -> bool:
    age = r.get("age_days")
    return ((not scope.video_uids or r["video_uid"] in scope.video_uids)
            and (not scope.split or r.get("split") == scope.split)
            and (not scope.child_ids or r.get("child_id") in scope.child_ids)
            and (scope.min_age_days is None or (age is not None and age >= scope.min_age_days))
            and (scope.max_age_days is None or (age is not None and age <= scope.max_age_days)))


def row_ok(scope: Scope, r: dict[str, Any]) -> bool:
    return video_level_ok(scope, r) and (not scope.speakers or r.get("speaker") in scope.speakers)


def visible(scope: Scope, truth: dict[str, Any]) -> set[str]:
    uids = {u for u, v in truth["videos"].items() if video_level_ok(scope, v)}
    if scope.speakers:
        uids &= {r["video_uid"] for level in LEVELS for r in truth["rows"][level] if row_ok(scope, r)}
    return uids


def covered(scope: Scope, truth: dict[str, Any], uid: str, t: float) -> bool:
    if uid not in visible(scope, truth):
        return False
    return not scope.speakers or any(
        r["video_uid"] == uid and row_ok(scope, r) and r["hi"] >= t - MOMENT_SLACK and r["lo"] <= t + MOMENT_SLACK
        for level in LEVELS for r in truth["rows"][level])


@st.composite
def scopes(draw: st.DrawFn, uids: list[str]) -> Scope:
    """Scopes limiting one to three things at random (each limit in about a third of the scopes, so
    most admit some videos and many admit none)."""
    def maybe(strategy: st.SearchStrategy[Any], empty: Any) -> Any:
        return draw(strategy) if draw(st.integers(0, 2)) == 0 else empty

    lo = maybe(st.integers(100, 450), None)
    hi = maybe(st.integers(100, 450), None)
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    kw = {"video_uids": maybe(st.lists(st.sampled_from(uids + ["no-such-video"]), min_size=1, max_size=3,
                                       unique=True), []),
          "child_ids": maybe(st.lists(st.sampled_from(CHILDREN + ("Q",)), min_size=1, max_size=2, unique=True), []),
          "split": maybe(st.sampled_from(["train", "val"]), None),
          "speakers": maybe(st.lists(st.sampled_from(SPEAKERS + ("NOBODY",)), min_size=1, max_size=2, unique=True),
                            []),
          "min_age_days": lo, "max_age_days": hi}
    try:
        return Scope.build(**kw)
    except AccessError:  # nothing limited: say so
        return Scope.build(split="val")


def hit_ok(scope: Scope, truth: dict[str, Any], h: dict[str, Any]) -> bool:
    """A hit (a raw row, or a moment's best row, its rows and utterances) lies in the scope."""
    level = h["level"]
    if not row_ok(scope, h):
        return False
    if h.get("rows") is not None:
        allowed = {(round(r["lo"], 3), round(r["hi"], 3)) for r in truth["rows"][level]
                   if r["video_uid"] == h["video_uid"] and row_ok(scope, r)}
        if any((r["start"], r["end"]) not in allowed for r in h["rows"]):
            return False
    return all(not scope.speakers or u.get("speaker") in scope.speakers for u in h.get("utterances") or [])


# ---- the property ---------------------------------------------------------------------------------------

@PROPERTY
@given(data=st.data())
def test_a_scoped_user_never_gets_anything_outside_the_scope(app: Any, store: Store, users: dict[str, Any],
                                                            truth: dict[str, Any], data: st.DataObject) -> None:
    uids = sorted(store.videos)
    scope = data.draw(scopes(uids), "scope")
    users["file"].put(make_user("probe", "user", scope, token_sha256=token_digest(users["token"])),
                      replace_existing=True)
    c = TestClient(app, raise_server_exceptions=False, follow_redirects=False,
                   headers={"Authorization": f"Bearer {users['token']}"})
    mine = visible(scope, truth)
    event(f"{len(mine)} visible videos" + (", speaker-limited" if scope.speakers else ""))

    # the video list
    listed = c.get("/api/videos").json()
    assert {v["video_uid"] for v in listed} == mine
    assert all(not scope.speakers or set(v["speakers"]) <= set(scope.speakers) for v in listed)

    # text search, with request filters of its own
    level = data.draw(st.sampled_from(LEVELS), "level")
    merge = data.draw(st.booleans(), "merge")
    asked: dict[str, Any] = {}
    if data.draw(st.booleans(), "filter by video"):
        asked["video"] = data.draw(st.lists(st.sampled_from(uids), min_size=1, max_size=2, unique=True), "video")
    if data.draw(st.booleans(), "filter by child"):
        asked["child"] = [data.draw(st.sampled_from(CHILDREN), "child")]
    if data.draw(st.booleans(), "filter by speaker"):
        asked["speaker"] = [data.draw(st.sampled_from(SPEAKERS), "speaker")]
    r = c.get("/api/search", params={"q": data.draw(st.sampled_from(QUERIES), "q"), "level": level, "k": 100,
                                     "merge": str(merge).lower(), **asked})
    if any(v not in mine for v in asked.get("video", [])):
        assert r.status_code == 422 and "unknown video" in r.text  # outside the scope = unknown
    else:
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert all(hit_ok(scope, truth, h) for h in hits), [h for h in hits if not hit_ok(scope, truth, h)][:2]
        want = [x for x in truth["rows"][level] if row_ok(scope, x)
                and (not asked.get("video") or x["video_uid"] in asked["video"])
                and (not asked.get("child") or x["child_id"] in asked["child"])
                and (not asked.get("speaker") or x["speaker"] in asked["speaker"])]
        if not merge and len(want) <= 100:  # exactly the rows matching scope AND request
            assert Counter((h["video_uid"], h["start"], h["end"]) for h in hits) == \
                Counter((x["video_uid"], round(x["lo"], 3), round(x["hi"], 3)) for x in want)

    # a moment: as a like query and as a thumbnail
    some = st.sampled_from(sorted(mine)) if mine else st.sampled_from(uids)
    uid = data.draw(st.one_of(some, some, st.sampled_from(uids)), "moment video")  # mostly a visible one
    t = data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.5, 3.02, 4.55, 6.0]), "moment time")
    ok = covered(scope, truth, uid, t)
    r = c.get("/api/search/like", params={"moment": f"{uid}@{t}", "level": level, "k": 20})
    event(f"like {r.status_code}")
    if not ok:
        assert r.status_code == 404, (uid, t, r.status_code, r.text[:200])
    else:
        assert r.status_code in (200, 422), r.text[:200]
        if r.status_code == 200:
            assert all(hit_ok(scope, truth, h) for h in r.json()["hits"])
    r = c.get(f"/api/thumb/{uid}", params={"t": t})
    event(f"thumb {r.status_code}")
    if ok:
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    else:
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"

    # a video file, whole or a range
    uid = data.draw(st.one_of(some, st.sampled_from(uids)), "video file")
    ranged = data.draw(st.booleans(), "ranged")
    r = c.get(f"/api/video/{uid}", headers={"Range": "bytes=100-4195"} if ranged else {})
    event(f"video {r.status_code}")
    if uid in mine and not scope.speakers:
        assert r.status_code == (206 if ranged else 200)
        assert r.content == (truth["files"][uid][100:4196] if ranged else truth["files"][uid])
    else:
        assert r.status_code == (404 if uid not in mine else 403), r.status_code
        assert len(r.content) < 1000 and not any(f[100:164] in r.content for f in truth["files"].values())

    # a transcript
    r = c.get(f"/api/videos/{uid}/transcript")
    if uid not in mine:
        assert r.status_code == 404
    else:
        want = [u.text for u in truth["utterances"][uid] if not scope.speakers or u.speaker in scope.speakers]
        assert r.status_code == 200 and [u["text"] for u in r.json()["utterances"]] == want


# ---- schemathesis -----------------------------------------------------------------------------------------

UPLOADS = {"POST /api/search/image", "POST /api/classify"}
PUBLIC_OK = {"GET /health", "GET /login"}


def fuzz_schema(app: Any, store: Store, token: str) -> Any:
    uids = sorted(store.videos)
    config = schemathesis.Config.from_dict({
        "dictionaries": {"uids": {"values": uids},
                         "moments": {"values": [f"{u}@{t}" for u in uids for t in (0, 2.5, 5)]}},
        "parameters": {"path.video_uid": {"dictionary": "uids", "probability": 0.6},
                       "query.moment": {"dictionary": "moments", "probability": 0.5}},
        # a schema-valid request may still be refused with the documented 422 (see test_serve_fuzz.py)
        "checks": {"positive_data_acceptance": {"enabled": False}},
    })
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config,
                                          headers={"Authorization": f"Bearer {token}"})


def operations(app: Any) -> list[str]:
    return sorted(f"{m.upper()} {p}" for p, ops in app.openapi()["paths"].items() for m in ops)


@pytest.fixture(scope="module")
def api_schema(app: Any, store: Store, users: dict[str, Any]) -> Any:
    return fuzz_schema(app, store, users["token"])


@pytest.fixture(scope="module")
def sam_session(app: Any) -> dict[str, str]:
    """A real login of ``sam`` through the form: the session cookie and its CSRF token."""
    c = TestClient(app, follow_redirects=False)
    form = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    r = c.post("/login", data={"username": "sam", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.text
    return {"cookie": c.cookies["egoindex_session"], "csrf": c.get("/api/session").json()["csrf_token"]}


def test_the_fuzzing_covers_every_operation(app: Any) -> None:
    assert {"GET /login", "POST /login", "POST /logout", "GET /api/session", "GET /api/search",
            "GET /api/video/{video_uid}", "POST /api/classify"} <= set(operations(app))


OPERATIONS_WITH_LOGIN = ("GET /health", "GET /metrics", "GET /api/info", "GET /api/videos", "GET /api/search",
                         "GET /api/search/like", "POST /api/search/image", "GET /api/thumb/{video_uid}",
                         "GET /api/video/{video_uid}", "POST /api/classify", "GET /api/videos/{video_uid}/transcript",
                         "GET /login", "POST /login", "POST /logout", "GET /api/session")


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("name", OPERATIONS_WITH_LOGIN)
def test_without_credentials_nothing_but_health_and_the_login_form(api_schema: Any, name: str, mode: str) -> None:
    """No credentials at all: never a 5xx, answers as documented, and no 2xx but /health and the
    login form (a protected operation is 401 whatever its input; the login POST without its form
    token is 403)."""
    method, path = name.split(" ", 1)
    statuses: Counter = Counter()

    @settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(case=api_schema[path][method].as_strategy(generation_mode=GenerationMode(mode)))
    def fuzz(case: Any) -> None:
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization", "cookie")}
        response = case.call_and_validate()
        statuses[response.status_code] += 1
        assert response.status_code < 500
        if name not in PUBLIC_OK:
            assert not 200 <= response.status_code < 300, (name, response.status_code)

    if mode == "negative" and name in ("GET /health", "GET /login", "GET /api/session", "POST /logout",
                                       "GET /metrics", "GET /api/info", "GET /api/videos"):
        pytest.skip("no parameters: no invalid request to make")
    fuzz()
    if name not in PUBLIC_OK | {"POST /login"}:
        assert set(statuses) == {401}, statuses


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("name", [n for n in OPERATIONS_WITH_LOGIN if n != "POST /logout"])
def test_logged_in_as_a_scoped_user(api_schema: Any, store: Store, sam_session: dict[str, str], name: str,
                                    mode: str) -> None:
    """Logged in as ``sam`` (children S) with the session cookie and CSRF token: never a 5xx,
    everything as documented, and no answer names a video outside the scope or streams one.
    (POST /logout would end the session the run depends on; test_serve_access.py covers it.)"""
    if mode == "negative" and name in ("GET /health", "GET /login", "GET /api/session", "GET /metrics",
                                       "GET /api/info", "GET /api/videos"):
        pytest.skip("no parameters: no invalid request to make")
    method, path = name.split(" ", 1)
    outside = [u for u, v in store.videos.items() if v["child_id"] != "S"]
    statuses: Counter = Counter()

    @settings(max_examples=10 if name in UPLOADS else 20 if "thumb" in name else 40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=api_schema[path][method].as_strategy(generation_mode=GenerationMode(mode)))
    def fuzz(case: Any) -> None:
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization", "cookie")}
        case.headers = {**headers, "X-CSRF-Token": sam_session["csrf"]}
        response = case.call_and_validate(cookies={"egoindex_session": sam_session["cookie"]})
        statuses[response.status_code] += 1
        assert response.status_code < 500
        if 200 <= response.status_code < 300:
            assert not any(u.encode() in response.content for u in outside), (name, response.content[:300])
            if path == "/api/video/{video_uid}":
                assert case.path_parameters["video_uid"] not in outside

    fuzz()
    assert statuses[401] == 0, statuses  # the session held throughout
    if mode == "positive" and name not in UPLOADS | {"GET /metrics", "GET /api/info", "POST /login"}:
        assert sum(n for s, n in statuses.items() if 200 <= s < 300) > 0, statuses
