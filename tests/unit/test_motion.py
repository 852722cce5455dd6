"""Motion-direction questions: the renderer's paired actions, the motion corpus, the metric and its
interval, question generation, and the default demo corpus left untouched.

Real components: the demo renderer and PyAV encoder, a real H.264 motion corpus decoded by the
raw-video path of the benchmarks, and a randomly initialised ego-tiny-rn (open_clip) through the
Embedder. Why a random model is enough for the headline claim: a frame-mean clip vector does not
depend on frame order whatever the weights, so forward vs reversed must tie and score exactly 50 %.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from egoindex.demo.motion import EGOCLIP_COLUMNS, NARRATIONS_FILE, plan_motion_video, write_motion_corpus
from egoindex.demo.scenes import ACTIONS, MOTION_ACTIONS, MOTION_OPPOSITE, ROOMS, SceneRenderer, motion_window
from egoindex.demo.vocab import Scene
from egoindex.errors import AnnotationError, ConfigError
from egoindex.metrics.motion import (
    MotionQuestion,
    generate_motion_questions,
    motion_metrics,
    pair_credit,
    read_motion_questions,
    wilson_interval,
    write_motion_questions,
)
from egoindex.metrics.retrieval import TIE_EPS, retrieval_at_k
from tests.support import torch_threads

SECONDS, FPS, N_VIDEOS = 8.0, 8, 3
_DIRECTION_SWAPS = {("left", "right"), ("right", "left"), ("rises", "sinks"), ("sinks", "rises"), ("up", "down"),
                    ("down", "up")}


def _pose_vec(r: SceneRenderer, t: float) -> np.ndarray:
    p = r.pose(t)
    return np.array([p.x, p.y, p.angle, p.scale, p.height])


# --------------------------------------------------------------------------------------------
# renderer


@pytest.mark.parametrize("pair", [("slides left", "slides right"), ("rises", "sinks")])
@pytest.mark.parametrize("duration", [3.4, 4.0, 7.3])
def test_paired_actions_are_time_reversals(pair: tuple[str, str], duration: float) -> None:
    a, b = pair
    assert MOTION_OPPOSITE[a] == b and MOTION_OPPOSITE[b] == a
    for variant in (1, 2, 12345):
        ra = SceneRenderer(Scene("kitchen", "ball", "red", a, duration, variant), (160, 120))
        rb = SceneRenderer(Scene("kitchen", "ball", "red", b, duration, variant), (160, 120))
        ts = np.linspace(0.0, duration, 41)
        fwd = np.stack([_pose_vec(ra, float(t)) for t in ts])
        back = np.stack([_pose_vec(rb, float(duration - t)) for t in ts])
        np.testing.assert_allclose(fwd, back, atol=1e-9)  # a forward == b reversed
        # the same set of positions; and the pair differs at all (not a still object)
        np.testing.assert_allclose(np.sort(fwd, axis=0), np.sort(back, axis=0), atol=1e-9)
        assert np.ptp(fwd[:, :2], axis=0).max() > 0.1 * ra.c.ch
        # the drawn canvases match frame for frame too
        for t in (0.0, 0.9, duration / 2, duration - 0.4):
            assert np.array_equal(np.asarray(ra.draw(t)), np.asarray(rb.draw(duration - t)))


def test_directions_move_the_named_way_only_inside_the_motion_window() -> None:
    d = 4.0
    t0, t1 = motion_window(d)
    assert 0 < t0 < t1 < d and abs(t0 - (d - t1)) < 1e-12
    r = {a: SceneRenderer(Scene("garden", "cup", "blue", a, d, 7), (160, 120)) for a in MOTION_ACTIONS}
    x = {a: [r[a].pose(t).x for t in (t0, d / 2, t1)] for a in MOTION_ACTIONS}
    y = {a: [r[a].pose(t).y for t in (t0, d / 2, t1)] for a in MOTION_ACTIONS}
    assert x["slides left"][0] > x["slides left"][1] > x["slides left"][2]  # image x decreases
    assert x["slides right"][0] < x["slides right"][1] < x["slides right"][2]
    assert y["rises"][0] > y["rises"][1] > y["rises"][2]  # image y decreases = up
    assert y["sinks"][0] < y["sinks"][1] < y["sinks"][2]
    for a in MOTION_ACTIONS:  # at rest before t0 and after t1
        np.testing.assert_allclose(_pose_vec(r[a], 0.0), _pose_vec(r[a], t0))
        np.testing.assert_allclose(_pose_vec(r[a], t1), _pose_vec(r[a], d))
    with pytest.raises(ConfigError):
        Scene("garden", "cup", "blue", "slides up", d)


# --------------------------------------------------------------------------------------------
# the motion corpus


@pytest.fixture(scope="module")
def motion_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("motion") / "videos"
    gt_path = write_motion_corpus(out, n_videos=N_VIDEOS, seconds=SECONDS, seed=0, fps=FPS, progress=False)
    return out, json.loads(gt_path.read_text(encoding="utf-8"))


def test_motion_corpus_videos_ground_truth_and_narrations(motion_corpus: tuple[Path, dict[str, Any]]) -> None:
    out, gt = motion_corpus
    assert [v["path"] for v in gt["videos"]] == [f"motion_{i:03d}.mp4" for i in range(N_VIDEOS)]
    n_scenes = 0
    for v in gt["videos"]:
        assert v["video_uid"] == Path(v["path"]).stem
        with av.open(str(out / v["path"])) as c:
            assert (len(c.streams.video), len(c.streams.audio)) == (1, 0)
            assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (160, 120)
            assert sum(1 for _ in c.decode(video=0)) == round(SECONDS * FPS)
        scenes = v["scenes"]
        assert len(scenes) >= 2 and scenes[0]["start"] == 0.0 and scenes[-1]["end"] == SECONDS
        assert all(a["end"] == b["start"] for a, b in zip(scenes, scenes[1:]))
        for s in scenes:
            assert s["action"] in MOTION_ACTIONS
            t0, t1 = motion_window(s["end"] - s["start"])
            assert (s["motion_start"], s["motion_end"]) == (round(s["start"] + t0, 3), round(s["start"] + t1, 3))
            assert s["colour"] in s["narration"] and s["object"] in s["narration"]
            # the opposite sentence differs only in the direction words
            a, b = s["narration"].split(), s["opposite"].split()
            diff = {(x, y) for x, y in zip(a, b) if x != y}
            assert len(a) == len(b) and diff and diff <= _DIRECTION_SWAPS, (s["narration"], s["opposite"])
            n_scenes += 1
    rows = (out / NARRATIONS_FILE).read_text(encoding="utf-8").splitlines()
    assert rows[0].split("\t") == list(EGOCLIP_COLUMNS)
    body = [dict(zip(EGOCLIP_COLUMNS, r.split("\t"))) for r in rows[1:]]
    assert len(body) == n_scenes
    flat = [(v, s) for v in gt["videos"] for s in v["scenes"]]
    for i, (row, (v, s)) in enumerate(zip(body, flat)):
        assert row["clip_idx"] == str(i) and row["video_uid"] == v["video_uid"]
        assert float(row["clip_start"]) == s["motion_start"] and float(row["clip_end"]) == s["motion_end"]
        assert float(row["clip_start"]) <= float(row["narration_time"]) <= float(row["clip_end"])
        assert row["clip_text"] == s["narration"]
        assert json.loads(row["tag_verb"]) == [MOTION_ACTIONS.index(s["action"])]
        assert isinstance(json.loads(row["tag_noun"]), list)


def test_motion_corpus_is_deterministic_and_idempotent(motion_corpus: tuple[Path, dict[str, Any]],
                                                       tmp_path: Path) -> None:
    out, _ = motion_corpus
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    write_motion_corpus(out, n_videos=N_VIDEOS, seconds=SECONDS, seed=0, fps=FPS, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing rewritten
    again = tmp_path / "again"
    write_motion_corpus(again, n_videos=1, seconds=SECONDS, seed=0, fps=FPS, progress=False)
    assert (again / "motion_000.mp4").read_bytes() == (out / "motion_000.mp4").read_bytes()


def test_motion_corpus_refuses_a_folder_with_another_corpus(tmp_path: Path) -> None:
    (tmp_path / "ground_truth.json").write_text(json.dumps({"generator": "egoindex demo-data"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="another corpus"):
        write_motion_corpus(tmp_path, n_videos=1, seconds=4.0, progress=False)
    assert not list(tmp_path.glob("*.mp4"))


def test_scene_plan_balances_directions() -> None:
    scenes = plan_motion_video(0, 16.0, seed=3)
    assert sorted(s.action for s in scenes) == sorted(MOTION_ACTIONS)
    assert [s.ground_truth() for s in plan_motion_video(0, 16.0, seed=3)] == [s.ground_truth() for s in scenes]


# --------------------------------------------------------------------------------------------
# the frame mean is at chance by construction (real model, real videos, the benchmark's decode path)


@pytest.fixture(scope="module")
def frame_embedder() -> Any:
    import torch

    from egoindex.model.embed import Embedder
    from egoindex.model.openclip import Loaded, create

    torch.manual_seed(0)
    with torch_threads(1):
        c = create("ego-tiny-rn")
        return Embedder(Loaded(c.model, c.preprocess_val, c.tokenizer, c.name, {}), device="cpu")


def test_frame_mean_scores_exactly_chance_on_reversed_candidates(motion_corpus: tuple[Path, dict[str, Any]],
                                                                 frame_embedder: Any) -> None:
    from egoindex.bench.videos import embed_clips_from_videos

    out, gt = motion_corpus
    qs = generate_motion_questions(gt, {v["video_uid"] for v in gt["videos"]})
    assert len(qs) == sum(len(v["scenes"]) for v in gt["videos"])
    clips = [(q.video_uid, q.start, q.end) for q in qs]

    def resolve(uid: str) -> Path:
        return out / f"{uid}.mp4"

    with torch_threads(1):
        fwd = embed_clips_from_videos(frame_embedder, clips, resolve, num_frames=6, reverse=False)
        rev = embed_clips_from_videos(frame_embedder, clips, resolve, num_frames=6, reverse=True)
        texts = frame_embedder.encode_texts([q.text for q in qs])
        opps = frame_embedder.encode_texts([q.opposite for q in qs])
    assert frame_embedder.clip_kind == "frame-mean"
    t = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    right, wrong = np.einsum("ij,ij->i", t, fwd), np.einsum("ij,ij->i", t, rev)
    assert np.abs(right - wrong).max() <= TIE_EPS  # the same vector, up to summation rounding
    credit = pair_credit(right, wrong)
    assert (credit == 0.5).all()
    o = opps / np.linalg.norm(opps, axis=1, keepdims=True)
    metrics, rows = motion_metrics(qs, credit, pair_credit(right, np.einsum("ij,ij->i", o, fwd)))
    assert metrics["video_acc"] == 50.0 and metrics["chance_acc"] == 50.0
    assert metrics["video_ties"] == metrics["n"] == len(qs)
    assert {r["action"] for r in rows} <= set(MOTION_ACTIONS) and all(r["video_acc"] == 50.0 for r in rows)
    # the frames really differ over the window, by far more than the tie tolerance (a random tower
    # maps every frame close together, but not that close): the ties come from the order invariance
    with torch_threads(1):
        first = embed_clips_from_videos(frame_embedder, [(q.video_uid, q.start, q.start + 0.2) for q in qs[:2]],
                                        resolve, num_frames=1)
        last = embed_clips_from_videos(frame_embedder, [(q.video_uid, q.end - 0.2, q.end) for q in qs[:2]],
                                       resolve, num_frames=1)
    assert np.abs(first - last).max(axis=1).min() > 100 * TIE_EPS


# --------------------------------------------------------------------------------------------
# the metric


def test_pair_credit_is_retrievals_tie_rule() -> None:
    right = np.array([0.5, 0.2, 0.3, 0.3 + TIE_EPS / 2, 0.9])
    wrong = np.array([0.1, 0.4, 0.3, 0.3, 0.9 + 3 * TIE_EPS])
    credit = pair_credit(right, wrong)
    np.testing.assert_array_equal(credit, [1.0, 0.0, 0.5, 0.5, 0.0])
    r1 = retrieval_at_k(np.stack([right, wrong], 1), [[0]] * len(right), ks=(1,))["R@1"]
    assert r1 == pytest.approx(100.0 * credit.mean())
    with pytest.raises(ValueError):
        pair_credit(right, wrong[:2])


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(50, 100)
    assert (lo, hi) == (pytest.approx(0.403832, abs=1e-6), pytest.approx(0.596168, abs=1e-6))
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.277533, abs=1e-6)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(10, 10)[0] == pytest.approx(0.722467, abs=1e-6)
    scipy_stats = pytest.importorskip("scipy.stats")
    for k, n in [(3, 17), (41, 60), (250, 512)]:
        ref = scipy_stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson_interval(k, n) == (pytest.approx(ref.low, abs=1e-9), pytest.approx(ref.high, abs=1e-9))
    lo, hi = wilson_interval(7.5, 15)  # half credits: a proportion of exactly 1/2, symmetric interval
    assert lo + hi == pytest.approx(1.0)
    assert np.isnan(wilson_interval(0, 0)[0])
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_motion_metrics_per_action() -> None:
    qs = [MotionQuestion(f"v:{i}", "v", i, i + 1.0, "t", "o", a)
          for i, a in enumerate(["rises", "rises", "sinks", "sinks"])]
    m, rows = motion_metrics(qs, np.array([1.0, 1.0, 0.0, 0.5]), np.array([1.0, 0.0, 1.0, 0.0]))
    assert m["video_acc"] == pytest.approx(62.5) and m["text_acc"] == 50.0 and m["n"] == 4
    assert m["video_ties"] == 1
    lo, hi = wilson_interval(2.5, 4)
    assert (m["video_ci95_low"], m["video_ci95_high"]) == (pytest.approx(100 * lo), pytest.approx(100 * hi))
    by = {r["action"]: r for r in rows}
    assert by["rises"]["video_acc"] == 100.0 and by["sinks"]["video_acc"] == 25.0
    assert by["rises"]["text_acc"] == 50.0 and by["rises"]["n"] == 2


# --------------------------------------------------------------------------------------------
# question generation and the question file


def _ground_truth(n_videos: int = 6) -> dict[str, Any]:
    videos = [{"path": f"motion_{i:03d}.mp4", "video_uid": f"motion_{i:03d}", "duration": 12.0,
               "scenes": [s.ground_truth() for s in plan_motion_video(i, 12.0, seed=1)]} for i in range(n_videos)]
    return {"generator": "egoindex demo-data --motion", "videos": videos}


def test_question_generation_is_deterministic_and_val_only(tmp_path: Path) -> None:
    gt = _ground_truth()
    val = {"motion_001", "motion_004"}
    qs = generate_motion_questions(gt, val)
    assert {q.video_uid for q in qs} == val
    assert len(qs) == sum(len(v["scenes"]) for v in gt["videos"] if v["video_uid"] in val)
    assert len({q.key for q in qs}) == len(qs)
    for q in qs:
        scene = next(s for v in gt["videos"] if v["video_uid"] == q.video_uid for s in v["scenes"]
                     if s["narration"] == q.text and s["motion_start"] == q.start)
        assert (q.end, q.opposite, q.action) == (scene["motion_end"], scene["opposite"], scene["action"])
    shuffled = dict(gt, videos=random.Random(0).sample(gt["videos"], len(gt["videos"])))
    assert generate_motion_questions(shuffled, sorted(val, reverse=True)) == qs
    a = write_motion_questions(tmp_path / "a.json", qs, source="gt")
    b = write_motion_questions(tmp_path / "b.json", generate_motion_questions(gt, val), source="gt")
    assert a.read_bytes() == b.read_bytes()
    assert read_motion_questions(a) == qs
    assert generate_motion_questions(gt, set()) == []
    with pytest.raises(AnnotationError):
        generate_motion_questions({"videos": [{"path": "x.mp4", "scenes": [{"opposite": "y"}]}]}, {"x"})


def test_question_file_is_checked(tmp_path: Path) -> None:
    p = tmp_path / "q.json"
    p.write_text("not json", encoding="utf-8")
    with pytest.raises(AnnotationError):
        read_motion_questions(p)
    p.write_text(json.dumps({"questions": []}), encoding="utf-8")
    with pytest.raises(AnnotationError, match="not a motion question file"):
        read_motion_questions(p)
    q = MotionQuestion("k", "v", 1.0, 2.0, "the cup rises", "the cup sinks", "rises")
    write_motion_questions(p, [q, q])
    with pytest.raises(AnnotationError, match="duplicate"):
        read_motion_questions(p)


def test_bench_motion_is_registered() -> None:
    from typer.testing import CliRunner

    from egoindex.cli.main import app

    r = CliRunner().invoke(app, ["bench", "motion", "--help"])
    assert r.exit_code == 0 and "--generate-from" in r.output and "--questions" in r.output
    r = CliRunner().invoke(app, ["demo-data", "--help"])
    assert r.exit_code == 0 and "--motion" in r.output


# --------------------------------------------------------------------------------------------
# the default demo corpus is untouched


def _default_corpus_digest() -> tuple[str, str]:
    """(sha256 of every default action's poses over time, sha256 of three planned videos' ground truth)."""
    from egoindex.demo.plan import demo_video_names, plan_video

    h = hashlib.sha256()
    h.update(json.dumps(list(ACTIONS)).encode())
    for a in ACTIONS:
        for variant in range(4):
            r = SceneRenderer(Scene(ROOMS[variant % len(ROOMS)], "ball", "red", a, 6.0, variant * 7919 + 1), (320, 240))
            for t in np.linspace(0.0, 6.0, 25):
                p = r.pose(float(t))
                vals = [p.x, p.y, p.angle, p.scale, p.height, p.shadow_y or 0.0, *(p.hand or (0.0, 0.0)), float(p.grasp)]
                h.update(json.dumps([round(float(v), 6) for v in vals]).encode())
    g = hashlib.sha256()
    for i, name in enumerate(demo_video_names(3)):
        g.update(json.dumps(plan_video(i, name, 20.0, 0).ground_truth(), sort_keys=True).encode())
    return h.hexdigest(), g.hexdigest()


def test_default_demo_corpus_is_unchanged() -> None:
    """The default corpus (README figures, tests/unit/test_demo_corpus.py) must not move when the
    motion actions are added: its actions, every pose the renderer draws for them and the plan
    (scenes, narration, speech timing) equal what the code before the motion corpus produced
    (digests recorded from that code)."""
    assert ACTIONS == ("rolls", "bounces", "falls", "spins", "grabs", "shakes")
    assert not set(ACTIONS) & set(MOTION_ACTIONS)
    assert _default_corpus_digest() == (
        "d516d0b520b65d2955b84c905b0b88c31a64b8720b94986adb57f4c8eb437eee",
        "77a4ae3ec53c102ae9df47ca948a847f5a7941d74beae0694abd4654ca2b8d28",
    )
