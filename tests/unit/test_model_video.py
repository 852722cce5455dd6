"""egoindex.model.video: the one "embed a raw video at these times" path.

A small real H.264 file (PyAV) and a small randomly initialised registered model: the vectors must
be those of the ingest's JPEGs for the same moments, embedded directly, in the caller's order.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from egoindex.errors import VideoError
from egoindex.media.frames import iter_frames, probe
from egoindex.media.sample import frames_at
from egoindex.model.embed import Embedder, crop_jpeg
from egoindex.model.openclip import Loaded, create
from egoindex.model.video import (
    INGEST_JPEG_QUALITY,
    INGEST_SHORT_SIDE,
    embed_frames_at,
    embed_jpegs,
    embed_video,
    sample_times,
)
from tests.media import frame_level, make_video
from tests.support import torch_threads

SECONDS, FPS = 3.0, 10


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    torch.manual_seed(0)
    with torch_threads(1):
        c = create("ego-tiny-vit")
        return Embedder(Loaded(c.model, c.preprocess_val, c.tokenizer, c.name, {}), device="cpu")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "v.mp4", SECONDS, fps=FPS, size=(320, 240), audio=None)


def direct(embedder: Embedder, jpegs: list[bytes]) -> np.ndarray:
    return embedder.encode_crops(torch.from_numpy(np.stack([crop_jpeg(j, embedder.pp) for j in jpegs])))


def test_frames_at_times_equal_embedding_the_same_jpegs_directly(embedder: Embedder, video: Path) -> None:
    times = [2.05, 0.0, 1.0, 1.0, 0.55, 2.99]  # unsorted, a repeat, the last frame
    calls: list[int] = []
    with torch_threads(1):
        got = embed_frames_at(embedder, video, times, batch_size=4, progress=calls.append)
        jpegs = {i: j for i, _, j in frames_at(video, times, short_side=INGEST_SHORT_SIDE,
                                               jpeg_quality=INGEST_JPEG_QUALITY)}
        want = direct(embedder, [jpegs[i] for i in range(len(times))])
    assert len(got) == len(times) and sum(calls) == len(times) and calls == [4, 2]
    assert got.vectors.shape == (len(times), embedder.dim) and got.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got.vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got.vectors, want, atol=1e-5)
    np.testing.assert_array_equal(got.times, np.asarray(times))
    assert np.all(got.pts <= got.times + 1e-6) and np.all(got.times - got.pts < 1.0 / FPS + 1e-6)
    np.testing.assert_allclose(got.vectors[2], got.vectors[3], atol=1e-6)  # the repeated time
    assert got.warnings == [] and got.stale == 0


def test_embed_video_is_the_ingest_grid_and_its_jpegs(embedder: Embedder, video: Path) -> None:
    with torch_threads(1):
        got = embed_video(embedder, video, 2.0)
        ingest = list(iter_frames(video, 2.0, INGEST_SHORT_SIDE, INGEST_JPEG_QUALITY))
        want = direct(embedder, [f.jpeg for f in ingest])
    assert len(got) == len(ingest) == 6  # ceil(3 s * 2 fps)
    np.testing.assert_allclose(got.times, [f.t for f in ingest])
    np.testing.assert_allclose(got.pts, [f.pts_time for f in ingest], atol=1e-6)
    np.testing.assert_allclose(got.vectors, want, atol=1e-5)
    seg = embed_video(embedder, video, 2.0, start=1.2, end=2.0)
    np.testing.assert_allclose(seg.times, [1.5])
    np.testing.assert_allclose(seg.vectors[0], got.vectors[3], atol=1e-5)


def test_times_past_the_end_are_flagged_as_truncation(embedder: Embedder, video: Path) -> None:
    with torch_threads(1):
        got = embed_video(embedder, video, 1.0, duration=8.0)  # the header says 3 s: a record claiming more
    assert len(got) == 8 and got.stale == 4  # 4..7 s are >= 1 s past the last frame (2.9 s)
    assert got.warnings and got.warnings[0].startswith("truncated: 4 of 8")
    np.testing.assert_allclose(got.vectors[4:], np.repeat(got.vectors[3:4], 4, axis=0), atol=1e-6)


def live_mkv(path: Path, frames: int, fps: int) -> Path:
    """A live-streamed Matroska file (as a camera writes it): timestamps, but no duration in any header."""
    with av.open(str(path), "w", format="matroska", options={"live": "1"}) as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), frame_level(i), np.uint8), format="rgb24")
            f.pts = i
            for pk in vs.encode(f):
                c.mux(pk)
        for pk in vs.encode():
            c.mux(pk)
    return path


def test_a_stream_without_duration_is_decoded_whole(embedder: Embedder, tmp_path: Path) -> None:
    path = live_mkv(tmp_path / "live.mkv", 30, 10)
    with pytest.raises(VideoError) as e:
        probe(path)
    assert e.value.kind == "no-duration"
    with torch_threads(1):
        got = embed_video(embedder, path, 2.0)
        ingest = list(iter_frames(path, 2.0, INGEST_SHORT_SIDE, INGEST_JPEG_QUALITY))
        want = direct(embedder, [f.jpeg for f in ingest])
        seg = embed_video(embedder, path, 2.0, start=1.2, end=2.0)
    np.testing.assert_allclose(got.times, [f.t for f in ingest])
    np.testing.assert_allclose(got.vectors, want, atol=1e-5)
    np.testing.assert_allclose(seg.times, [1.5])
    np.testing.assert_allclose(seg.vectors[0], got.vectors[3], atol=1e-5)
    with pytest.raises(VideoError, match="past the end"):
        embed_video(embedder, path, 2.0, start=10.0)


def test_errors(embedder: Embedder, video: Path, tmp_path: Path) -> None:
    with pytest.raises(VideoError) as e:
        embed_frames_at(embedder, tmp_path / "nope.mp4", [0.0])
    assert e.value.kind == "not-found"
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError) as e:
        embed_frames_at(embedder, tmp_path / "empty.mp4", [0.0])
    assert e.value.kind == "empty"
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError) as e:
        embed_video(embedder, tmp_path / "junk.mp4", 1.0)
    assert e.value.kind == "unreadable"
    with pytest.raises(VideoError, match="past the end") as e:
        embed_video(embedder, video, 1.0, start=5.0)
    assert e.value.kind == "bad-segment"
    with pytest.raises(ValueError, match="batch_size"):
        embed_jpegs(embedder, [], 0, batch_size=0)
    assert len(embed_frames_at(embedder, video, [])) == 0


def test_sample_times_grid() -> None:
    np.testing.assert_allclose(sample_times(0.0, 3.0, 2.0), [0, 0.5, 1, 1.5, 2, 2.5])
    np.testing.assert_allclose(sample_times(1.2, 1.3, 2.0), [1.5])  # shorter than one interval: one frame
    with pytest.raises(ValueError):
        sample_times(0.0, 1.0, 0.0)
