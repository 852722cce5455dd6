"""``egoindex serve`` end to end: the app served by a real uvicorn (in a thread, on a free loopback
port) and driven by headless Chromium through Playwright, over the session's demo store.

Chromium is Debian's (``scripts/browser.sh`` installs it in CI); Playwright's own browser
download is never used. Without ``/usr/bin/chromium`` the browser tests skip and say why.
Thumbnails are cached in memory only, so the store is only read.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import torch_threads

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
QUERY = "the baby grabs the red ball"
MAX_UPLOAD_MB = 4


@contextmanager
def uvicorn_serving(app: Any) -> Iterator[str]:
    """``app`` under a real uvicorn in a thread on a free loopback port; its base URL."""
    import uvicorn

    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, name="egoindex-serve", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not srv.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.05)
        port = srv.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health", timeout=10).json()["ok"] is True
        yield url
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def demo(demo_store: Path) -> Iterator[Any]:
    """The demo store, opened with its model loaded (before the browser's first search, as the CLI does)."""
    from egoindex.store import Store

    with torch_threads(1):
        store = Store(demo_store)
        store.embedder
        yield store


@pytest.fixture(scope="module")
def server(demo: Any) -> Iterator[str]:
    """The app ``egoindex serve`` runs, under a real uvicorn (in-process: the model and libraries are
    already loaded by the session); its base URL."""
    from egoindex.serve import create_app

    app = create_app(demo, max_upload_bytes=MAX_UPLOAD_MB << 20)  # thumbnails in memory: the store is only read
    with uvicorn_serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (install it with scripts/browser.sh): browser tests need Debian's Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh page on the search UI, ready (videos listed); fails the test on any page error."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    # A 422 is the server refusing input on purpose (the page shows why); any other error fails.
    pg.on("console", lambda m: errors.append(f"console: {m.text}")
          if m.type == "error" and "status of 422" not in m.text else None)
    pg.goto(server + "/")
    pg.wait_for_selector("body[data-ready='1']")
    yield pg
    ctx.close()
    assert not errors, errors


def _cards(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        "[data-testid=result-card]",
        "cards => cards.map(c => ({uid: c.dataset.videoUid, start: +c.dataset.start, end: +c.dataset.end, "
        "name: c.querySelector('[data-testid=result-name]').textContent, "
        "time: c.querySelector('[data-testid=result-time]').textContent, "
        "score: c.querySelector('[data-testid=result-score]').textContent, "
        "text: c.querySelector('[data-testid=result-text]').textContent, "
        "thumb: c.querySelector('img').getAttribute('src')}))")


def _search(page: Any, query: str) -> None:
    before = page.get_by_test_id("status").text_content()
    page.get_by_test_id("query").fill(query)
    page.get_by_test_id("search-button").click()
    page.wait_for_function("b => { const s = document.getElementById('status').textContent; "
                           "return s !== b && !s.startsWith('searching'); }", arg=before)


def test_search_shows_cards_and_plays_the_hit(page: Any, server: str, tmp_path: Path) -> None:
    _search(page, QUERY)
    page.wait_for_selector("[data-testid=result-card]")
    cards = _cards(page)
    assert len(cards) == 12  # the page asks for 12 and the store has more clips than that
    api = httpx.get(f"{server}/api/search", params={"q": QUERY, "k": 12}).json()["hits"]
    assert [(c["uid"], c["start"]) for c in cards] == [(h["video_uid"], h["start"]) for h in api]
    assert all(c["name"] and c["time"] and c["score"] and c["thumb"].startswith("/api/thumb/") for c in cards)
    assert any(c["text"] for c in cards)
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=result-thumb]')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")

    hit = cards[2]
    page.locator("[data-testid=result-card]").nth(2).click()
    page.wait_for_function("() => document.getElementById('player-video').dataset.seeked !== undefined")
    video = page.evaluate("() => { const v = document.getElementById('player-video'); "
                          "return {src: v.src, t: v.currentTime, duration: v.duration, open: v.closest('dialog').open}; }")
    assert video["open"] and video["src"] == f"{server}/api/video/{hit['uid']}"
    assert abs(video["t"] - hit["start"]) < 0.5 and video["duration"] > hit["start"]
    assert hit["name"] in page.get_by_test_id("player-title").text_content()
    shot = tmp_path / "serve_player.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    page.get_by_test_id("player-like").click()  # more like this moment, from the player
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('12 clips for moments like')")
    assert not page.get_by_test_id("player").is_visible()


def test_a_moment_opens_its_timeline_and_the_transcript_seeks(page: Any, server: str) -> None:
    """Cards are moments (no two of one video overlap); a moment opens the player with a mark per
    hit of this query in its video and the video's transcript; clicking an utterance or a mark seeks."""
    _search(page, QUERY)
    cards = _cards(page)
    assert len(cards) == 12 and "merged into moments" in page.get_by_test_id("status").text_content()
    by_video: dict[str, list[tuple[float, float]]] = {}
    for c in cards:
        by_video.setdefault(c["uid"], []).append((c["start"], c["end"]))
    for spans in by_video.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), spans  # disjoint, not even touching
    uid, spans = max(by_video.items(), key=lambda kv: len(kv[1]))
    first = next(i for i, c in enumerate(cards) if c["uid"] == uid)
    page.locator("[data-testid=result-card]").nth(first).click()
    page.wait_for_function("() => document.getElementById('player-video').dataset.seeked !== undefined")
    marks = page.eval_on_selector_all("[data-testid=timeline-mark]",
                                      "ms => ms.map(m => [+m.dataset.start, +m.dataset.end, m.classList.contains('current')])")
    assert sorted((a, b) for a, b, _ in marks) == spans  # this query's moments in this video, and only those
    assert [(a, b) for a, b, cur in marks if cur] == [(cards[first]["start"], cards[first]["end"])]

    page.wait_for_selector("#transcript[data-ready='1']")
    want = httpx.get(f"{server}/api/videos/{uid}/transcript").json()["utterances"]
    lines = page.eval_on_selector_all("[data-testid=transcript-line]",
                                      "ls => ls.map(l => ({start: +l.dataset.start, text: l.textContent, "
                                      "inside: l.classList.contains('in-moment')}))")
    assert want and [x["start"] for x in lines] == [u["start"] for u in want]
    assert all(u["text"] in x["text"] for x, u in zip(lines, want))
    inside = [u["start"] for u in want if u["end"] >= cards[first]["start"] and u["start"] <= cards[first]["end"]]
    assert [x["start"] for x in lines if x["inside"]] == inside

    def seeked_to() -> tuple[float, float]:
        """Where the player landed (its currentTime at the seek) and where it is now (it plays on)."""
        page.wait_for_function("() => document.getElementById('player-video').dataset.seeked !== undefined")
        return page.evaluate("() => { const v = document.getElementById('player-video'); "
                             "return [+v.dataset.seeked, v.currentTime]; }")

    target = max(range(len(want)), key=lambda i: abs(want[i]["start"] - cards[first]["start"]))  # far from here
    page.locator("[data-testid=transcript-line]").nth(target).click()
    landed, now = seeked_to()
    assert abs(landed - want[target]["start"]) < 0.3 and abs(now - want[target]["start"]) < 1.5, (landed, now, want[target])

    other = max(range(len(marks)), key=lambda i: abs(marks[i][0] - now))
    page.locator("[data-testid=timeline-mark]").nth(other).click()
    landed, now = seeked_to()
    assert abs(landed - marks[other][0]) < 0.3 and abs(now - marks[other][0]) < 1.5, (landed, now, marks[other])
    assert page.locator("[data-testid=timeline-mark].current").count() == 1

    page.get_by_test_id("player-close").click()
    page.get_by_test_id("merge").uncheck()  # raw rows: what the API gives with merge=false
    _search(page, QUERY)
    raw = httpx.get(f"{server}/api/search", params={"q": QUERY, "k": 12, "merge": "false"}).json()["hits"]
    assert [(c["uid"], c["start"]) for c in _cards(page)] == [(h["video_uid"], h["start"]) for h in raw]
    assert "raw rows" in page.get_by_test_id("status").text_content()


def test_filters_in_the_page(page: Any, server: str) -> None:
    videos = httpx.get(f"{server}/api/videos").json()
    target = next(v for v in videos if v["source"].endswith("breakfast.mp4"))
    page.get_by_test_id("level").select_option("frames")
    page.get_by_test_id("video").select_option(target["video_uid"])
    page.get_by_test_id("start").fill("5")
    page.get_by_test_id("end").fill("10")
    page.get_by_test_id("k").fill("50")
    _search(page, QUERY)
    cards = _cards(page)
    want = httpx.get(f"{server}/api/search", params={"q": QUERY, "level": "frames", "k": 50, "video": target["video_uid"],
                                                      "start": 5, "end": 10}).json()["hits"]
    assert 0 < len(cards) == len(want) < 50  # every matching frame, and only those
    assert all(c["uid"] == target["video_uid"] and 5 <= c["start"] <= 10 for c in cards)
    page.get_by_test_id("split").select_option("val" if target["split"] == "train" else "train")
    _search(page, QUERY)
    assert _cards(page) == [] and "nothing found" in page.get_by_test_id("status").text_content()
    page.get_by_test_id("query").fill("x" * 500)
    page.get_by_test_id("start").fill("20")  # after end: the server says why
    page.get_by_test_id("search-button").click()
    page.wait_for_selector("#status.error")
    assert "empty" in page.get_by_test_id("status").text_content()


def test_image_search_and_classify_in_the_page(page: Any, server: str, demo_videos: Path, tmp_path: Path) -> None:
    videos = httpx.get(f"{server}/api/videos").json()
    target = next(v for v in videos if v["source"].endswith("breakfast.mp4"))
    picture = tmp_path / "moment.jpg"
    picture.write_bytes(httpx.get(f"{server}/api/thumb/{target['video_uid']}", params={"t": 7}).content)
    page.locator("#tools summary").click()
    page.get_by_test_id("level").select_option("frames")
    page.get_by_test_id("image-file").set_input_files(str(picture))
    page.get_by_test_id("image-button").click()
    page.wait_for_function("() => { const s = document.getElementById('status').textContent; "
                           "return s.includes('moment.jpg') && !s.startsWith('searching'); }")
    cards = _cards(page)
    assert len(cards) == 12 and cards[0]["uid"] == target["video_uid"]

    page.get_by_test_id("classify-file").set_input_files(str(demo_videos / target["source"]))
    page.get_by_test_id("classify-labels").fill("a red ball, a blue cup, a teddy bear")
    page.get_by_test_id("classify-topk").fill("2")
    page.get_by_test_id("classify-button").click()
    page.wait_for_selector("[data-testid=classify-label]", timeout=120_000)
    labels = page.eval_on_selector_all("[data-testid=classify-label]", "els => els.map(e => e.dataset.label)")
    assert len(labels) == 2 and set(labels) <= {"a red ball", "a blue cup", "a teddy bear"}
    assert "breakfast.mp4" in page.get_by_test_id("classify-result").text_content()


def test_real_server_refuses_oversized_uploads_while_they_stream(server: str) -> None:
    """A chunked upload (no Content-Length) is answered 413 long before it is all sent."""
    port = int(server.rsplit(":", 1)[1])
    boundary = "egoindex-test"
    planned = 64 * MAX_UPLOAD_MB  # MiB: far beyond the limit
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall((f"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode())
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"big.mp4\"\r\n"
                "Content-Type: video/mp4\r\n\r\n").encode()
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        chunk = b"\0" * (1 << 20)
        sent, answer = 0, b""
        for sent in range(1, planned + 1):
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            sock.settimeout(10)
            while b"\r\n" not in answer:
                got = sock.recv(4096)
                if not got:
                    break
                answer += got
        except (ConnectionResetError, TimeoutError):
            pass
    assert sent < planned / 2, f"sent {sent} MiB before the server answered"
    if answer:  # the status line, unless the reset overtook it
        assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


# ---- login on -----------------------------------------------------------------------------------------

LOGIN_PASSWORD = "a long browser password"


@pytest.fixture(scope="module")
def login_server(demo: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """The same store served with login on: one user, ``ana``, scoped to two of its videos (the
    users file and the audit log in a tmp folder); the base URL and ana's videos."""
    from egoindex.serve import create_app
    from egoindex.serve.auth import Access
    from egoindex.serve.scopes import Scope
    from egoindex.serve.users import UsersFile, hash_password, make_user

    folder = tmp_path_factory.mktemp("browser-access")
    allowed = sorted(demo.videos)[:2]
    UsersFile(folder / "users.json").put(make_user("ana", "user", Scope.build(video_uids=allowed),
                                                   password_hash=hash_password(LOGIN_PASSWORD)))
    app = create_app(demo, max_upload_bytes=MAX_UPLOAD_MB << 20,
                     access=Access(folder / "users.json", audit=folder / "audit.jsonl"))
    with uvicorn_serving(app) as url:
        yield url, allowed


def test_logging_in_through_the_page(browser: Any, login_server: tuple[str, list[str]], tmp_path: Path) -> None:
    """The page redirects to the login form; a wrong password is refused there; the right one opens
    the search page with only the user's videos; uploads carry the CSRF token; logging out ends it."""
    url, allowed = login_server
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.on("console", lambda m: errors.append(f"console: {m.text}")  # the refused login is a 401 on purpose
          if m.type == "error" and "status of 401" not in m.text else None)
    pg.goto(url + "/")
    assert pg.url == url + "/login"
    pg.get_by_test_id("login-user").fill("ana")
    pg.get_by_test_id("login-password").fill("not the password")
    pg.get_by_test_id("login-button").click()
    pg.wait_for_selector("#login-message.error")
    assert "Wrong user name or password" in pg.get_by_test_id("login-message").text_content()
    pg.get_by_test_id("login-user").fill("ana")
    pg.get_by_test_id("login-password").fill(LOGIN_PASSWORD)
    pg.get_by_test_id("login-button").click()
    pg.wait_for_selector("body[data-ready='1']")
    assert pg.url == url + "/" and "ana (user)" in pg.get_by_test_id("store-info").text_content()
    cookie = next(c for c in ctx.cookies() if c["name"] == "egoindex_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    offered = pg.eval_on_selector_all("#video option", "os => os.map(o => o.value).filter(v => v)")
    assert sorted(offered) == allowed  # only ana's videos

    _search(pg, QUERY)
    cards = _cards(pg)
    assert cards and {c["uid"] for c in cards} <= set(allowed)
    picture = tmp_path / "moment.jpg"
    shot = ctx.request.get(url + cards[0]["thumb"])  # the context's session cookie goes along
    assert shot.status == 200
    picture.write_bytes(shot.body())
    pg.locator("#tools summary").click()
    pg.get_by_test_id("image-file").set_input_files(str(picture))
    pg.get_by_test_id("image-button").click()  # a POST: the page sends its X-CSRF-Token
    pg.wait_for_function("() => { const s = document.getElementById('status').textContent; "
                         "return s.includes('moment.jpg') && !s.startsWith('searching'); }")
    assert not pg.locator("#status.error").count(), pg.get_by_test_id("status").text_content()
    assert {c["uid"] for c in _cards(pg)} <= set(allowed) and _cards(pg)

    pg.get_by_test_id("logout").click()
    pg.wait_for_url(url + "/login")
    assert ctx.request.get(url + "/api/videos").status == 401
    ctx.close()
    assert not errors, errors
