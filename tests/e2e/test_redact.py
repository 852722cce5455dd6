"""``egoindex redact``: a range of a video is gone from every byte of SHARDS_DIR and STORE, nothing
else changes, re-ingests and rebuilds keep it out, and a killed redaction completes on rerun.

Real components: three 8 s videos whose every frame differs (``tests/redaction.py``), a real
ingest with captions from a CSV file (each caption a unique phrase), a randomly initialised
``ego-tiny-vit`` (its vectors differ per frame; no training needed), a real build into LanceDB +
FAISS, redactions in process and as ``egoindex redact`` subprocesses killed with SIGKILL at the
redaction's failpoints. What must be gone is computed here from the rule as the docs state it,
not from the implementation: the frames in the range or captioned by an utterance that meets it,
those utterances, the clips that hold either, the store rows of all of them.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path

import av
import lance
import numpy as np
import pytest
from typer.testing import CliRunner

from egoindex.dataset.blackouts import Blackout, read_blackout_list, read_blackouts, read_journal, read_log
from egoindex.dataset.layout import (read_manifest, read_pack_records, read_sizes, read_transcript,
                                     read_video_record, write_source)
from egoindex.dataset.shards import list_clip_shards, list_shards, read_shard
from egoindex.errors import RedactionError
from egoindex.redact.run import RedactRequest, run as redact
from egoindex.store import Filters, Store
from egoindex.store.schema import TABLES, VECTOR_TABLES, vectors_of
from tests.e2e.test_faults import ENV, start
from tests.e2e.test_store import assert_indexes_match_tables
from tests.redaction import (RATE, UTTERANCES, build_store, byte_search, caption, ingest_corpus,
                             random_checkpoint, write_corpus)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cli(*args: object) -> tuple[int, str]:
    """``egoindex ARGS`` in this process (the kill test runs real subprocesses): exit code, output."""
    from egoindex.cli.main import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    return r.exit_code, " ".join(r.output.split())

#: The range redacted: no frame (2 fps) is in it, but utterance 1 (2.1-3.3 s) meets it, so that
#: utterance goes, with the frames it captions (2.0, 2.5, 3.0 s: one just outside it) and its clip.
START, END = 2.6, 2.9


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("redact_corpus")
    videos, captions = write_corpus(root)
    shards = ingest_corpus(videos, captions, root / "shards")
    ckpt = random_checkpoint(root / "tiny.pt")
    store = build_store(ckpt, shards, root / "store")
    return {"videos": videos, "captions": captions, "shards": shards, "store": store, "checkpoint": ckpt}


def copies(corpus: dict[str, Path], dst: Path) -> tuple[Path, Path]:
    shards, store = dst / "shards", dst / "store"
    shutil.copytree(corpus["shards"], shards)
    shutil.copytree(corpus["store"], store)
    return shards, store


def uid_of(shards: Path, name: str) -> str:
    return {r["source"]: r["video_uid"] for r in read_manifest(shards)}[f"{name}.mp4"]


def frame_samples(shards: Path) -> dict[str, dict]:
    """Every frame sample of the frame series: key -> {meta, jpg, txt}."""
    out = {}
    for p in list_shards(shards):
        for key, s in read_shard(p):
            out[key] = {"meta": json.loads(s["json"]), "jpg": s["jpg"], "txt": s.get("txt", b"").decode()}
    return out


def clip_samples(shards: Path) -> dict[str, dict]:
    out = {}
    for p in list_clip_shards(shards):
        for key, s in read_shard(p):
            out[key] = {"meta": json.loads(s["json"]), "txt": s["txt"].decode(),
                        "jpgs": [v for k, v in sorted(s.items()) if k.endswith("jpg")]}
    return out


def tables(store: Path) -> dict[str, list[dict]]:
    """Every table's rows (vectors as float32 bytes under ``vector``), latest version."""
    out = {}
    for name in TABLES:
        t = lance.dataset(str(store / "lance" / f"{name}.lance")).to_table()
        rows = t.drop_columns(["vector"]).to_pylist() if "vector" in t.column_names else t.to_pylist()
        if "vector" in t.column_names:
            vecs = vectors_of(t["vector"], t.schema.field("vector").type.list_size)
            for r, v in zip(rows, vecs):
                r["vector"] = v.tobytes()
        out[name] = rows
    return out


def row_key(table: str, r: dict) -> tuple:
    """A row's unique key in its table."""
    if table == "frames":
        return (r["key"],)
    if table == "clips":
        return (r["video_uid"], r["start"])
    return (r["utterance_id"],) if table == "utterances" else (r["video_uid"],)


def expected_hidden(shards: Path, store: Path, uid: str, start: float, end: float | None) -> dict:
    """What the rule (docs/reliability.md#redaction) hides of ``uid``'s ``[start, end]``, worked out
    from the files: captions, frame keys and JPEGs, clip keys, and each table's hidden row keys."""
    hi = float("inf") if end is None else end
    utts = [u for u in read_transcript(shards, uid, kept_only=False)]
    gone_utts = [u for u in utts if u["start"] <= hi and u["end"] >= start]
    texts = {u["text"] for u in gone_utts}
    frames = frame_samples(shards)
    keys = {k for k, s in frames.items() if s["meta"]["video_uid"] == uid and (
        start <= s["meta"]["t"] <= hi or (s["meta"]["utterance"] and s["meta"]["utterance"]["start"] <= hi
                                          and s["meta"]["utterance"]["end"] >= start))}
    clips = {k for k, c in clip_samples(shards).items() if c["meta"]["video_uid"] == uid and (
        c["meta"]["utterance"]["start"] <= hi and c["meta"]["utterance"]["end"] >= start
        or any(start <= t <= hi for t in c["meta"]["times"]) or set(c["meta"]["frame_keys"]) & keys)}
    rows = tables(store)
    spans = [(u["start"], u["end"]) for u in gone_utts]
    hidden = {
        "frames": {row_key("frames", r) for r in rows["frames"] if r["key"] in keys},
        "clips": {row_key("clips", r) for r in rows["clips"] if r["video_uid"] == uid and (
            r["start"] <= hi and r["end"] >= start or any(s < r["end"] and e > r["start"] for s, e in spans))},
        "utterances": {row_key("utterances", r) for r in rows["utterances"] if r["video_uid"] == uid
                       and r["text"] in texts},
        "videos": {(uid,)} if start <= 0 and end is None else set(),
    }
    return {"texts": texts, "keys": keys, "jpgs": {k: frames[k]["jpg"] for k in keys}, "clips": clips,
            "rows": hidden, "vectors": {f"{t}:{k}": r["vector"] for t in VECTOR_TABLES for r in rows[t]
                                        if (k := row_key(t, r)) in hidden[t]}}


def hit_key(table: str, hit) -> tuple:
    """A search hit's :func:`row_key`."""
    return row_key(table, {**hit.extra, "video_uid": hit.video_uid, "start": hit.start})


def needles(h: dict) -> dict[str, bytes]:
    return {**{f"text:{t}": t.encode() for t in h["texts"]}, **{f"jpg:{k}": v for k, v in h["jpgs"].items()},
            **{f"vector:{k}": v for k, v in h["vectors"].items()}}


def assert_gone_and_rest_unchanged(before: dict[str, list[dict]], after_store: Path, h: dict) -> None:
    after = tables(after_store)
    for name in TABLES:
        want = {row_key(name, r): r for r in before[name] if row_key(name, r) not in h["rows"][name]}
        got = {row_key(name, r): r for r in after[name]}
        assert len(after[name]) == len(before[name]) - len(h["rows"][name]), name
        assert set(got) == set(want), f"{name}: other rows than all but the hidden ones"
        for k, r in got.items():
            if name == "videos":  # its counts follow the redaction; all else stays
                r, w = {c: v for c, v in r.items() if not c.startswith("n_")}, \
                    {c: v for c, v in want[k].items() if not c.startswith("n_")}
                assert r == w, k
            else:
                assert r == want[k], f"{name} row {k} changed (vector bytes included)"


def test_redaction_removes_the_range_everywhere_and_nothing_else(corpus: dict[str, Path], tmp_path: Path) -> None:
    shards, store = copies(corpus, tmp_path)
    uid = uid_of(shards, "kid_a")
    h = expected_hidden(shards, store, uid, START, END)
    assert h["texts"] == {caption(0, 1)} and len(h["keys"]) == 3 and h["clips"]  # the case this test is about
    (store / "bench").mkdir()  # benchmark reports: one quotes the range, one names another video
    (store / "bench" / "alignment.json").write_text(json.dumps({"rows": [{"video_uid": uid, "text": caption(0, 1)}]}))
    (store / "bench" / "retrieval.json").write_text(json.dumps({"rows": [{"video_uid": uid_of(shards, "kid_b")}]}))
    assert all(h["rows"][t] for t in VECTOR_TABLES)
    found = byte_search([shards, store], needles(h))
    assert set(found) == set(needles(h)), "the byte search must find every needle before the redaction"
    before = tables(store)
    frames_before = read_video_record(shards, uid)["frames"]
    others = {f"text:{caption(v, k)}": caption(v, k).encode() for v in range(3) for k in range(4) if (v, k) != (0, 1)}

    (s,) = redact(RedactRequest(shards=shards, store=store, blackouts=[Blackout("kid_a.mp4", START, END)], by="ethics"))
    assert (s.removed["pairs"] + s.removed["uncaptioned"], s.removed["clips"], s.removed["utterances"]) == (
        len(h["keys"]), len(h["clips"]), 1)
    assert s.store_removed == {t: len(h["rows"][t]) for t in TABLES}
    assert sorted(p.name for p in (store / "bench").iterdir()) == ["retrieval.json"]

    # 1. not one byte of it is left anywhere under either folder; everything else is
    assert byte_search([shards, store], needles(h)) == {}
    assert set(byte_search([shards, store], others)) == set(others)
    # 2. every table lost exactly the hidden rows; every other row (vector bytes too) is as it was
    assert_gone_and_rest_unchanged(before, store, h)
    # 3. no old version is left to check out, and the one there is has none of it
    for name in TABLES:
        ds = lance.dataset(str(store / "lance" / f"{name}.lance"))
        versions = [v["version"] for v in ds.versions()]
        assert versions == [ds.version], f"{name}: old versions left: {versions}"
        for v in versions:
            old = lance.dataset(str(store / "lance" / f"{name}.lance"), version=v).to_table().to_pylist()
            assert not {row_key(name, r) for r in old} & h["rows"][name]
    # 4. queries: the hidden vectors themselves find none of the hidden rows (FAISS and exact), the
    #    metadata cache and the transcript the server shows have them not, the indexes match the tables
    st = Store(store)
    for name in VECTOR_TABLES:
        n = st.count(name)
        for key, vec in h["vectors"].items():
            if not key.startswith(name):
                continue
            q = np.frombuffer(vec, np.float32)
            for hits in (st.search_vector(q, name, n, Filters()), st.exact_search(q, name, n, None)):
                assert len(hits) == n and not {hit_key(name, x) for x in hits} & h["rows"][name], name
        cache = list((store / "_cache").glob(f"{name}-v*.arrow"))
        assert [p.name for p in cache] == [f"{name}-v{st.dataset(name).version}.arrow"]
    assert all(u.text not in h["texts"] for u in st.transcript(uid))
    assert not any(hit.extra.get("key") in h["keys"] for hit in st.search_vector(
        np.frombuffer(next(iter(h["vectors"].values())), np.float32), "frames", 200, Filters(video_uids=(uid,))))
    assert_indexes_match_tables(store)
    # 5. SHARDS_DIR: the summaries, records and transcript agree with the shards
    sizes = read_sizes(shards)
    assert sizes == {p.name: sum(1 for _ in read_shard(p)) for p in list_shards(shards)}
    assert json.loads((shards / "clips" / "sizes.json").read_text()) == {
        p.name: sum(1 for _ in read_shard(p)) for p in list_clip_shards(shards)}
    rec = read_video_record(shards, uid)
    assert rec["frames"] == frames_before - len(h["keys"]) and rec["redacted"] == [
        {"video_uid": uid, "start": START, "end": END}]
    assert int({r["video_uid"]: r for r in read_manifest(shards)}[uid]["frames"]) == rec["frames"]
    assert rec["utterances"] == len(UTTERANCES) - 1 == len(read_transcript(shards, uid))
    assert sum(s["count"] for p in read_pack_records(shards) for s in p["shards"]) == sum(sizes.values())
    assert st.videos[uid]["n_frames"] == rec["frames"] and st.videos[uid]["n_utterances"] == rec["utterances"]
    # 6. the blackout and the log, in both folders: what, when, who; no journal left
    for root in (shards, store):
        assert list(read_blackouts(root)) == [Blackout(uid, START, END)]
        events = read_log(root)
        assert [e["event"] for e in events] == ["started", "finished"]
        assert events[-1]["by"] == "ethics" and events[-1]["ranges"] == [{"video_uid": uid, "start": START,
                                                                           "end": END}]
    assert read_journal(shards) is None

    # a second redaction of the same range finds nothing left and changes nothing
    snapshot = {p: p.read_bytes() for p in sorted(shards.rglob("*.tar"))}
    (again,) = redact(RedactRequest(shards=shards, store=store, blackouts=[Blackout(uid, START, END)], by="ethics"))
    assert sum(again.removed.values()) == 0 and sum(again.store_removed.values()) == 0
    assert {p: p.read_bytes() for p in sorted(shards.rglob("*.tar"))} == snapshot


def test_whole_videos_and_lists_and_what_is_refused(corpus: dict[str, Path], tmp_path: Path) -> None:
    shards, store = copies(corpus, tmp_path)
    a, c = uid_of(shards, "kid_a"), uid_of(shards, "kid_c")
    before = tables(store)
    lst = tmp_path / "blackouts.csv"
    lst.write_text(f"video,start,end\nkid_c.mp4,,\n{a},6.9,\n", encoding="utf-8")
    hc, ha = expected_hidden(shards, store, c, 0.0, None), expected_hidden(shards, store, a, 6.9, None)
    (shards / "notes.txt").write_text(f"family of {c} called on Monday\n", encoding="utf-8")  # not egoindex's
    code, out = cli("redact", shards, store, "--list", lst, "--by", "dpo")
    assert code == 0, out
    assert "notes.txt names a redacted video" in out and (shards / "notes.txt").is_file()
    (done,) = [e for e in read_log(shards) if e["event"] == "finished"]
    assert done["unchecked_files"] == [str(shards / "notes.txt")] and done["by"] == "dpo"
    assert byte_search([shards, store], {**needles(hc), **needles(ha)}) == {}
    after = tables(store)
    assert c not in {r["video_uid"] for name in TABLES for r in after[name]}  # the whole video, videos row too
    assert len(after["frames"]) == len(before["frames"]) - len(hc["rows"]["frames"]) - len(ha["rows"]["frames"])
    assert not any(s["videos"] == [c] for p in read_pack_records(shards) for s in p["shards"])
    assert read_transcript(shards, c, kept_only=False) == []
    assert {(b.video_uid, b.start, b.end) for b in read_blackouts(store)} == {(c, 0.0, None), (a, 6.9, None)}
    # the store's build accepts the shards the redaction rewrote, and a rerun of it changes no row
    build_store(corpus["checkpoint"], shards, store)
    assert tables(store) == after

    # refused before anything is touched: an unknown video, both --video and --list, nothing asked
    tree = {str(p): p.stat().st_mtime_ns for p in shards.rglob("*") if p.is_file()}
    for args, said in ((("--video", "kid_z.mp4"), "unknown video"), (("--video", a, "--list", lst), "not both"),
                       ((), "say what to redact"), (("--start", "3"), "--start/--end need --video")):
        code, out = cli("redact", shards, store, *args)
        assert code == 2 and said in out, (args, out)
    assert {str(p): p.stat().st_mtime_ns for p in shards.rglob("*") if p.is_file()} == tree
    bad = tmp_path / "bad.csv"
    bad.write_text("video,start,end\nkid_a.mp4,9,3\n", encoding="utf-8")
    with pytest.raises(RedactionError, match=r"bad.csv:2: .*end 3.0 is before start 9.0"):
        read_blackout_list(bad)
    code, out = cli("redact", shards, store, "--list", bad)
    assert code == 2 and "before start" in out


def test_reingest_and_rebuild_with_the_blackouts_keep_the_range_out(corpus: dict[str, Path], tmp_path: Path) -> None:
    shards, store = copies(corpus, tmp_path)
    uid = uid_of(shards, "kid_b")
    h = expected_hidden(shards, store, uid, 0.9, 2.2)  # frames 1.0-2.0 s, utterances 0 and 1 of kid_b
    redact(RedactRequest(shards=shards, store=store, blackouts=[Blackout(uid, 0.9, 2.2)]))
    blackouts = shards / "_redactions" / "blackouts.json"
    kept = {f"jpg:{k}": s["jpg"] for k, s in frame_samples(shards).items()}

    # the same ingest again into the redacted folder: nothing comes back
    ingest_corpus(corpus["videos"], corpus["captions"], shards)
    assert byte_search([shards], needles(h)) == {}
    # a new ingest of the raw videos with the blackout list: the range never enters it
    fresh = ingest_corpus(corpus["videos"], corpus["captions"], tmp_path / "fresh", blackouts=blackouts)
    assert byte_search([fresh], needles(h)) == {}
    assert set(byte_search([fresh], kept)) == set(kept), "the other frames, byte for byte"
    # a build from shards that still hold the range (a backup), with the blackouts beside them
    backup = tmp_path / "backup"
    shutil.copytree(corpus["shards"], backup)
    (backup / "_redactions").mkdir()
    shutil.copy(blackouts, backup / "_redactions" / "blackouts.json")
    rebuilt = build_store(corpus["checkpoint"], backup, tmp_path / "rebuilt")
    assert byte_search([rebuilt], needles(h)) == {}
    assert not {r["key"] for r in tables(rebuilt)["frames"]} & h["keys"]
    assert list(read_blackouts(rebuilt)) == [Blackout(uid, 0.9, 2.2)]
    original = {r["key"]: r["vector"] for r in tables(corpus["store"])["frames"]}
    assert {r["key"]: r["vector"] for r in tables(rebuilt)["frames"]} == {
        k: v for k, v in original.items() if k not in h["keys"]}


@pytest.mark.slow  # three `egoindex redact` processes (~24 s on two shared cores)
def test_a_killed_redaction_completes_on_rerun(corpus: dict[str, Path], tmp_path: Path) -> None:
    ref_shards, ref_store = copies(corpus, tmp_path / "reference")
    redact(RedactRequest(shards=ref_shards, store=ref_store, blackouts=[Blackout("kid_a.mp4", START, END)]))
    shards, store = copies(corpus, tmp_path / "killed")
    originals = {p.relative_to(shards): p.read_bytes() for p in shards.rglob("*.tar")}
    uid = uid_of(shards, "kid_a")
    h = expected_hidden(shards, store, uid, START, END)
    cmd = ["redact", str(shards), str(store), "--video", "kid_a.mp4", "--start", str(START), "--end", str(END)]
    rows_before = {t: len(r) for t, r in tables(store).items()}
    for n, point in enumerate(("redact-before-mark:3", "redact-table-deleted:1")):
        log = tmp_path / f"kill{n}.log"
        proc = start([sys.executable, "-m", "egoindex.cli.main", *cmd], log,
                     {**ENV, "EGOINDEX_FAILPOINT": point})
        assert proc.wait(timeout=300) == -signal.SIGKILL, log.read_text()[-3000:]
        j = read_journal(shards)
        assert j is not None and not all(s["done"] for s in j["steps"])
        # each shard is whole: the original file or the redacted one, never a mix
        for p in shards.rglob("*.tar"):
            rel = p.relative_to(shards)
            if rel in originals and "_ingest" not in rel.parts:
                assert p.read_bytes() in (originals[rel], (ref_shards / rel).read_bytes()), rel
        # readers see the version egoindex.json names: the old one, complete, until it is published
        st = Store(store)
        assert {t: st.count(t) for t in TABLES} == rows_before
        # ingest and build refuse the folder until the redaction is finished
        with pytest.raises(RedactionError, match="unfinished redaction"):
            ingest_corpus(corpus["videos"], corpus["captions"], shards)
    code, out = cli(*cmd)
    assert code == 0 and "(resumed)" in out, out
    assert read_journal(shards) is None
    assert byte_search([shards, store], needles(h)) == {}
    # the same result as an uninterrupted redaction: shards byte for byte, tables row for row
    assert {p.relative_to(shards): p.read_bytes() for p in shards.rglob("*.tar")} == \
        {p.relative_to(ref_shards): p.read_bytes() for p in ref_shards.rglob("*.tar")}
    got, want = tables(store), tables(ref_store)
    for name in TABLES:
        assert sorted(map(repr, got[name])) == sorted(map(repr, want[name])), name
    assert_indexes_match_tables(store)
    events = [e["event"] for e in read_log(shards)]
    assert events[0] == "started" and events.count("resumed") == 2 and events[-1] == "finished"


def test_delete_source_blanks_the_range_and_keeps_the_timing(corpus: dict[str, Path], tmp_path: Path) -> None:
    shards, store = copies(corpus, tmp_path)
    videos = tmp_path / "videos"
    shutil.copytree(corpus["videos"], videos)
    write_source(shards, videos)
    a, c = uid_of(shards, "kid_a"), uid_of(shards, "kid_c")
    path = videos / "kid_a.mp4"
    before = decode(path)
    redact(RedactRequest(shards=shards, store=store, delete_source=True,
                         blackouts=[Blackout(a, 3.0, 5.0), Blackout(c)]))
    assert not (videos / "kid_c.mp4").exists()  # a wholly redacted video's file is deleted
    after = decode(path)
    assert [t for t, _ in after["frames"]] == [t for t, _ in before["frames"]]  # every frame, at its time
    for (t, m0), (_, m1) in zip(before["frames"], after["frames"]):
        # black exactly the frames on screen during the range: shown from 3.0 s up to 5.0 s
        assert (m1 < 20) == (3.0 <= t <= 5.0) and m0 > 40, (t, m0, m1)
    sound = after["audio"]
    times = np.arange(len(sound)) / RATE
    inside, outside = (times > 3.1) & (times < 4.9), (times < 2.5) | ((times > 5.5) & (times < 7.5))
    assert np.abs(sound[inside]).max() < 1e-3 and np.sqrt((sound[outside] ** 2).mean()) > 0.1
    assert abs(after["duration"] - before["duration"]) < 0.1
    (done,) = [e for e in read_log(shards) if e["event"] == "finished"]
    assert sorted(done["sources"]) == sorted([str(path), str(videos / "kid_c.mp4")])


def decode(path: Path) -> dict:
    """Frame times with each frame's mean level, the audio as mono float32, the duration."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frames = [(round(float(f.pts * vs.time_base), 3), float(f.to_ndarray(format="gray").mean()))
                  for f in c.decode(vs)]
        duration = float(c.duration or 0) / 1e6
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])])
    return {"frames": frames, "audio": audio.astype(np.float32), "duration": duration}
