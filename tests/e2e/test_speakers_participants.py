"""Speakers and participants end to end: three tiny videos (real PyAV) ingested with a CSV
transcript, an RTTM folder and a participants CSV (no Whisper), trained on with ``--speakers``,
built into a store and queried by speaker, child and age through the CLI, the Python API and
the HTTP API. Kept small: 8 s videos at 2 fps, ``ego-tiny-vit`` for one epoch, one torch thread."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from egoindex.cli.main import app
from egoindex.core.fsutil import read_json
from egoindex.dataset.layout import (NO_SPEAKER, read_manifest, read_participants, read_speech_by_speaker,
                                     read_transcript)
from egoindex.dataset.shards import clip_sample_frames, iter_samples, list_clip_shards, list_pair_shards, list_shards
from egoindex.media.discover import assign_split, video_uid
from egoindex.store import Filters, Store
from egoindex.errors import DatasetError
from egoindex.train.data import (clip_train_loader, count_train_clips, count_train_samples, key64, normalize_text,
                                 train_loader)
from egoindex.train.log import read_jsonl
from egoindex.train.loop import launch
from tests.media import make_video
from tests.support import torch_threads

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SOURCES = ("kid_a.mp4", "kid_b.mp4", "sub/kid_c.mp4")
TRANSCRIPT = """video,start,end,text
kid_a,0.0,2.0,look at the red ball
kid_a,2.5,4.0,ba ba ba
kid_a,4.5,6.5,where is the cup
kid_a,7.0,7.9,mine mine
kid_b,1.0,3.0,the dog runs
kid_b,4.0,6.0,shall we read a book
kid_b,6.5,7.8,night night
sub/kid_c,0.5,2.5,a big truck
sub/kid_c,3.0,5.0,vroom vroom
sub/kid_c,5.5,7.5,park the truck here
"""
# all.rttm names two recordings by file id; kid_c.rttm is a file per video, whatever id is inside
ALL_RTTM = """SPEAKER kid_a 1 0.000 2.200 <NA> <NA> FEM <NA> <NA>
SPEAKER kid_a 1 2.400 1.800 <NA> <NA> KCHI <NA> <NA>
SPEAKER kid_a 1 4.500 2.500 <NA> <NA> MAL <NA> <NA>
SPEAKER kid_b 1 0.000 1.500 <NA> <NA> MOT <NA> <NA>
SPEAKER kid_b 1 1.500 2.000 <NA> <NA> CHI <NA> <NA>
SPEAKER kid_b 1 3.800 2.700 <NA> <NA> FEM <NA> <NA>
SPEAKER kid_b 1 6.400 1.600 <NA> <NA> MAL <NA> <NA>
SPEAKER kid_b 1 nan 1.0 <NA> <NA> MAL <NA> <NA>
"""
KID_C_RTTM = """SPEAKER waveform 1 0.4 2.2 <NA> <NA> FEM <NA> <NA>
SPEAKER waveform 1 3.0 2.0 <NA> <NA> KCHI <NA> <NA>
SPEAKER waveform 1 5.4 2.2 <NA> <NA> FEM <NA> <NA>
"""
PARTICIPANTS = """video,child_id,age_days,date,location,sibling
kid_a,S,200,2020-03-01,home,yes
kid_b.mp4,S,400,2020-09-17,home,
sub/kid_c,A,300,2021-01-05,lab,no
"""
#: The speaker of each utterance by the overlap rule (kid_b's second line is the hand case of
#: the brief: 1.0-3.0 against MOT 0-1.5 and CHI 1.5-3.5 is CHI; kid_a's last line overlaps no turn).
EXPECTED = {"kid_a": ["FEM", "KCHI", "MAL", None], "kid_b": ["CHI", "FEM", "MAL"],
            "sub/kid_c": ["FEM", "KCHI", "FEM"]}
ADULTS = ["FEM", "MAL"]


def split_seed() -> int:
    """A split seed that puts exactly one of the three videos (not kid_c) in val at fraction 0.34."""
    return next(s for s in range(200) if [assign_split(video_uid(x), 0.34, s) for x in SOURCES] ==
                ["train", "val", "train"])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("speakers")
    for src in SOURCES:
        make_video(root / "videos" / src, 8, audio=None)
    (root / "transcript.csv").write_text(TRANSCRIPT, encoding="utf-8")
    (root / "rttm").mkdir()
    (root / "rttm" / "all.rttm").write_text(ALL_RTTM, encoding="utf-8")
    (root / "rttm" / "kid_c.rttm").write_text(KID_C_RTTM, encoding="utf-8")
    (root / "participants.csv").write_text(PARTICIPANTS, encoding="utf-8")
    return root


def ingest_args(root: Path, out: Path, rttm: Path) -> list[str]:
    return ["ingest", str(root / "videos"), str(out), "--transcripts", str(root / "transcript.csv"),
            "--rttm", str(rttm), "--participants", str(root / "participants.csv"), "--no-whisper",
            "--allow-no-audio", "--fps", "2", "--val-fraction", "0.34", "--split-seed", str(split_seed()),
            "--shard-size", "16", "-q"]


@pytest.fixture(scope="module")
def shards(inputs: Path) -> Path:
    out = inputs / "shards"
    r = CliRunner().invoke(app, ingest_args(inputs, out, inputs / "rttm"))
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.split())
    assert "speaker turns" in flat and "bad number 1" in flat and "participants" in flat
    return out


def frame_metas(out: Path) -> list[dict[str, Any]]:
    return [json.loads(s["json"]) | {"_txt": s.get("txt", b"").decode()} for s in iter_samples(list_shards(out))]


def test_rttm_speakers_reach_transcripts_frames_and_the_manifest(shards: Path):
    rows = {r["source"]: r for r in read_manifest(shards)}
    assert {r["status"] for r in rows.values()} == {"ok"}
    for src, want in EXPECTED.items():
        uid = rows[src + ".mp4"]["video_uid"]
        assert [u.get("speaker") for u in read_transcript(shards, uid)] == want, src
    a = rows["kid_a.mp4"]
    # union of time per speaker of the kept utterances; kid_a's 7.0-7.9 has no speaker
    assert read_speech_by_speaker(a) == pytest.approx({"FEM": 2.0, "KCHI": 1.5, "MAL": 2.0, NO_SPEAKER: 0.9})
    assert read_speech_by_speaker(rows["sub/kid_c.mp4"]) == pytest.approx({"FEM": 4.0, "KCHI": 2.0})
    metas = frame_metas(shards)
    captioned = [m for m in metas if m["utterance"]]
    assert captioned and all(m["_txt"] for m in captioned)
    by_text = {line.split(",", 3)[3]: who for line, who in zip(TRANSCRIPT.splitlines()[1:],
                                                             [w for ws in EXPECTED.values() for w in ws])}
    for m in captioned:  # each frame carries the speaker of the utterance it is paired with
        assert m["utterance"].get("speaker") == by_text[m["_txt"]], m
    record = read_json(shards / "_ingest" / "videos" / f"{a['video_uid']}.json")
    mine = Counter(m["utterance"].get("speaker") or NO_SPEAKER for m in captioned if m["video_uid"] == a["video_uid"])
    assert record["captioned_frames_by_speaker"] == dict(mine)
    people = read_participants(shards)
    assert people[a["video_uid"]] == {"child_id": "S", "age_days": 200, "date": "2020-03-01", "location": "home",
                                      "extra": {"sibling": "yes"}}
    config = read_json(shards / "_ingest" / "config.json")
    assert config["rttm_sha256"] and config["participants_sha256"]


def test_a_resume_with_another_rttm_is_refused(inputs: Path, shards: Path, tmp_path: Path):
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    other = tmp_path / "other.rttm"
    other.write_text(ALL_RTTM.replace("FEM", "MOT"), encoding="utf-8")
    r = CliRunner().invoke(app, ingest_args(inputs, copy, other))
    assert r.exit_code == 2
    assert "ingested with other settings (rttm_sha256: was" in " ".join(r.output.split())


def pairs_of(shards: Path, split: str, speakers: list[str] | None) -> list[str]:
    out = []
    for s in iter_samples(list_pair_shards(shards, split)):
        who = (json.loads(s["json"])["utterance"] or {}).get("speaker") or NO_SPEAKER
        if speakers is None or who in speakers:
            out.append(s["txt"].decode())
    return out


def test_the_train_loader_draws_only_the_chosen_speakers(shards: Path):
    allowed = {key64(normalize_text(t)) for t in pairs_of(shards, "train", ADULTS)}
    every = {key64(normalize_text(t)) for t in pairs_of(shards, "train", None)}
    assert allowed and every - allowed  # the others exist, so leaving them out is something

    def draw(speakers: list[str] | None) -> set[int]:
        loader = train_loader(shards, preprocess=lambda im: torch.zeros(3, 8, 8),
                              tokenizer=lambda texts: torch.zeros(len(texts), 4, dtype=torch.long), batch_size=2,
                              workers=0, rank=0, world_size=1, seed=0, shuffle_buffer=4, speakers=speakers)
        seen: set[int] = set()
        for i, batch in enumerate(loader):  # endless: a few passes' worth
            seen |= set(batch.text_keys.tolist())
            if i == 3 * len(every):
                return seen
        return seen

    assert draw(ADULTS) == allowed
    assert draw(None) == every


def test_clip_models_count_and_draw_only_the_chosen_speakers(shards: Path):
    clips = [(clip_sample_frames(s)[0]["utterance"].get("speaker") or NO_SPEAKER, s["txt"].decode())
             for s in iter_samples(list_clip_shards(shards, "train"))]
    allowed = {key64(normalize_text(t)) for who, t in clips if who in ADULTS}
    assert count_train_clips(shards, ADULTS) == (sum(who in ADULTS for who, _ in clips),
                                                 "clips of FEM,MAL in _ingest pack records")
    assert 0 < len(allowed) < len(clips)
    with pytest.raises(DatasetError, match="no train clips of nobody.*FEM"):
        count_train_clips(shards, ["nobody"])
    with pytest.raises(DatasetError, match="no train captions of nobody.*FEM"):
        count_train_samples(shards, ["nobody"])
    loader = clip_train_loader(shards, preprocess=lambda im: torch.zeros(3, 8, 8),
                               tokenizer=lambda texts: torch.zeros(len(texts), 4, dtype=torch.long), batch_size=2,
                               workers=0, rank=0, world_size=1, seed=0, num_frames=2, shuffle_buffer=8,
                               speakers=ADULTS)
    seen: set[int] = set()
    for i, batch in enumerate(loader):
        seen |= set(batch.text_keys.tolist())
        if i == 4 * len(clips):
            break
    assert seen == allowed


@pytest.fixture(scope="module")
def run_dir(shards: Path) -> Path:
    run = shards.parent / "run"
    with torch_threads(1):
        code = launch([str(shards), str(run), "--model", "ego-tiny-vit", "--speakers", "MAL,FEM", "--epochs", "1",
                       "--batch-size", "2", "--warmup", "1", "--workers", "0", "--threads", "1", "--no-progress",
                       "--report-to", "none", "--val-batch-size", "4"])
    assert code == 0
    return run


def test_train_speakers_trains_and_validates_on_those_captions_only(shards: Path, run_dir: Path):
    config = read_json(run_dir / "config.json")
    n_train = len(pairs_of(shards, "train", ADULTS))
    assert config["speakers"] == ADULTS  # sorted, recorded in the run's config and checkpoints
    assert config["plan"]["train_samples"] == n_train < len(pairs_of(shards, "train", None))
    assert config["plan"]["steps_per_epoch"] == n_train // 2
    vals = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "val"]
    assert vals and vals[-1]["val_frames"] == len(pairs_of(shards, "val", ADULTS))
    # a resume with other speakers is another run
    with torch_threads(1):
        code = launch([str(shards), str(run_dir), "--model", "ego-tiny-vit", "--speakers", "FEM", "--epochs", "2",
                       "--resume", "--workers", "0", "--threads", "1", "--no-progress", "--report-to", "none"])
    assert code == 1


@pytest.fixture(scope="module")
def store(shards: Path, run_dir: Path) -> Store:
    out = shards.parent / "store"
    r = CliRunner().invoke(app, ["build", str(run_dir / "latest.pt"), str(shards), str(out), "--workers", "0",
                                 "--quiet"])
    assert r.exit_code == 0, r.output
    return Store(out)


def query(store: Store, *args: str) -> list[dict[str, Any]]:
    r = CliRunner().invoke(app, ["query", str(store.root), "a ball", "--json", "--no-merge", "--k", "200", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_query_by_speaker_returns_only_that_speakers_rows(store: Store):
    fem = query(store, "--level", "utterances", "--speaker", "FEM")
    assert sorted(h["text"] for h in fem) == ["a big truck", "look at the red ball", "park the truck here",
                                              "shall we read a book"]
    assert {h["speaker"] for h in fem} == {"FEM"}
    adults = query(store, "--level", "frames", "--speaker", "FEM", "--speaker", "MAL")
    frames = store.dataset("frames").to_table(columns=["speaker"]).column("speaker").to_pylist()
    assert len(adults) == sum(w in ADULTS for w in frames) > 0 and {h["speaker"] for h in adults} == set(ADULTS)
    clips = query(store, "--level", "clips", "--speaker", "KCHI")
    assert clips and {h["speaker"] for h in clips} == {"KCHI"}
    assert query(store, "--level", "utterances", "--speaker", "nobody") == []


def test_age_and_child_filters_hold(store: Store):
    age = {v["video_uid"]: v["age_days"] for v in store.videos.values()}
    assert sorted(age.values()) == [200, 300, 400]
    for level in ("clips", "frames", "utterances"):
        older = query(store, "--level", level, "--age-min", "250")
        assert older and {age[h["video_uid"]] for h in older} == {300, 400}
        assert all(h["age_days"] >= 250 for h in older)
        band = query(store, "--level", level, "--age-min", "250", "--age-max", "350")
        assert {h["child_id"] for h in band} == {"A"} and {age[h["video_uid"]] for h in band} == {300}
        assert len(older) == store.count(level, Filters(min_age_days=250)) < store.count(level)
    s_rows = query(store, "--level", "utterances", "--child", "S", "--speaker", "MAL")
    assert sorted(h["text"] for h in s_rows) == ["night night", "where is the cup"]
    v = next(r for r in store.videos.values() if r["source"] == "sub/kid_c.mp4")
    assert (v["child_id"], v["date"], v["location"], json.loads(v["participant"])) == ("A", "2021-01-05", "lab",
                                                                                       {"sibling": "no"})


def test_the_http_api_takes_the_same_filters(store: Store):
    from egoindex.serve import create_app

    client = TestClient(create_app(store, classify=False), raise_server_exceptions=False)
    got = client.get("/api/search", params={"q": "a ball", "level": "utterances", "merge": "false", "k": 50,
                                            "speaker": ["FEM", "MAL"], "age_max": 300})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["query"]["speaker"] == ["FEM", "MAL"] and body["query"]["age_max"] == 300
    assert sorted(h["text"] for h in body["hits"]) == ["a big truck", "look at the red ball", "park the truck here",
                                                       "where is the cup"]
    assert all(h["speaker"] in ADULTS and h["age_days"] <= 300 for h in body["hits"])
    assert client.get("/api/search", params={"q": "x", "age_min": 5, "age_max": 1}).status_code == 422
    assert client.get("/api/search", params={"q": "x", "age_min": -1}).status_code == 422
    videos = {v["source"]: v for v in client.get("/api/videos").json()}
    assert videos["kid_a.mp4"]["speakers"] == ["FEM", "KCHI", "MAL"] and videos["kid_a.mp4"]["age_days"] == 200
    assert videos["kid_a.mp4"]["participant"] == {"sibling": "yes"}
    uid = videos["kid_b.mp4"]["video_uid"]
    lines = client.get(f"/api/videos/{uid}/transcript").json()["utterances"]
    assert [u.get("speaker") for u in lines] == EXPECTED["kid_b"]


def test_the_page_offers_and_sends_the_speaker_child_and_age_filters(store: Store):
    """The page under a real uvicorn and Debian's Chromium: the speaker and child choices come
    from the store, and a search with them (and an age range) shows only the matching rows."""
    import os
    import threading
    import time

    import uvicorn

    from egoindex.serve import create_app
    from tests.e2e.test_serve_browser import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (install it with scripts/browser.sh)")
    from playwright.sync_api import sync_playwright

    store.embedder  # noqa: B018  (load the model before the first search, as the CLI does)
    srv = uvicorn.Server(uvicorn.Config(create_app(store, classify=False), host="127.0.0.1", port=0,
                                        log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not srv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']")
            options = page.eval_on_selector_all("#speaker option, #child option", "os => os.map(o => o.value)")
            assert options == ["", "CHI", "FEM", "KCHI", "MAL", "", "A", "S"]

            def search() -> list[str]:
                before = page.get_by_test_id("status").text_content()
                page.get_by_test_id("query").fill("a ball")
                page.get_by_test_id("search-button").click()
                page.wait_for_function("b => { const s = document.getElementById('status').textContent; "
                                       "return s !== b && !s.startsWith('searching'); }", arg=before)
                return page.eval_on_selector_all("[data-testid=result-text]", "els => els.map(e => e.textContent)")

            page.get_by_test_id("level").select_option("utterances")
            page.get_by_test_id("merge").uncheck()
            page.get_by_test_id("k").fill("50")
            page.get_by_test_id("speaker").select_option("FEM")
            assert sorted(search()) == ["a big truck", "look at the red ball", "park the truck here",
                                        "shall we read a book"]
            shown = page.eval_on_selector_all("[data-testid=result-speaker]", "els => els.map(e => e.textContent)")
            assert shown == ["FEM"] * 4  # each card says who spoke
            page.get_by_test_id("child").select_option("S")
            page.get_by_test_id("age-max").fill("300")
            assert search() == ["look at the red ball"]
            browser.close()
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
