"""A running ``egoindex serve`` honours a redaction without a restart (egoindex/serve/live.py).

Real components: the redaction corpus of ``tests/redaction.py`` (three 8 s videos whose every
frame differs), a real ingest and build, the real FastAPI app over the store folder, and real
``egoindex redact`` runs into that folder while the app keeps serving. Checked through HTTP only:
before the redaction the range's thumbnails, rows and video stream are served (and cached in
memory and on disk); after it, with the same app, no hit meets the range, its thumbnails are
refused (also one whose time rounds into it), a thumbnail outside it is the same JPEG as before,
the video is refused until ``--delete-source`` blanked the range in the file, and then its bytes
are the blanked file's. Blackouts recorded before the tables are rewritten (a redaction's first
step) already hide the rows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from egoindex.dataset.blackouts import Blackout, add_blackouts
from egoindex.dataset.layout import read_manifest
from egoindex.redact.run import RedactRequest, run as redact
from egoindex.serve import create_app
from egoindex.store import Store
from tests.redaction import build_store, ingest_corpus, random_checkpoint, write_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")

START, END = 3.0, 4.0  # of kid_a: frames at 3.0, 3.5, 4.0 s (2 fps) and utterance 2 (3.6-4.0 s)


def rows(client: TestClient, uid: str, level: str, near: str) -> list[tuple[float, float]]:
    """Every row of ``uid`` at ``level``, found by a moment search (no model needed) near ``near``."""
    r = client.get("/api/search/like", params={"moment": near, "video": uid, "level": level, "k": 100,
                                               "merge": "false"})
    assert r.status_code == 200, r.text
    return [(h["start"], h["end"]) for h in r.json()["hits"]]


def meets(spans: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    return [(s, e) for s, e in spans if s <= hi and e >= lo]


def test_a_running_server_honours_a_redaction(tmp_path: Path) -> None:
    videos, captions = write_corpus(tmp_path)
    shards = ingest_corpus(videos, captions, tmp_path / "shards")
    store_dir = build_store(random_checkpoint(tmp_path / "tiny.pt"), shards, tmp_path / "store")
    uid = {r["source"]: r["video_uid"] for r in read_manifest(shards)}
    a, b, c = uid["kid_a.mp4"], uid["kid_b.mp4"], uid["kid_c.mp4"]
    assert Path(Store(store_dir).meta.videos_root).resolve() == videos.resolve()
    thumbs_dir = store_dir / "_thumbs"
    app = create_app(Store(store_dir), classify=False, thumb_cache_dir=thumbs_dir)

    with TestClient(app) as client:
        def thumb(video: str, t: float) -> tuple[int, bytes]:
            r = client.get(f"/api/thumb/{video}", params={"t": t})
            return r.status_code, r.content

        # ---- before: the range is served, and cached in memory and on disk
        inside_before = thumb(a, 3.5)
        assert inside_before[0] == 200 and inside_before[1][:2] == b"\xff\xd8"
        outside_before = thumb(a, 6.5)
        assert outside_before[0] == 200
        assert len(app.state.thumbs.memory) == 2 and len(list(thumbs_dir.rglob("*.jpg"))) == 2
        frames_before = rows(client, a, "frames", f"{c}@1.0")
        assert meets(frames_before, START, END) and meets(frames_before, 5.0, 8.0)
        assert meets(rows(client, a, "utterances", f"{c}@1.0"), START, END)
        full = client.get(f"/api/video/{a}")
        assert full.status_code == 200 and full.content == (videos / "kid_a.mp4").read_bytes()

        # ---- blackouts recorded, tables not yet rewritten (a redaction's first step): rows already hidden
        add_blackouts(store_dir, [Blackout(b, 1.0, 2.0)])
        b_frames = rows(client, b, "frames", f"{c}@1.0")
        assert b_frames and not meets(b_frames, 1.0, 2.0) and meets(b_frames, 3.0, 8.0)
        assert thumb(b, 1.5)[0] == 410 and client.get(f"/api/video/{b}").status_code == 410

        # ---- the redaction, with the same app running
        redact(RedactRequest(shards=shards, store=store_dir, blackouts=[Blackout(a, START, END), Blackout(b, 1.0, 2.0)]))
        assert app.state.live.generation >= 1  # noticed, and reopened
        for t in (3.5, START, END, 2.96):  # 2.96 s rounds to the 3.0 s thumbnail
            code, body = thumb(a, t)
            assert code == 410 and body != inside_before[1], t
        assert thumb(a, 6.5) == outside_before  # outside the range: the same JPEG
        assert not [p for p in thumbs_dir.rglob("*.jpg") if p.name.startswith("35_")]  # not on disk either
        for level in ("frames", "clips", "utterances"):
            got = rows(client, a, level, f"{c}@1.0") + rows(client, b, level, f"{c}@1.0")
            assert got, level
            assert not meets(rows(client, a, level, f"{c}@1.0"), START, END), level
        assert meets(rows(client, a, "frames", f"{c}@1.0"), 5.0, 8.0)
        assert client.get("/api/search/like", params={"moment": f"{a}@3.5"}).status_code == 410
        assert client.get(f"/api/video/{a}").status_code == 410
        assert client.get(f"/api/video/{a}", headers={"Range": "bytes=0-99"}).status_code == 410
        assert client.get(f"/api/video/{c}").status_code == 200  # never redacted

        # ---- the same ranges blanked in the raw files: they stream again, blanked
        before_blank = (videos / "kid_a.mp4").read_bytes()
        redact(RedactRequest(shards=shards, store=store_dir, delete_source=True,
                             blackouts=[Blackout(a, START, END), Blackout(b, 1.0, 2.0)]))
        blanked = (videos / "kid_a.mp4").read_bytes()
        assert blanked != before_blank
        r = client.get(f"/api/video/{a}")
        assert r.status_code == 200 and r.content == blanked
        assert thumb(a, 3.5)[0] == 410  # a redacted moment stays redacted (its frames are black anyway)


def test_a_new_range_without_delete_source_stops_the_stream_again(tmp_path: Path) -> None:
    """Blanked once is not blanked for ever: a later range redacted without ``--delete-source``
    is still in the file, so the video is refused again."""
    videos, captions = write_corpus(tmp_path)
    shards = ingest_corpus(videos, captions, tmp_path / "shards")
    store_dir = build_store(random_checkpoint(tmp_path / "tiny.pt"), shards, tmp_path / "store")
    a = {r["source"]: r["video_uid"] for r in read_manifest(shards)}["kid_a.mp4"]
    with TestClient(create_app(Store(store_dir), classify=False)) as client:
        redact(RedactRequest(shards=shards, store=store_dir, delete_source=True, blackouts=[Blackout(a, 1.0, 2.0)]))
        assert client.get(f"/api/video/{a}").status_code == 200
        redact(RedactRequest(shards=shards, store=store_dir, blackouts=[Blackout(a, 5.0, 6.0)]))
        r = client.get(f"/api/video/{a}")
        assert r.status_code == 410 and "delete-source" in r.json()["detail"]
    shutil.rmtree(tmp_path / "videos")
