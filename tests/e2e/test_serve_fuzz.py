"""Untrusted input at ``egoindex serve``: the API fuzzed over its own OpenAPI schema, properties of
the inputs that reach files and SQL, and a bounded concurrent load through a real uvicorn.

* Schemathesis over every operation of ``/openapi.json``, schema-valid and schema-invalid requests
  (Hypothesis generation, derandomized): no 5xx, every status, media type and header documented,
  every JSON body valid against its schema, invalid input refused with a 4xx. Known video uids,
  moments and splits are mixed into the generated values (schemathesis dictionaries), so the 200
  paths are fuzzed too, not only the 404s.
* Hypothesis properties with hostile strings (quotes and SQL, ``%00``, control characters,
  ``../`` and URL-encoded traversal, unicode, very long) as video uids in the path, ``video=``,
  ``split=``, ``moment=``, ``q=`` and ``Range``: never a 5xx, never a byte but the known videos'
  own, and filters never widen a result (an injected split matches nothing: zero hits).
* The load of ``benchmarks/serve_load.py`` (its functions, not a copy) from 4 client threads
  through a real uvicorn: zero errors, and the server's ``/metrics`` counts exactly what was sent.

Everything runs over the session's read-only ``demo_store`` (checked at the end of the module).
Examples are bounded (``FUZZ_EXAMPLES``, ``PROPERTY``) and derandomized, so a run is repeatable;
the module takes about a minute on two cores once the store exists.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from benchmarks import serve_load
from egoindex.serve import create_app
from egoindex.store import Filters, Hit, Store
from egoindex.store.moments import no_overlap
from egoindex.store.store import parse_like
from tests.badmedia import record_faults
from tests.support import file_tree, torch_threads

LEVELS = ("clips", "frames", "utterances")
#: Fuzzing-phase examples per operation (and per Hypothesis property); uploads get fewer.
FUZZ_EXAMPLES = 80
UPLOAD_EXAMPLES = 20
PROPERTY = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

#: SQL that would widen or break a filter if a value were pasted into the predicate unquoted.
SQL = ("' OR 1=1 --", "val' OR '1'='1", "train') OR (1=1", "'; DROP TABLE clips; --", "\" OR \"\"=\"", "val\\'",
       "zz' OR split != 'zz", "x' OR video_uid IS NOT NULL OR 'x'='", "val'/*", "*/ OR 1=1", "') OR true --",
       "val' UNION SELECT * FROM clips --", "\\' OR 1=1 --", "$$ OR 1=1 $$", "val\u2019 OR \u20181\u2019=\u20191")
#: Hostile values every property draws from, besides Hypothesis' own text.
NASTY = SQL + (
    "%00", "\x00", "val\x00", "\n", "\r\n", "\t", "\x1b[31m", "\x7f", "..", "../", "../../../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%252f..%252fetc%252fpasswd", "%2e%2e",
    "/etc/passwd", "egoindex.json", "lance/clips.lance", "..\\..\\windows\\win.ini", "C:\\Windows", "*", "%", "_",
    "val%", "tr_in", "TRAIN", " val", "val ", "\u202eval", "\ufeffval", "vаl", "∂ƒ©", "😀", "NULL", "null", "None",
    "true", "1e309", "-0", "NaN", "split = 'val'", "video_uid IN ('a')", "@", "a@", "@3", "x@nan", "x@inf",
    "x" * 5000,
)


def hostile() -> st.SearchStrategy[str]:
    """Hostile strings: the list above, arbitrary unicode (no lone surrogates: not encodable), and mixes."""
    text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
    return st.one_of(st.sampled_from(NASTY), text, st.builds(lambda a, b: a + b, st.sampled_from(NASTY), text),
                     st.builds(lambda c, n: c * n, st.characters(exclude_categories=("Cs",)), st.integers(0, 1000)))


# ---- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(demo_store: Path, demo_videos: Path) -> Iterator[Store]:
    """One opened demo store, one torch thread; asserts at the end that nothing was written."""
    before = (file_tree(demo_store), file_tree(demo_videos))
    with torch_threads(1):
        s = Store(demo_store)
        s.embedder
        yield s
    assert (file_tree(demo_store), file_tree(demo_videos)) == before, "the server wrote into the store or the videos"


@pytest.fixture(scope="module")
def app(store: Store) -> Any:
    """The app over the demo store, with small upload limits (fuzzed uploads stay cheap)."""
    return create_app(store, max_upload_bytes=256 << 10, max_image_bytes=128 << 10)


@pytest.fixture(scope="module")
def client(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


@pytest.fixture(scope="module")
def files(store: Store) -> dict[str, bytes]:
    """video uid -> the bytes of its source file (the only files the API may serve)."""
    root = Path(store.meta.videos_root)
    return {uid: (root / v["source"]).read_bytes() for uid, v in store.videos.items()}


@pytest.fixture(scope="module")
def fuzz_counts() -> Iterator[dict[str, Counter]]:
    """Statuses answered to schemathesis per operation and mode; in the fault report at the end."""
    counts: dict[str, Counter] = {}
    yield counts
    if counts:
        record_faults("serve_fuzz", {
            "operations": len({k.rsplit(" ", 1)[0] for k in counts}),
            "requests": sum(sum(c.values()) for c in counts.values()),
            "statuses": {k: dict(sorted(c.items())) for k, c in sorted(counts.items())}})


@pytest.fixture(scope="module")
def api_schema(app: Any, store: Store) -> Any:
    """The app's own OpenAPI schema (fetched from it), with known uids and moments mixed into the
    generated values so the 200 paths are fuzzed too, not only the 404s."""
    uids = sorted(store.videos)
    config = schemathesis.Config.from_dict({
        "dictionaries": {"uids": {"values": uids},
                         "moments": {"values": [f"{u}@{t}" for u in uids for t in (0, 2.5, 12, 29)]},
                         "splits": {"values": ["train", "val"]}},
        "parameters": {"path.video_uid": {"dictionary": "uids", "probability": 0.5},
                       "query.moment": {"dictionary": "moments", "probability": 0.5},
                       "query.split": {"dictionary": "splits", "probability": 0.3}},
        # Every check schemathesis has (no 5xx, documented statuses, media types, headers, JSON
        # bodies, negative data refused ...) but one: a schema-valid request may still be refused
        # with the documented 422 (an unknown video in a filter, a blank query, start > end, a
        # moment past the video's end), which no schema can express.
        "checks": {"positive_data_acceptance": {"enabled": False}},
    })
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


# ---- schemathesis ----------------------------------------------------------------------------------

#: Every operation of the schema (test_the_fuzzing_covers_every_operation keeps this list honest).
OPERATIONS = ("GET /health", "GET /metrics", "GET /api/info", "GET /api/videos", "GET /api/search",
              "GET /api/search/like", "POST /api/search/image", "GET /api/thumb/{video_uid}",
              "GET /api/video/{video_uid}", "POST /api/classify", "GET /api/videos/{video_uid}/transcript")
WITHOUT_INPUT = {"GET /health", "GET /metrics", "GET /api/info", "GET /api/videos"}
UPLOADS = {"POST /api/search/image", "POST /api/classify"}


def test_the_fuzzing_covers_every_operation(app: Any) -> None:
    documented = {f"{m.upper()} {p}" for p, ops in app.openapi()["paths"].items() for m in ops}
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("name", OPERATIONS)
def test_operation_conforms_to_its_schema(api_schema: Any, fuzz_counts: dict[str, Counter], name: str,
                                          mode: str) -> None:
    """Schema-valid (positive) and schema-invalid (negative) requests: never a 5xx; statuses, media
    types, headers and JSON bodies as documented; invalid input refused with a 4xx."""
    if mode == "negative" and name in WITHOUT_INPUT:
        pytest.skip("no parameters: no invalid request to make")
    method, path = name.split(" ", 1)
    operation = api_schema[path][method]
    examples = UPLOAD_EXAMPLES if name in UPLOADS else FUZZ_EXAMPLES

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
    def fuzz(case: Any) -> None:
        response = case.call_and_validate()
        statuses[response.status_code] += 1

    statuses = fuzz_counts.setdefault(f"{name} {mode}", Counter())
    fuzz()
    if mode == "positive" and name not in UPLOADS:  # the dictionaries reach the 200 paths too
        assert statuses[200] + statuses[206] > 0, statuses


# ---- properties: files --------------------------------------------------------------------------------

def get_here(client: TestClient, url: str, **kwargs: Any) -> tuple[Any, str]:
    """GET ``url``, following redirects only to this same server (Starlette redirects a path with a
    trailing slash to the one without: ``/api/video/x%2F`` -> ``/api/video/x``); the response and
    the URL that answered."""
    for _ in range(4):
        r = client.get(url, **kwargs)
        if r.status_code not in (307, 308):
            return r, url
        location = r.headers["location"]
        assert location.startswith("http://testserver/"), f"{url} redirects off the server: {location}"
        url, kwargs = location[len("http://testserver"):], {k: v for k, v in kwargs.items() if k != "params"}
    raise AssertionError(f"redirect loop at {url}")


def uid_of(url: str) -> str:
    """The video uid the route ``/api/{video,thumb}/{video_uid}`` decodes from ``url``."""
    return unquote(urlsplit(url).path.split("/", 3)[3])


@PROPERTY
@given(data=st.data())
def test_video_and_thumb_serve_only_known_files(client: TestClient, store: Store, files: dict[str, bytes],
                                                data: st.DataObject) -> None:
    """Whatever the path segment (known uid, hostile string, quoted or raw, traversal), a 200/206 comes
    only for a known uid and carries exactly that video's bytes; everything else is a 4xx."""
    uids = sorted(files)
    uid = data.draw(st.one_of(st.sampled_from(uids), hostile(),
                              st.builds(lambda u, n: u + n, st.sampled_from(uids), st.sampled_from(NASTY)),
                              st.builds(lambda n, u: n + u, st.sampled_from(NASTY), st.sampled_from(uids))), "uid")
    raw = data.draw(st.booleans(), "raw")  # raw: '/', '%' and '..' reach the URL parser as typed
    segment = quote(uid, safe="/%:@" if raw else "")
    ranged = data.draw(st.booleans(), "ranged")
    headers = {"Range": "bytes=0-1023"} if ranged else {}
    r, url = get_here(client, f"/api/video/{segment}", headers=headers)
    event(f"video {r.status_code}")
    assert r.status_code in (200, 206, 404, 405, 422), (uid, r.status_code, r.text[:200])
    if r.status_code in (200, 206):
        meant = uid_of(url)  # the uid the server decoded
        assert meant in files, f"served {len(r.content)} bytes for {uid!r}"
        want = files[meant][:1024] if ranged else files[meant]
        assert r.content == want
    elif not raw and uid in files:
        pytest.fail(f"a known video was refused: {r.status_code} {r.text[:200]}")
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/json" and "detail" in r.json()

    t = data.draw(st.sampled_from((0.0, 1.0, 7.5, 29.0, 1e6)), "t")
    r, url = get_here(client, f"/api/thumb/{segment}", params={"t": t})
    event(f"thumb {r.status_code}")
    assert r.status_code in (200, 404, 405, 422), (uid, r.status_code, r.text[:200])
    if r.status_code == 200:
        assert uid_of(url) in files and r.content[:2] == b"\xff\xd8" and r.headers["content-type"] == "image/jpeg"
    elif not raw and uid in files:
        pytest.fail(f"a known video's thumbnail was refused: {r.status_code} {r.text[:200]}")
    if r.status_code != 200:
        assert not any(f[:4096] in r.content for f in files.values())


@PROPERTY
@given(data=st.data())
def test_byte_ranges_are_exact_or_refused(client: TestClient, files: dict[str, bytes], data: st.DataObject) -> None:
    """Any Range header on a known video: 206 with exactly the asked bytes, 200 with the whole file
    (no range, another unit, several ranges), or 416 saying the size; never a 5xx."""
    uid = data.draw(st.sampled_from(sorted(files)), "uid")
    size = len(files[uid])
    number = st.one_of(st.integers(0, size + 10), st.integers(0, 10**30), st.just(""))
    ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
    header = data.draw(st.one_of(st.builds("bytes={}-{}".format, number, number),
                                 st.builds("bytes={}-{},{}-{}".format, number, number, number, number),
                                 st.builds("{}={}-{}".format, st.sampled_from(["items", "BYTES", " bytes"]), number,
                                           number),
                                 ascii_text.map("bytes={}".format), ascii_text), "range")
    r = client.get(f"/api/video/{quote(uid, safe='')}", headers={"Range": header})
    event(f"range {r.status_code}")
    assert r.status_code in (200, 206, 416), (header, r.status_code, r.text[:200])
    if r.status_code == 200:
        assert r.content == files[uid]
    elif r.status_code == 206:
        first, last = map(int, r.headers["content-range"].split(" ")[1].split("/")[0].split("-"))
        assert r.headers["content-range"].endswith(f"/{size}") and 0 <= first <= last < size
        assert r.content == files[uid][first:last + 1]
    else:
        assert r.headers["content-range"] == f"bytes */{size}"


# ---- properties: filters and queries -------------------------------------------------------------------

def _hit_matches(h: dict[str, Any], video: list[str], split: str | None, start: float | None,
                 end: float | None) -> bool:
    return ((not video or h["video_uid"] in video) and (not split or h["split"] == split)
            and (start is None or h["end"] >= start - 1e-6) and (end is None or h["start"] <= end + 1e-6))


@PROPERTY
@given(data=st.data())
def test_search_filters_never_widen(client: TestClient, store: Store, data: st.DataObject) -> None:
    """Hostile split/video values are quoted literals: a split matching no video gives zero hits, an
    unknown video is a 422, and every hit of a 200 satisfies every filter."""
    uids = sorted(store.videos)
    splits = {v["split"] for v in store.videos.values()}
    level = data.draw(st.sampled_from(LEVELS), "level")
    k = data.draw(st.integers(1, 100), "k")
    split = data.draw(st.one_of(st.none(), st.sampled_from(sorted(splits)), st.sampled_from(SQL), hostile()), "split")
    video = data.draw(st.lists(st.sampled_from(uids), max_size=3), "video")
    if data.draw(st.integers(0, 3), "hostile video") == 0:
        video.append(data.draw(hostile(), "video"))
    start = data.draw(st.one_of(st.none(), st.floats(-5, 40)), "start")
    end = data.draw(st.one_of(st.none(), st.floats(-5, 40)), "end")
    if start is not None and end is not None and data.draw(st.integers(0, 3), "keep order") > 0:
        start, end = min(start, end), max(start, end)  # mostly a real range; sometimes an empty one
    like = data.draw(st.booleans(), "like")
    merge = data.draw(st.booleans(), "merge")
    params: dict[str, Any] = {"level": level, "k": k, "video": video, "split": split, "start": start, "end": end,
                              "merge": "true" if merge else "false"}
    params = {key: v for key, v in params.items() if v is not None}
    if like:
        params["moment"] = f"{uids[0]}@12"
        r = client.get("/api/search/like", params=params)
    else:
        params["q"] = "the baby grabs the red ball"
        r = client.get("/api/search", params=params)
    assert r.status_code in (200, 422), (params, r.status_code, r.text[:300])
    body = r.json()
    event(f"{'like' if like else 'search'} {r.status_code}" + (" with hits" if r.status_code == 200 and body["hits"]
                                                               else ""))
    named = [v for v in video if v]  # empty values are ignored
    # Valid: known videos, a split of at most 64 characters and none a control character (whatever
    # else it holds: quotes, SQL, unicode), a non-empty range. Valid is a 200, invalid a 422: a
    # hostile literal that broke the SQL would show as an unexpected 422 here.
    valid = (all(v in store.videos for v in named)
             and (not split or (len(split) <= 64 and not any(ord(c) < 32 for c in split)))
             and not (start is not None and end is not None and start > end))
    assert (r.status_code == 200) == valid, (params, r.status_code, r.text[:300])
    if not valid:
        return
    hits = body["hits"]
    assert body["count"] == len(hits) <= k
    assert all(_hit_matches(h, named, split or None, start, end) for h in hits), (params, hits[:3])
    if split and split not in splits:
        assert hits == [], f"split {split!r} matches no video but returned {len(hits)} hits"
    if merge:  # moments: no two of one video overlap or touch
        assert no_overlap([Hit(level, h["video_uid"], h["start"], h["end"], h["score"], h["text"]) for h in hits],
                          store.default_gap(level)), params
    elif not like:  # every matching row ranks: exactly min(k, rows matching) come back, never more
        n = store.count(level, Filters(tuple(dict.fromkeys(named)), split or None, start, end))
        assert len(hits) == min(k, n), (params, len(hits), n)


def test_every_hostile_value_is_a_literal(client: TestClient, store: Store) -> None:
    """Each hostile value above, every run (not left to Hypothesis' draw): as a split, a 200 with
    zero hits (or a 422 for control characters / over 64 characters), never all rows; as a video
    filter, a 422 (unknown); as a moment, a 404 or 422; as a video uid, a 404 or 422."""
    splits = {v["split"] for v in store.videos.values()}
    for value in NASTY:
        literal = len(value) <= 64 and not any(ord(c) < 32 for c in value)
        for level in LEVELS:
            r = client.get("/api/search", params={"q": "the red ball", "level": level, "k": 100, "split": value})
            assert r.status_code == (200 if literal else 422), (value, r.status_code, r.text[:200])
            if literal and value not in splits:
                assert r.json()["hits"] == [], (value, level, r.json()["count"])
        r = client.get("/api/search", params={"q": "the red ball", "video": value})
        assert r.status_code == 422 and "unknown video" in r.text, (value, r.status_code, r.text[:200])
        r = client.get("/api/search/like", params={"moment": value, "split": value})
        assert r.status_code in (404, 422), (value, r.status_code, r.text[:200])
        for media in ("video", "thumb"):
            r, _ = get_here(client, f"/api/{media}/{quote(value, safe='')}")
            assert r.status_code in (404, 422), (media, value, r.status_code)


@PROPERTY
@given(q=st.one_of(hostile(), st.just("the baby grabs the red ball")), level=st.sampled_from(LEVELS),
       data=st.data())
def test_query_text_and_moment_are_data(client: TestClient, store: Store, q: str, level: str,
                                        data: st.DataObject) -> None:
    """Any query text is a 200 (or a 422 when blank or too long); any moment a 200 only for a known
    video (404 unknown, 422 malformed); never a 5xx, and errors never echo long input back."""
    uids = sorted(store.videos)
    seconds = st.one_of(st.integers(0, 30).map(str), st.floats(-10, 40).map(str))
    when = st.one_of(seconds, st.floats().map(str), hostile())
    at = st.sampled_from(uids)
    moment = data.draw(st.one_of(st.builds("{}@{}".format, at, seconds), st.builds("{}@{}".format, at, when),
                                 st.builds("{}@{}".format, hostile(), seconds), hostile()), "moment")
    r = client.get("/api/search", params={"q": q, "level": level, "k": 3})
    event(f"q {r.status_code}")
    assert r.status_code in (200, 422), (q[:80], r.status_code, r.text[:300])
    if r.status_code == 200:
        assert q.strip() and len(q) <= 500 and r.json()["count"] <= 3
    else:
        assert not q.strip() or len(q) > 500, (q[:80], r.text[:300])
    assert len(r.content) < 20_000 or r.status_code == 200

    r = client.get("/api/search/like", params={"moment": moment, "level": level, "k": 3})
    event(f"moment {r.status_code}")
    assert r.status_code in (200, 404, 422), (moment[:80], r.status_code, r.text[:300])
    if r.status_code in (200, 404):
        uid, _ = parse_like(moment)
        assert (uid in store.videos) == (r.status_code == 200), (moment[:80], r.status_code)
    if r.status_code == 200:
        assert all(h["level"] == level for h in r.json()["hits"])
    assert len(r.content) < 20_000 or r.status_code == 200


# ---- the page's neighbours ---------------------------------------------------------------------------

def test_no_cdn_docs_pages_but_the_schema_is_served(client: TestClient) -> None:
    """Swagger UI and ReDoc load from a CDN (nothing reachable offline, against the page's CSP):
    they are off; the schema they would show is served."""
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["openapi"].startswith("3.") and "/api/search" in r.json()["paths"]


# ---- load ----------------------------------------------------------------------------------------

LOAD_CLIENTS, LOAD_REQUESTS, LOAD_SECONDS = 4, 200, 60.0


def test_concurrent_load_has_no_errors_and_metrics_count_it(store: Store) -> None:
    """4 clients x 50 requests (text/like search, thumbnails, video ranges, health, a few refusals)
    through a real uvicorn: zero errors, every request sent, ``/metrics`` counts exactly them."""
    app = create_app(store)
    with serve_load.serve_in_thread(app) as url:
        with httpx.Client(base_url=url, timeout=60) as c:
            plan = serve_load.plan_requests(serve_load.discover(c), LOAD_REQUESTS, seed=0)
            before = c.get("/metrics").json()["endpoints"]
        result = serve_load.run_load(url, plan, clients=LOAD_CLIENTS, seconds=LOAD_SECONDS)
        summary = serve_load.summarize(result)
        sent = serve_load.sent_per_endpoint(result)
        with httpx.Client(base_url=url, timeout=60) as c:
            deadline = time.monotonic() + 5  # the server records a request just after its last byte
            while True:
                after = c.get("/metrics").json()
                if _metrics_delta(before, after["endpoints"], sent) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)

    record_faults("serve_load", {
        "clients": LOAD_CLIENTS, "requests": summary["requests"], "errors": summary["errors"],
        "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"], "throughput_rps": summary["throughput_rps"],
        "wall_s": summary["wall_s"],
        "endpoints": {k: {f: e[f] for f in ("requests", "statuses", "errors", "p50_ms", "p99_ms")}
                      for k, e in summary["endpoints"].items()},
    })
    assert summary["errors"] == 0, summary["error_samples"]
    assert summary["requests"] == LOAD_REQUESTS and summary["not_sent"] == 0, summary
    assert {"GET /api/search", "GET /api/search/like", "GET /api/thumb/{video_uid}", "GET /api/video/{video_uid}",
            "GET /health"} <= set(summary["endpoints"])
    assert not math.isnan(summary["p99_ms"]) and summary["p99_ms"] >= summary["p50_ms"] > 0
    # the plan's refusals came back as refusals (and are not errors): unknown video, k=0
    assert summary["endpoints"]["GET /api/video/{video_uid}"]["statuses"].get("404", 0) >= 1
    assert summary["endpoints"]["GET /api/search"]["statuses"].get("422", 0) >= 1
    assert after["server_errors"] == 0
    for endpoint, counts in sent.items():
        got = after["endpoints"][endpoint]
        was = before.get(endpoint, {"requests": 0, "client_errors": 0, "server_errors": 0})
        assert {f: got[f] - was[f] for f in counts} == counts, endpoint


def _metrics_delta(before: dict[str, Any], after: dict[str, Any], sent: dict[str, dict[str, int]]) -> bool:
    """Whether the server's per-endpoint counts grew by exactly what the clients received."""
    for endpoint, counts in sent.items():
        got = after.get(endpoint)
        was = before.get(endpoint, {"requests": 0, "client_errors": 0, "server_errors": 0})
        if got is None or any(got[f] - was[f] != n for f, n in counts.items()):
            return False
    return True
