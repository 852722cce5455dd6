"""Decode the frames of a raw video at arbitrary times (benchmarks that score clips from the video).

Why not :func:`egoindex.media.frames.iter_frames`: benchmarks (EgoMCQ, EPIC-Kitchens MIR) ask for a
few frames per clip at clip-dependent times (midpoints of equal intervals), scattered over videos
that can be an hour long, so decoding every frame at a fixed rate would waste most of the work.

Timing rule (the same as ``iter_frames``, so the two agree): the frame for time ``t`` is the frame
*on screen* at ``t``, i.e. the last frame whose presentation time (from the stream's timestamps,
relative to the stream start) is <= ``t``; a time before the first frame gets the first frame and a
time past the end gets the last frame. Times are served in increasing order; when the next time is
more than ``seek_gap_s`` past the last decoded frame, the demuxer seeks back to the keyframe before
it instead of decoding the gap.

Pixels: each chosen frame is scaled to ``short_side`` and JPEG-encoded with the exact helper the
ingest uses (``frames.encode_jpeg``: libswscale AREA scaling, display rotation, JPEG quality), so a
frame decoded here is byte-for-byte the frame ``egoindex ingest`` would have stored for that
moment, and a clip embedded from the raw video is comparable with the store's clip vectors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av

from egoindex.media.frames import VideoError, encode_jpeg, open_video, target_size

__all__ = ["frames_at"]

# Seek instead of decoding forward when the next wanted time is this far past the decoded position
# (decoding ~20 s of 30 fps video costs about as much as a seek plus one GOP).
DEFAULT_SEEK_GAP_S = 20.0


def _decoded(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """Frames in presentation order from the container's current position; corrupt packets are
    skipped (as ffmpeg conceals them)."""
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except (av.error.InvalidDataError, av.error.FFmpegError):
            continue
        yield from frames


def frames_at(
    path: str | Path,
    times: Sequence[float],
    short_side: int = 256,
    jpeg_quality: int = 90,
    seek_gap_s: float = DEFAULT_SEEK_GAP_S,
) -> Iterator[tuple[int, float, bytes]]:
    """Yield ``(i, pts_time, jpeg)`` for every ``times[i]``, in increasing time order (ties by
    index): the JPEG of the frame on screen at ``times[i]`` (see module docstring) and that
    frame's presentation time in seconds. Raises :class:`~egoindex.media.frames.VideoError` for files
    without a decodable video stream."""
    path = Path(path)
    order = sorted(range(len(times)), key=lambda i: (float(times[i]), i))
    if not order:
        return
    with open_video(path) as c:
        if not c.streams.video:
            raise VideoError("no-video-stream", f"{path}: no video stream")
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        tb = vs.time_base or Fraction(1, 90000)
        start_pts = vs.start_time if vs.start_time is not None else 0
        size = target_size(vs.codec_context.width, vs.codec_context.height, short_side)

        pos = 0
        prev: av.VideoFrame | None = None
        prev_t = 0.0
        at = 0.0  # time of the last decoded frame
        seeked_for = -1  # the pending position the last seek was made for (never seek twice for one)
        frames: Iterator[av.VideoFrame] | None = None
        any_frame = False
        while pos < len(order):
            target = float(times[order[pos]])
            if frames is None or (target - at > seek_gap_s and seeked_for != pos):
                if frames is not None or target > seek_gap_s:
                    # Backward seek: lands on the keyframe at or before the target.
                    c.seek(int(start_pts + max(0.0, target) / tb), stream=vs, backward=True, any_frame=False)
                    seeked_for = pos
                frames, prev = _decoded(c, vs), None
            frame = next(frames, None)
            if frame is None:  # end of stream: the last frame stays on screen
                if prev is None:
                    if not any_frame and seeked_for < 0:
                        raise VideoError("no-frames", f"{path}: no decodable video frame")
                    prev, prev_t = _last_frame(c, vs, start_pts, tb, target - 2 * seek_gap_s, path)
                jpeg = encode_jpeg(prev, size, jpeg_quality)[0]
                while pos < len(order):
                    yield order[pos], round(prev_t, 6), jpeg
                    pos += 1
                break
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is None:
                continue
            any_frame = True
            t = float((pts - start_pts) * tb)
            # Every pending time before this frame's time shows the previous frame (or this one
            # when nothing came before it: a time before the first frame, or a seek that overshot).
            if target < t - 1e-9:
                shown, shown_t = (prev, prev_t) if prev is not None else (frame, t)
                jpeg = encode_jpeg(shown, size, jpeg_quality)[0]
                while pos < len(order) and float(times[order[pos]]) < t - 1e-9:
                    yield order[pos], round(shown_t, 6), jpeg
                    pos += 1
            prev, prev_t, at = frame, t, t


def _last_frame(c: av.container.InputContainer, vs: av.video.stream.VideoStream, start_pts: int, tb: Fraction,
                from_s: float, path: Path) -> tuple[av.VideoFrame, float]:
    """The last decodable frame, decoding from the keyframe before ``from_s`` (a seek past the
    last keyframe can decode nothing)."""
    c.seek(int(start_pts + max(0.0, from_s) / tb), stream=vs, backward=True, any_frame=False)
    last, last_t = None, 0.0
    for f in _decoded(c, vs):
        pts = f.pts if f.pts is not None else f.dts
        if pts is not None:
            last, last_t = f, float((pts - start_pts) * tb)
    if last is None:
        raise VideoError("no-frames", f"{path}: no decodable video frame")
    return last, last_t
