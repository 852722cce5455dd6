"""The measuring instruments of benchmarks/ingest.py: the frame-number code that times ffmpeg's
samples, the keyframes-only sampler, and the per-core arithmetic behind the 100k-hour figures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.ingest import (HUNDRED_K_HOURS, error_stats, keyframes_only, make_clips, per_core, read_index,
                               run_ffmpeg)
from egoindex.media.frames import iter_frames


@pytest.fixture(scope="module")
def coded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clips(tmp_path_factory.mktemp("clips"), 4, (640, 360), "h264", (60,), index_code=True)[60]


def test_index_code_names_the_frame_each_sampler_shows(coded: Path):
    exact = list(iter_frames(coded, 2.0, 0, 95))
    assert [read_index(f.jpeg) for f in exact] == [15 * k for k in range(8)]
    fast = list(iter_frames(coded, 2.0, 0, 95, sampling="fast"))
    assert [read_index(f.jpeg) for f in fast] == [round(f.pts_time * 30) for f in fast]
    assert error_stats([(f.t, f.pts_time) for f in fast])["within_0.5s"]


def test_keyframes_only_takes_the_nearest_keyframe(coded: Path):
    got = keyframes_only(coded, 1.0)  # keyframes at 0 and 2 s
    assert got == [(0.0, 0.0), (1.0, 0.0), (2.0, 2.0), (3.0, 2.0)]
    assert error_stats(got) == {"max_abs_error_s": 1.0, "mean_abs_error_s": 0.5, "within_0.5s": False}


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
def test_ffmpeg_fps_filter_samples_are_read_back(coded: Path):
    shown = [read_index(j) for j in run_ffmpeg(coded, 1.0, scaled=False)]
    assert len(shown) == 4
    assert all(abs(i / 30 - k) <= 0.5 for k, i in enumerate(shown))  # fps=1 keeps a frame of each second


def test_per_core_arithmetic():
    r = per_core(video_s=3600.0, frames=3600, cpu_s=360.0)  # an hour of video in 0.1 core-hour
    assert r == {"frames_per_core_s": 10.0, "video_hours_per_core_hour": 10.0,
                 "core_hours_per_100k_video_hours": HUNDRED_K_HOURS // 10}
