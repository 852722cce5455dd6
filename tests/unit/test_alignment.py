"""Utterance-frame alignment (``egoindex bench alignment``): the window and baseline rules, the
gap, the bootstrap interval (:mod:`egoindex.metrics.alignment`), and the bench on a small real
store (real LanceDB tables written through the store's writer, vectors chosen by the test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from egoindex.bench.alignment import age_bin, alignment_from_store
from egoindex.cli.main import app
from egoindex.errors import BenchError
from egoindex.metrics.alignment import (
    SKIP_NO_FRAMES,
    SKIP_NO_NEAR_FRAME,
    AlignmentUtterance,
    VideoFrames,
    across_video_window,
    align_utterances,
    bootstrap_mean_ci,
    gap_summary,
    grouped_summaries,
    length_bin,
    window_frames,
    within_video_window,
)
from egoindex.store import Store
from egoindex.store.layout import StoreLayout, StoreMeta
from egoindex.store.schema import schema_for, vectors_array
from egoindex.store.writer import record_tables, write_meta, write_table

DIM = 32


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def normalise(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def topic_corpus(rng: np.random.Generator, *, n_videos: int = 6, seconds: int = 60, fps: float = 2.0,
                 utt_len: float = 3.0, aligned: bool = True) -> tuple[list[AlignmentUtterance], dict[str, VideoFrames]]:
    """Videos made of 6 s scenes, each scene's frames = its own random topic + small noise; one
    utterance per scene over [scene start + 1, + utt_len]. ``aligned``: the utterance's vector is its
    scene's topic (= its window's frame vectors up to the noise); else a random vector."""
    frames: dict[str, VideoFrames] = {}
    utts: list[AlignmentUtterance] = []
    for v in range(n_videos):
        uid = f"vid-{v}"
        times = np.arange(0.0, seconds, 1.0 / fps)
        topics = unit(rng, seconds // 6)
        scene = (times // 6).astype(int)
        vecs = normalise(topics[scene] + 0.05 * rng.standard_normal((len(times), DIM)))
        frames[uid] = VideoFrames.of(times, vecs)
        for s in range(seconds // 6):
            start = 6.0 * s + 1.0
            vec = topics[s] if aligned else unit(rng, 1)[0]
            utts.append(AlignmentUtterance(f"{uid}-{s}", uid, start, start + utt_len, vec, "word " * (1 + s % 7)))
    return utts, frames


# ----------------------------------------------------------------------------- windows and baselines


def test_window_frames_inside_then_nearest_within_tolerance_else_none() -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    idx, nearest = window_frames(t, 0.5, 2.5)
    assert idx.tolist() == [1, 2] and not nearest
    idx, nearest = window_frames(t, 4.2, 4.8)  # 3.0 is 1.2 s away, 10.0 is 5.2 s away
    assert idx.size == 0 and nearest
    idx, nearest = window_frames(t, 3.6, 4.0)  # 3.0 is 0.6 s before the window
    assert idx.tolist() == [3] and nearest
    idx, _ = window_frames(t, 3.6, 4.0, nearest_s=0.5)
    assert idx.size == 0


def test_baseline_windows_never_overlap_the_utterance_and_across_never_uses_its_video() -> None:
    rng = np.random.default_rng(1)
    sizes = [int(rng.integers(3, 60)) for _ in range(5)]
    frames = {f"v{i}": VideoFrames.of(np.sort(rng.uniform(0, 40, size=n)), unit(rng, n)) for i, n in enumerate(sizes)}
    draws = within_drawn = across_drawn = 0
    for _ in range(3000):
        own_video = f"v{int(rng.integers(5))}"
        t = frames[own_video].times
        start = float(rng.uniform(-2, 42))
        end = start + float(rng.uniform(0, 8))
        own, _ = window_frames(t, start, end, nearest_s=1.0)
        if own.size == 0:
            continue
        draws += 1
        n = own.size
        w = within_video_window(rng, n, t, own, start, end)
        if w is not None:
            within_drawn += 1
            assert w.size == n and np.all(np.diff(w) == 1)
            assert not set(w.tolist()) & set(own.tolist())
            lo, hi = min(start, t[own].min()), max(end, t[own].max())
            assert t[w].max() < lo or t[w].min() > hi, (t[w], start, end, t[own])
        a = across_video_window(rng, n, frames, own_video)
        if a is not None:
            across_drawn += 1
            video, idx = a
            assert video != own_video and idx.size == n
            assert idx.max() < len(frames[video].times) and np.all(np.diff(idx) == 1)
        else:
            assert all(len(f.times) < n for v, f in frames.items() if v != own_video)
    assert draws > 1000 and within_drawn > 500 and across_drawn > 500  # the loop tested something


def test_no_baseline_when_none_exists() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(10.0)
    assert within_video_window(rng, 5, t, np.arange(3, 8), 3.0, 7.0) is None  # 3 frames before, 2 after
    assert within_video_window(rng, 3, t, np.arange(3, 8), 3.0, 7.0).tolist() == [0, 1, 2]
    frames = {"a": VideoFrames.of(t, unit(rng, 10)), "b": VideoFrames.of(t[:2], unit(rng, 2))}
    assert across_video_window(rng, 3, frames, "a") is None


def test_skips_with_reasons_and_nan_baselines_are_left_out() -> None:
    rng = np.random.default_rng(0)
    frames = {"a": VideoFrames.of(np.arange(5.0), unit(rng, 5))}
    utts = [AlignmentUtterance("u0", "a", 1.0, 2.0, unit(rng, 1)[0]),
            AlignmentUtterance("u1", "a", 20.0, 21.0, unit(rng, 1)[0]),
            AlignmentUtterance("u2", "missing", 0.0, 1.0, unit(rng, 1)[0])]
    res = align_utterances(utts, frames, baselines=3)
    assert [r.skipped for r in res] == [None, SKIP_NO_NEAR_FRAME, SKIP_NO_FRAMES]
    assert res[0].n_frames == 2 and np.isnan(res[0].baseline["max_across"])  # no other video
    s = gap_summary(res, n_resamples=50)
    assert s["n"] == 1 and s["n_max_within"] == 1 and s["n_max_across"] == 0
    assert np.isnan(s["gap_max_across"]) and np.isfinite(s["gap_max_within"])


def test_deterministic_for_a_seed() -> None:
    utts, frames = topic_corpus(np.random.default_rng(3), n_videos=3)
    a = align_utterances(utts, frames, baselines=4, seed=7)
    b = align_utterances(utts, frames, baselines=4, seed=7)
    c = align_utterances(utts, frames, baselines=4, seed=8)
    assert [r.baseline for r in a] == [r.baseline for r in b]
    assert [r.baseline for r in a] != [r.baseline for r in c]
    assert [r.real for r in a] == [r.real for r in c]  # the real window does not depend on the seed
    assert bootstrap_mean_ci([0.1, 0.5, 0.2, 0.9], seed=1) == bootstrap_mean_ci([0.1, 0.5, 0.2, 0.9], seed=1)


# ----------------------------------------------------------------------------- gap and bootstrap


def test_gap_clearly_positive_when_text_is_its_window_and_zero_when_random() -> None:
    """Text = its window's frame vectors (up to noise): every gap is large. Random: about 0."""
    utts, frames = topic_corpus(np.random.default_rng(0), aligned=True)
    s = gap_summary(align_utterances(utts, frames, baselines=10, seed=0), n_resamples=500)
    for key in ("max_across", "max_within", "mean_across", "mean_within"):
        assert s[f"gap_{key}"] > 0.5 and s[f"gap_{key}_ci95_low"] > 0.4, (key, s)
        assert s[f"n_{key}"] == s["n"] == len(utts)
    # random: frames and texts independent unit vectors (no scenes, so real and baseline windows are
    # exchangeable and the expected gap is exactly 0)
    rng = np.random.default_rng(0)
    utts, frames = topic_corpus(rng, n_videos=20, aligned=False)
    frames = {v: VideoFrames.of(f.times, unit(rng, len(f.times))) for v, f in frames.items()}
    s = gap_summary(align_utterances(utts, frames, baselines=10, seed=0), n_resamples=500)
    for key in ("max_across", "max_within", "mean_across", "mean_within"):
        # 200 utterances, independent vectors: the expected gap is 0; 0.03 is several standard errors
        assert abs(s[f"gap_{key}"]) < 0.03, (key, s)
        assert s[f"gap_{key}_ci95_low"] < 0.03 and s[f"gap_{key}_ci95_high"] > -0.03, (key, s)


def test_bootstrap_interval_covers_the_true_mean_gap_in_most_repetitions() -> None:
    """200 simulated studies of 60 utterances whose gaps are skewed (exponential - 0.3, true mean
    0.2): the 95 % percentile interval should cover 0.2 in about 95 % of them."""
    true_mean = 0.2
    covered = 0
    reps = 200
    for rep in range(reps):
        gaps = np.random.default_rng(1000 + rep).exponential(0.5, size=60) - 0.3
        lo, hi = bootstrap_mean_ci(gaps, n_resamples=1000, seed=rep)
        covered += lo <= true_mean <= hi
    assert 0.9 <= covered / reps <= 0.99, covered


def test_bootstrap_of_nothing_is_nan_and_groups_follow_the_given_order() -> None:
    assert all(np.isnan(bootstrap_mean_ci([])))
    assert [length_bin(t) for t in ("", "hi", "hi there", "a b c", "a b c d e", "a b c d e f")] == \
        [None, "1-2", "1-2", "3-5", "3-5", "6+"]
    utts, frames = topic_corpus(np.random.default_rng(0), n_videos=2)
    rows = grouped_summaries(align_utterances(utts, frames, baselines=2), lambda r: length_bin(r.utterance.text),
                             n_resamples=20, order=["1-2", "3-5", "6+"])
    assert [r["group"] for r in rows] == ["1-2", "3-5", "6+"]
    assert sum(r["n"] for r in rows) == len(utts)


def test_age_bins() -> None:
    assert age_bin("age_months", 7.5) == "6-12 mo"
    assert age_bin("age_days", 400) == "12-18 mo"
    assert age_bin("age_bin", "6-12m") == "6-12m"
    assert age_bin("age_months", None) is None


# ----------------------------------------------------------------------------- a small real store


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four val videos and one train video of 30 s at 2 fps, made of 6 s scenes with their own
    topic vector; one utterance per scene whose stored vector is its scene's topic, plus one val
    utterance after the last frame (skipped) and one with empty text."""
    root = tmp_path_factory.mktemp("align")
    rng = np.random.default_rng(0)
    frames, fvecs, utts, uvecs, vids = [], [], [], [], []
    for v in range(5):
        uid, split = f"vid-{v}", "val" if v < 4 else "train"
        topics = unit(rng, 5)
        for f, t in enumerate(np.arange(0.0, 30.0, 0.5)):
            frames.append({"video_uid": uid, "t": float(t), "frame_index": f, "split": split, "text": "",
                           "shard": "s.tar", "key": f"{uid}_{f:06d}", "unit": "s.tar"})
            fvecs.append(normalise(topics[int(t // 6)] + 0.05 * rng.standard_normal(DIM)))
        for s in range(5):
            utts.append({"utterance_id": f"{uid}-{s}", "video_uid": uid, "start": 6.0 * s + 1, "end": 6.0 * s + 3.5,
                         "split": split, "text": " ".join(["word"] * (1 + 2 * s)), "no_speech_prob": 0.1,
                         "avg_logprob": -0.2, "compression_ratio": 1.0, "unit": "b",
                         "speaker": "CHI" if s == 0 else "FEM", "child_id": f"kid{v % 2}", "age_days": 200 + 100 * v})
            uvecs.append(topics[s])
        vids.append({"video_uid": uid, "source": f"{uid}.mp4", "split": split, "duration": 30.0, "width": 64,
                     "height": 64, "native_fps": 2.0, "n_frames": 60, "n_utterances": 5, "unit": "b"})
    for extra, text in (("late", "said after the end"), ("empty", " ")):
        utts.append({"utterance_id": f"vid-0-{extra}", "video_uid": "vid-0", "start": 40.0, "end": 41.0,
                     "split": "val", "text": text, "no_speech_prob": 0.1, "avg_logprob": -0.2,
                     "compression_ratio": 1.0, "unit": "b"})
        uvecs.append(unit(rng, 1)[0])
    layout = StoreLayout(root / "store")
    for name, rows, vecs in (("frames", frames, fvecs), ("utterances", utts, uvecs), ("clips", [], []),
                             ("videos", vids, None)):
        schema = schema_for(name, DIM)
        cols = {n: pa.array([r.get(n) for r in rows], type=schema.field(n).type) for n in schema.names if n != "vector"}
        if vecs is not None:
            cols["vector"] = vectors_array(np.asarray(vecs, np.float32).reshape(-1, DIM))
        write_table(layout, name, pa.table(cols, schema=schema), DIM)
    rows, versions = record_tables(layout)
    write_meta(layout, StoreMeta(model="ViT-B-32", checkpoint=str(root / "gone.pt"), checkpoint_sha256="0" * 64,
                                 embed_dim=DIM, shards_dir=str(root), videos_root=str(root), rows=rows,
                                 table_versions=versions))
    return layout.root


def test_store_report_on_val(store_dir: Path, tmp_path: Path) -> None:
    r = alignment_from_store(Store(store_dir), tmp_path, seed=0, baselines=5, n_resamples=200)
    m, meta = r.metrics, r.meta
    assert m["n_utterances"] == 20 and m["n_skipped"] == 2  # the train video's utterances are not read
    for key in ("model", "checkpoint_sha256", "split", "seed", "baselines", "n_utterances"):
        assert key in meta
    assert (meta["split"], meta["seed"], meta["baselines"], meta["n_utterances"]) == ("val", 0, 5, 20)
    # the store's own speaker and participant columns (egoindex.store.schema) give the breakdowns
    assert meta["breakdowns_omitted"] == [] and not any("breakdowns are omitted" in n for n in r.notes)
    assert meta["breakdowns"] == ["speaker (utterances.speaker)", "child (utterances.child_id)",
                                  "age (utterances.age_days)"]
    assert m["gap_max_across"] > 0.5 and m["gap_mean_within"] > 0.5 and m["gap_max_within_ci95_low"] > 0.4
    doc = json.loads(r.written["json"].read_text(encoding="utf-8"))
    assert [row["group"] for row in doc["tables"]["by_length"]] == ["1-2", "3-5", "6+"]
    assert sorted(row["group"] for row in doc["tables"]["by_speaker"]) == ["CHI", "FEM"]
    assert {row["reason"]: row["n"] for row in doc["tables"]["skipped"]} == {SKIP_NO_NEAR_FRAME: 1, "empty text": 1}
    assert len(doc["tables"]["utterances"]) == 21  # the empty-text one is counted, not scored
    assert r.written["plot:similarities"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| gap_max_across |" in r.written["md"].read_text(encoding="utf-8")
    again = alignment_from_store(Store(store_dir), tmp_path / "again", seed=0, baselines=5, n_resamples=200)
    assert again.metrics == m


def test_store_cli_split_all_and_bad_split(store_dir: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "alignment", str(store_dir), "--split", "all", "--baselines", "2",
                                   "--bootstrap", "100", "--out-dir", str(tmp_path), "--name", "al"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "al.json").read_text(encoding="utf-8"))
    assert doc["meta"]["split"] == "all" and doc["metrics"]["n_utterances"] == 25
    with pytest.raises(BenchError, match="--split"):
        alignment_from_store(Store(store_dir), tmp_path, split="test")
