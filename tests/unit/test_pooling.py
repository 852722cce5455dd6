"""The one clip-window rule (egoindex/model/pooling.py): windows, membership, normalised mean.

Pure numpy, no model: the build's clips and the classifier's raw-video clips both come from here."""

from __future__ import annotations

import numpy as np
import pytest

from egoindex.errors import ConfigError
from egoindex.model.pooling import EPS, clip_windows, normalised_mean, pool_clips, window_mask


def test_windows_slide_until_one_reaches_the_end() -> None:
    assert clip_windows(10.0, 4.0, 2.0) == [(0.0, 4.0), (2.0, 6.0), (4.0, 8.0), (6.0, 10.0)]
    assert clip_windows(11.0, 4.0, 2.0)[-1] == (8.0, 11.0)  # the last is cut at the end
    assert clip_windows(3.0, 4.0, 2.0) == [(0.0, 3.0)]       # shorter than a window: one window
    assert clip_windows(0.0, 4.0, 2.0) == [(0.0, 0.0)]
    assert clip_windows(1.0, 0.3, 0.1)[3] == (0.3, 0.6)      # bounds rounded to the microsecond


@pytest.mark.parametrize("seconds, stride", [(0.0, 2.0), (4.0, 0.0), (-1.0, 1.0)])
def test_windows_need_positive_sizes(seconds: float, stride: float) -> None:
    with pytest.raises(ConfigError, match="positive"):
        clip_windows(10.0, seconds, stride)


def test_membership_is_half_open_except_the_last_window() -> None:
    t = np.array([0.0, 2.0, 4.0])
    assert window_mask(t, 0.0, 4.0, last=False).tolist() == [True, True, False]
    assert window_mask(t, 0.0, 4.0, last=True).tolist() == [True, True, True]
    # float noise below EPS does not move a frame across a bound; a real gap (1 us) does
    noisy = np.array([2.0 - EPS / 10, 4.0 - EPS / 10, 4.0 - 1e-6])
    assert window_mask(noisy, 2.0, 4.0, last=False).tolist() == [True, False, True]


def test_normalised_mean_is_unit_length_and_keeps_zero() -> None:
    v = normalised_mean(np.array([[3.0, 0.0], [0.0, 4.0]], np.float32))
    assert v.dtype == np.float32 and np.isclose(np.linalg.norm(v), 1.0)
    assert np.allclose(v, np.array([3.0, 4.0]) / 5.0)
    assert normalised_mean(np.array([[1.0, 0.0], [-1.0, 0.0]])).tolist() == [0.0, 0.0]


def test_pool_clips_counts_every_frame_and_drops_empty_windows() -> None:
    fps, duration = 2.0, 9.0
    times = np.arange(0, duration * fps + 1) / fps  # 0 .. 9.0 inclusive: the last frame sits on the end
    vecs = np.random.default_rng(0).normal(size=(len(times), 8)).astype(np.float32)
    pooled = pool_clips(times, vecs, 0.0, duration, 4.0, 2.0)
    assert pooled.windows == clip_windows(duration, 4.0, 2.0)
    assert pooled.n_frames == [8, 8, 8, 7]  # [6, 9] is closed: the frame at 9.0 counts
    assert np.allclose(pooled.vectors[0], normalised_mean(vecs[:8]))
    assert np.allclose(np.linalg.norm(pooled.vectors, axis=1), 1.0)

    gap = pool_clips(np.array([0.5, 9.5]), vecs[:2], 0.0, 10.0, 2.0, 2.0)
    assert gap.windows == [(0.0, 2.0), (8.0, 10.0)] and gap.vectors.shape == (2, 8)


def test_pool_clips_offsets_windows_to_the_segment_start() -> None:
    times = 100.0 + np.arange(0, 12) / 2.0  # a segment from 100 s sampled at 2 fps
    vecs = np.eye(12, dtype=np.float32)
    seg = pool_clips(times, vecs, 100.0, 106.0, 4.0, 2.0)
    whole = pool_clips(times - 100.0, vecs, 0.0, 6.0, 4.0, 2.0)
    assert seg.windows == [(100.0 + s, 100.0 + e) for s, e in whole.windows]
    assert seg.n_frames == whole.n_frames and np.array_equal(seg.vectors, whole.vectors)


def test_span_reaches_a_frame_past_the_end() -> None:
    """A header duration shorter than the decoded frames: the windows reach the last frame."""
    times = np.array([0.0, 1.0, 2.0, 3.0, 4.5])
    pooled = pool_clips(times, np.ones((5, 2), np.float32), 0.0, 4.0, 4.0, 2.0)
    assert pooled.windows[-1] == (2.0, 4.5) and sum(pooled.n_frames) >= len(times)
