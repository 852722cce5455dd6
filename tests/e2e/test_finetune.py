"""``egoindex finetune`` end to end on real rendered videos (demo-classes --by motion), real decoding, a real
backbone: every report file, classify --model, ONNX / TorchScript parity, and a killed run that resumes to
the same final metrics. Tiny on purpose (4 frames of 32 px, 12 videos): these tests check the machinery,
not accuracy (README, "Motion needs a video backbone", has the measured comparison)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from egoindex.cli.main import app
from egoindex.errors import TrainError
from egoindex.finetune.config import FinetuneConfig, RunOptions
from egoindex.finetune.loop import run
from egoindex.media.labelled import video_set_sha256
from egoindex.model.video_checkpoint import load_classifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--backbone", "r3d-tiny", "--num-frames", "4", "--image-size", "32", "--fps", "4", "--batch-size", "2",
        "--flip", "0", "--test-clips", "2", "--threads", "1", "--no-progress"]
REPORT_PNGS = ("confusion", "confusion_normalised", "learning_curves", "class_distribution", "sample_predictions",
               "saliency")
#: metrics that measure time, not the result
TIMING = {"test_clips_per_s"}


def cli(*args: object, code: int = 0) -> str:
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == code, f"exit {r.exit_code} (wanted {code}): {r.output}\n{r.exception!r}"
    return " ".join(r.output.split())


@pytest.fixture(scope="module")
def motion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 rendered motion clips (3 per direction): one each for train, val and test per class."""
    out = tmp_path_factory.mktemp("motion") / "classes"
    cli("demo-classes", out, "--by", "motion", "--per-class", "3", "--seconds", "2", "-q")
    return out


@pytest.fixture(scope="module")
def finished(motion: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "run"
    text = cli("finetune", motion, out, *TINY, "--epochs", "2")
    assert "test top-1 (2 views)" in text and "train 4, val 4, test 4" in text
    return out


def test_every_report_file_is_written_and_not_empty(finished: Path) -> None:
    for name in ("best.pt", "last.pt", "config.json", "split.json", "metrics.jsonl", "result.json"):
        assert (finished / name).stat().st_size > 0, name
    assert list((finished / "tensorboard").glob("events.out.tfevents.*"))
    rep = finished / "report"
    for png in REPORT_PNGS:
        data = (rep / f"report_{png}.png").read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000, png
    doc = json.loads((rep / "report.json").read_text(encoding="utf-8"))
    m = doc["metrics"]
    assert m["n_test"] == 4 and m["test_views"] == 2 and m["chance_top1"] == 0.25 and m["epochs_run"] == 2
    assert 0.0 <= m["test_top1"] <= m["test_top5"] <= 1.0
    assert {r["class"] for r in doc["tables"]["per_class"]} == {"slides left", "slides right", "rises", "sinks"}
    assert len(doc["tables"]["test_predictions"]) == 4 and len(doc["tables"]["history"]) == 2
    assert doc["meta"]["checkpoint_sha256"] == load_classifier(finished / "best.pt").sha256
    split = json.loads((finished / "split.json").read_text(encoding="utf-8"))
    tests = [v["video"] for v in split["videos"] if v["split"] == "test"]
    # what `bench compare` pairs a probe and a fine-tune on: the same test videos
    assert doc["meta"]["bench"] == "video_classification" and doc["meta"]["test_set_sha256"] == video_set_sha256(tests)
    md = (rep / "report.md").read_text(encoding="utf-8")
    assert "## per_class" in md and "![saliency](report_saliency.png)" in md
    assert "precision" in (rep / "classification_report.txt").read_text(encoding="utf-8")
    assert len((finished / "metrics.jsonl").read_text(encoding="utf-8").splitlines()) == 2


def test_classify_with_the_fine_tuned_model(finished: Path, motion: Path) -> None:
    video = sorted((motion / "rises").glob("*.mp4"))[0]
    r = runner.invoke(app, ["classify", "--model", str(finished / "best.pt"), str(video), "--json", "--window", "1"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["mode"] == "finetuned" and sorted(d["labels"]) == ["rises", "sinks", "slides left", "slides right"]
    assert len(d["top"]) == 4 and abs(sum(t["prob"] for t in d["top"]) - 1.0) < 1e-3
    assert [(c["start"], c["end"]) for c in d["clips"]] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]
    assert "error" in cli("classify", "--model", finished / "best.pt", code=2)  # no video
    assert "--model BEST VIDEO" in cli("classify", video, code=2)  # neither a store nor a model
    assert "cannot read" in cli("classify", "--model", finished / "split.json", video, code=2)  # not a checkpoint


def test_export_matches_pytorch_and_the_example_needs_only_onnxruntime(finished: Path, tmp_path: Path) -> None:
    text = cli("finetune", "export", finished, "--onnx", "--torchscript", "--out", tmp_path)
    assert "onnx:" in text and "torchscript:" in text
    meta = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    assert meta["max_abs_diff"]["onnx"] < 1e-4 and meta["max_abs_diff"]["torchscript"] < 1e-4
    assert meta["parity_inputs"].startswith("a test clip")
    # the example in a clean interpreter: it must import nothing of egoindex, torch or PIL
    probe = ("import sys, runpy; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
             "bad = [m for m in ('torch', 'egoindex', 'PIL') if m in sys.modules]; assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "onnx_example.py"), str(tmp_path / "model.onnx"),
                          str(tmp_path / "sample_clip.npy")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    loaded = load_classifier(finished / "best.pt")
    frames = np.load(tmp_path / "sample_clip.npy")
    x = torch.from_numpy(frames.astype(np.float32) / 255.0)
    x = (x - torch.tensor(meta["mean"])) / torch.tensor(meta["std"])
    with torch.no_grad():
        want = loaded.model(x.permute(0, 3, 1, 2)[None]).numpy()[0]
    assert np.abs(np.array(got["logits"]) - want).max() < 1e-4
    assert got["top"][0]["label"] == loaded.classes[int(want.argmax())]


def _cfg() -> FinetuneConfig:
    return FinetuneConfig(backbone="r3d-tiny", num_frames=4, image_size=32, fps=4.0, batch_size=2, flip=0.0,
                          test_clips=2, epochs=3, patience=0)


def test_a_killed_fine_tune_resumes_to_the_same_final_metrics(motion: Path, tmp_path: Path) -> None:
    ref = run(motion, tmp_path / "ref", _cfg(), RunOptions(threads=1, progress=False, tensorboard=False))
    # the same run in another process, SIGKILLed right after its 3rd save of last.pt: two steps an epoch, saved
    # after step 1, epoch 1, step 3: killed in the middle of epoch 2
    args = [sys.executable, "-m", "egoindex", "finetune", str(motion), str(tmp_path / "killed"), *TINY,
            "--epochs", "3", "--patience", "0", "--save-every-steps", "1", "--no-tensorboard"]
    env = {**os.environ, "EGOINDEX_FAILPOINT": "finetune-saved:3", "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "killed" / "last.pt").is_file() and not (tmp_path / "killed" / "result.json").exists()
    with pytest.raises(TrainError, match="pass --resume"):
        run(motion, tmp_path / "killed", _cfg(), RunOptions(threads=1, progress=False))
    other = replace(_cfg(), lr=1e-3)
    with pytest.raises(TrainError, match=r"lr: 0\.0005 -> 0\.001"):
        run(motion, tmp_path / "killed", other, RunOptions(threads=1, progress=False, resume=True))
    again = run(motion, tmp_path / "killed", _cfg(), RunOptions(threads=1, progress=False, resume=True,
                                                                tensorboard=False))
    assert {k: v for k, v in again.metrics.items() if k not in TIMING} == \
        {k: v for k, v in ref.metrics.items() if k not in TIMING}
    assert [h["val_top1"] for h in again.history] == [h["val_top1"] for h in ref.history]
    a, b = load_classifier(tmp_path / "ref" / "best.pt"), load_classifier(tmp_path / "killed" / "best.pt")
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k


@pytest.mark.slow
def test_two_cpu_processes_fine_tune_under_torchrun(motion: Path, tmp_path: Path) -> None:
    """``--nproc-per-node 2`` re-runs the command under torchrun: two gloo ranks share the epoch and the test."""
    out = tmp_path / "ddp"
    args = [sys.executable, "-m", "egoindex", "finetune", str(motion), str(out), *TINY, "--epochs", "1",
            "--no-tensorboard", "--nproc-per-node", "2"]
    done = subprocess.run(args, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert cfg["world_size"] == 2 and cfg["steps_per_epoch"] == 1  # 4 train clips / (2 per rank x 2 ranks)
    m = json.loads((out / "result.json").read_text(encoding="utf-8"))["metrics"]
    assert m["n_test"] == 4 and m["steps"] == 1 and (out / "report" / "report.md").is_file()


def test_motion_classes_are_one_scene_in_four_directions(motion: Path) -> None:
    videos = json.loads((motion / "classes.json").read_text(encoding="utf-8"))["videos"]
    by_clip: dict[str, list[dict]] = {}
    for v in videos:
        by_clip.setdefault(v["path"].rsplit("_", 1)[1], []).append(v)
    assert len(by_clip) == 3
    for clips in by_clip.values():
        assert sorted(c["motion"] for c in clips) == ["rises", "sinks", "slides left", "slides right"]
        assert len({(c["room"], c["object"], c["colour"]) for c in clips}) == 1  # only the direction differs


def test_workers_neither_change_a_clip_nor_forget_their_cache(motion: Path) -> None:
    from egoindex.finetune.data import ClipDataset, MicroBatches, epoch_plan
    from egoindex.media.clip_sampling import ClipSampling
    from egoindex.media.clips import ClipCache
    from egoindex.media.labelled import load_video_set

    vs = load_video_set(motion)
    train = vs.part("train")
    s = ClipSampling(num_frames=4, mode="random", fps=4.0, short_side=36, image_size=32)
    aug = {"crop_scale": 0.5, "flip": 0.5, "jitter": 0.2}
    here = ClipDataset(train, vs.classes, s, [0.5] * 3, [0.25] * 3, ClipCache(2**28), seed=7, augment=aug)
    pooled = MicroBatches(ClipDataset(train, vs.classes, s, [0.5] * 3, [0.25] * 3, ClipCache(2**28), seed=7,
                                      augment=aug), workers=2)
    for epoch in (0, 1):
        plan = epoch_plan(len(train), epoch, 7, 2, 1, 0, 1).micro_batches(2)
        a = list(MicroBatches(here, 0).epoch(plan))
        b = list(pooled.epoch(plan))
        assert len(a) == len(b) == 2
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # another epoch draws other clips of the same videos
    again = list(MicroBatches(here, 0).epoch(epoch_plan(len(train), 2, 7, 2, 1, 0, 1).micro_batches(2)))
    assert not torch.equal(torch.cat([x for x, _ in again]), torch.cat([x for x, _ in a]))
    assert here.cache.misses == len(train) and here.cache.hits > 0  # decoded once, then from the cache


def test_the_server_classifies_uploads_with_the_fine_tuned_model(demo_store: Path, finished: Path,
                                                                 motion: Path) -> None:
    from fastapi.testclient import TestClient

    from egoindex.serve import create_app
    from egoindex.store import Store

    loaded = load_classifier(finished / "best.pt")
    c = TestClient(create_app(Store(demo_store), classifier=loaded), raise_server_exceptions=False)
    assert c.get("/health").json()["classifier"] == loaded.classes
    video = sorted((motion / "sinks").glob("*.mp4"))[0]
    for labels, mode in (("", "finetuned"), ("ball,cup", "zero-shot")):  # labels typed: zero-shot as before
        with open(video, "rb") as f:
            r = c.post("/api/classify", files={"video": (video.name, f, "video/mp4")}, data={"labels": labels})
        assert r.status_code == 200, r.text
        assert r.json()["mode"] == mode and r.json()["video"] == video.name
    assert set(t["label"] for t in r.json()["top"]) == {"ball", "cup"}


def test_the_probe_takes_any_backbones_features(motion: Path, finished: Path, demo_checkpoint: Path,
                                                tmp_path: Path) -> None:
    """`egoindex probe DATASET --backbone NAME | --model BEST`: no store; the feature cache is keyed
    by backbone, weights fingerprint (random:SEED) and sampling, so changing any re-embeds; zero-shot
    takes only backbones with a text tower."""
    out = tmp_path / "probe"
    n = len(list(motion.rglob("*.mp4")))

    def probe(*extra: object) -> dict:
        cli("probe", motion, "--out", out, "--no-progress", *extra)
        return json.loads((out / "report.json").read_text())

    r = probe("--backbone", "r3d-tiny", "--num-frames", "4")
    feats = r["meta"]["features"]
    assert feats["backbone"] == "r3d-tiny" and feats["weights_sha256"] == "random:0"
    assert feats["sampling"]["num_frames"] == 4 and feats["views"] == 3
    assert r["metrics"]["embedded_now"] == n and r["metrics"]["n_used"] == n
    for name in ("report.md", "report_confusion.png", "report_learning_curves.png", "head.npz"):
        assert (out / name).stat().st_size > 0, name
    first = json.loads((out / "report.json").read_text())["tables"]["test_predictions"]

    again = probe("--backbone", "r3d-tiny", "--num-frames", "4")  # the same features: all from the cache
    assert again["metrics"]["embedded_now"] == 0 and again["metrics"]["from_cache"] == n
    assert again["tables"]["test_predictions"] == first
    for extra in (("--backbone-seed", "1"), ("--num-frames", "2")):  # other weights, other sampling: embedded anew
        got = probe("--backbone", "r3d-tiny", *(("--num-frames", "4") if extra[0] != "--num-frames" else ()), *extra)
        assert got["metrics"]["embedded_now"] == n and got["metrics"]["from_cache"] == 0, extra
    assert len(list((out / "features").glob("*.npz"))) == 3 * n

    tuned = probe("--model", finished / "best.pt")
    assert tuned["meta"]["features"]["kind"] == "finetuned" and tuned["metrics"]["embedded_now"] == n
    assert tuned["meta"]["features"]["weights_sha256"] == load_classifier(finished / "best.pt").sha256

    assert "STORE DATASET" in cli("probe", motion, "--out", out, code=2)
    assert "not both" in cli("probe", motion, motion, "--out", out, "--backbone", "r3d-tiny", code=2)

    video = sorted(motion.rglob("*.mp4"))[0]
    assert "no text tower" in cli("classify", "--backbone", "videomae-tiny", video, "--labels", "up,down", code=2)
    r = runner.invoke(app, ["classify", "--backbone", "clip-frames:ego-tiny-vit", "--weights", str(demo_checkpoint),
                            str(video), "--labels", "left,right,up,down", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert sorted(t["label"] for t in got["top"]) == ["down", "left", "right", "up"]
    assert abs(sum(t["prob"] for t in got["top"]) - 1) < 1e-4
