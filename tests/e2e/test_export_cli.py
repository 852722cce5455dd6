"""``egoindex export nlq / mq / demo-annotations`` end to end on the demo store.

The official behaviour is restated here, independently of ``egoindex.export``: the feature count
(``_num_fvs`` of Ego4D's extractor), the window of each row (30 fps timeline, 32/16 frames,
back-padded last window), a loader that does what VSLNet does with the files (``glob``,
``feature_shapes.json``, ``timestamps / fps``, ``time_to_index``) and VSGN's clip slice.  The
NLQ / moments files are the ones the project generates for the demo corpus.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from egoindex.cli.main import app
from egoindex.media.discover import video_uid
from egoindex.export.backend import VideoRef, resolve_videos
from egoindex.export.demo_annotations import demo_moments_annotations
from egoindex.export.grid import FeatureGrid, store_density
from egoindex.export.nlq import load_nlq_annotations, split_name_of
from egoindex.store import Store

RATE = 1.875

runner = CliRunner()


def cli(*args: object) -> str:
    res = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def cli_fails(*args: object) -> str:
    res = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code != 0, res.output
    return " ".join(res.output.split())


# ---------------------------------------------------------------------------------------------
# independent restatements of the official code


def official_num_features(duration: float, fps: float = 30.0, window: int = 32, stride: int = 16) -> int:
    """Ego4D ``extract_features.py`` ``_num_fvs`` with ``backpad_last``, frames = canonical frame count."""
    frames = int(math.floor(duration * fps + 0.5))
    n = frames - window
    if n < 0:
        return 1
    return n // stride + 1 + (1 if n % stride else 0)


def official_window(i: int, n_rows: int, duration: float, fps: float = 30.0, window: int = 32, stride: int = 16):
    """Seconds seen by row ``i`` (the last row is backed up to end at the video's last frame)."""
    frames = int(math.floor(duration * fps + 0.5))
    start = i * stride
    if i == n_rows - 1 and frames - window >= 0 and (frames - window) % stride:
        start = frames - window
    return start / fps, min((start + window) / fps, duration)


def vslnet_time_to_index(start_time, end_time, num_units, duration):
    """VSLNet ``utils/data_util.py`` ``time_to_index`` (float32 unit grid, IoU argmax)."""
    s_times = np.arange(0, num_units).astype(np.float32) / float(num_units) * duration
    e_times = np.arange(1, num_units + 1).astype(np.float32) / float(num_units) * duration
    cand = np.stack([np.repeat(s_times[:, None], num_units, axis=1), np.repeat(e_times[None, :], num_units, axis=0)],
                    axis=2).reshape(-1, 2).tolist()
    cand = np.asarray(cand)
    inter = np.maximum(0.0, np.minimum(cand[:, 1], end_time) - np.maximum(cand[:, 0], start_time))
    union = np.maximum(1e-12, np.maximum(cand[:, 1], end_time) - np.minimum(cand[:, 0], start_time))
    overlaps = (inter / union).reshape(num_units, num_units)
    return int(np.argmax(overlaps) // num_units), int(np.argmax(overlaps) % num_units)


def vslnet_load(feature_dir: Path, dataset_json: Path):
    """VSLNet's load_video_features + data_gen records (timestamps / fps -> time_to_index) + float32 cast."""
    feats = {}
    for filename in glob.glob(os.path.join(str(feature_dir), "*.pt")):
        vid = filename.split("/")[-1].split(".")[0]
        feats[vid] = np.asarray(torch.load(filename, weights_only=True).numpy(), dtype=np.float32)
    lens = json.loads((feature_dir / "feature_shapes.json").read_text())
    records = []
    for vid, item in json.loads(dataset_json.read_text()).items():
        fps = float(item["fps"])
        duration = float(item["num_frames"]) / fps
        for ts, exact, sentence in zip(item["timestamps"], item["exact_times"], item["sentences"]):
            s_time = max(0.0, float(ts[0]) / fps)
            e_time = min(float(ts[1]) / fps, duration)
            s_ind, e_ind = vslnet_time_to_index(s_time, e_time, lens[vid], duration)
            records.append({"vid": vid, "s_ind": s_ind, "e_ind": e_ind, "exact": exact, "sentence": sentence,
                            "v_len": lens[vid], "fps": fps})
    return feats, lens, records


def vsgn_clip_rows(v_feat: torch.Tensor, clip: dict) -> tuple[int, int]:
    """VSGN ``MQ/Utils/dataset.py`` ``_get_video_data``: fps = T / v_duration, [int(s*fps) : min(int(e*fps), T-1) + 1]."""
    num_frms = v_feat.shape[0]
    fps = num_frms / clip["v_duration"]
    return int(clip["parent_start_sec"] * fps), min(int(clip["parent_end_sec"] * fps), num_frms - 1) + 1


def store_frames(store: Store, uid: str) -> tuple[np.ndarray, np.ndarray]:
    rows = store.table("frames").search().where(f"video_uid = '{uid}'").select(["t", "vector"]).limit(None).to_arrow()
    t = rows["t"].to_numpy()
    v = np.stack(rows["vector"].to_numpy(zero_copy_only=False)).astype(np.float32)
    order = np.argsort(t)
    return t[order], v[order]


def check_layout(feature_dir: Path, dim: int) -> dict[str, np.ndarray]:
    """float32 [N, D] CPU tensors, no zero rows, unit rows, and feature_shapes.json agreeing with the files."""
    shapes = json.loads((feature_dir / "feature_shapes.json").read_text())
    files = sorted(p.stem for p in feature_dir.glob("*.pt"))
    assert files == sorted(shapes)
    out = {}
    for uid in files:
        t = torch.load(feature_dir / f"{uid}.pt", weights_only=True)
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
        assert t.ndim == 2 and t.shape == (shapes[uid], dim)
        a = t.numpy()
        assert np.isfinite(a).all() and (np.abs(a).sum(axis=1) > 0).all(), f"{uid} has zero rows"
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
        out[uid] = a
    return out


# ---------------------------------------------------------------------------------------------
# fixtures: the demo annotations and the exports (module scope: each export runs once)


@pytest.fixture(scope="module")
def store(demo_store: Path) -> Store:
    return Store(demo_store)


@pytest.fixture(scope="module")
def ground_truth(demo_videos: Path) -> dict:
    return json.loads((demo_videos / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def annotations(demo_videos: Path, demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo_ego4d")
    cli("export", "demo-annotations", demo_videos, out, "--store", demo_store)
    return out


@pytest.fixture(scope="module")
def nlq_store(demo_store: Path, annotations: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("nlq_store") / "vslnet"
    args = [a for p in sorted(annotations.glob("nlq_*.json")) for a in ("-a", p)]
    text = cli("export", "nlq", demo_store, out, *args, "--quiet")
    return out, text


# ---------------------------------------------------------------------------------------------
# the demo annotation files


def test_demo_annotation_files_follow_store_splits(annotations: Path, store: Store, ground_truth: dict) -> None:
    names = sorted(p.name for p in annotations.iterdir())
    splits = sorted({r["split"] for r in store.videos.values()})
    assert names == sorted([f"nlq_{s}.json" for s in splits] + [f"moments_{s}.json" for s in splits])
    scenes = {video_uid(v["path"]): v["scenes"] for v in ground_truth["videos"]}
    seen = set()
    for split in splits:
        nlq = load_nlq_annotations(annotations / f"nlq_{split}.json")
        for video in nlq["videos"]:
            uid = video["video_uid"]
            assert video["split"] == split == store.videos[uid]["split"]  # the store's own split
            (clip,) = video["clips"]
            assert clip["clip_uid"] == uid and clip["video_start_sec"] == 0.0
            queries = clip["annotations"][0]["language_queries"]
            assert len(queries) == len(scenes[uid])
            assert len({q["query"] for q in queries}) == len(queries)  # unique within the clip
            seen.add(uid)
    assert seen == set(store.videos)


# ---------------------------------------------------------------------------------------------
# NLQ from the store


def test_nlq_export_from_store_covers_each_clip_on_the_official_grid(nlq_store, store: Store, annotations: Path) -> None:
    out, text = nlq_store
    feats = check_layout(out / "features", store.dim)
    assert set(feats) == set(store.videos)  # demo clips are whole videos: clip_uid == video_uid
    summary = json.loads((out / "export_summary.json").read_text())
    assert summary["grid"]["rate"] == RATE and summary["export"]["dim"] == store.dim
    assert summary["sources"] == {"store": len(store.videos)}  # 2 fps store frames >= 1.875 features/s
    assert "store" in text and f"--video_feature_dim {store.dim}" in text
    for uid, a in feats.items():
        duration = store.videos[uid]["duration"]
        assert a.shape[0] == official_num_features(duration)  # N as the official extractor counts it
        rec = summary["videos"][uid]
        assert rec["source"] == "store" and rec["features"] == a.shape[0] and rec["frame_rate"] >= RATE
        # each row is the normalised mean of the store frames inside its window: uniform cover, tail included
        t, v = store_frames(store, uid)
        for i in range(a.shape[0]):
            s, e = official_window(i, a.shape[0], duration)
            m = (t >= s) & ((t <= e) if i == a.shape[0] - 1 else (t < e))
            assert m.any(), f"row {i} of {uid} ([{s}, {e}]) has no frame"
            mean = v[m].mean(axis=0)
            np.testing.assert_allclose(a[i], mean / np.linalg.norm(mean), atol=1e-5)
        s_last, e_last = official_window(a.shape[0] - 1, a.shape[0], duration)
        assert e_last == pytest.approx(duration, abs=1 / 30) and s_last >= 0

    # VSLNet opens train/val/test: all three exist, a split without an annotation file is {}.
    assert sorted(p.name for p in (out / "dataset").iterdir()) == ["test.json", "train.json", "val.json"]
    assert json.loads((out / "dataset" / "test.json").read_text()) == {}
    assert "test" in summary["export"]["empty_splits"]
    for split in ("train", "val"):
        data = json.loads((out / "dataset" / f"{split}.json").read_text())
        nlq = load_nlq_annotations(annotations / f"nlq_{split}.json")
        bounds = {c["clip_uid"]: (c["video_start_sec"], c["video_end_sec"]) for v in nlq["videos"] for c in v["clips"]}
        for uid, item in data.items():
            # num_frames as prepare_ego4d_dataset.py computes it: int(int(clip duration * fps)), not the rows
            s, e = bounds[uid]
            assert item["fps"] == RATE and item["num_frames"] == math.ceil(int((e - s) * RATE))

    # query-text features, sentence level, keyed by the query text of the annotations
    npy = np.load(out / "text" / "sentence.npy", allow_pickle=True).item()
    pt = torch.load(out / "text" / "sentence.pt", weights_only=True)
    assert set(npy) == set(pt) and len(npy) >= len(store.videos)
    q = next(iter(npy))
    assert npy[q].shape == (1, store.dim) and npy[q].dtype == np.float32
    np.testing.assert_allclose(npy[q][0], store.text_vector(q), atol=1e-5)


def test_vslnet_loader_maps_narrated_moments_to_their_rows(nlq_store, annotations: Path, ground_truth: dict,
                                                           store: Store) -> None:
    out, _ = nlq_store
    scenes = {video_uid(v["path"]): v["scenes"] for v in ground_truth["videos"]}
    n_checked = 0
    summary = json.loads((out / "export_summary.json").read_text())
    for dataset in sorted((out / "dataset").glob("*.json")):
        feats, lens, records = vslnet_load(out / "features", dataset)
        if dataset.stem in summary["export"]["empty_splits"]:  # no annotation file: {} so VSLNet can open it
            assert records == []
            continue
        assert records and all(f.dtype == np.float32 for f in feats.values())
        by_vid: dict[str, list] = {}
        for r in records:
            by_vid.setdefault(r["vid"], []).append(r)
        for vid, recs in by_vid.items():
            assert feats[vid].shape[0] == lens[vid]
            duration = store.videos[vid]["duration"]
            for r, scene in zip(recs, scenes[vid]):  # one query per scene, in order
                start, end = scene["start"], min(scene["end"], duration)
                assert r["exact"] == [pytest.approx(start), pytest.approx(end)]
                # by hand: timestamps are int(t * 1.875) and time_to_index lands on unit boundaries
                assert (r["s_ind"], r["e_ind"]) == (int(start * RATE), min(int(end * RATE), r["v_len"]) - 1)
                assert 0 <= r["s_ind"] <= r["e_ind"] < r["v_len"]
                # and those rows are the ones that see the narrated scene
                s0, _ = official_window(r["s_ind"], r["v_len"], duration)
                _, e1 = official_window(r["e_ind"], r["v_len"], duration)
                assert s0 <= start + 1e-6 and start - s0 < 1 / RATE
                inside = [official_window(i, r["v_len"], duration) for i in range(r["s_ind"], r["e_ind"] + 1)]
                assert all(min(e, end) - max(s, start) >= 0.5 * (e - s) - 1e-6 for s, e in inside)  # mostly inside the scene
                assert e1 >= end - 1 / RATE
                n_checked += 1
    assert n_checked == sum(len(s) for s in scenes.values())


def test_nlq_export_without_annotations_writes_one_file_per_video(demo_store: Path, store: Store, tmp_path: Path) -> None:
    cli("export", "nlq", demo_store, tmp_path / "all", "--quiet", "--frames-per-window", "1")
    feats = check_layout(tmp_path / "all" / "features", store.dim)
    assert set(feats) == set(store.videos)
    assert not (tmp_path / "all" / "dataset").exists()
    for uid, a in feats.items():
        assert a.shape[0] == official_num_features(store.videos[uid]["duration"])
        t, v = store_frames(store, uid)
        s, e = official_window(3, a.shape[0], store.videos[uid]["duration"])
        first = v[np.flatnonzero(t >= s)[0]]  # one frame per window: the first one in it
        np.testing.assert_allclose(a[3], first / np.linalg.norm(first), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# NLQ from the videos


@pytest.mark.slow
def test_nlq_export_from_videos_matches_the_store(nlq_store, demo_store: Path, annotations: Path, store: Store,
                                                  tmp_path: Path) -> None:
    out_store, _ = nlq_store
    args = [a for p in sorted(annotations.glob("nlq_*.json")) for a in ("-a", p)]
    # decoded again at the ingest's 2 fps (same frames) and embedded with the store's model
    text = cli("export", "nlq", demo_store, tmp_path / "v", *args, "--source", "videos", "--decode-fps", "2", "--quiet")
    summary = json.loads((tmp_path / "v" / "export_summary.json").read_text())
    assert summary["sources"] == {"videos": len(store.videos)} and "videos" in text
    a = check_layout(tmp_path / "v" / "features", store.dim)
    b = check_layout(out_store / "features", store.dim)
    assert a.keys() == b.keys()
    for uid in a:
        assert a[uid].shape == b[uid].shape
        assert float(np.min(np.sum(a[uid] * b[uid], axis=1))) > 0.999, uid
    for split in ("train", "val"):
        if (out_store / "dataset" / f"{split}.json").exists():
            assert json.loads((tmp_path / "v" / "dataset" / f"{split}.json").read_text()) == \
                json.loads((out_store / "dataset" / f"{split}.json").read_text())


@pytest.mark.slow
def test_auto_decodes_when_the_store_is_too_sparse_for_the_rate(demo_store: Path, demo_videos: Path, demo_checkpoint: Path,
                                                                annotations: Path, store: Store, tmp_path: Path) -> None:
    nlq = sorted(annotations.glob("nlq_*.json"))[-1]
    uids = [v["video_uid"] for v in json.loads(nlq.read_text())["videos"]]
    rate = 3.75  # 2 fps store frames are too sparse for 3.75 features/s
    cli("export", "nlq", demo_store, tmp_path / "r", "-a", nlq, "--rate", rate, "--frames-per-window", "2", "--quiet")
    summary = json.loads((tmp_path / "r" / "export_summary.json").read_text())
    assert summary["sources"] == {"videos": len(uids)} and summary["decode_fps"] == pytest.approx(3.75)
    for uid in uids:
        assert "sparser" in summary["videos"][uid]["reason"]
    feats = check_layout(tmp_path / "r" / "features", store.dim)
    for uid in uids:  # the official grid scaled in time: 32/16 frames of a 60 fps timeline
        assert feats[uid].shape[0] == official_num_features(store.videos[uid]["duration"], fps=60.0)
    data = json.loads((tmp_path / "r" / "dataset" / f"{split_name_of(nlq, 'nlq_')}.json").read_text())
    assert all(item["fps"] == rate for item in data.values())

    # the same from a checkpoint and the videos folder alone (no store)
    cli("export", "nlq", demo_checkpoint, tmp_path / "c", "--videos", demo_videos, "-a", nlq, "--rate", rate,
        "--frames-per-window", "2", "--quiet")
    c = check_layout(tmp_path / "c" / "features", store.dim)
    for uid in uids:
        assert c[uid].shape == feats[uid].shape
        assert float(np.min(np.sum(c[uid] * feats[uid], axis=1))) > 0.999


def test_export_errors_are_clear(demo_store: Path, annotations: Path, store: Store, tmp_path: Path) -> None:
    nlq = sorted(annotations.glob("nlq_*.json"))[0]
    empty = tmp_path / "novideos"
    empty.mkdir()
    msg = cli_fails("export", "nlq", demo_store, tmp_path / "x", "-a", nlq, "--rate", "3.75", "--videos", empty, "--quiet")
    assert "sparser" in msg and "--videos" in msg
    msg = cli_fails("export", "nlq", Path(store.meta.checkpoint), tmp_path / "x", "-a", nlq)
    assert "--videos" in msg
    bad = json.loads(nlq.read_text())
    bad["videos"][0]["video_uid"] = bad["videos"][0]["clips"][0]["clip_uid"] = "not-a-video"
    (tmp_path / "nlq_train.json").write_text(json.dumps(bad))
    msg = cli_fails("export", "nlq", demo_store, tmp_path / "x", "-a", tmp_path / "nlq_train.json", "--quiet")
    assert "not-a-video" in msg and "--no-strict" in msg
    cli("export", "nlq", demo_store, tmp_path / "loose", "-a", tmp_path / "nlq_train.json", "--no-strict", "--quiet")
    s = json.loads((tmp_path / "loose" / "export_summary.json").read_text())
    assert s["missing_videos"] == ["not-a-video"] and "not-a-video" not in s["videos"]
    assert cli_fails("export", "nlq", demo_store, tmp_path / "x", "--source", "nope")


# ---------------------------------------------------------------------------------------------
# MQ


def test_mq_export_and_vsgn_slice_pick_the_clip_rows(demo_store: Path, annotations: Path, store: Store, nlq_store,
                                                    tmp_path: Path) -> None:
    moments = sorted(annotations.glob("moments_*.json"))
    cli("export", "mq", demo_store, tmp_path / "mq", *[a for p in moments for a in ("-m", p)], "--quiet")
    feat_dir = tmp_path / "mq" / "features"
    clips = json.loads((tmp_path / "mq" / "clip_annotations.json").read_text())
    files = sorted(p.stem for p in feat_dir.glob("*.pt"))
    assert files == sorted(store.videos)  # one {video_uid}.pt per video
    nlq_feats = check_layout(nlq_store[0] / "features", store.dim)  # demo NLQ clips are whole videos
    for uid in files:
        t = torch.load(feat_dir / f"{uid}.pt", weights_only=True)
        assert t.dtype == torch.float32 and t.shape == (official_num_features(store.videos[uid]["duration"]), store.dim)
        assert (t.abs().sum(dim=1) > 0).all()
        np.testing.assert_array_equal(t.numpy(), nlq_feats[uid])

    n_labels = 0
    for cid, clip in clips.items():
        assert list(clip) == ["video_id", "clip_id", "parent_start_sec", "parent_end_sec", "v_duration", "fps",
                              "annotations", "subset"]
        v_feat = torch.load(feat_dir / f"{clip['video_id']}.pt", weights_only=True)
        T, duration = v_feat.shape[0], store.videos[clip["video_id"]]["duration"]
        assert clip["v_duration"] == duration and clip["fps"] == T / duration
        lo, hi = vsgn_clip_rows(v_feat, clip)
        # the slice holds exactly the rows whose windows start inside the clip (to a row's rounding)
        starts = np.array([official_window(i, T, duration)[0] for i in range(T)])
        expect = np.flatnonzero((starts >= clip["parent_start_sec"] - 1 / RATE) & (starts < clip["parent_end_sec"]))
        assert abs(lo - expect[0]) <= 1 and abs((hi - 1) - expect[-1]) <= 1
        assert official_window(lo, T, duration)[1] > clip["parent_start_sec"]  # the first row sees the clip
        assert hi == T or official_window(hi - 1, T, duration)[0] < clip["parent_end_sec"]
        rows = v_feat[lo:hi]
        for a in clip["annotations"]:  # each moment's rows lie inside the slice
            r0 = int((clip["parent_start_sec"] + a["start_time"]) * clip["fps"]) - lo
            r1 = int((clip["parent_start_sec"] + a["end_time"]) * clip["fps"]) - lo
            assert 0 <= r0 <= r1 <= rows.shape[0]
            n_labels += 1
    assert n_labels > 0 and len(clips) >= len(files)


def test_mq_needs_moments(demo_store: Path, tmp_path: Path) -> None:
    assert cli_fails("export", "mq", demo_store, tmp_path / "x")


# ---------------------------------------------------------------------------------------------
# units: the dense-enough rule, uid resolution, split names, demo moments


def test_dense_enough_rule() -> None:
    grid = FeatureGrid(RATE)
    assert grid.fps == 30.0 and grid.window_seconds == pytest.approx(32 / 30)
    two = np.arange(0, 60) / 2.0  # 30 s at 2 fps
    assert store_density(two, 30.0, grid).dense
    one = np.arange(0, 30) / 1.0
    d = store_density(one, 30.0, grid)
    assert not d.dense and "sparser" in d.reason and d.frame_rate == pytest.approx(1.0)
    gap = np.concatenate([two[:20], two[26:]])  # a 3.5 s hole: several empty windows
    d = store_density(gap, 30.0, grid)
    assert not d.dense and d.empty_windows > 1
    one_hole = np.delete(np.arange(0, 300) / 10.0, np.arange(100, 108))  # 10 fps, 0.9 s hole: one empty window at most
    assert store_density(one_hole, 30.0, grid).empty_windows <= 1 and store_density(one_hole, 30.0, grid).dense
    assert not store_density(np.array([]), 30.0, grid).dense
    assert FeatureGrid(RATE).decode_fps(4) == pytest.approx(3.75) and FeatureGrid(RATE).decode_fps(1) == RATE
    with pytest.raises(ValueError):
        FeatureGrid(0.0)


def test_resolve_videos_by_uid_or_file_stem() -> None:
    cat = {"u1": VideoRef("u1", "ego4d/abc-123.mp4"), "u2": VideoRef("u2", "x/dup.mp4"), "u3": VideoRef("u3", "y/dup.mov")}
    found, missing = resolve_videos(["u1", "abc-123", "dup", "nope", "u1"], cat)
    assert {k: v.uid for k, v in found.items()} == {"u1": "u1", "abc-123": "u1"} and missing == ["dup", "nope"]
    assert split_name_of("a/nlq_train.json", "nlq_") == "train"
    assert split_name_of("nlq_test_unannotated.json", "nlq_") == "test"
    assert split_name_of("moments_val.json", "moments_") == "val"
    assert split_name_of("mine.json", "nlq_") == "mine"


def test_demo_moments_annotations_cut_clips_and_relative_times() -> None:
    gt = {"fps": 10, "videos": [{"path": "a.mp4", "duration": 20.0, "scenes": [
        {"start": 0.0, "end": 6.5, "action": "rolls"}, {"start": 6.5, "end": 13.0, "action": "grabs"},
        {"start": 13.0, "end": 20.0, "action": "spins"}]}]}
    m = demo_moments_annotations(gt, {"a.mp4": "vid-a"}, split="val", clip_seconds=8.0)
    assert m == demo_moments_annotations(gt, {"a.mp4": "vid-a"}, split="val", clip_seconds=8.0)
    (video,) = m["videos"]
    assert video["video_uid"] == "vid-a" and video["split"] == "val"
    assert [(c["video_start_sec"], c["video_end_sec"]) for c in video["clips"]] == [(0.0, 8.0), (8.0, 16.0), (16.0, 20.0)]
    labels = [[(lb["start_time"], lb["end_time"], lb["label"]) for lb in c["annotations"][0]["labels"]] for c in video["clips"]]
    assert labels == [[(0.0, 6.5, "rolls"), (6.5, 8.0, "grabs")], [(0.0, 5.0, "grabs"), (5.0, 8.0, "spins")],
                      [(0.0, 4.0, "spins")]]
    lb = video["clips"][1]["annotations"][0]["labels"][1]
    assert (lb["video_start_time"], lb["video_end_time"], lb["video_start_frame"], lb["primary"]) == (13.0, 16.0, 130, True)
    whole = demo_moments_annotations(gt, {"a.mp4": "vid-a"})
    assert len(whole["videos"][0]["clips"]) == 1 and whole["videos"][0]["clips"][0]["video_end_sec"] == 20.0
    with pytest.raises(ValueError):
        demo_moments_annotations(gt, {"b.mp4": "x"})


def test_demo_annotations_without_store(demo_videos: Path, ground_truth: dict, tmp_path: Path) -> None:
    cli("export", "demo-annotations", demo_videos, tmp_path, "--clip-seconds", "10")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moments_train.json", "nlq_train.json"]
    nlq = load_nlq_annotations(tmp_path / "nlq_train.json")
    assert [v["video_uid"] for v in nlq["videos"]] == [video_uid(v["path"]) for v in ground_truth["videos"]]
    shutil.rmtree(tmp_path)
