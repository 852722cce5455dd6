"""``egoindex classify`` / ``probe`` / ``demo-classes`` on the session's demo store (real model,
real videos, no mocks).

What the tiny demo model can and cannot do decides what is asserted: it memorises the demo
corpus' *training* videos but is close to chance on unseen ones (docs/benchmarks.md, "Learning on
the demo corpus"). So zero-shot accuracy is asserted on scenes of training-split videos (that is recall of
what it learned, stated as such), and the linear probe on freshly rendered clips is checked for
working end to end and sane numbers, not for beating chance.

The CLI runs in-process (``CliRunner``) so torch and the model load once per session."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from egoindex.classify import ClassifyError, classify_video, load_head, run_probe
from egoindex.classify.zero_shot import MAX_LABELS, parse_labels
from egoindex.cli.main import app
from egoindex.classify.video_features import features_of_video
from egoindex.demo.scenes import OBJECTS

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROBE_CLASSES = ("red", "blue", "green")
PROBE_PER_CLASS = 4


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def cli(*args: object, code: int = 0) -> str:
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == code, f"exit {r.exit_code} (wanted {code}): {r.output}\n{r.exception!r}"
    return flat(r.output)


def cli_json(*args: object) -> dict:
    """A ``--json`` command's document (anything a library logs before it is ignored)."""
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, f"exit {r.exit_code}: {r.output}\n{r.exception!r}"
    return json.loads(r.output[r.output.index("\n{") + 1 if not r.output.startswith("{") else 0:])


@pytest.fixture(scope="module")
def store(demo_store: Path):
    from egoindex.store import Store

    return Store(demo_store)


@pytest.fixture(scope="module")
def probe_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 colour classes x 4 clips of 3 s, one class folder renamed to a non-ASCII name, plus a
    corrupt video (upper-case extension) that the probe must record as a skip."""
    from egoindex.demo.classes import write_demo_classes

    src = tmp_path_factory.mktemp("demo_classes")
    write_demo_classes(src, by="colour", classes=PROBE_CLASSES, per_class=PROBE_PER_CLASS, seconds=3.0, seed=0)
    ds = tmp_path_factory.mktemp("données") / "colours"
    shutil.copytree(src, ds)
    (ds / "green").rename(ds / "grün")
    (ds / "red" / "broken clip.MP4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return ds


def _train_scenes(store, demo_videos: Path) -> list[tuple[Path, dict]]:
    """(video file, ground-truth scene) for every scene of the store's training-split videos."""
    gt = json.loads((demo_videos / "ground_truth.json").read_text(encoding="utf-8"))
    split = {v["source"]: v["split"] for v in store.videos.values()}
    return [(demo_videos / v["path"], sc) for v in gt["videos"] if split[v["path"]] == "train" for sc in v["scenes"]]


# ----------------------------------------------------------------------------- zero-shot


@pytest.mark.slow
def test_zero_shot_names_the_object_of_training_scenes(store, demo_videos: Path) -> None:
    """Zero-shot over the 10 object names, one classification per scene (start/end of the scene
    from ground_truth.json), on the scenes of the store's *training*-split videos: the videos the
    tiny model was trained on, so this measures whether classify_video recovers what the model
    learned from the narration, not generalisation. Measured with two builds of the session's
    model: 6 and 7 of 19 (0.32, 0.37) against chance 0.10; the bar is 2.5x chance (5 of 19, which
    chance reaches with probability 0.035). On the val videos' 9 scenes it gets 1 (0.11, i.e.
    chance), which is why they are not tested."""
    train = _train_scenes(store, demo_videos)
    assert len(train) >= 10
    labels = list(OBJECTS)
    hits = 0
    for path, sc in train:
        r = classify_video(store, path, labels, start=sc["start"], end=sc["end"], top_k=3)
        assert r.probs.shape == (len(labels),) and r.probs.sum() == pytest.approx(1.0, abs=1e-6)
        assert r.windows and all(sc["start"] - 1e-6 <= s < e <= sc["end"] + 1e-6 for s, e in r.windows)
        hits += r.best == sc["object"]
    acc, chance = hits / len(train), 1 / len(labels)
    print(f"zero-shot object accuracy on {len(train)} training scenes: {acc:.2f} (chance {chance:.2f})")
    assert acc >= 2.5 * chance, f"zero-shot accuracy {acc:.2f} is not clearly above chance {chance:.2f}"


@pytest.mark.slow
def test_classify_matches_the_store_and_reports_clips(store, demo_videos: Path) -> None:
    """A whole video: clip windows and vectors equal the store's own clips (same pixels as the
    ingest, same pooling as the build); the JSON has the documented shape; the decoded-frames path
    gives the same answer."""
    from egoindex.store.schema import vectors_of
    from egoindex.media.sample import frames_at

    uid, row = sorted(store.videos.items())[0]
    path = store.video_path(uid)
    rows = store.table("clips").search().where(f"video_uid = '{uid}'").limit(None).to_arrow()
    order = np.argsort(rows["start"].to_numpy())
    stored = vectors_of(rows["vector"], store.dim)[order]
    f = features_of_video(store.embedder, path, fps=2.0, clip_seconds=store.meta.clip_seconds,
                          clip_stride=store.meta.clip_stride)
    assert [w[0] for w in f.windows] == pytest.approx(rows["start"].to_numpy()[order].tolist())
    assert (stored * f.clips).sum(axis=1).min() > 0.999

    labels = ["ball", "cup", "teddy bear", "star"]
    r = classify_video(store, path, ",".join(labels), top_k=2)
    d = r.as_dict()
    assert d["video"] == str(path) and d["labels"] == labels and d["model"] == store.model_name
    assert d["checkpoint_sha256"] == store.checkpoint_sha256 and d["mode"] == "zero-shot"
    assert len(d["top"]) == 2 and d["top"][0]["prob"] >= d["top"][1]["prob"]
    assert {x["label"] for x in d["top"]} <= set(labels)
    assert len(d["clips"]) == len(stored) and all(len(c["top"]) == 2 for c in d["clips"])
    assert 1.0 < d["logit_scale"] <= 100.0
    json.dumps(d)  # plain JSON types only

    times = [k / 2.0 for k in range(8)]
    frames = [Image.open(io.BytesIO(j)).convert("RGB") for _, _, j in frames_at(path, times)]
    r_frames = classify_video(store, frames, labels, fps=2.0)
    r_file = classify_video(store, path, labels, end=4.0)
    assert r_frames.video == "<8 frames>" and r_frames.info["n_frames"] == r_file.info["n_frames"] == 8
    assert np.abs(r_frames.probs - r_file.probs).max() < 1e-3


def test_label_and_video_errors(store, tmp_path: Path) -> None:
    for bad, why in ((None, "no labels"), ("", "empty"), ([], "no labels"), ("ball,,cup", "empty"),
                     (["ball", " "], "empty"), ("ball,ball", "duplicate"),
                     ([f"c{i}" for i in range(MAX_LABELS + 1)], "more than")):
        with pytest.raises(ClassifyError, match=why):
            parse_labels(bad)
    assert parse_labels(" teddy  bear ,ball") == ["teddy bear", "ball"]
    assert issubclass(ClassifyError, ValueError)

    garbage = tmp_path / "not a video.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    for path in (garbage, empty, tmp_path / "missing.mp4"):
        with pytest.raises(ClassifyError):
            classify_video(store, path, ["ball", "cup"])
    with pytest.raises(ClassifyError, match="no labels"):
        classify_video(store, garbage, [])
    with pytest.raises(ClassifyError, match="template"):
        classify_video(store, garbage, ["ball"], templates=("a photo",))

    out = cli("classify", store.root, garbage, "--labels", "", code=2)
    assert "empty" in out
    out = cli("classify", store.root, garbage, code=2)
    assert "--labels" in out
    out = cli("classify", store.root, garbage, "--labels", "ball,cup", code=2)
    assert "cannot decode" in out or "cannot open" in out


@pytest.mark.slow
def test_classify_cli_zero_shot(store) -> None:
    uid = sorted(store.videos)[0]
    path = store.video_path(uid)
    d = cli_json("classify", store.root, path, "--labels", "ball,cup,star", "--json", "--no-per-clip", "--end", "6")
    assert d["clips"] == [] and len(d["top"]) == 3 and d["end"] == 6.0
    out = cli("classify", store.root, path, "--labels", "ball,cup,star", "--top-k", "2", "--end", "6")
    assert "whole video" in out and "per clip" in out and store.checkpoint_sha256[:12] in out


# ----------------------------------------------------------------------------- probe


@pytest.mark.slow
def test_probe_cli_end_to_end(store, probe_dataset: Path, tmp_path: Path) -> None:
    """Probe on 3 colour classes (one with a non-ASCII name) x 4 fresh clips + one corrupt file:
    report, plots and head are written and sane; a rerun embeds nothing; the head classifies
    through ``classify --head``; a head of another checkpoint is refused."""
    out_dir = tmp_path / "probe"
    out = cli("probe", store.root, probe_dataset, "--out", out_dir, "--no-progress", "--seed", "1")
    assert "test top-1" in out and "skipped" in out and "broken clip.MP4" in out

    rep = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    m, classes = rep["metrics"], rep["meta"]["classes"]
    print("probe metrics:", {k: m[k] for k in ("test_top1", "test_top5", "val_top1", "macro_f1", "C")})
    assert classes == sorted(["blue", "grün", "red"])
    for k in ("test_top1", "test_top5", "val_top1", "macro_f1", "macro_precision", "macro_recall"):
        assert 0.0 <= m[k] <= 1.0, k
    assert m["test_top5"] == 1.0  # 3 classes: top-5 holds them all
    assert m["chance_top1"] == pytest.approx(1 / 3)
    assert (m["n_train"], m["n_val"], m["n_test"]) == (6, 3, 3)
    assert m["n_used"] == 12 and m["n_skipped"] == 1 and m["embedded_now"] == 12
    cm = rep["tables"]["confusion_matrix"]
    assert [r["true"] for r in cm] == classes
    assert all(set(r) == {"true", *classes} for r in cm)
    assert sum(r[c] for r in cm for c in classes) == m["n_test"]
    assert [r["class"] for r in rep["tables"]["per_class"]] == classes
    assert rep["tables"]["skipped"][0]["video"] == "red/broken clip.MP4" and rep["tables"]["skipped"][0]["reason"]
    assert [r["train_per_class"] for r in rep["tables"]["learning_curve"]] == [1, 2]
    for png in ("report_confusion.png", "report_learning_curves.png"):
        data = (out_dir / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    md = (out_dir / "report.md").read_text(encoding="utf-8")
    assert "test_top1" in md and "grün" in md

    with np.load(out_dir / "head.npz", allow_pickle=False) as z:
        assert z["weights"].shape == (3, store.dim) and z["bias"].shape == (3,)
        assert [str(c) for c in z["classes"]] == classes
    meta = json.loads((out_dir / "head.json").read_text(encoding="utf-8"))
    assert meta["model"] == store.model_name and meta["checkpoint_sha256"] == store.checkpoint_sha256
    assert "clip" in meta["pooling"]

    again = run_probe(store, probe_dataset, out_dir, seed=1, progress=False)
    assert again.metrics["embedded_now"] == 0 and again.metrics["from_cache"] == 12
    assert again.metrics["test_top1"] == m["test_top1"] and len(again.skipped) == 1

    video = probe_dataset / "blue" / "blue_000.mp4"
    d = cli_json("classify", store.root, video, "--head", out_dir, "--json")
    assert d["mode"] == "head" and d["labels"] == classes and len(d["top"]) == 3
    assert sum(x["prob"] for x in d["top"]) == pytest.approx(1.0, abs=1e-3)
    head = load_head(out_dir / "head.json")
    r = classify_video(store, video, None, head=head)
    feat = features_of_video(store.embedder, video, fps=head.fps, clip_seconds=head.clip_seconds,
                             clip_stride=head.clip_stride)
    assert r.probs == pytest.approx(head.probs(feat.video), abs=1e-5)
    assert [x["label"] for x in d["top"]][0] == r.best
    sub = classify_video(store, video, ["red", "blue"], head=out_dir)
    assert sub.labels == ["red", "blue"] and sub.probs.sum() == pytest.approx(1.0)
    with pytest.raises(ClassifyError, match="not classes of the head"):
        classify_video(store, video, ["purple"], head=out_dir)

    other = tmp_path / "other_head"
    other.mkdir()
    shutil.copy(out_dir / "head.npz", other / "head.npz")
    meta["checkpoint_sha256"] = "0" * 64
    (other / "head.json").write_text(json.dumps(meta), encoding="utf-8")
    out = cli("classify", store.root, video, "--head", other, code=2)
    assert "trained on features of" in out and "00000000" in out
    meta["model"] = "ViT-B-32"
    (other / "head.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ClassifyError, match="ViT-B-32"):
        classify_video(store, video, None, head=other)


@pytest.mark.slow
def test_probe_refuses_classes_with_too_few_videos(store, probe_dataset: Path, tmp_path: Path) -> None:
    ds = tmp_path / "few"
    for c, n in (("blue", 3), ("red", 2)):
        (ds / c).mkdir(parents=True)
        for p in sorted((probe_dataset / c).glob("*.mp4"))[:n]:
            shutil.copy(p, ds / c / p.name)
    with pytest.raises(ClassifyError, match=r"at least 3 videos.*'red' \(2\)"):
        run_probe(store, ds, tmp_path / "out", progress=False)
    out = cli("probe", store.root, ds, "--out", tmp_path / "out", "--no-progress", code=2)
    assert "at least 3 videos" in out

    # three files, but one does not decode: refused after embedding, naming the skip
    (ds / "red" / "broken.webm").write_bytes(b"\x1aE\xdf\xa3 not really webm")
    with pytest.raises(ClassifyError, match=r"after 1 video\(s\) could not be decoded"):
        run_probe(store, ds, tmp_path / "out", progress=False)
    only_one = tmp_path / "one_class"
    shutil.copytree(ds / "blue", only_one / "blue")
    with pytest.raises(ClassifyError, match="at least 2"):
        run_probe(store, only_one, tmp_path / "out2", progress=False)


def test_demo_classes_is_idempotent_and_refuses_other_settings(tmp_path: Path) -> None:
    from egoindex.demo.classes import write_demo_classes

    out = tmp_path / "dc"
    m = write_demo_classes(out, by="action", classes=["spins"], per_class=2, seconds=1.0)
    clip = out / "spins" / "spins_000.mp4"
    before = clip.stat().st_mtime_ns
    write_demo_classes(out, by="action", classes=["spins", "rolls"], per_class=2, seconds=1.0)
    assert clip.stat().st_mtime_ns == before
    entries = json.loads(m.read_text(encoding="utf-8"))["videos"]
    assert [e["path"] for e in entries] == ["rolls/rolls_000.mp4", "rolls/rolls_001.mp4", "spins/spins_000.mp4",
                                            "spins/spins_001.mp4"]
    assert all(e["action"] == e["class"] for e in entries)
    assert not list(out.rglob(".*"))
    with pytest.raises(ValueError, match="other settings"):
        write_demo_classes(out, by="action", classes=["spins"], per_class=2, seconds=1.0, seed=5)
    with pytest.raises(ValueError, match="unknown"):
        write_demo_classes(tmp_path / "x", by="colour", classes=["mauve"])
    out2 = cli("demo-classes", tmp_path / "cli", "--by", "colour", "--classes", "red", "--per-class", "1",
               "--seconds", "1", "--quiet")
    assert "1 videos by colour" in out2 and (tmp_path / "cli" / "red" / "red_000.mp4").is_file()
