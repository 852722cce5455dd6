"""Frame sampling modes cover the clip as documented (egoindex.media.clips), and the clip cache is bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from egoindex.errors import ConfigError
from egoindex.media.clip_sampling import ClipSampling, sample_indices
from egoindex.media.clips import ClipCache
from tests.media import make_video


def test_uniform_takes_the_middle_of_equal_segments() -> None:
    s = ClipSampling(num_frames=4, mode="uniform")
    assert sample_indices(40, s).tolist() == [5, 15, 25, 35]  # floor((i + 0.5) * 10)
    # three views shift the pick inside each segment; together they stay inside the clip
    views = [sample_indices(40, s, view=v, views=3).tolist() for v in range(3)]
    assert views == [[1, 11, 21, 31], [5, 15, 25, 35], [8, 18, 28, 38]]
    assert sample_indices(2, s).tolist() == [0, 0, 1, 1]  # fewer frames than samples: repeated in order


def test_random_draws_one_frame_inside_each_segment() -> None:
    s = ClipSampling(num_frames=5, mode="random")
    rng = np.random.default_rng(0)
    seen = np.stack([sample_indices(50, s, rng=rng) for _ in range(200)])
    for i in range(5):  # segment i is frames [10 i, 10 i + 10)
        assert seen[:, i].min() >= 10 * i and seen[:, i].max() < 10 * i + 10
    assert len(np.unique(seen[:, 0])) == 10  # every frame of a segment can be drawn
    assert sample_indices(50, s).tolist() == sample_indices(50, ClipSampling(num_frames=5)).tolist()  # eval: uniform


def test_dense_is_consecutive_frames_a_stride_apart() -> None:
    s = ClipSampling(num_frames=4, mode="dense", stride=3)  # window of 10 frames
    assert sample_indices(30, s).tolist() == [10, 13, 16, 19]  # one view: centred ((30 - 10) // 2)
    starts = [sample_indices(30, s, view=v, views=3)[0] for v in range(3)]
    assert starts == [0, 10, 20]  # first, middle and last possible window
    rng = np.random.default_rng(1)
    draws = {int(sample_indices(30, s, rng=rng)[0]) for _ in range(300)}
    assert draws == set(range(21))
    assert sample_indices(6, s).tolist() == [0, 3, 5, 5]  # shorter than the window: the last frame repeats


def test_bad_sampling_is_refused() -> None:
    with pytest.raises(ConfigError, match="sampling mode"):
        ClipSampling(mode="sparse").check()
    with pytest.raises(ConfigError, match="short-side"):
        ClipSampling(image_size=64, short_side=48).check()


def test_cache_decodes_once_and_stays_within_its_budget(tmp_path: Path) -> None:
    a = make_video(tmp_path / "a.mp4", 2.0, fps=8, size=(96, 64), audio=None)
    b = make_video(tmp_path / "b.mp4", 2.0, fps=8, size=(96, 64), audio=None)
    one = 16 * 32 * 48 * 3  # 16 frames at 8 fps, short side 32 -> 48 x 32
    cache = ClipCache(max_bytes=one + one // 2)
    first = cache.get(a, 8.0, 32)
    assert first.frames.shape == (16, 32, 48, 3) and first.frames.dtype == np.uint8
    assert cache.get(a, 8.0, 32) is first and (cache.hits, cache.misses) == (1, 1)
    cache.get(b, 8.0, 32)  # evicts a: only one fits
    assert len(cache) == 1 and cache.nbytes <= cache.max_bytes
    assert cache.get(a, 8.0, 32) is not first and cache.misses == 3
