"""Ego4D export layouts: the official feature grid, pooling, and the VSLNet / VSGN files.

Fast and self-contained: synthetic arrays, no video decoding.  The official behaviour is
re-stated here independently (a frame-exact simulation of pytorchvideo's back-padded
UniformClipSampler, a loader that follows VSLNet's ``load_video_features`` / ``data_gen`` /
``collate``, VSGN's ``_get_video_data`` slice) so the module is checked against the sources,
not against itself.
"""

from __future__ import annotations

import glob
import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from egoindex.export.demo_annotations import demo_nlq_annotations
from egoindex.export.moments import build_clip_annotations
from egoindex.export.nlq import NLQ_TEMPLATE_WHERE_SEEN, iter_nlq_queries, load_nlq_annotations
from egoindex.export.vsgn import CLIP_ANNOTATIONS_FILE, write_vsgn
from egoindex.export.vslnet import process_question, write_vslnet
from egoindex.export.windows import (
    FEATURE_RATE,
    feature_windows,
    index_to_time,
    mq_slice,
    num_features,
    num_features_from_frames,
    pool_windows,
    time_to_index,
    vslnet_clip_slice,
)

# ---------------------------------------------------------------------------------------------
# independent restatements of the official code


def sampler_clips(frames: int, fps: int = 30, window: int = 32, stride: int = 16) -> list[tuple[Fraction, Fraction]]:
    """pytorchvideo UniformClipSampler(clip=32/30, stride=16/30, backpad_last=True), as Ego4D runs it."""
    clip, step, dur = Fraction(window, fps), Fraction(stride, fps), Fraction(frames, fps)

    def start_end(last: Fraction) -> tuple[Fraction, Fraction]:
        start = max(last - max(0, clip - step), Fraction(0))
        end = start + clip
        start = max(Fraction(0), start - max(0, end - dur))
        return start, start + clip

    out, last = [], Fraction(0)
    while True:
        s, e = start_end(last)
        out.append((s, e))
        if abs(start_end(e)[1] - e) < 1e-6:
            return out
        last = e


def vslnet_compute_overlap(pred, gt):
    """Verbatim logic of VSLNet's utils/data_util.py compute_overlap (list-of-lists API)."""
    pred_is_list = isinstance(pred[0], list)
    gt_is_list = isinstance(gt[0], list)
    pred = pred if pred_is_list else [pred]
    gt = gt if gt_is_list else [gt]
    pred, gt = np.array(pred), np.array(gt)
    inter_left = np.maximum(pred[:, 0, None], gt[None, :, 0])
    inter_right = np.minimum(pred[:, 1, None], gt[None, :, 1])
    inter = np.maximum(0.0, inter_right - inter_left)
    union_left = np.minimum(pred[:, 0, None], gt[None, :, 0])
    union_right = np.maximum(pred[:, 1, None], gt[None, :, 1])
    union = np.maximum(1e-12, union_right - union_left)
    overlap = 1.0 * inter / union
    overlap = overlap if gt_is_list else overlap[:, 0]
    return overlap if pred_is_list else overlap[0]


def vslnet_time_to_index(start_time, end_time, num_units, duration):
    s_times = np.arange(0, num_units).astype(np.float32) / float(num_units) * duration
    e_times = np.arange(1, num_units + 1).astype(np.float32) / float(num_units) * duration
    candidates = np.stack(
        [np.repeat(s_times[:, None], repeats=num_units, axis=1), np.repeat(e_times[None, :], repeats=num_units, axis=0)],
        axis=2,
    ).reshape((-1, 2))
    overlaps = vslnet_compute_overlap(candidates.tolist(), [start_time, end_time]).reshape(num_units, num_units)
    return np.argmax(overlaps) // num_units, np.argmax(overlaps) % num_units


def vslnet_load(feature_dir: Path, dataset_json: Path) -> tuple[dict[str, np.ndarray], list[dict]]:
    """What VSLNet does with our files: load_video_features + data_gen (records, time_to_index) + collate cast."""
    feats = {}
    for filename in glob.glob(os.path.join(str(feature_dir), "*.pt")):
        video_id = filename.split("/")[-1].split(".")[0]
        feats[video_id] = torch.load(filename, weights_only=True).numpy()
    vfeat_lens = json.loads((feature_dir / "feature_shapes.json").read_text())
    data = json.loads(dataset_json.read_text())
    records = []
    for vid, item in data.items():
        fps = float(item["fps"])
        duration = float(item["num_frames"]) / fps
        for ts, exact, sentence, ann_uid, qidx in zip(
            item["timestamps"], item["exact_times"], item["sentences"], item["annotation_uids"], item["query_idx"]
        ):
            s_time = max(0.0, float(ts[0]) / fps)
            e_time = min(float(ts[1]) / fps, duration)
            s_ind, e_ind, _ = time_to_index(s_time, e_time, vfeat_lens[vid], duration)
            records.append(
                {"vid": vid, "s_ind": int(s_ind), "e_ind": int(e_ind), "query": sentence, "annotation_uid": ann_uid,
                 "query_idx": qidx, "exact": exact, "v_len": vfeat_lens[vid]}
            )
    return {k: np.asarray(v, dtype=np.float32) for k, v in feats.items()}, records


def nlq_file(clips: list[tuple[str, str, float, list[tuple[str, float, float]]]]) -> dict:
    """A minimal Ego4D nlq_<split>.json: [(video_uid, clip_uid, duration, [(query, start, end)])]."""
    return {
        "version": "1",
        "date": "220216",
        "description": "NLQ Annotations (train)",
        "manifest": "",
        "videos": [
            {
                "video_uid": vid,
                "split": "train",
                "clips": [
                    {
                        "clip_uid": cid,
                        "video_start_sec": 0.0,
                        "video_end_sec": dur,
                        "annotations": [
                            {
                                "annotation_uid": f"ann-{cid}",
                                "language_queries": [
                                    {"clip_start_sec": s, "clip_end_sec": e, "query": q, "template": NLQ_TEMPLATE_WHERE_SEEN}
                                    for q, s, e in queries
                                ],
                            }
                        ],
                    }
                ],
            }
            for vid, cid, dur, queries in clips
        ],
    }


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def no_tmp_files(root: Path) -> bool:
    return not any(".tmp-" in p.name for p in root.rglob("*"))


# ---------------------------------------------------------------------------------------------
# the feature grid


@pytest.mark.parametrize(
    "duration, expected",
    [
        (32 / 30, 1),  # exactly one window
        (33 / 30, 2),  # one frame more: a back-padded second window
        (39 / 30, 2),  # the Ego4D docs example: [0, 31], [7, 38]
        (48 / 30, 2),  # 16 frames more: a regular second window, no padding
        (0.5, 1),  # shorter than a window
        (8.0, 14),  # 240 frames: (240 - 32) // 16 + 1, no remainder
        (480.0, 899),  # a 480 s NLQ/MQ clip: 14368 // 16 + 1
    ],
)
def test_num_features_hand_checked(duration: float, expected: int) -> None:
    assert num_features(duration) == expected


@pytest.mark.parametrize(
    "v_duration, fps",  # (video, fps) pairs from the published MQ clip_annotations_split.json
    [(1563.13, 1.8744442240888473), (1240.7, 1.8747481260578704), (209.9, 1.8723201524535493), (2420.7, 1.8746643532862397)],
)
def test_num_features_matches_published_official_feature_counts(v_duration: float, fps: float) -> None:
    assert num_features(v_duration) == round(fps * v_duration)


def test_num_features_equals_pytorchvideo_sampler_for_every_frame_count() -> None:
    for frames in range(1, 260):
        clips = sampler_clips(frames)
        assert num_features_from_frames(frames) == len(clips), frames
        if frames >= 32:  # windows from feature_windows are the sampler's clips, in seconds
            w = feature_windows(frames / 30)
            assert np.allclose(w, np.array([[float(s), float(e)] for s, e in clips]), atol=1e-9), frames


def test_windows_cover_the_whole_video_with_tail() -> None:
    for duration in (0.3, 1.0, 39 / 30, 8.0, 10.0, 10.01, 123.456, 480.0):
        w = feature_windows(duration)
        assert w.shape == (num_features(duration), 2)
        assert w[0, 0] == 0.0 and w[-1, 1] == duration
        assert np.all(w[:, 0] <= w[:, 1]) and np.all(w >= 0) and np.all(w <= duration)
        assert np.all(w[1:, 0] <= w[:-1, 1] + 1e-12), "gap between consecutive windows"
    w = feature_windows(39 / 30)
    assert np.allclose(w * 30, [[0, 32], [7, 39]])  # back-padded last window, frames [7, 38]


def test_grid_rate_and_input_errors() -> None:
    assert FEATURE_RATE == 1.875
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            num_features(bad)
    with pytest.raises(ValueError):
        num_features(10.0, stride=40)


# ---------------------------------------------------------------------------------------------
# pooling


def test_pool_windows_hand_mean_and_normalisation() -> None:
    times = np.array([0.1, 0.5, 2.0])
    vecs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    out = pool_windows(times, vecs, np.array([[0.0, 1.0], [1.5, 2.5]]))
    assert out.dtype == np.float32 and out.shape == (2, 3)
    assert np.allclose(out[0], [2**-0.5, 2**-0.5, 0.0], atol=1e-6)  # mean of the two frames, L2-normalised
    assert np.allclose(out[1], [0.0, 0.0, 1.0])


def test_pool_windows_sparse_frames_never_give_zero_rows() -> None:
    duration, d = 60.0, 16
    windows = feature_windows(duration)
    for fps in (1.0, 0.5, 0.2):  # all sparser than 1.875 features/s
        times = np.arange(0.0, duration, 1.0 / fps)
        vecs = unit_rows(len(times), d, seed=int(fps * 10))
        out = pool_windows(times, vecs, windows)
        assert out.shape == (len(windows), d) and out.dtype == np.float32
        assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
        # an empty window takes the frame nearest to its centre
        centres = windows.mean(axis=1)
        empty = [i for i, (s, e) in enumerate(windows) if not np.any((times >= s) & (times < e))]
        if fps < 1.0:
            assert empty
        for i in empty:
            j = int(np.argmin(np.abs(times - centres[i])))
            assert np.allclose(out[i], vecs[j], atol=1e-6)


def test_pool_windows_unsorted_times_last_frame_on_end_and_cancelling_mean() -> None:
    times = np.array([3.0, 0.0, 1.0])
    vecs = np.array([[0.0, 2.0], [1.0, 0.0], [-1.0, 0.0]])
    out = pool_windows(times, vecs, np.array([[0.0, 1.5], [1.5, 3.0]]))
    # window 0 holds t=0 and t=1 whose mean is zero -> nearest frame to 0.75 is t=1 -> [-1, 0]
    assert np.allclose(out[0], [-1.0, 0.0])
    # window 1 ends last, so the frame exactly on its end (t=3) belongs to it
    assert np.allclose(out[1], [0.0, 1.0])


def test_pool_windows_frames_per_window_subsamples_evenly() -> None:
    times = np.arange(5) * 0.1
    vecs = np.eye(5)
    out = pool_windows(times, vecs, np.array([[0.0, 1.0]]), frames_per_window=2)
    assert np.allclose(out[0], [2**-0.5, 0, 0, 0, 2**-0.5], atol=1e-6)  # first and last frame
    out3 = pool_windows(times, vecs, np.array([[0.0, 1.0]]), frames_per_window=3)
    assert np.allclose(out3[0], np.array([1, 0, 1, 0, 1]) / 3**0.5, atol=1e-6)


def test_pool_windows_rejects_bad_input() -> None:
    w = np.array([[0.0, 1.0]])
    with pytest.raises(ValueError):
        pool_windows(np.zeros(0), np.zeros((0, 4)), w)
    with pytest.raises(ValueError):
        pool_windows(np.zeros(2), np.ones((3, 4)), w)
    with pytest.raises(ValueError):
        pool_windows(np.zeros(1), np.ones((1, 4)), np.zeros((0, 2)))
    with pytest.raises(ValueError):
        pool_windows(np.zeros(1), np.zeros((1, 4)), w)  # a zero embedding
    with pytest.raises(ValueError):
        pool_windows(np.zeros(1), np.full((1, 4), np.nan), w)


# ---------------------------------------------------------------------------------------------
# index arithmetic


def test_time_to_index_matches_vslnet_and_hand_values() -> None:
    assert time_to_index(2.0, 4.0, 10, 10.0)[:2] == (2, 3)
    assert time_to_index(2.5, 4.5, 10, 10.0)[:2] == (2, 4)  # [2, 5] has IoU 2/3, the best
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        dur = float(rng.uniform(1, 100))
        s, e = sorted(rng.uniform(0, dur, 2).tolist())
        assert time_to_index(s, e, n, dur)[:2] == tuple(int(x) for x in vslnet_time_to_index(s, e, n, dur))
    si, ei, overlaps = time_to_index(1.0, 2.0, 7, 7.0)
    assert overlaps.shape == (7, 7) and overlaps[si, ei] == pytest.approx(1.0)
    assert index_to_time(1, 1, 7, 7.0) == (1.0, 2.0)


def test_vslnet_clip_slice_truncates_like_get_nearest_frame() -> None:
    assert vslnet_clip_slice(0.0, 480.0) == slice(0, 901)  # int(900.0) + 1
    assert vslnet_clip_slice(1082.1333333333334, 1562.0) == slice(2029, 2929)


def test_mq_slice_hand_case() -> None:
    T, duration = 20, 10.0  # fps = 2 features/s
    assert mq_slice(T, duration, 2.3, 5.2) == slice(4, 11)  # int(4.6)=4 .. int(10.4)=10, inclusive
    assert mq_slice(T, duration, 0.0, 12.0) == slice(0, 20)  # end clamped to T - 1
    rows = np.arange(T)[mq_slice(T, duration, 2.3, 5.2)]
    assert rows.tolist() == list(range(4, 11))
    with pytest.raises(ValueError):
        mq_slice(0, 10.0, 0, 1)


# ---------------------------------------------------------------------------------------------
# VSLNet layout


def test_write_vslnet_layout_and_vslnet_loader(tmp_path: Path) -> None:
    d = 8
    durations = {"clip-a": 8.0, "clip-b": 13.3}
    feats = {}
    for i, (uid, dur) in enumerate(durations.items()):
        times = np.arange(0.0, dur, 1.0)  # 1 fps frames
        feats[uid] = pool_windows(times, unit_rows(len(times), d, seed=i), feature_windows(dur))
    nlq = nlq_file(
        [
            ("video-a", "clip-a", 8.0, [("Where did I see the red ball? ", 2.0, 4.0), ("", 1.0, 2.0), ("What X?", 0.0, 8.0)]),
            ("video-b", "clip-b", 13.3, [("where is the cup", 10.0, 13.3)]),
        ]
    )
    qfeat = {"Where did I see the red ball? ": np.ones(d), "What X?": torch.ones(1, d)}
    summary = write_vslnet(tmp_path, feats, FEATURE_RATE, annotations=[nlq], query_features=qfeat)

    feat_dir = tmp_path / "features"
    assert sorted(p.name for p in feat_dir.iterdir()) == ["clip-a.pt", "clip-b.pt", "feature_shapes.json"]
    shapes = json.loads((feat_dir / "feature_shapes.json").read_text())
    assert shapes == {"clip-a": 14, "clip-b": num_features(13.3)}
    for uid, n in shapes.items():
        t = torch.load(feat_dir / f"{uid}.pt", weights_only=True)
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
        assert tuple(t.shape) == (n, d) and np.array_equal(t.numpy(), feats[uid])
    assert summary["num_clips"] == 2 and summary["dim"] == d and summary["dataset"]["train"]["queries"] == 3
    assert no_tmp_files(tmp_path)

    data = json.loads((tmp_path / "dataset" / "train.json").read_text())
    a = data["clip-a"]
    assert list(a) == ["fps", "num_frames", "timestamps", "exact_times", "sentences", "annotation_uids", "query_idx"]
    # num_frames as prepare_ego4d_dataset.py writes it: int(8.0 s * 1.875) = 15, not the 14 feature rows
    assert a["fps"] == 1.875 and a["num_frames"] == 15 and data["clip-b"]["num_frames"] == int(13.3 * 1.875)
    assert a["sentences"] == ["where did i see the red ball?", "what x?"]  # the empty query is skipped ...
    assert a["query_idx"] == [0, 2]  # ... but still counts
    assert a["timestamps"] == [[3, 7], [0, 15]] and a["exact_times"] == [[2.0, 4.0], [0.0, 8.0]]
    assert a["annotation_uids"] == ["ann-clip-a", "ann-clip-a"]

    loaded, records = vslnet_load(feat_dir, tmp_path / "dataset" / "train.json")
    assert set(loaded) == {"clip-a", "clip-b"} and all(v.dtype == np.float32 for v in loaded.values())
    rec = records[0]
    # [2 s, 4 s] -> timestamps [3, 7] -> [1.6 s, 3.73 s] on 14 units over 15 / 1.875 = 8 s: rows 3..6
    assert (rec["vid"], rec["s_ind"], rec["e_ind"]) == ("clip-a", 3, 6)
    w = feature_windows(8.0)
    assert w[3, 0] <= 2.0 and w[6, 1] >= 4.0  # those rows do see the moment
    assert all(0 <= r["s_ind"] <= r["e_ind"] < r["v_len"] for r in records)

    npy = np.load(tmp_path / "text" / "sentence.npy", allow_pickle=True).item()
    pt = torch.load(tmp_path / "text" / "sentence.pt", weights_only=True)
    assert set(npy) == set(pt) == set(qfeat)
    assert all(v.shape == (1, d) and v.dtype == np.float32 for v in npy.values())
    assert all(tuple(v.shape) == (1, d) and v.dtype == torch.float32 for v in pt.values())


def test_write_vslnet_test_split_placeholders_and_missing_clips(tmp_path: Path) -> None:
    feats = {"clip-a": unit_rows(14, 4)}
    test_nlq = nlq_file([("video-a", "clip-a", 8.0, [("q one", 1.0, 2.0)])])
    for q in test_nlq["videos"][0]["clips"][0]["annotations"][0]["language_queries"]:
        del q["clip_start_sec"], q["clip_end_sec"]  # unannotated, like nlq_test_unannotated.json
    train_nlq = nlq_file([("video-a", "clip-a", 8.0, [("q", 1.0, 2.0)]), ("video-z", "clip-z", 8.0, [("q", 1.0, 2.0)])])
    with pytest.raises(ValueError, match="clip-z"):
        write_vslnet(tmp_path / "strict", feats, annotations=[train_nlq, test_nlq], split_names=["train", "test"])
    assert not (tmp_path / "strict").exists()  # nothing written when validation fails
    summary = write_vslnet(tmp_path, feats, annotations=[train_nlq, test_nlq], split_names=["train", "test"], strict=False)
    assert summary["missing_features"] == {"train": ["clip-z"]}
    test = json.loads((tmp_path / "dataset" / "test.json").read_text())
    assert test["clip-a"]["exact_times"] == [[0.0, 0.0]] and test["clip-a"]["timestamps"] == [[0, 0]]


def test_write_vslnet_refuses_zero_rows_and_bad_uids(tmp_path: Path) -> None:
    bad = unit_rows(5, 4)
    bad[-1] = 0.0  # what the EgoVLP extractor leaves behind
    with pytest.raises(ValueError, match="zero rows"):
        write_vslnet(tmp_path, {"clip-a": bad})
    with pytest.raises(ValueError, match="file stem"):
        write_vslnet(tmp_path, {"clip.a": unit_rows(5, 4)})  # VSLNet would key it "clip"
    with pytest.raises(ValueError, match="dimension"):
        write_vslnet(tmp_path, {"a": unit_rows(5, 4), "b": unit_rows(5, 3)})


def test_load_nlq_annotations_validates_fields(tmp_path: Path) -> None:
    nlq = nlq_file([("video-a", "clip-a", 8.0, [("q one", 1.0, 2.0), ("q two", 3.0, 5.0)])])
    path = tmp_path / "nlq_train.json"
    path.write_text(json.dumps(nlq))
    loaded = load_nlq_annotations(path)
    qs = list(iter_nlq_queries(loaded))
    assert [(q.clip_uid, q.annotation_uid, q.query_idx, q.query, q.clip_start_sec) for q in qs] == [
        ("clip-a", "ann-clip-a", 0, "q one", 1.0),
        ("clip-a", "ann-clip-a", 1, "q two", 3.0),
    ]
    del nlq["videos"][0]["clips"][0]["annotations"][0]["language_queries"][1]["clip_end_sec"]
    path.write_text(json.dumps(nlq))
    with pytest.raises(ValueError, match=r"videos\[0\]\.clips\[0\]\.annotations\[0\]\.language_queries\[1\]: missing 'clip_end_sec'"):
        load_nlq_annotations(path)
    assert load_nlq_annotations(path, require_times=False)["videos"][0]["video_uid"] == "video-a"
    del nlq["videos"][0]["clips"][0]["video_end_sec"]
    path.write_text(json.dumps(nlq))
    with pytest.raises(ValueError, match="missing 'video_end_sec'"):
        load_nlq_annotations(path, require_times=False)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        load_nlq_annotations(path)
    assert process_question("  Where is it?? ") == "where is it?"


# ---------------------------------------------------------------------------------------------
# VSGN layout


def moments_file() -> dict:
    def label(s, e, name, primary=True):
        return {"start_time": s, "end_time": e, "label": name, "video_start_time": s, "video_end_time": e,
                "video_start_frame": 0, "video_end_frame": 0, "primary": primary}

    return {
        "version": "v1",
        "date": "",
        "description": "",
        "manifest": "",
        "videos": [
            {
                "video_uid": "vid-1",
                "split": "train",
                "clips": [
                    {"clip_uid": "c1", "video_start_sec": 10.0, "video_end_sec": 40.0,
                     "annotations": [{"annotator_uid": "x", "labels": [label(1.0, 5.0, "use_phone"), label(2.0, 3.0, "other", False)]},
                                     {"annotator_uid": "y", "labels": [label(6.0, 9.5, "wash_hands")]}]},
                    {"clip_uid": "c2", "video_start_sec": 40.0, "video_end_sec": 60.0,
                     "annotations": [{"annotator_uid": "x", "labels": [label(1.0, 2.0, "only_secondary", False)]}]},
                ],
            },
            {"video_uid": "vid-2", "split": "test",
             "clips": [{"clip_uid": "c3", "video_start_sec": 0.0, "video_end_sec": 20.0, "annotations": []}]},
        ],
    }


def test_build_clip_annotations_follows_convert_annotation() -> None:
    ca = build_clip_annotations(moments_file(), {"vid-1": 60.0, "vid-2": 20.0}, {"vid-1": 112, "vid-2": 37})
    assert list(ca) == ["c1", "c3"]  # c2 had only secondary labels -> dropped; test clip kept
    assert ca["c1"] == {
        "video_id": "vid-1", "clip_id": "c1", "parent_start_sec": 10.0, "parent_end_sec": 40.0, "v_duration": 60.0,
        "fps": 112 / 60.0,
        "annotations": [{"start_time": 1.0, "end_time": 5.0, "label": "use_phone"},
                        {"start_time": 6.0, "end_time": 9.5, "label": "wash_hands"}],
        "subset": "train",
    }
    assert ca["c3"]["annotations"] == [] and ca["c3"]["subset"] == "test"
    assert list(build_clip_annotations(moments_file(), {"vid-1": 60.0}, {"vid-1": 112})) == ["c1"]  # no features for vid-2


def test_write_vsgn_layout_and_vsgn_slicing(tmp_path: Path) -> None:
    d = 6
    durations = {"vid-1": 60.0, "vid-2": 20.0}
    feats = {v: unit_rows(num_features(t), d, seed=i) for i, (v, t) in enumerate(durations.items())}
    ca = build_clip_annotations(moments_file(), durations)  # fps left for write_vsgn to fill
    summary = write_vsgn(tmp_path, feats, ca)
    assert summary["num_clips"] == 2 and summary["dim"] == d and no_tmp_files(tmp_path)

    written = json.loads((tmp_path / CLIP_ANNOTATIONS_FILE).read_text())
    for entry in written.values():
        assert list(entry) == ["video_id", "clip_id", "parent_start_sec", "parent_end_sec", "v_duration", "fps", "annotations", "subset"]
        assert all(list(a) == ["start_time", "end_time", "label"] for a in entry["annotations"])
    c1 = written["c1"]
    T = num_features(60.0)  # 112
    assert c1["fps"] == T / 60.0

    # VSGN MQ/Utils/dataset.py _get_video_data, both versions (derived fps and stored fps)
    v_data = torch.transpose(torch.load(tmp_path / "features" / "vid-1.pt", weights_only=True), 0, 1)
    num_frms_v = v_data.shape[-1]
    for fps_v in (num_frms_v / c1["v_duration"], c1["fps"]):
        clip_start = int(c1["parent_start_sec"] * fps_v)
        clip_end = min(int(c1["parent_end_sec"] * fps_v), num_frms_v - 1)
        win = v_data[:, clip_start : clip_end + 1]
        sl = mq_slice(T, 60.0, 10.0, 40.0)
        assert (clip_start, clip_end + 1) == (sl.start, sl.stop) == (18, 75)
        assert np.array_equal(win.T.numpy(), feats["vid-1"][sl])

    bad = dict(ca)
    bad["c1"] = dict(ca["c1"], fps=1.0)
    with pytest.raises(ValueError, match="disagrees"):
        write_vsgn(tmp_path / "bad", feats, bad)
    with pytest.raises(ValueError, match="no features"):
        write_vsgn(tmp_path / "bad", {"vid-1": feats["vid-1"]}, ca)
    assert write_vsgn(tmp_path / "loose", {"vid-1": feats["vid-1"]}, ca, strict=False)["skipped_clips"] == ["c3"]


# ---------------------------------------------------------------------------------------------
# demo annotations


def demo_ground_truth() -> dict:
    def scene(s, e, room, obj, colour, action):
        return {"start": s, "end": e, "room": room, "object": obj, "colour": colour, "action": action,
                "narration": "x", "speech_start": s + 0.3, "speech_end": e - 0.5}

    return {
        "generator": "egoindex demo-data", "fps": 10, "seconds": 20.0,
        "videos": [
            {"path": "home_a/day1/breakfast.mp4", "duration": 20.0, "speaker": "en", "scenes": [
                scene(0.0, 6.5, "kitchen", "ball", "red", "rolls"),
                scene(6.5, 13.0, "kitchen", "ball", "red", "bounces"),
                scene(13.0, 20.2, "garden", "ball", "red", "falls"),  # ends past the video: clipped
            ]},
            {"path": "home_b/bébé_cuisine.mp4", "duration": 12.0, "speaker": "fr", "scenes": [
                scene(0.0, 6.0, "bedroom", "cup", "blue", "grabs"),
                scene(6.0, 12.0, "bedroom", "teddy bear", "green", "spins"),
            ]},
            {"path": "not/indexed.mp4", "duration": 5.0, "speaker": "en", "scenes": []},
        ],
    }


def test_demo_nlq_annotations_deterministic_and_inside_video(tmp_path: Path) -> None:
    gt = demo_ground_truth()
    uids = {"home_a/day1/breakfast.mp4": "demo-vid-1", "home_b/bébé_cuisine.mp4": "demo-vid-2"}
    a = demo_nlq_annotations(gt, uids, split="val")
    assert json.dumps(a, sort_keys=True) == json.dumps(demo_nlq_annotations(gt, dict(reversed(list(uids.items()))), split="val"), sort_keys=True)
    path = tmp_path / "nlq_val.json"
    path.write_text(json.dumps(a))
    loaded = load_nlq_annotations(path)  # valid Ego4D NLQ structure
    assert [v["video_uid"] for v in loaded["videos"]] == ["demo-vid-1", "demo-vid-2"]
    durations = {"demo-vid-1": 20.0, "demo-vid-2": 12.0}
    qs = list(iter_nlq_queries(loaded))
    assert len(qs) == 5
    for q in qs:
        assert 0.0 <= q.clip_start_sec <= q.clip_end_sec <= durations[q.clip_uid]
        assert q.template == NLQ_TEMPLATE_WHERE_SEEN
    assert [q.query for q in qs] == [
        "where did I see the red ball roll in the kitchen?",
        "where did I see the red ball bounce in the kitchen?",
        "where did I see the red ball in the garden?",
        "where did I see the blue cup?",
        "where did I see the green teddy bear?",
    ]
    assert (qs[2].clip_start_sec, qs[2].clip_end_sec) == (13.0, 20.0)
    clip = loaded["videos"][0]["clips"][0]
    assert clip["clip_uid"] == "demo-vid-1" and (clip["video_start_sec"], clip["video_end_sec"]) == (0.0, 20.0)

    # the demo file drives the VSLNet export end to end
    feats = {uid: pool_windows(np.arange(0, dur, 0.5), unit_rows(int(dur * 2), 4), feature_windows(dur)) for uid, dur in durations.items()}
    write_vslnet(tmp_path / "vslnet", feats, annotations=[loaded], split_names=["val"])
    _, records = vslnet_load(tmp_path / "vslnet" / "features", tmp_path / "vslnet" / "dataset" / "val.json")
    assert len(records) == 5 and all(0 <= r["s_ind"] <= r["e_ind"] < r["v_len"] for r in records)
    with pytest.raises(ValueError):
        demo_nlq_annotations(gt, {"nope.mp4": "x"})
