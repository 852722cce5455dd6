"""``egoindex bench``: end-to-end runs on the demo store (generated and official-format EgoMCQ,
MIR from matrices, from EPIC-format files and from the store, retrieval R@K, compare), plus the
small pure pieces (frame sampling at given times, EPIC timestamps, class csv, positives).

The CLI runs in-process (``CliRunner``) so torch and the model load once per session."""

from __future__ import annotations

import csv
import json
import pickle
import shutil
from pathlib import Path

import lancedb
import numpy as np
import pytest
from typer.testing import CliRunner

from egoindex.metrics.egomcq import (
    EGOCLIP_FIELDS,
    EGOCLIP_NOUN_DIM,
    EGOCLIP_VERB_DIM,
    N_CHOICES,
    load_egomcq,
    tag_string,
    write_egomcq,
)
from egoindex.metrics.mir import epic_relevance, mir_metrics
from egoindex.bench.epic_files import parse_timestamp, read_class_csv, read_epic_retrieval_csv
from egoindex.bench.retrieval import retrieval_positives
from egoindex.bench.store_rows import clip_id
from egoindex.errors import BenchError
from egoindex.cli.main import app

runner = CliRunner()


def invoke(*args: object) -> str:
    r = runner.invoke(app, ["bench", *map(str, args)])
    assert r.exit_code == 0, f"exit {r.exit_code}: {r.output}\n{r.exception!r}"
    return flat(r.output)


def flat(text: str) -> str:
    """Output with rich's line wrapping undone (messages may break anywhere between words)."""
    return " ".join(text.split())


def report(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def store_videos(store: Path) -> dict[str, dict]:
    from egoindex.store import Store

    return Store(store).videos


# ----------------------------------------------------------------------------- pure pieces


def test_parse_epic_timestamps() -> None:
    assert parse_timestamp("00:00:01.89") == pytest.approx(1.89)
    assert parse_timestamp("01:02:03.5") == pytest.approx(3723.5)
    assert parse_timestamp("02:03.25") == pytest.approx(123.25)
    with pytest.raises(BenchError):
        parse_timestamp("soon")


def test_read_epic_retrieval_csv(tmp_path: Path) -> None:
    p = tmp_path / "EPIC_100_retrieval_test.csv"
    cols = ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp", "stop_timestamp",
            "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun", "noun_class", "all_nouns",
            "all_noun_classes"]
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerow(["P01_11_0", "P01", "P01_11", "00:00:00.560", "00:00:00.14", "00:00:03.37", "8", "202",
                    "take plate", "take", "0", "plate", "2", "['plate']", "[2]"])
        w.writerow(["P01_11_1", "P01", "P01_11", "00:00:04.000", "00:01:04.00", "00:01:05.50", "3840", "3930",
                    "put plate on table", "put", "1", "plate", "2", "['plate', 'table']", "[2, 7]"])
    rows = read_epic_retrieval_csv(p)
    assert [r["start"] for r in rows] == pytest.approx([0.14, 64.0])
    assert [r["stop"] for r in rows] == pytest.approx([3.37, 65.5])
    assert rows[1]["verb_class"] == 1 and rows[1]["noun_classes"] == [2, 7] and rows[0]["participant_id"] == "P01"


def test_read_class_csv_forms(tmp_path: Path) -> None:
    p = tmp_path / "classes.csv"
    p.write_text("clip_id,verb_class,noun_classes\nv1@0.000-4.000,3,\"[1, 2]\"\nv1@2.000-6.000,4,5 6\n")
    got = read_class_csv(p)
    assert got == {"v1@0.000-4.000": (3, [1, 2]), "v1@2.000-6.000": (4, [5, 6])}
    q = tmp_path / "classes2.csv"
    q.write_text("video_uid,start,end,verb_class,all_noun_classes\nv1,0,4,3,1;2\n")
    assert read_class_csv(q) == {clip_id("v1", 0, 4): (3, [1, 2])}
    (tmp_path / "bad.csv").write_text("clip,verb\nx,1\n")
    with pytest.raises(BenchError, match="needs columns"):
        read_class_csv(tmp_path / "bad.csv")


def test_retrieval_positives_overlap_and_repeated_text() -> None:
    utts = [{"video_uid": "a", "start": 1.0, "end": 3.0, "text": "The ball falls."},
            {"video_uid": "a", "start": 9.0, "end": 10.0, "text": "the ball falls"},
            {"video_uid": "b", "start": 0.0, "end": 1.0, "text": "a cup"}]
    clips = [{"video_uid": "a", "start": 0.0, "end": 4.0}, {"video_uid": "a", "start": 3.0, "end": 7.0},
             {"video_uid": "a", "start": 8.0, "end": 12.0}, {"video_uid": "b", "start": 0.0, "end": 4.0}]
    pos = retrieval_positives(utts, clips)
    # clip 1 starts exactly where utterance 0 ends: no overlap. Utterances 0 and 1 say the same
    # sentence, so each also has the other's clip.
    assert pos.tolist() == [[True, False, True, False], [True, False, True, False], [False, False, False, True]]


def test_frames_at_matches_ingest_sampling(demo_videos: Path) -> None:
    from egoindex.media.discover import find_videos
    from egoindex.media.frames import iter_frames
    from egoindex.media.sample import frames_at

    v = find_videos(demo_videos)[1]  # an .MP4
    ref = list(iter_frames(v.path, 2.0))
    times = [s.t for s in ref][::-1] + [-1.0, 1e6]
    for gap in (20.0, 3.0, 0.5):  # decode straight through, seek now and then, seek before every time
        got = {i: (pts, jpeg) for i, pts, jpeg in frames_at(v.path, times, seek_gap_s=gap)}
        assert sorted(got) == list(range(len(times)))
        for i, s in enumerate(ref[::-1]):
            assert got[i] == (s.pts_time, s.jpeg)  # byte-identical to the ingested frame
        assert got[len(ref)] == (ref[0].pts_time, ref[0].jpeg)  # before the start: the first frame
        assert ref[-1].pts_time <= got[len(ref) + 1][0] < ref[-1].t + 0.5  # past the end: the last frame


# ----------------------------------------------------------------------------- EgoMCQ


@pytest.fixture(scope="module")
def mcq_store(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``demo_store``, or a copy of it with enough val videos for inter-video questions.

    Inter-video questions need five val videos (the answer's and four others). The session demo
    corpus has six videos with a 0.3 val fraction, so two val videos: this copy relabels train
    videos as val (in every table) until five are val, keeping at least one train video so the
    test can check that train videos are never used. The relabelled videos were seen in training,
    so accuracy on this copy is optimistic; it checks the mechanics, not the model."""
    from egoindex.store import Store
    from egoindex.store.filters import in_list

    splits = {uid: row["split"] for uid, row in Store(demo_store).videos.items()}
    val = sorted(u for u, s in splits.items() if s == "val")
    train = sorted(u for u, s in splits.items() if s != "val")
    need = max(0, N_CHOICES - len(val))
    if need == 0:
        return demo_store
    assert len(train) > need, f"the demo corpus has too few videos ({len(splits)}) for inter-video questions"
    store = tmp_path_factory.mktemp("mcq_store") / "store"
    shutil.copytree(demo_store, store)
    # edit the latest table versions, then record them: readers open the versions egoindex.json names
    db = lancedb.connect(str(store / "lance"))
    meta = json.loads((store / "egoindex.json").read_text(encoding="utf-8"))
    where = in_list("video_uid", train[:need])
    for name in ("frames", "clips", "utterances", "videos"):
        table = db.open_table(name)
        table.update(where=where, values={"split": "val"})
        meta["table_versions"][name] = table.version
    (store / "egoindex.json").write_text(json.dumps(meta), encoding="utf-8")
    assert sum(v["split"] == "val" for v in Store(store).videos.values()) == N_CHOICES
    return store


@pytest.fixture(scope="module")
def generated_mcq(mcq_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("mcq")
    mcq = out / "mcq.json"
    output = invoke("mcq", mcq_store, "--generate", 40, "--seed", 0, "--out", mcq, "--out-dir", out / "bench", "-q")
    return {"dir": out, "file": mcq, "report": out / "bench" / "egomcq_generated.json", "output": output}


@pytest.mark.slow
def test_mcq_generate_end_to_end(mcq_store: Path, demo_checkpoint: Path, generated_mcq: dict) -> None:
    from egoindex.core.fsutil import sha256_file

    raw = json.loads(generated_mcq["file"].read_text(encoding="utf-8"))
    assert list(raw) == [str(i) for i in range(len(raw))]
    items = load_egomcq(generated_mcq["file"])  # the official structure
    assert len(items) >= 10
    videos = store_videos(mcq_store)
    used: set[str] = set()
    types = {1: 0, 2: 0}
    for it in items.values():
        types[it["types"]] += 1
        assert set(it) == {"query", "choices", "answer", "types"}
        vids = [it["choices"][str(i)]["video_uid"] for i in range(N_CHOICES)]
        assert vids[it["answer"]] == it["query"]["video_uid"]
        used.update(vids)
        for v in vids + [it["query"]["video_uid"]]:
            assert videos[v]["split"] == "val"  # never a training video
        if it["types"] == 1:
            assert len(set(vids)) == N_CHOICES
        else:
            assert set(vids) == {it["query"]["video_uid"]}
    assert types[1] >= 5 and types[2] >= 1
    assert used == {u for u, row in videos.items() if row["split"] == "val"}
    # Every row carries EgoClip's fields (EgoVLP reads them); the demo's tags come from its ground truth.
    root = Path(json.loads((mcq_store / "egoindex.json").read_text())["videos_root"])
    scenes = _gt_scenes(root)
    for it in items.values():
        for row in [it["query"]] + list(it["choices"].values()):
            assert set(EGOCLIP_FIELDS) <= set(row)
            hit = [sc for sc in scenes[row["video_uid"]]
                   if max(sc["start"], row["clip_start"]) < min(sc["end"], row["clip_end"])]
            assert hit and row["tag_verb"] == tag_string([sc["action"] for sc in hit], EGOCLIP_VERB_DIM)
            assert row["tag_noun"] == tag_string([sc["object"] for sc in hit], EGOCLIP_NOUN_DIM)

    rep = report(generated_mcq["report"])
    sha = sha256_file(demo_checkpoint)
    assert rep["meta"]["checkpoint_sha256"] == sha
    assert rep["meta"]["model"] == json.loads((mcq_store / "egoindex.json").read_text())["model"]
    assert rep["meta"]["clip_vectors"] == "store clips"
    assert rep["meta"]["generated"]["tags"].startswith("demo ground truth")
    m = rep["metrics"]
    assert (m["n_inter"], m["n_intra"]) == (types[1], types[2])
    assert m["inter_acc"] == pytest.approx(100.0 * m["correct_inter"] / m["n_inter"])
    assert len(rep["tables"]["predictions"]) == len(items)
    bench = generated_mcq["dir"] / "bench"
    md = (bench / "egomcq_generated.md").read_text(encoding="utf-8")
    assert sha in md and "inter_acc" in md
    assert (bench / "egomcq_generated_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "inter_acc" in generated_mcq["output"]
    # Most of this copy's val videos were seen in training (see mcq_store), where the demo model
    # tells videos apart: a pipeline that mixes up vectors, windows or labels scores ~20% here.
    assert m["inter_acc"] >= 40.0, m


@pytest.mark.slow
def test_mcq_official_file_from_raw_videos(mcq_store: Path, demo_videos: Path, generated_mcq: dict,
                                           tmp_path: Path) -> None:
    """An official-format file (Ego4D layout: DIR/{video_uid}.mp4, extra keys in the rows)
    scored from the raw videos agrees with the same questions scored from the store's clips."""
    items = load_egomcq(generated_mcq["file"])
    items = {str(i): items[k] for i, k in enumerate(list(items)[:12])}
    for it in items.values():  # official rows carry more keys; they must not matter
        it["query"]["clip_uid"] = "c-" + it["query"]["video_uid"][:8]
        for c in it["choices"].values():
            c["clip_uid"] = "c-" + c["video_uid"][:8]
    official = tmp_path / "egomcq.json"
    write_egomcq(items, official)
    ego4d = tmp_path / "v2" / "full_scale"
    ego4d.mkdir(parents=True)
    for uid, row in store_videos(mcq_store).items():
        (ego4d / f"{uid}.mp4").symlink_to(demo_videos / row["source"])

    out = tmp_path / "bench"
    invoke("mcq", mcq_store, "--egomcq", official, "--videos", ego4d, "--num-frames", 4, "--out-dir", out,
           "--name", "raw", "-q")
    invoke("mcq", mcq_store, "--egomcq", official, "--out-dir", out, "--name", "store", "-q")
    raw, st = report(out / "raw.json"), report(out / "store.json")
    assert raw["meta"]["clip_vectors"] == "raw video" and raw["meta"]["num_frames"] == 4
    assert raw["meta"]["egomcq_sha256"] == st["meta"]["egomcq_sha256"]
    pr, ps = raw["tables"]["predictions"], st["tables"]["predictions"]
    assert [p["key"] for p in pr] == [p["key"] for p in ps] == [str(i) for i in range(12)]
    assert raw["metrics"]["n_total"] == 12 and raw["metrics"]["inter_acc"] is not None
    agree = sum(a["pred"] == b["pred"] for a, b in zip(pr, ps))
    assert agree >= 10, (agree, pr, ps)  # 4 frames at midpoints vs the mean of all the clip's frames
    # same model, other frames (4 midpoints vs every frame of the clip): scores agree closely for
    # most questions; a clip whose frames differ a lot can move more (0.12 seen once)
    gap = sorted(abs(a["score_answer"] - b["score_answer"]) for a, b in zip(pr, ps))
    assert gap[len(gap) // 2] < 0.02 and gap[-1] < 0.25, gap

    # Without DIR/{uid}.mp4 the store's source path under --videos is used.
    invoke("mcq", mcq_store, "--egomcq", official, "--videos", demo_videos, "--out-dir", out, "--name", "raw2", "-q")
    assert report(out / "raw2.json")["metrics"] == raw["metrics"]
    # A video that is neither DIR/{uid}.mp4 nor in the store: a clear error, not a traceback.
    items["0"]["choices"]["0"]["video_uid"] = "not-an-ego4d-uid"
    write_egomcq(items, tmp_path / "unknown.json")
    r = runner.invoke(app, ["bench", "mcq", str(mcq_store), "--egomcq", str(tmp_path / "unknown.json"), "--videos",
                            str(ego4d), "--out-dir", str(out), "-q"])
    assert r.exit_code == 2 and "no video file for not-an-ego4d-uid" in flat(r.output)


@pytest.mark.slow
def test_mcq_type_labels_inter_is_type_1(mcq_store: Path, generated_mcq: dict, tmp_path: Path) -> None:
    """Five identical choices tie, and ties go to choice 0: type-1 items answered 0 are all right,
    type-2 items answered 1 all wrong, so inter = 100 and intra = 0 exactly when 1 -> inter."""
    base = next(iter(load_egomcq(generated_mcq["file"]).values()))
    window = base["choices"][str(base["answer"])]
    items = {}
    for i in range(4):
        kind = 1 if i < 2 else 2
        items[str(i)] = {"query": dict(base["query"]), "choices": {str(j): dict(window) for j in range(N_CHOICES)},
                         "answer": 0 if kind == 1 else 1, "types": kind}
    f = tmp_path / "labels.json"
    write_egomcq(items, f)
    invoke("mcq", mcq_store, "--egomcq", f, "--out-dir", tmp_path, "--name", "labels", "-q")
    m = report(tmp_path / "labels.json")["metrics"]
    assert (m["inter_acc"], m["intra_acc"], m["n_inter"], m["n_intra"]) == (100.0, 0.0, 2, 2)


def test_mcq_needs_one_source(tmp_path: Path) -> None:
    r = runner.invoke(app, ["bench", "mcq", str(tmp_path)])
    assert r.exit_code == 2 and "exactly one of --egomcq" in flat(r.output)


# ----------------------------------------------------------------------------- MIR


@pytest.mark.parametrize("suffix", [".npy", ".pkl"])
def test_mir_from_matrices_equals_metrics(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(7, 5)).astype(np.float32)
    verbs = rng.integers(0, 3, size=7)
    nouns = [set(rng.integers(0, 4, size=2).tolist()) for _ in range(7)]
    rel = epic_relevance(verbs, nouns, verbs[:5], nouns[:5])
    np.save(tmp_path / "sim.npy", sim)
    if suffix == ".npy":
        np.save(tmp_path / "rel.npy", rel)
    else:
        with open(tmp_path / "rel.pkl", "wb") as f:
            pickle.dump(rel, f)
    out = invoke("mir", "--sim", tmp_path / "sim.npy", "--relevance", tmp_path / f"rel{suffix}",
                 "--out-dir", tmp_path / "bench", "--label", "someone-elses-model")
    want = mir_metrics(sim, rel)
    got = report(tmp_path / "bench" / "mir.json")
    assert got["metrics"].keys() == want.keys()
    for k, v in want.items():
        if isinstance(v, float) and np.isnan(v):  # the official mean of a matrix with an undefined row
            assert got["metrics"][k] is None, k
        else:
            assert got["metrics"][k] == pytest.approx(v, abs=1e-12), k
    assert got["meta"]["model"] == "someone-elses-model"
    # Both means side by side, and which one the headline is.
    assert "defined rows" in got["meta"]["mean_rule"]
    means = {r["metric"]: r for r in got["tables"]["means"]}
    assert means["mAP_v2t"]["headline (defined rows)"] == pytest.approx(want["mAP_v2t"], abs=1e-12)
    assert means["mAP_v2t"]["rows_skipped"] == want["rows_skipped_mAP_v2t"]
    assert "mAP_avg" in out and (tmp_path / "bench" / "mir_metrics.png").is_file()
    # A relevance of the wrong shape is refused with a message.
    np.save(tmp_path / "small.npy", rel[:3])
    r = runner.invoke(app, ["bench", "mir", "--sim", str(tmp_path / "sim.npy"), "--relevance", str(tmp_path / "small.npy")])
    assert r.exit_code == 2 and "does not match" in flat(r.output)


def _gt_scenes(demo_videos: Path) -> dict[str, list[dict]]:
    from egoindex.media.discover import video_uid

    gt = json.loads((demo_videos / "ground_truth.json").read_text(encoding="utf-8"))
    return {video_uid(v["path"]): v["scenes"] for v in gt["videos"]}


@pytest.mark.slow
def test_mir_store_proxy_and_classes(demo_store: Path, demo_videos: Path, tmp_path: Path) -> None:
    invoke("mir", demo_store, "--out-dir", tmp_path)
    proxy = report(tmp_path / "mir_store.json")
    assert proxy["meta"]["relevance_kind"].startswith("proxy")
    assert proxy["meta"]["checkpoint_sha256"] == json.loads((demo_store / "egoindex.json").read_text())["checkpoint_sha256"]
    with open(tmp_path / "mir_store_clips.csv", newline="", encoding="utf-8") as f:
        clips = list(csv.DictReader(f))
    assert len(clips) == proxy["metrics"]["n_videos"] == proxy["metrics"]["n_sentences"] > 0
    assert 0 <= proxy["metrics"]["mAP_avg"] <= 100

    # Classes from the demo ground truth: verb = the scene's action, nouns = its object and colour.
    scenes = _gt_scenes(demo_videos)
    vocab: dict[str, int] = {}
    with open(tmp_path / "classes.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["clip_id", "verb_class", "noun_classes"])
        for c in clips[: len(clips) - 2]:  # two clips left unannotated: they are left out
            s, e = float(c["start"]), float(c["end"])
            sc = max(scenes[c["video_uid"]], key=lambda x: min(e, x["end"]) - max(s, x["start"]))
            ids = [vocab.setdefault(x, len(vocab)) for x in (sc["action"], sc["object"], sc["colour"])]
            w.writerow([c["clip_id"], ids[0], json.dumps(ids[1:])])
    out = invoke("mir", demo_store, "--classes", tmp_path / "classes.csv", "--out-dir", tmp_path, "--name", "mir_classes")
    cls = report(tmp_path / "mir_classes.json")
    assert cls["metrics"]["n_videos"] == len(clips) - 2
    assert cls["meta"]["relevance_kind"].startswith("EPIC formula")
    assert any("left out" in n for n in cls["meta"]["notes"]) and "left out" in out


@pytest.mark.slow
def test_mir_epic_files(demo_store: Path, demo_videos: Path, tmp_path: Path) -> None:
    """EPIC-format csv files + relevance pickle + DIR/P01/videos/{video_id}.MP4: segments are
    embedded from the videos and the result equals mir_metrics of the saved similarity."""
    scenes = _gt_scenes(demo_videos)
    videos = store_videos(demo_store)
    vdir = tmp_path / "EPIC-KITCHENS"
    rows, sentences, verbs, nouns = [], [], [], []
    vocab: dict[str, int] = {}
    for n, uid in enumerate(sorted(videos)[:2]):
        vid = f"P01_{n + 1:02d}"
        (vdir / "P01" / "videos").mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_videos / videos[uid]["source"], vdir / "P01" / "videos" / f"{vid}.MP4")
        for k, sc in enumerate(scenes[uid]):
            def ts(x: float) -> str:
                return f"{int(x // 3600):02d}:{int(x % 3600 // 60):02d}:{x % 60:05.2f}"
            v, o = vocab.setdefault(sc["action"], len(vocab)), vocab.setdefault(sc["object"], len(vocab))
            rows.append([f"{vid}_{k}", "P01", vid, ts(sc["start"]), ts(sc["start"]), ts(sc["end"]), 0, 0,
                         sc["narration"], sc["action"], v, sc["object"], o, f"['{sc['object']}']", f"[{o}]"])
            verbs.append(v)
            nouns.append([o])
            if sc["narration"] not in [s[1] for s in sentences]:
                sentences.append((f"{vid}_{k}", sc["narration"]))
    with open(tmp_path / "EPIC_100_retrieval_test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
                    "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
                    "noun_class", "all_nouns", "all_noun_classes"])
        w.writerows(rows)
    with open(tmp_path / "EPIC_100_retrieval_test_sentence.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["narration_id", "narration"])
        w.writerows(sentences)
    sent_idx = {s[1]: i for i, s in enumerate(sentences)}
    s_verbs = [verbs[[r[8] for r in rows].index(s[1])] for s in sentences]
    s_nouns = [nouns[[r[8] for r in rows].index(s[1])] for s in sentences]
    rel = epic_relevance(verbs, nouns, s_verbs, s_nouns)
    with open(tmp_path / "relevance.pkl", "wb") as f:
        pickle.dump(rel, f)
    out = tmp_path / "bench"
    invoke("mir", demo_store, "--epic-csv", tmp_path / "EPIC_100_retrieval_test.csv", "--sentences",
           tmp_path / "EPIC_100_retrieval_test_sentence.csv", "--relevance", tmp_path / "relevance.pkl",
           "--videos", vdir, "--out-dir", out, "-q")
    rep = report(out / "epic_mir.json")
    sim = np.load(out / "epic_mir_sim.npy")
    assert sim.shape == (len(rows), len(sentences)) == (rep["metrics"]["n_videos"], rep["metrics"]["n_sentences"])
    for k, v in mir_metrics(sim, rel).items():
        assert rep["metrics"][k] == (None if isinstance(v, float) and np.isnan(v) else pytest.approx(v)), k
    # Each segment's own narration outscores a random one on average (the model sees the scene).
    own = np.array([sim[i, sent_idx[r[8]]] for i, r in enumerate(rows)])
    assert own.mean() > sim.mean()


# ----------------------------------------------------------------------------- retrieval, compare


@pytest.mark.slow
def test_retrieval_and_compare(demo_store: Path, generated_mcq: dict, tmp_path: Path) -> None:
    out = invoke("retrieval", demo_store, "--out-dir", tmp_path)
    rep = report(tmp_path / "retrieval.json")
    m = rep["metrics"]
    for d in ("t2c", "c2t"):
        for k in (1, 5, 10):
            assert 0.0 <= m[f"{d}_R@{k}"] <= 100.0
        assert m[f"{d}_R@1"] <= m[f"{d}_R@5"] <= m[f"{d}_R@10"]
        assert m[f"{d}_median_rank"] >= 1
    assert m["t2c_n_queries"] == m["n_texts"] > 0 and m["c2t_n_queries"] == m["n_clips"]
    assert m["t2c_queries_skipped"] == 0 and m["c2t_queries_skipped"] == 0
    assert 0 < m["t2c_chance_R@1"] < m["t2c_chance_R@5"] <= 100 and 0 < m["c2t_chance_R@1"] < 100
    assert "t2c_R@1" in out
    for p in ("recall", "t2c_ranks", "c2t_ranks"):
        assert (tmp_path / f"retrieval_{p}.png").is_file()

    # Two "checkpoints" side by side: a second report with another model label.
    other = json.loads(generated_mcq["report"].read_text(encoding="utf-8"))
    other["meta"]["model"], other["meta"]["checkpoint_sha256"] = "other-model", "f" * 64
    (tmp_path / "other.json").write_text(json.dumps(other))
    out = invoke("compare", generated_mcq["report"], tmp_path / "other.json", "--out", tmp_path / "cmp.md")
    sha = report(generated_mcq["report"])["meta"]["checkpoint_sha256"][:8]
    assert f"@ {sha}" in out and "other-model @ ffffffff" in out and "inter_acc" in out
    assert flat((tmp_path / "cmp.md").read_text()) == out
    r = runner.invoke(app, ["bench", "compare", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and "no such report" in flat(r.output)


# ----------------------------------------------------------------------------- forced choice, lined up


@pytest.mark.slow
def test_forced_choice_runs_on_one_trials_file_line_up_in_compare(demo_videos: Path, demo_shards: Path,
                                                                   demo_store: Path, tmp_path: Path) -> None:
    """Two real forced-choice runs (the demo store with two prompt sets) on one trials file: the
    second replays the first's trials exactly, and `bench compare` pairs them item by item; a run
    on other trials (another seed) is refused next to them unless --allow-mixed."""
    from typer.testing import CliRunner as Runner

    r = Runner().invoke(app, ["demo-labeled", str(tmp_path / "lab"), "--from", str(demo_videos), "--shards",
                              str(demo_shards), "--split", "val", "--by", "colour", "-q"])
    assert r.exit_code == 0, r.output
    trials = tmp_path / "trials.json"
    invoke("forced-choice", demo_store, "--labeled", tmp_path / "lab", "--trials-out", trials, "--out-dir",
           tmp_path, "--name", "plain", "-q")
    invoke("forced-choice", demo_store, "--labeled", tmp_path / "lab", "--trials-file", trials, "--out-dir",
           tmp_path, "--name", "look", "--template", "look, the {} one", "-q")
    plain, look = report(tmp_path / "plain.json"), report(tmp_path / "look.json")
    assert plain["meta"]["trials_sha256"] == look["meta"]["trials_sha256"]
    pt, lt = plain["tables"]["trials"], look["tables"]["trials"]
    assert [(t["id"], t["target"]) for t in pt] == [(t["id"], t["target"]) for t in lt]  # the same trials
    out = invoke("compare", tmp_path / "plain.json", tmp_path / "look.json", "--out", tmp_path / "cmp.md")
    assert "paired on the same trials" in out
    row = next(line for line in (tmp_path / "cmp.md").read_text().splitlines() if "| trials |" not in line
               and line.startswith("| ") and "vs " not in line and line.count("|") == 9)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[1]) == len(pt)
    diff = 100.0 * (sum(t["credit"] for t in lt) - sum(t["credit"] for t in pt)) / len(pt)
    assert float(cells[4]) == pytest.approx(diff, abs=0.006)
    assert float(cells[4]) == pytest.approx(look["metrics"]["acc"] - plain["metrics"]["acc"], abs=0.006)

    invoke("forced-choice", demo_store, "--labeled", tmp_path / "lab", "--seed", "1", "--trials-out",
           tmp_path / "trials1.json", "--out-dir", tmp_path, "--name", "seed1", "-q")
    res = runner.invoke(app, ["bench", "compare", str(tmp_path / "plain.json"), str(tmp_path / "seed1.json")])
    assert res.exit_code == 2 and "not scored on the same items" in flat(res.output)
    assert "| acc |" in invoke("compare", tmp_path / "plain.json", tmp_path / "seed1.json", "--allow-mixed")
