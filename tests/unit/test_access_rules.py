"""The parts of ``egoindex serve``'s access control that need no server: the scope AND
(:func:`conjoin`, checked against Lance's own evaluation of both predicates), scopes, the users
file, sessions, the login limiter, the audit log and the bind rule."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egoindex.errors import AccessError, ServeError, StoreError
from egoindex.serve.audit import AuditLog, read_events, safe_params, summarise
from egoindex.serve.bind import check_bind, is_loopback
from egoindex.serve.scopes import Scope, conjoin
from egoindex.serve.sessions import LoginLimiter, Sessions
from egoindex.serve.users import (UsersFile, hash_password, make_user, new_token, token_digest, users_path,
                                  verify_password, verify_unknown)
from egoindex.store.filters import Filters

UIDS = ("v1", "v2", "v3", "v4")
SPLITS = ("train", "val")
WHO = ("FEM", "MAL", "KCHI")
KIDS = ("S", "A", "B")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- conjoin: the one AND of a scope and a request ------------------------------------------------

@pytest.fixture(scope="module")
def rows_table(tmp_path_factory: pytest.TempPathFactory):
    """A Lance table with every filter column (nulls included), to evaluate predicates for real."""
    import lance
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(0)
    n = 400
    start = rng.uniform(0, 30, n).round(2)

    def pick(values: tuple[str, ...]) -> list[str | None]:
        return [None if rng.random() < 0.15 else values[int(rng.integers(len(values)))] for _ in range(n)]

    ages = [None if rng.random() < 0.15 else int(rng.integers(100, 500)) for _ in range(n)]
    table = pa.table({"id": np.arange(n), "video_uid": pick(UIDS), "split": pick(SPLITS), "speaker": pick(WHO),
                      "child_id": pick(KIDS), "age_days": pa.array(ages, pa.int32()), "start": start,
                      "end": start + rng.uniform(0, 5, n).round(2), "t": start})
    uri = str(tmp_path_factory.mktemp("conjoin") / "rows.lance")
    return lance.write_dataset(table, uri)


def ids(ds, sql: str | None) -> set[int]:
    return set(ds.to_table(columns=["id"], filter=sql).column("id").to_pylist())


def sub(values: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values + ("zz",)), max_size=3, unique=True).map(tuple)


def filters() -> st.SearchStrategy[Filters]:
    time = st.one_of(st.none(), st.floats(0, 35).map(lambda x: round(x, 1)))
    age = st.one_of(st.none(), st.integers(90, 520))
    return st.builds(
        lambda v, sp, s, e, who, kid, lo, hi, where, ex: Filters(
            v, sp, s, e, where=where, exclude=ex, speakers=who, child_ids=kid,
            min_age_days=lo if lo is None or hi is None or lo <= hi else hi,
            max_age_days=hi if lo is None or hi is None or lo <= hi else lo),
        sub(UIDS), st.one_of(st.none(), st.sampled_from(SPLITS)), time, time, sub(WHO), sub(KIDS), age, age,
        st.one_of(st.none(), st.sampled_from(["age_days > 250", "speaker IS NULL", "start < 10 OR end > 20"])),
        st.lists(st.tuples(st.sampled_from(UIDS), st.floats(0, 20).map(lambda x: round(x, 1)),
                           st.floats(0, 30).map(lambda x: round(x, 1))), max_size=2).map(tuple))


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(a=filters(), b=filters(), level=st.sampled_from(["clips", "frames"]))
def test_conjoin_selects_exactly_the_rows_matching_both(rows_table, a: Filters, b: Filters, level: str) -> None:
    """For any two filters, the rows of ``conjoin(a, b)`` are the rows Lance finds for
    ``(a) AND (b)``; None exactly when that set is empty for reasons of the filters alone."""
    both = " AND ".join(f"({x})" for x in (a.sql(level), b.sql(level)) if x) or None
    want = ids(rows_table, both)
    got = conjoin(a, b)
    if got is None:
        assert want == set(), (a, b)
    else:
        assert ids(rows_table, got.sql(level)) == want, (a, b, got)
        assert conjoin(b, a) is not None and ids(rows_table, conjoin(b, a).sql(level)) == want  # symmetric


def test_conjoin_never_widens_and_empty_is_none() -> None:
    scope = Filters(("v1", "v2"), "val", speakers=("FEM",))
    assert conjoin(Filters(), scope) == scope
    assert conjoin(Filters(("v3",)), scope) is None  # a video outside the scope
    assert conjoin(Filters(split="train"), scope) is None
    assert conjoin(Filters(speakers=("MAL",)), scope) is None
    assert conjoin(Filters(min_age_days=300), Filters(max_age_days=200)) is None
    got = conjoin(Filters(("v2", "v9"), start=3.0, min_age_days=5), scope)
    assert got is not None and got.video_uids == ("v2",) and got.split == "val" and got.start == 3.0
    assert got.speakers == ("FEM",) and got.min_age_days == 5


# ---- scopes ---------------------------------------------------------------------------------------

def test_a_scope_must_say_what_it_allows() -> None:
    with pytest.raises(AccessError, match="--all-videos"):
        Scope.build()
    with pytest.raises(AccessError, match="not both"):
        Scope.build(all_videos=True, child_ids=["S"])
    with pytest.raises(AccessError, match="age range is empty"):
        Scope.build(min_age_days=10, max_age_days=5)
    with pytest.raises(AccessError, match="control characters"):
        Scope.build(child_ids=["S\x00"])
    with pytest.raises(AccessError, match="non-empty"):
        Scope.build(speakers=[" "])
    s = Scope.build(child_ids=["S", "A", "S"], split="val", speakers=["FEM"], min_age_days=100)
    assert s.child_ids == ("S", "A") and s.row_limited and Scope.from_dict(s.as_dict()) == s
    assert s.describe() == "child S, A; split val; speakers FEM; age 100- days"
    assert s.filters() == Filters((), "val", speakers=("FEM",), child_ids=("S", "A"), min_age_days=100)
    assert s.video_filters().speakers == ()
    with pytest.raises(AccessError, match="unknown scope field"):
        Scope.from_dict({"child_ids": ["S"], "where": "1=1"})


# ---- users file ------------------------------------------------------------------------------------

def test_users_file_round_trip_permissions_and_stamps(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(AccessError, match="not an egoindex store"):
        users_path(store)
    (store / "egoindex.json").write_text("{}")
    path = users_path(store)
    assert path == store / "_access" / "users.json"
    f = UsersFile(path)
    assert f.load() == {} and f.current() == {}
    alice = make_user("alice", "admin", Scope.build(all_videos=True), password_hash=hash_password("correct horse 1"))
    f.put(alice)
    token = new_token()
    bob = make_user("bob", "user", Scope.build(child_ids=["S"]), token_sha256=token_digest(token))
    f.put(bob)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    doc = json.loads(path.read_text())
    assert doc["format"] == "egoindex-users" and set(doc["users"]) == {"alice", "bob"}
    assert "correct horse" not in path.read_text() and token not in path.read_text()
    users = f.current()
    assert verify_password(users["alice"].password_hash, "correct horse 1")
    assert not verify_password(users["alice"].password_hash, "correct horse 2")
    assert not verify_password(users["bob"].password_hash, "anything at all") and not verify_unknown("x")
    assert f.by_token(token).name == "bob" and f.by_token(token + "x") is None
    with pytest.raises(AccessError, match="exists already"):
        f.put(bob)
    stamp = users["bob"].stamp
    f.put(make_user("bob", "user", Scope.build(child_ids=["S", "A"]), token_sha256=token_digest(token)),
          replace_existing=True)
    assert f.current()["bob"].stamp != stamp  # a changed scope ends bob's sessions
    assert f.current()["bob"].created_at == users["bob"].created_at
    f.remove("bob")
    assert set(f.current()) == {"alice"} and f.by_token(token) is None
    with pytest.raises(AccessError, match="no user"):
        f.remove("bob")
    path.write_text("{not json")
    with pytest.raises(AccessError, match="not valid JSON"):
        f.load()
    assert f.current() == {}  # a damaged file lets nobody in


def test_users_are_checked() -> None:
    with pytest.raises(AccessError, match="every video"):
        make_user("root", "admin", Scope.build(child_ids=["S"]), password_hash="x")
    with pytest.raises(AccessError, match="role"):
        make_user("x", "superuser", Scope.build(all_videos=True), password_hash="x")
    with pytest.raises(AccessError, match="neither a password"):
        make_user("x", "user", Scope.build(all_videos=True))
    with pytest.raises(AccessError, match="not allowed"):
        make_user("../x", "user", Scope.build(all_videos=True), password_hash="x")
    with pytest.raises(AccessError, match="10 to 1024"):
        hash_password("short")


def test_concurrent_adds_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    hashed = hash_password("a long password")

    def add(i: int) -> None:
        UsersFile(path).put(make_user(f"u{i}", "user", Scope.build(split="val"), password_hash=hashed))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(UsersFile(path).load()) == {f"u{i}" for i in range(8)}


# ---- sessions and the limiter ----------------------------------------------------------------------

def test_sessions_expire_when_idle_and_at_their_end() -> None:
    clock = Clock()
    sessions = Sessions(ttl=100, idle=30, clock=clock)
    token, s = sessions.create("alice", "stamp")
    assert sessions.get(token) is s and s.csrf and sessions.get("nope") is None and sessions.get(None) is None
    clock.now += 29
    assert sessions.get(token) is s  # used: the idle clock restarts
    clock.now += 29
    assert sessions.get(token) is s
    clock.now += 30
    assert sessions.get(token) is None  # idle for 30 s
    token, _ = sessions.create("alice", "stamp")
    for _ in range(4):
        clock.now += 20
        got = sessions.get(token)
    assert got is not None
    clock.now += 20  # 100 s after it began, 20 s idle: over (ttl), whatever the activity
    assert sessions.get(token) is None
    token, _ = sessions.create("alice", "stamp")
    sessions.drop(token)
    assert sessions.get(token) is None


def test_lockout_per_user_and_per_client() -> None:
    clock = Clock()
    lim = LoginLimiter(max_user_failures=3, max_client_failures=5, window=60, lockout=120, clock=clock)
    assert not lim.failed("alice", "1.1.1.1") and not lim.failed("alice", "2.2.2.2")
    assert lim.blocked("alice", "3.3.3.3") == 0
    assert lim.failed("alice", "3.3.3.3")  # the third failure, from three addresses: alice is locked
    assert lim.blocked("alice", "9.9.9.9") == 120 and lim.blocked("bob", "1.1.1.1") == 0
    clock.now += 121
    assert lim.blocked("alice", "1.1.1.1") == 0
    for name in ("u1", "u2", "u3", "u4"):  # one address, many names
        assert not lim.failed(name, "6.6.6.6")
    assert lim.failed(None, "6.6.6.6") and lim.blocked("someone", "6.6.6.6") > 0
    lim.failed("carol", "7.7.7.7")
    lim.failed("carol", "7.7.7.7")
    lim.succeeded("carol")
    assert not lim.failed("carol", "8.8.8.8")  # a good login forgot carol's failures
    lim.failed("dave", "1.2.3.4")
    lim.failed("dave", "1.2.3.4")
    clock.now += 61
    assert not lim.failed("dave", "1.2.3.5")  # the two earlier ones left the window
    assert lim.blocked("dave", "1.2.3.5") == 0


# ---- audit log ---------------------------------------------------------------------------------------

def test_audit_log_appends_whole_lines_and_records_no_secrets(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "_access" / "audit.jsonl")
    assert safe_params([("q", "ball"), ("password", "hunter2"), ("csrf_token", "x"), ("video", "a"),
                        ("video", "b")]) == {"q": "ball", "video": ["a", "b"]}

    def write(i: int) -> None:
        for j in range(50):
            log.write({"event": "search", "user": f"u{i}", "status": 200, "params": {"q": "x" * 500, "j": j}})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.write({"event": "login_failed", "user": None, "client": "10.0.0.9", "status": 401})
    with open(log.path, "ab") as f:
        f.write(b'{"ts": "torn')  # a crash mid-line
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    events, bad = read_events(log.path)
    assert len(events) == 201 and bad == 1 and all("ts" in e for e in events)
    summary = summarise(events)
    assert {k: v.searches for k, v in summary.items()} == {"u0": 50, "u1": 50, "u2": 50, "u3": 50, "?10.0.0.9": 0}
    assert summary["?10.0.0.9"].failed_logins == 1
    with pytest.raises(AccessError, match="no audit log"):
        read_events(tmp_path / "none.jsonl")


# ---- binding -----------------------------------------------------------------------------------------

def test_bind_rule() -> None:
    assert all(map(is_loopback, ("127.0.0.1", "::1", "localhost", "[::1]")))
    assert "no users file" in check_bind("127.0.0.1", auth=False, tls=False)[0]
    assert check_bind("127.0.0.1", auth=True, tls=False) == []
    with pytest.raises(ServeError, match="add a user first"):
        check_bind("0.0.0.0", auth=False, tls=True)
    with pytest.raises(ServeError, match="--tls-cert"):
        check_bind("0.0.0.0", auth=True, tls=False)
    assert check_bind("0.0.0.0", auth=True, tls=True) == []
    assert "plain HTTP" in check_bind("192.168.1.4", auth=True, tls=False, insecure_http=True)[0]


def test_users_path_of_an_s3_store_is_the_file_serve_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`egoindex users add s3://...` must write the users file `egoindex serve s3://...` reads
    (the store's local folder: access files never go to the object store)."""
    from egoindex.serve.users import USERS_FILE, access_dir
    from egoindex.store.layout import StoreLayout

    monkeypatch.setenv("EGOINDEX_CACHE_DIR", str(tmp_path / "cache"))
    uri = "s3://lab-bucket/stores/home"
    path = users_path(uri)
    assert path == access_dir(StoreLayout(uri).local_state) / USERS_FILE
    assert path.is_relative_to(tmp_path / "cache") and path.name == "users.json"
    assert users_path("s3://lab-bucket/stores/other") != path
    with pytest.raises(StoreError, match="not a store URI"):
        users_path("s3://A_B/x")
