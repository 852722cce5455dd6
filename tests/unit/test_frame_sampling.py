"""The two sampling modes on real encodes with realistic groups of pictures (B-frames, fixed GOP).

exact: skipping the non-reference frames no sample shows must not change a byte; fast: every
sample within 0.5 s of its nominal time, showing the frame its ``pts_time`` says, for fewer
decoded frames. Frames are identified by the grey level of a band at the top of each picture.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from egoindex.dataset.layout import ShardsLayout, read_ingest_config, write_ingest_config
from egoindex.errors import IngestError, MediaError
from egoindex.ingest.config import IngestConfig, check_config
from egoindex.media import frames as frames_mod
from egoindex.media.frames import DecodeStats, SampledFrame, iter_frames, n_samples
from egoindex.media.seekplan import FAST_TOLERANCE_S, fast_choice, shown_by_a_sample
from tests.media import BAND, frame_level, make_gop_video, make_video

def band_level(f: SampledFrame) -> float:
    rows = round(BAND * f.height / 240) - 4
    return float(np.asarray(Image.open(io.BytesIO(f.jpeg)).convert("L"))[2:rows].mean())


def shown_index(f: SampledFrame, rate: int = 30) -> int:
    """The source frame a sample shows, from its band (and checked against its pts_time)."""
    i = round(f.pts_time * rate)
    assert band_level(f) == pytest.approx(frame_level(i), abs=4), (f.t, f.pts_time)
    return i


def keyframe_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return sorted(float(p.pts * vs.time_base) for p in c.demux(vs) if p.is_keyframe and p.pts is not None)


@pytest.fixture(scope="module")
def h264(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gop_video(tmp_path_factory.mktemp("gop") / "h264-g60.mp4", 12.0)


@pytest.mark.parametrize("codec,gop,open_gop", [("libx264", 60, False), ("libx264", 250, True), ("libx265", 60, False)])
def test_exact_skipping_nonref_frames_changes_no_byte(tmp_path: Path, codec: str, gop: int, open_gop: bool):
    p = make_gop_video(tmp_path / "v.mp4", 10.0, gop=gop, codec=codec, open_gop=open_gop)
    for fps in (1.0, 2.0):  # at 2 fps the samples show frames 15k: odd ones are non-reference B-frames
        every, skipping = DecodeStats(), DecodeStats()
        a = list(iter_frames(p, fps, stats=every, skip_nonref=False))
        b = list(iter_frames(p, fps, stats=skipping))
        assert len(a) == len(b) == n_samples(10.0, fps)
        assert [(f.t, f.pts_time, f.jpeg) for f in a] == [(f.t, f.pts_time, f.jpeg) for f in b]
        assert every.decoded_frames == 300
        assert skipping.decoded_frames < 0.8 * every.decoded_frames  # the B-frames nobody showed
        assert skipping.decoded_until == every.decoded_until
        for f in b:  # and it is the frame on screen at t
            assert shown_index(f) == int(np.floor(f.t * 30 + 1e-6))


def test_exact_skipping_on_variable_frame_rate_is_unchanged(tmp_path: Path):
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.choice([1 / 30, 0.25, 1.3], size=80, p=[0.6, 0.3, 0.1]))
    times = np.round(np.concatenate([[0.0], times[:-1]]), 3)
    p = make_video(tmp_path / "vfr.mp4", float(times[-1]) + 0.5, fps=30, audio=None, frame_times=times)
    for fps in (1.0, 3.0):
        a = list(iter_frames(p, fps, skip_nonref=False))
        b = list(iter_frames(p, fps))
        assert [(f.pts_time, f.jpeg) for f in a] == [(f.pts_time, f.jpeg) for f in b]


@pytest.mark.parametrize("fps", [1.0, 2.0, 0.5])
def test_fast_every_sample_within_half_a_second_and_shows_its_pts_time(h264: Path, fps: float):
    exact_stats, fast_stats = DecodeStats(), DecodeStats()
    exact = list(iter_frames(h264, fps, stats=exact_stats))
    fast = list(iter_frames(h264, fps, stats=fast_stats, sampling="fast"))
    assert len(fast) == len(exact) == n_samples(12.0, fps)
    assert [f.t for f in fast] == [f.t for f in exact]
    keys = keyframe_times(h264)
    assert keys == pytest.approx([0, 2, 4, 6, 8, 10])
    for f in fast:
        assert abs(f.pts_time - f.t) <= FAST_TOLERANCE_S + 1e-6, (f.t, f.pts_time)
        shown_index(f)  # the picture is the frame at pts_time
        near = [k for k in keys if abs(k - f.t) <= FAST_TOLERANCE_S + 1e-9]
        if near:  # the nearest keyframe when one is that close ...
            assert f.pts_time == pytest.approx(min(near, key=lambda k: (abs(k - f.t), k)), abs=1e-6)
        else:  # ... else the first frame at or after t - 0.5 s
            assert f.pts_time == pytest.approx(np.ceil((f.t - FAST_TOLERANCE_S) * 30 - 1e-6) / 30, abs=1e-6)
    assert fast_stats.decoded_frames < exact_stats.decoded_frames / 2
    assert fast_stats.decoded_until == pytest.approx(exact_stats.decoded_until)


def test_fast_long_gop_planned_in_pieces_gives_the_same_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    p = make_gop_video(tmp_path / "g250.mp4", 10.0, gop=250, open_gop=True)
    whole = list(iter_frames(p, 1.0, sampling="fast"))
    monkeypatch.setattr(frames_mod, "MAX_GROUP_PACKETS", 70)  # every group of 250 is cut in pieces
    pieces = list(iter_frames(p, 1.0, sampling="fast"))
    assert [(f.pts_time, f.jpeg) for f in pieces] == [(f.pts_time, f.jpeg) for f in whole]
    assert len(whole) == 10
    for f in whole:
        assert abs(f.pts_time - f.t) <= FAST_TOLERANCE_S + 1e-6
        shown_index(f)


def test_fast_hevc(tmp_path: Path):
    p = make_gop_video(tmp_path / "hevc.mp4", 6.0, gop=60, codec="libx265")
    fast = list(iter_frames(p, 1.0, sampling="fast"))
    assert len(fast) == 6
    for f in fast:
        assert abs(f.pts_time - f.t) <= FAST_TOLERANCE_S + 1e-6
        shown_index(f)


def test_fast_variable_frame_rate_and_truncation(tmp_path: Path):
    times = np.round(np.concatenate([np.arange(0, 3, 1 / 30), 3.4 + np.arange(0, 2, 0.25)]), 3)
    p = make_video(tmp_path / "vfr.mp4", float(times[-1]) + 0.25, fps=30, audio=None, frame_times=times)
    exact = list(iter_frames(p, 2.0))
    fast = list(iter_frames(p, 2.0, sampling="fast"))
    assert len(fast) == len(exact)
    for f in fast:  # frames every <= 0.4 s: always one within 0.5 s
        assert abs(f.pts_time - f.t) <= FAST_TOLERANCE_S + 1e-6
        assert float(np.min(np.abs(times - f.pts_time))) < 2e-3  # a real frame's time

    long = make_video(tmp_path / "t.mp4", 20, audio=None, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(long.read_bytes()[: long.stat().st_size // 2])
    stats = DecodeStats()
    got = list(iter_frames(cut, 1, stats=stats, sampling="fast"))
    assert 0 < len(got) < 20
    assert any(w.startswith("truncated") for w in stats.warnings)


def test_bad_sampling_is_refused(h264: Path):
    with pytest.raises(MediaError, match="sampling must be one of exact, fast"):
        next(iter_frames(h264, 1.0, sampling="nearest"))
    with pytest.raises(IngestError, match="--sampling must be one of exact, fast"):
        IngestConfig(sampling="nearest").validate()


def test_sampling_is_part_of_the_ingest_identity(tmp_path: Path):
    layout = ShardsLayout(tmp_path / "shards")
    check_config(layout, IngestConfig(sampling="fast"))
    assert read_ingest_config(layout)["sampling"] == "fast"
    with pytest.raises(IngestError, match="sampling: was 'fast', now 'exact'"):
        check_config(layout, IngestConfig())
    check_config(layout, IngestConfig(sampling="fast"))  # the same settings resume

    # a config.json from before --sampling existed was exact: it resumes as exact, refuses fast
    old = ShardsLayout(tmp_path / "old")
    check_config(old, IngestConfig())
    written = read_ingest_config(old)
    del written["sampling"]
    write_ingest_config(old, written)
    check_config(old, IngestConfig())
    with pytest.raises(IngestError, match="sampling: was 'exact', now 'fast'"):
        check_config(old, IngestConfig(sampling="fast"))


def test_plan_rules():
    # 30 fps frames at 0, 1/30, ...: the frame at 1.0 is shown at t = 1.0; the one at 1/30 at no k/1
    assert shown_by_a_sample(1.0, 1.0 + 1 / 30, 1.0)
    assert not shown_by_a_sample(1 / 30, 2 / 30, 1.0)
    assert shown_by_a_sample(0.9, 1.2, 1.0)  # on screen at t = 1.0
    assert shown_by_a_sample(1.5, float("inf"), 1.0)  # unknown next frame: decode it
    # a group: keyframe at 2.0 (index 0), leading pictures at 1.9 and 1.95, then 2.1, 2.2, ...
    times = [2.0, 1.95, 1.9, 2.2, 2.1, 2.4, 2.3, None, 2.6, 2.5]
    assert fast_choice(2.4, times, 2.0, 0, 0.5) == 0  # the keyframe is 0.4 s before
    assert fast_choice(1.8, times, 2.0, 0, 0.5) == 0  # a time before the keyframe: never a leading picture
    assert fast_choice(2.65, times, 2.0, 0, 0.5) == 3  # the first frame at or after 2.15: 2.2
    assert fast_choice(3.5, times, 2.0, 0, 0.5) is None  # a later group's
    assert fast_choice(2.75, times, 2.0, None, 0.5) == 6  # keyframe already decoded: first frame >= 2.25

