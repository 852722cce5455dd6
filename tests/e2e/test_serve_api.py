"""``egoindex serve``'s HTTP API through FastAPI's TestClient, over the session's real demo store.

Real everything: the ``demo_store`` built from the demo corpus, its trained ``ego-tiny-vit`` for
query embedding, real JPEG thumbnails decoded from the demo videos, real uploads. The store and
the videos are only read (checked at the end of the module: no file changed, none appeared).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import lancedb
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from egoindex.cli.main import app as cli_app
from egoindex.cli.serve import is_loopback
from egoindex.serve import create_app
from egoindex.serve.app import STATIC_DIR
from egoindex.store import Filters, Hit, Store
from egoindex.store.moments import no_overlap
from tests.support import file_tree, torch_threads

QUERY = "the baby grabs the red ball"
LEVELS = ("clips", "frames", "utterances")
ENDPOINTS = ("/health", "/metrics", "/api/info", "/api/videos", "/api/search", "/api/search/image",
             "/api/search/like", "/api/thumb/{video_uid}", "/api/video/{video_uid}", "/api/classify",
             "/api/videos/{video_uid}/transcript")


@pytest.fixture(scope="module")
def store(demo_store: Path, demo_videos: Path):
    """One opened demo store for the module, with one torch thread; asserts nothing was written."""
    before = (file_tree(demo_store), file_tree(demo_videos))
    with torch_threads(1):
        yield Store(demo_store)
    assert (file_tree(demo_store), file_tree(demo_videos)) == before, "the server wrote into the store or the videos"


@pytest.fixture(scope="module")
def client(store: Store) -> TestClient:
    return TestClient(create_app(store), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def small_client(store: Store) -> TestClient:
    """Same store, tiny upload limits (the 413 paths)."""
    return TestClient(create_app(store, max_upload_bytes=64 * 1024, max_image_bytes=16 * 1024),
                      raise_server_exceptions=False)


@pytest.fixture(scope="module")
def uids(store: Store) -> dict[str, str]:
    """source path -> video uid."""
    return {v["source"]: u for u, v in store.videos.items()}


def _file(store: Store, uid: str) -> Path:
    return Path(store.meta.videos_root) / store.videos[uid]["source"]


def _search(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/api/search", params={"q": QUERY, **params})
    assert r.status_code == 200, r.text
    return r.json()


# ---- service ---------------------------------------------------------------------------------------

def test_health_info_and_videos(client: TestClient, store: Store) -> None:
    h = client.get("/health").json()
    assert h["ok"] is True and h["model"] == store.model_name and h["classify"] is True
    assert h["rows"] == {t: store.table(t).count_rows() for t in ("frames", "clips", "utterances", "videos")}
    info = client.get("/api/info").json()
    assert info["model"] == store.model_name and info["embed_dim"] == store.dim
    assert set(info["tables"]) == {"frames", "clips", "utterances", "videos"}
    assert info["tables"]["clips"]["rows"] == h["rows"]["clips"]
    videos = client.get("/api/videos").json()
    assert sorted(v["video_uid"] for v in videos) == sorted(store.videos)
    assert all(v["source"] and v["duration"] > 0 for v in videos)


def test_openapi_lists_every_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(ENDPOINTS) <= set(schema["paths"])
    params = {p["name"]: p for p in schema["paths"]["/api/search"]["get"]["parameters"]}
    assert params["q"]["schema"]["maxLength"] == 500
    assert params["k"]["schema"]["maximum"] == 100
    assert "where" not in params  # raw SQL is for local callers only
    assert "SearchOut" in schema["components"]["schemas"] and "HitOut" in schema["components"]["schemas"]


def test_metrics_count_requests_errors_and_latency(client: TestClient) -> None:
    def ep(name: str) -> dict[str, Any]:
        return client.get("/metrics").json()["endpoints"].get(name, {"requests": 0, "client_errors": 0})

    health0, video0 = ep("GET /health"), ep("GET /api/video/{video_uid}")
    for _ in range(3):
        assert client.get("/health").status_code == 200
    assert client.get("/api/video/no-such-video").status_code == 404
    m = client.get("/metrics").json()
    assert m["endpoints"]["GET /health"]["requests"] == health0["requests"] + 3
    assert m["endpoints"]["GET /api/video/{video_uid}"]["client_errors"] == video0["client_errors"] + 1
    assert m["endpoints"]["GET /health"]["latency_ms_p50"] > 0
    assert m["endpoints"]["GET /health"]["latency_ms_p99"] >= m["endpoints"]["GET /health"]["latency_ms_p50"]
    assert m["requests"] >= 4 and m["client_errors"] >= 1
    client.get("/no/such/page/" + "x" * 50)
    assert not any("no/such" in k for k in client.get("/metrics").json()["endpoints"])  # keyed by route


def test_unexpected_errors_are_500_without_a_traceback(store: Store) -> None:
    app = create_app(store)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret-internal-detail")

    c = TestClient(app, raise_server_exceptions=False)
    r = c.get("/boom")
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    assert r.json()["detail"].startswith("internal error")
    assert c.get("/metrics").json()["endpoints"]["GET /boom"]["server_errors"] == 1


# ---- search ----------------------------------------------------------------------------------------

def test_text_search_returns_what_the_store_returns(client: TestClient, store: Store) -> None:
    data = _search(client, k=7)
    assert data["count"] == 7 and data["level"] == "clips" and data["k"] == 7 and data["merged"] is True
    want = store.search(QUERY, level="clips", k=7, merge=True)
    assert [(h["video_uid"], h["start"], h["end"]) for h in data["hits"]] == \
        [(w.video_uid, round(w.start, 3), round(w.end, 3)) for w in want]
    scores = [h["score"] for h in data["hits"]]
    assert scores == sorted(scores, reverse=True)
    for h in data["hits"]:
        assert {"video_uid", "start", "end", "score", "text", "source", "thumb", "video"} <= set(h)
        assert h["source"] == store.videos[h["video_uid"]]["source"] and h["start"] <= h["end"]
        assert h["thumb"].startswith(f"/api/thumb/{h['video_uid']}?t=") and h["video"] == f"/api/video/{h['video_uid']}"
    assert any(h["text"] for h in data["hits"])  # the transcript comes along


@pytest.mark.parametrize("level", LEVELS)
def test_filters_hold_for_every_hit_and_k_rows_come_back(client: TestClient, store: Store, level: str) -> None:
    val = sorted(u for u, v in store.videos.items() if v["split"] == "val")
    train = sorted(u for u, v in store.videos.items() if v["split"] == "train")
    cases = [
        {"video": [train[0]]},
        {"video": [train[0], val[0]]},
        {"split": "val"},
        {"start": 6.0, "end": 14.0},
        {"video": [val[0]], "start": 3.0, "end": 20.0},
        {"split": "train", "start": 10.0},
    ]
    for params in cases:
        f = Filters(tuple(params.get("video", ())), params.get("split"), params.get("start"), params.get("end"))
        n = store.count(level, f)
        for k in sorted({1, min(n, 5), n, n + 3} - {0}):
            if k > 100:
                continue
            hits = _search(client, level=level, k=k, merge="false", **params)["hits"]
            assert len(hits) == min(k, n), (level, params, k, n)
            for h in hits:
                assert not params.get("video") or h["video_uid"] in params["video"]
                assert "split" not in params or h["split"] == params["split"]
                assert "start" not in params or h["end"] >= params["start"] - 1e-6
                assert "end" not in params or h["start"] <= params["end"] + 1e-6
        if 0 < n <= 100:  # all matching rows, each once
            hits = _search(client, level=level, k=n, merge="false", **params)["hits"]
            assert len({(h["video_uid"], h["start"], h["end"], h["text"]) for h in hits}) == n
        moments = _search(client, level=level, k=100, **params)["hits"]  # merged: the filters hold too
        assert no_overlap([_as_hit(h) for h in moments], store.default_gap(level)), (level, params)
        for h in moments:
            assert not params.get("video") or h["video_uid"] in params["video"]
            assert "start" not in params or h["end"] >= params["start"] - 1e-6
            assert "end" not in params or h["start"] <= params["end"] + 1e-6


def _as_hit(h: dict[str, Any]) -> Hit:
    return Hit(h["level"], h["video_uid"], h["start"], h["end"], h["score"], h["text"])


@pytest.mark.parametrize("level", LEVELS)
def test_moments_never_overlap_and_k_come_back(client: TestClient, store: Store, level: str) -> None:
    """Merged (the default): no two hits of one video overlap or touch, exactly k of them, each
    with its rows and the utterances in its span; ``merge=false`` gives the store's raw rows."""
    data = _search(client, level=level, k=12)
    moments = data["hits"]
    assert data["merged"] is True and len(moments) == data["count"] == 12, [(h["start"], h["end"]) for h in moments]
    assert no_overlap([_as_hit(h) for h in moments], store.default_gap(level))
    want = store.search(QUERY, level=level, k=12, merge=True)
    assert [(h["video_uid"], h["start"], h["end"]) for h in moments] == \
        [(m.video_uid, round(m.start, 3), round(m.end, 3)) for m in want]
    speech = {u: store.transcript(u) for u in store.videos}
    for h in moments:
        assert h["n_rows"] == len(h["rows"]) >= 1 and h["score"] == max(r["score"] for r in h["rows"])
        assert h["start"] <= h["best_start"] <= h["best_end"] <= h["end"]
        assert min(r["start"] for r in h["rows"]) == h["start"] and max(r["end"] for r in h["rows"]) == h["end"]
        inside = [u.utterance_id for u in speech[h["video_uid"]] if u.end >= h["start"] and u.start <= h["end"]]
        assert [u["utterance_id"] for u in h["utterances"]] == inside
    assert any(h["utterances"] for h in moments)
    raw = _search(client, level=level, k=12, merge="false")
    assert raw["merged"] is False and raw["count"] == 12 and all(h["rows"] is None for h in raw["hits"])
    assert [(h["video_uid"], h["start"]) for h in raw["hits"]] == \
        [(w.video_uid, round(w.start, 3)) for w in store.search(QUERY, level=level, k=12)]
    scores = [h["score"] for h in raw["hits"]]
    cut = next((a + b) / 2 for a, b in zip(scores[5:], scores[6:]) if a - b > 2e-5)  # clear of rounding
    above = _search(client, level=level, k=12, merge="false", min_score=cut)["hits"]
    assert above == [h for h in raw["hits"] if h["score"] >= cut] and 0 < len(above) < 12
    merged_above = _search(client, level=level, k=12, min_score=cut)["hits"]
    assert all(r["score"] >= cut for h in merged_above for r in h["rows"]) and 0 < len(merged_above) <= len(above)
    for bad in ({"min_score": 2}, {"min_score": "nan"}, {"gap": -1}, {"gap": 61}, {"merge": "maybe"}):
        assert client.get("/api/search", params={"q": QUERY, **bad}).status_code == 422, bad


def test_transcript_of_a_video(client: TestClient, store: Store, uids: dict[str, str]) -> None:
    rows = lancedb.connect(str(store.layout.lance)).open_table("utterances").to_arrow().to_pylist()
    for source, uid in uids.items():
        r = client.get(f"/api/videos/{uid}/transcript")
        assert r.status_code == 200, r.text
        t = r.json()
        assert t["video_uid"] == uid and t["source"] == source and t["duration"] > 0
        want = sorted((x for x in rows if x["video_uid"] == uid), key=lambda x: x["start"])
        assert [(u["utterance_id"], u["text"]) for u in t["utterances"]] == [(x["utterance_id"], x["text"]) for x in want]
        assert [u["start"] for u in t["utterances"]] == sorted(u["start"] for u in t["utterances"])
    assert sum(len(client.get(f"/api/videos/{u}/transcript").json()["utterances"]) for u in uids.values()) == len(rows)
    assert client.get("/api/videos/no-such-video/transcript").status_code == 404
    assert client.get(f"/api/videos/{'x' * 201}/transcript").status_code == 422


def test_search_input_is_bounded_and_validated(client: TestClient, uids: dict[str, str]) -> None:
    uid = next(iter(uids.values()))
    bad = [
        {"q": "x" * 501},                      # query too long
        {"q": "   "},                          # empty
        {"q": QUERY, "k": 0}, {"q": QUERY, "k": 101}, {"q": QUERY, "k": "ten"},
        {"q": QUERY, "level": "shards"},
        {"q": QUERY, "video": "no-such-video"},
        {"q": QUERY, "start": 10, "end": 5},    # empty range
        {"q": QUERY, "start": "nan"}, {"q": QUERY, "end": "inf"},
        {"q": QUERY, "split": "val\x00"},        # control character
        {"q": QUERY, "split": "v" * 65},
        {"q": QUERY, "video": [uid] * 201},
    ]
    for params in bad:
        r = client.get("/api/search", params=params)
        assert r.status_code == 422, (params, r.status_code, r.text[:200])
        assert "x" * 501 not in r.text  # errors do not echo the input back
    assert client.get("/api/search").status_code == 422  # q is required


def test_no_sql_from_the_network(client: TestClient) -> None:
    plain = _search(client, k=5)["hits"]
    # an unknown `where` parameter is ignored, and a split is a quoted literal, not SQL
    assert _search(client, k=5, where="1 = 0")["hits"] == plain
    assert _search(client, k=5, split="val' OR '1'='1")["hits"] == []
    assert _search(client, k=5, split="train') OR (1=1")["hits"] == []


def test_more_like_a_moment(client: TestClient, store: Store, uids: dict[str, str]) -> None:
    uid = uids["home_a/day1/breakfast.mp4"]
    r = client.get("/api/search/like", params={"moment": f"{uid}@10", "level": "frames", "k": 8})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 8
    half = float(store.meta.clip_seconds)
    assert not any(h["video_uid"] == uid and 10 - half <= h["start"] <= 10 + half for h in hits)  # itself excluded
    r = client.get("/api/search/like", params={"moment": f"{uid}@10", "video": uid, "k": 3})
    assert r.status_code == 200 and all(h["video_uid"] == uid for h in r.json()["hits"])
    assert client.get("/api/search/like", params={"moment": "no-such-video@3"}).status_code == 404
    assert client.get("/api/search/like", params={"moment": "no-time"}).status_code == 422
    assert client.get("/api/search/like", params={"moment": f"{uid}@9999"}).status_code == 422  # no frames there


def test_image_search(client: TestClient, uids: dict[str, str]) -> None:
    uid = uids["home_a/day1/breakfast.mp4"]
    jpeg = client.get(f"/api/thumb/{uid}", params={"t": 7.0}).content
    r = client.post("/api/search/image", files={"image": ("moment.jpg", jpeg, "image/jpeg")},
                    data={"level": "frames", "k": "5"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["count"] == 5 and data["query"]["image"] == "moment.jpg"
    assert data["hits"][0]["video_uid"] == uid and abs(data["hits"][0]["best_start"] - 7.0) <= 1.0  # its own frame
    png = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(png, "PNG")
    other = uids["home_b/salon.webm"]
    r = client.post("/api/search/image", files={"image": ("m.png", png.getvalue(), "image/png")},
                    data={"level": "clips", "k": "4", "video": [other], "start": "5", "end": "15", "merge": "false"})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 4 and all(h["video_uid"] == other and h["end"] >= 5 and h["start"] <= 15 for h in hits)


def test_bad_images_are_4xx(client: TestClient, small_client: TestClient, uids: dict[str, str]) -> None:
    jpeg = client.get(f"/api/thumb/{next(iter(uids.values()))}", params={"t": 1}).content
    for bad in (b"", b"definitely not a picture", jpeg[: len(jpeg) // 3], b"\x89PNG\r\n\x1a\n" + bytes(64)):
        r = client.post("/api/search/image", files={"image": ("x.jpg", bad, "image/jpeg")})
        assert r.status_code == 422, (bad[:20], r.status_code, r.text)
        assert "image" in r.json()["detail"]
    assert client.post("/api/search/image", data={"level": "clips"}).status_code == 422  # no file
    r = client.post("/api/search/image", files={"image": ("x.jpg", jpeg, "image/jpeg")}, data={"k": "1000"})
    assert r.status_code == 422
    # too big: over the image limit (counted while read) and over the request body limit
    r = small_client.post("/api/search/image", files={"image": ("x.jpg", b"\xff" * 20_000, "image/jpeg")})
    assert r.status_code == 413 and "16 KiB" in r.json()["detail"]
    r = small_client.post("/api/search/image", files={"image": ("x.jpg", b"\xff" * 2_000_000, "image/jpeg")})
    assert r.status_code == 413


# ---- media -----------------------------------------------------------------------------------------

def test_thumbnails(client: TestClient, store: Store, uids: dict[str, str]) -> None:
    uid = uids["home_b/bébé_cuisine.mp4"]
    thumbs = client.app.state.thumbs
    r = client.get(f"/api/thumb/{uid}", params={"t": 12.3})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    im = Image.open(io.BytesIO(r.content))
    assert im.format == "JPEG" and min(im.size) == 180
    hits = thumbs.memory.hits
    assert client.get(f"/api/thumb/{uid}", params={"t": 12.31}).content == r.content  # same 0.1 s bucket
    assert thumbs.memory.hits == hits + 1
    assert client.get(f"/api/thumb/{uid}", params={"t": 1e6}).status_code == 200  # clamped to the end
    assert client.get(f"/api/thumb/{uid}").status_code == 200  # t defaults to 0
    assert client.get("/api/thumb/no-such-video", params={"t": 1}).status_code == 404
    assert client.get(f"/api/thumb/{uid}", params={"t": -1}).status_code == 422
    assert client.get(f"/api/thumb/{uid}", params={"t": "nan"}).status_code == 422
    assert client.get("/metrics").json()["thumbnails_cached"] >= 3


def test_video_whole_and_ranges(client: TestClient, store: Store, uids: dict[str, str]) -> None:
    uid = uids["home_a/day1/breakfast.mp4"]
    data = _file(store, uid).read_bytes()
    size = len(data)
    url = f"/api/video/{uid}"
    r = client.get(url)
    assert r.status_code == 200 and r.content == data
    assert r.headers["accept-ranges"] == "bytes" and r.headers["content-type"] == "video/mp4"
    assert int(r.headers["content-length"]) == size

    def rng(spec: str, **headers: str):
        return client.get(url, headers={"Range": spec, **headers})

    for spec, first, last in [("bytes=0-0", 0, 0), ("bytes=100-199", 100, 199), ("bytes=1000-", 1000, size - 1),
                              ("bytes=-500", size - 500, size - 1), (f"bytes=-{size * 2}", 0, size - 1),
                              (f"bytes={size - 10}-{size * 3}", size - 10, size - 1), ("bytes = 5 - 9", 5, 9)]:
        r = rng(spec)
        assert r.status_code == 206, (spec, r.status_code)
        assert r.content == data[first:last + 1], spec
        assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert int(r.headers["content-length"]) == last - first + 1
        assert r.headers["accept-ranges"] == "bytes"
    for spec in (f"bytes={size}-", f"bytes={size + 100}-{size + 200}", "bytes=-0", "bytes=9-5", "bytes=abc",
                 "bytes=", "bytes=-", "bytes"):
        r = rng(spec)
        assert r.status_code == 416, (spec, r.status_code)
        assert r.headers["content-range"] == f"bytes */{size}" and r.content != data
    assert rng("bytes=0-9,20-29").status_code == 200  # several ranges: the whole file (RFC 9110 allows it)
    assert rng("items=0-9").status_code == 200  # another unit: ignored
    etag = client.get(url, headers={"Range": "bytes=0-0"}).headers["etag"]
    assert rng("bytes=0-9", **{"If-Range": etag}).status_code == 206
    assert rng("bytes=0-9", **{"If-Range": '"stale"'}).status_code == 200
    # every container of the demo corpus is served with a media type a <video> element accepts
    for source, uid2 in uids.items():
        r = client.get(f"/api/video/{uid2}", headers={"Range": "bytes=0-15"})
        assert r.status_code == 206 and r.headers["content-type"].startswith("video/"), source


def test_no_path_reaches_a_file_but_known_videos(client: TestClient, store: Store, uids: dict[str, str]) -> None:
    some_uid, some_source = next((u, s) for s, u in uids.items())
    absolute = str(_file(store, some_uid))
    attempts = [
        "/api/video/..%2F..%2F..%2Fetc%2Fpasswd", "/api/video/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/video/..%252f..%252fetc%252fpasswd", "/api/video/..", "/api/video/%2e%2e",
        "/api/video/%2Fetc%2Fpasswd", "/api/video//etc/passwd", "/api/video/../../etc/passwd",
        f"/api/video/{some_uid}/../../../../etc/passwd", f"/api/video/{some_uid}%2F..%2F..%2Fegoindex.json",
        "/api/video/" + some_source, "/api/video/" + some_source.replace("/", "%2F"),
        "/api/video/" + absolute.replace("/", "%2F"), "/api/video/" + absolute,
        "/api/video/egoindex.json", "/api/video/%00", "/api/video/" + some_uid + "%00",
        "/api/thumb/..%2F..%2Fetc%2Fpasswd?t=1", "/api/thumb/" + absolute.replace("/", "%2F") + "?t=1",
        "/static/..%2F..%2Fstore%2Fstore.py", "/static/../app.py", "/static/%2e%2e/app.py",
    ]
    video_bytes = _file(store, some_uid).read_bytes()[:64]
    for path in attempts:
        r = client.get(path)
        assert r.status_code in (400, 404, 405, 422), (path, r.status_code)
        assert b"root:" not in r.content and video_bytes not in r.content and b"def create_app" not in r.content, path


def test_only_files_inside_videos_root_are_served(store: Store, demo_store: Path, tmp_path: Path) -> None:
    """A store whose video rows point outside its videos folder (directly or by a symlink) serves neither."""
    copy = tmp_path / "store"
    shutil.copytree(demo_store, copy)
    videos = tmp_path / "videos"
    (uid_ok, src_ok), (uid_up, _), (uid_link, _) = list((u, v["source"]) for u, v in store.videos.items())[:3]
    (videos / src_ok).parent.mkdir(parents=True)
    shutil.copy(_file(store, uid_ok), videos / src_ok)
    (tmp_path / "secret.mp4").write_bytes(b"SECRET" * 100)
    (videos / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    table = lancedb.connect(str(copy / "lance")).open_table("videos")
    table.update(where=f"video_uid = '{uid_up}'", values={"source": "../secret.mp4"})
    table.update(where=f"video_uid = '{uid_link}'", values={"source": "link.mp4"})
    meta = json.loads((copy / "egoindex.json").read_text())
    meta["videos_root"] = str(videos)
    if meta.get("table_versions"):  # readers open the versions the build recorded: record the edit
        meta["table_versions"]["videos"] = table.version
    (copy / "egoindex.json").write_text(json.dumps(meta))
    edited = Store(copy)
    assert {edited.videos[uid_up]["source"], edited.videos[uid_link]["source"]} == {"../secret.mp4", "link.mp4"}
    c = TestClient(create_app(edited), raise_server_exceptions=False)
    assert c.get(f"/api/video/{uid_ok}").content == (videos / src_ok).read_bytes()
    for uid in (uid_up, uid_link):
        for url in (f"/api/video/{uid}", f"/api/thumb/{uid}?t=1"):
            r = c.get(url)
            assert r.status_code == 404 and b"SECRET" not in r.content, (url, r.status_code)
            assert "inside" in r.json()["detail"]
    os.remove(videos / src_ok)
    assert c.get(f"/api/video/{uid_ok}").status_code == 404  # a missing file is a 404, not a 500


# ---- classify ----------------------------------------------------------------------------------------

def _upload_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("egoindex-upload-*")}


def test_classify_an_uploaded_video(client: TestClient, store: Store, uids: dict[str, str]) -> None:
    pytest.importorskip("egoindex.classify", reason="egoindex.classify is not installed")
    before = _upload_dirs()
    data = _file(store, uids["home_a/day1/breakfast.mp4"]).read_bytes()
    labels = "a red ball, a blue cup, a teddy bear"
    r = client.post("/api/classify", files={"video": ("breakfast.mp4", data, "video/mp4")},
                    data={"labels": labels, "top_k": "2"})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["video"] == "breakfast.mp4" and res["mode"] == "zero-shot" and res["model"] == store.model_name
    assert res["labels"] == [x.strip() for x in labels.split(",")]
    assert len(res["top"]) == 2 and {t["label"] for t in res["top"]} <= set(res["labels"])
    assert res["top"][0]["prob"] >= res["top"][1]["prob"] and 0 < sum(t["prob"] for t in res["top"]) <= 1.0001
    assert res["clips"] and all(len(c["top"]) == 2 for c in res["clips"])
    assert _upload_dirs() == before  # the temporary upload is gone


def test_classify_rejects_bad_uploads(client: TestClient, small_client: TestClient, store: Store,
                                      uids: dict[str, str]) -> None:
    pytest.importorskip("egoindex.classify", reason="egoindex.classify is not installed")
    before = _upload_dirs()
    data = _file(store, uids["home_a/day1/breakfast.mp4"]).read_bytes()
    for name, body in (("x.mp4", b"not a video" * 100), ("x.mp4", data[:3000]), ("x.mp4", b""), ("../../x", b"\0" * 99)):
        r = client.post("/api/classify", files={"video": (name, body, "video/mp4")}, data={"labels": "a, b"})
        assert r.status_code == 422, (name, body[:10], r.status_code, r.text)
        assert "egoindex-upload" not in r.text and tempfile.gettempdir() not in r.text  # no server paths
    r = client.post("/api/classify", files={"video": ("b.mp4", data, "video/mp4")}, data={"labels": ""})
    assert r.status_code == 422 and "label" in r.json()["detail"]
    r = client.post("/api/classify", files={"video": ("b.mp4", data, "video/mp4")}, data={"labels": "a", "top_k": "0"})
    assert r.status_code == 422
    r = small_client.post("/api/classify", files={"video": ("b.mp4", data[:100_000], "video/mp4")},
                          data={"labels": "a, b"})
    assert r.status_code == 413, r.text
    assert _upload_dirs() == before


def test_upload_sizes_are_counted_not_trusted(small_client: TestClient) -> None:
    """A chunked upload (no Content-Length) is refused by counting its bytes (TestClient sends the
    whole body anyway; test_serve_browser checks that a real server stops reading early)."""
    boundary = "egoindex-test-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"labels\"\r\n\r\na, b\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"big.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(64):  # 4 MiB, far over the 64 KiB + form overhead limit
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    r = small_client.post("/api/classify", content=body(),
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413, r.text


def test_classify_can_be_disabled(store: Store) -> None:
    c = TestClient(create_app(store, classify=False))
    assert c.get("/health").json()["classify"] is False
    assert "/api/classify" not in c.get("/openapi.json").json()["paths"]
    assert c.post("/api/classify", files={"video": ("b.mp4", b"x", "video/mp4")}).status_code in (404, 405)


# ---- page and CLI ------------------------------------------------------------------------------------

def test_page_is_served_locally(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for testid in ("query", "search-button", "level", "video", "split", "start", "end", "results", "player-video",
                   "image-file", "classify-file", "classify-labels"):
        assert f'data-testid="{testid}"' in r.text, testid
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text):
        assert client.get(asset).status_code == 200, asset
    for f in STATIC_DIR.iterdir():  # nothing from a CDN or an external font
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", f.read_text()), f.name


def test_cli_serve(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "--host" in r.output and "--port" in r.output and "--max-upload-mb" in r.output
    r = runner.invoke(cli_app, ["serve", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "not an egoindex store" in " ".join(r.output.split())
    r = runner.invoke(cli_app, ["serve", str(tmp_path / "nothing"), "--host", "0.0.0.0"])
    # no users file: a non-loopback bind is refused before anything else (docs/lab.md)
    assert r.exit_code == 2 and "add a user first" in " ".join(r.output.split()), r.output
    assert all(map(is_loopback, ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "192.168.1.4", "example.org", "")))
