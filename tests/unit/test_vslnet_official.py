"""VSLNet (``EGO4D/episodic-memory``, ``NLQ/VSLNet``) runs unchanged on an ``export nlq`` made
without a test annotation file, and the dataset files are what its own preparation writes.

The official code is not copied: the functions below re-state, from ``utils/prepare_ego4d_dataset.py``
(``get_nearest_frame``, ``reformat_data``, the clip feature slice) and ``utils/data_gen.py``
(``EpisodicNLQProcessor.convert`` / ``process_data_tan``), exactly the steps that touch our files:

* ``get_nearest_frame(t, f) = f(int(t * 30 / 16))``; ``num_frames = get_nearest_frame(video_end_sec -
  video_start_sec, ceil)``; the clip's features are ``feature[get_nearest_frame(start, floor) :
  get_nearest_frame(end, ceil) + 1]`` of the video's file;
* ``convert(data_dir)`` opens ``train.json``, ``val.json`` and ``test.json`` (``open`` fails on a
  missing one) and turns each clip's queries into records with ``duration = num_frames / fps``,
  ``s_time = max(0, timestamp[0] / fps)``, ``e_time = min(timestamp[1] / fps, duration)``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from egoindex.export.vslnet import VSLNET_SPLITS, vslnet_num_frames, write_vslnet
from egoindex.export.windows import FEATURE_RATE, vslnet_clip_slice

CANONICAL_VIDEO_FPS, FEATURE_WINDOW_SIZE = 30.0, 16.0


def get_nearest_frame(time: float, floor_or_ceil: Any) -> int:
    return floor_or_ceil(int(time * CANONICAL_VIDEO_FPS / FEATURE_WINDOW_SIZE))


def official_reformat(split_data: dict[str, Any], test_split: bool) -> dict[str, Any]:
    """``reformat_data``: the per-split dataset JSON VSLNet's preparation writes."""
    out: dict[str, Any] = {}
    for video in split_data["videos"]:
        for clip in video["clips"]:
            entry: dict[str, Any] = {
                "fps": CANONICAL_VIDEO_FPS / FEATURE_WINDOW_SIZE,
                "num_frames": get_nearest_frame(clip["video_end_sec"] - clip["video_start_sec"], math.ceil),
                "timestamps": [], "exact_times": [], "sentences": [], "annotation_uids": [], "query_idx": [],
            }
            for ann in clip["annotations"]:
                for index, datum in enumerate(ann["language_queries"]):
                    start, end = (0.0, 0.0) if test_split else (float(datum["clip_start_sec"]), float(datum["clip_end_sec"]))
                    if "query" not in datum or not datum["query"]:
                        continue
                    entry["sentences"].append(datum["query"].strip(" ").strip("?").lower() + "?")
                    entry["annotation_uids"].append(ann["annotation_uid"])
                    entry["query_idx"].append(index)
                    entry["exact_times"].append([start, end])
                    entry["timestamps"].append([get_nearest_frame(start, math.floor), get_nearest_frame(end, math.ceil)])
            out[clip["clip_uid"]] = entry
    return out


def official_convert(data_dir: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """``EpisodicNLQProcessor.convert`` (the bert predictor path: no tokenizer needed)."""
    counter = 0

    def process(data: dict[str, Any]) -> list[dict]:
        nonlocal counter
        results = []
        for vid, item in data.items():
            fps = float(item["fps"])
            duration = float(item["num_frames"]) / fps
            for ts, exact, sentence, ann_uid, qidx in zip(item["timestamps"], item["exact_times"], item["sentences"],
                                                          item["annotation_uids"], item["query_idx"]):
                results.append({"sample_id": counter, "vid": str(vid), "s_time": max(0.0, float(ts[0]) / fps),
                                "e_time": min(float(ts[1]) / fps, duration), "exact_s_time": exact[0],
                                "exact_e_time": exact[1], "duration": duration, "query": sentence.strip().lower(),
                                "annotation_uid": ann_uid, "query_idx": qidx})
                counter += 1
        return results

    if not os.path.exists(data_dir):
        raise ValueError(f"data dir {data_dir} does not exist")
    loaded = []
    for name in ("train", "val", "test"):
        with open(os.path.join(data_dir, f"{name}.json"), encoding="utf-8") as f:
            loaded.append(json.load(f))
    train, val, test = (process(d) for d in loaded)
    return train, val, test


def nlq(split: str, clips: list[tuple[str, float, float, list[tuple[str, float, float]]]]) -> dict[str, Any]:
    """An Ego4D nlq file: [(clip_uid, video_start_sec, video_end_sec, [(query, clip_start, clip_end)])]."""
    return {"version": "1", "date": "220216", "description": f"NLQ Annotations ({split})", "manifest": "",
            "videos": [{"video_uid": f"video-{cid}", "split": split, "clips": [{
                "clip_uid": cid, "video_start_sec": s, "video_end_sec": e,
                "annotations": [{"annotation_uid": f"ann-{cid}", "language_queries": [
                    {"clip_start_sec": qs, "clip_end_sec": qe, "query": q} for q, qs, qe in queries]}]}]}
                for cid, s, e, queries in clips]}


def rows(n: int, d: int = 4, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_num_frames_follows_prepare_ego4d_dataset_not_the_feature_rows() -> None:
    # A 34.6 s clip starting 10.2 s into its video: the kept rows are feature[19 : 84 + 1] = 66,
    # while the official num_frames is int(34.6 * 1.875) = int(64.875) = 64.
    kept = vslnet_clip_slice(10.2, 44.8)
    assert (kept.start, kept.stop) == (get_nearest_frame(10.2, math.floor), get_nearest_frame(44.8, math.ceil) + 1)
    assert kept.stop - kept.start == 66
    assert vslnet_num_frames(10.2, 44.8) == get_nearest_frame(44.8 - 10.2, math.ceil) == 64
    for s, e in [(0.0, 8.0), (3.3, 480.0), (1082.1333333333334, 1562.0), (0.0, 0.4)]:
        assert vslnet_num_frames(s, e, FEATURE_RATE) == get_nearest_frame(e - s, math.ceil)


def test_vslnet_converts_an_export_without_a_test_file(tmp_path: Path) -> None:
    train = nlq("train", [("clip-a", 10.2, 44.8, [("Where did I see the cup?", 3.0, 6.5), ("", 1.0, 2.0)]),
                          ("clip-b", 0.0, 8.0, [("where is the ball", 0.5, 7.9)])])
    val = nlq("val", [("clip-c", 5.0, 25.0, [("What did I put in the box ?", 12.0, 19.25)])])
    feats = {}
    for i, (cid, s, e) in enumerate([("clip-a", 10.2, 44.8), ("clip-b", 0.0, 8.0), ("clip-c", 5.0, 25.0)]):
        kept = vslnet_clip_slice(s, e)
        feats[cid] = rows(kept.stop - kept.start, seed=i)  # the rows the official preparation keeps
    summary = write_vslnet(tmp_path, feats, FEATURE_RATE, annotations=[train, val], split_names=["train", "val"])
    data_dir = tmp_path / "dataset"
    assert sorted(p.name for p in data_dir.iterdir()) == ["test.json", "train.json", "val.json"]
    assert summary["empty_splits"] == ["test"] and tuple(summary["dataset"]) == ("train", "val", "test")

    # Each written split is exactly what prepare_ego4d_dataset.py writes for the same file.
    for name, split in (("train", train), ("val", val)):
        assert json.loads((data_dir / f"{name}.json").read_text()) == official_reformat(split, test_split=False)
    assert json.loads((data_dir / "test.json").read_text()) == {}

    train_set, val_set, test_set = official_convert(data_dir)  # would raise without test.json
    assert test_set == []
    assert [r["query"] for r in train_set] == ["where did i see the cup?", "where is the ball?"]
    assert [r["query_idx"] for r in train_set] == [0, 0] and len(val_set) == 1
    a = train_set[0]
    assert a["duration"] == pytest.approx(64 / 1.875)  # num_frames / fps, the official stretch
    assert (a["s_time"], a["e_time"]) == (int(3.0 * 1.875) / 1.875, int(6.5 * 1.875) / 1.875)
    shapes = json.loads((tmp_path / "features" / "feature_shapes.json").read_text())
    assert shapes["clip-a"] == 66 and shapes == {k: v.shape[0] for k, v in feats.items()}  # the rows, as officially


def test_every_split_file_is_written_even_with_only_a_test_file(tmp_path: Path) -> None:
    test = nlq("test", [("clip-a", 0.0, 8.0, [("where is the cup", 1.0, 2.0)])])
    for q in test["videos"][0]["clips"][0]["annotations"][0]["language_queries"]:
        del q["clip_start_sec"], q["clip_end_sec"]  # unannotated, like nlq_test_unannotated.json
    summary = write_vslnet(tmp_path, {"clip-a": rows(15)}, annotations=[test], split_names=["test"])
    assert summary["empty_splits"] == ["train", "val"]
    assert sorted(p.stem for p in (tmp_path / "dataset").iterdir()) == sorted(VSLNET_SPLITS)
    train_set, val_set, test_set = official_convert(tmp_path / "dataset")
    assert train_set == val_set == [] and [(r["s_time"], r["e_time"]) for r in test_set] == [(0.0, 0.0)]
    # Without annotations there is no dataset at all (features only), as before.
    write_vslnet(tmp_path / "plain", {"video-a": rows(15)})
    assert not (tmp_path / "plain" / "dataset").exists()
