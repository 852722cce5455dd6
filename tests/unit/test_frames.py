import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from egoindex.media.frames import DecodeStats, VideoError, iter_frames, n_samples, probe, target_size
from tests.media import frame_level, make_video


def grey(jpeg: bytes) -> float:
    return float(np.asarray(Image.open(io.BytesIO(jpeg)).convert("L")).mean())


@pytest.mark.parametrize("seconds,fps", [(10.0, 1), (10.0, 5), (7.5, 2), (4.2, 3)])
def test_count_and_times_match_duration_times_fps(tmp_path: Path, seconds: float, fps: float):
    p = make_video(tmp_path / "v.mp4", seconds, fps=15, audio=None)
    frames = list(iter_frames(p, fps))
    assert len(frames) == n_samples(seconds, fps) == int(np.ceil(seconds * fps - 1e-9))
    assert [f.t for f in frames] == pytest.approx([k / fps for k in range(len(frames))])
    times = np.round(np.arange(round(seconds * 15)) / 15, 3)  # the encoder's millisecond pts
    for k, f in enumerate(frames):  # the frame on screen at k / fps, identified by its grey level
        shown = int(np.searchsorted(times, k / fps + 1e-9, side="right") - 1)
        assert grey(f.jpeg) == pytest.approx(frame_level(shown), abs=3)
        assert f.pts_time == pytest.approx(times[shown], abs=1e-3)


def test_variable_frame_rate_uses_presentation_times(tmp_path: Path):
    # 40 frames at irregular times: bursts at 30 fps and gaps of up to 1.3 s.
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.choice([1 / 30, 0.25, 1.3], size=40, p=[0.6, 0.3, 0.1]))
    times = np.round(np.concatenate([[0.0], times[:-1]]), 3)
    p = make_video(tmp_path / "vfr.mp4", float(times[-1]) + 0.5, fps=30, audio=None, frame_times=times)
    frames = list(iter_frames(p, 2))
    assert len(frames) == n_samples(times[-1] + 1 / 30, 2)  # to the end of the last frame shown
    for k, f in enumerate(frames):
        shown = int(np.searchsorted(times, k / 2 + 1e-9, side="right") - 1)  # last frame with time <= t
        assert grey(f.jpeg) == pytest.approx(frame_level(shown), abs=3), f.t
        assert f.pts_time == pytest.approx(times[shown], abs=2e-3)


def test_resize_short_side_never_upscales(tmp_path: Path):
    assert target_size(1920, 1080, 256) == (455, 256)
    assert target_size(1080, 1920, 256) == (256, 455)
    assert target_size(200, 100, 256) == (200, 100)
    assert target_size(640, 480, 0) == (640, 480)
    p = make_video(tmp_path / "wide.mp4", 2, size=(640, 360), audio=None)
    f = next(iter_frames(p, 1, short_side=128))
    assert (f.width, f.height) == (228, 128)
    assert Image.open(io.BytesIO(f.jpeg)).size == (228, 128)


def test_bad_files_raise_video_error_with_kind(tmp_path: Path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mov"
    junk.write_bytes(b"this is not a video" * 100)
    for path, kind in [(empty, "empty"), (junk, "unreadable")]:
        with pytest.raises(VideoError) as e:
            probe(path)
        assert e.value.kind == kind


def test_truncated_file_is_detected(tmp_path: Path):
    p = make_video(tmp_path / "t.mp4", 20, audio=None, faststart=True)
    data = p.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    stats = DecodeStats()
    frames = list(iter_frames(cut, 1, stats=stats))
    assert 0 < len(frames) < 20
    assert any(w.startswith("truncated") for w in stats.warnings)
