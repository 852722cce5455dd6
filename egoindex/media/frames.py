"""Frame sampling with PyAV at a fixed rate, timed by presentation timestamps.

Why not ``frame_index / nominal_fps``: phone and head-camera recordings are often variable frame
rate, and that formula drifts by seconds over an hour. Sample k is the frame *on screen* at
``t_k = k / fps`` (the last frame whose presentation time is <= t_k), so a video of duration D
gives ``ceil(D * fps)`` samples at exact times whatever its frame timing. Only the chosen frames
are scaled and converted (in libswscale, straight to the target size); the rest are decoded and
dropped, which is where the speed-up over "convert every frame, then subsample" comes from.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from egoindex.errors import VideoError


@dataclass
class VideoProbe:
    duration: float  # seconds, from the container/stream headers
    width: int  # as displayed: a phone's portrait video is taller than wide, whatever its coding
    height: int
    native_fps: float | None
    has_audio: bool
    audio_duration: float | None
    codec: str
    rotation: int = 0  # display-matrix rotation, degrees counter-clockwise (frames are stored upright)


@dataclass
class SampledFrame:
    index: int  # k: the sample number, t = k / fps
    t: float  # target time in seconds from the start of the video
    pts_time: float  # presentation time of the frame shown at t
    jpeg: bytes
    width: int
    height: int


@dataclass
class DecodeStats:
    decoded_frames: int = 0
    decoded_until: float = 0.0  # end of the last decoded frame, seconds
    corrupt_packets: int = 0
    warnings: list[str] = field(default_factory=list)


def open_video(path: Path) -> av.container.InputContainer:
    """Open ``path`` for decoding, turning the ways a file is not a video into a typed VideoError
    (``empty``, ``unreadable``) so that ingest can record the reason instead of crashing; shared
    by :func:`probe`, :func:`iter_frames` and :mod:`egoindex.media.sample`."""
    if path.stat().st_size == 0:
        raise VideoError("empty", "zero-length file")
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as e:
        raise VideoError("unreadable", f"cannot open as a video container: {e}") from e


def probe(path: Path) -> VideoProbe:
    """Read stream headers only (fast); raises VideoError for files that are not usable video."""
    with open_video(path) as c:
        if not c.streams.video:
            raise VideoError("no-video-stream", "no video stream")
        vs = c.streams.video[0]
        duration = _stream_duration(vs, c)
        if duration is None or duration <= 0:
            raise VideoError("no-duration", "video stream has no duration (empty or broken)")
        audio = c.streams.audio[0] if c.streams.audio else None
        width, height = vs.codec_context.width, vs.codec_context.height
        rotation = _display_rotation(c, vs)
        if rotation % 180:
            width, height = height, width
        return VideoProbe(
            duration=duration,
            width=width,
            height=height,
            native_fps=float(vs.average_rate) if vs.average_rate else None,
            has_audio=audio is not None,
            audio_duration=_stream_duration(audio, c) if audio is not None else None,
            codec=vs.codec_context.name,
            rotation=rotation,
        )


def _display_rotation(container: av.container.InputContainer, vs: av.video.stream.VideoStream) -> int:
    """The display rotation of the first frame that decodes (0 when none does here: ``iter_frames``
    then reports the damage). PyAV exposes the display matrix on frames, not on streams."""
    try:
        for frame in container.decode(vs):
            return int(round(getattr(frame, "rotation", 0) or 0)) % 360
    except (av.error.FFmpegError, ValueError, UnicodeDecodeError):
        pass
    return 0


def _stream_duration(stream: av.stream.Stream, container: av.container.InputContainer) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Scale so the short side is ``short_side``; never upscale; 0 keeps the original size."""
    if short_side <= 0 or min(width, height) <= short_side:
        return width, height
    s = short_side / min(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def n_samples(duration: float, fps: float) -> int:
    """ceil(duration * fps), robust to float noise (10.0 s at 1 fps is 10 samples, not 11)."""
    return max(0, math.ceil(duration * fps - 1e-6))


def encode_jpeg(frame: av.VideoFrame, size: tuple[int, int], quality: int) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height) of ``frame`` scaled to ``size`` (libswscale AREA) and turned
    upright by its display rotation. The one pixel path: ingest and :mod:`egoindex.media.sample`
    both use it, so a frame decoded for a benchmark is byte-for-byte the frame ingest stored."""
    rgb = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
    arr = rgb.to_ndarray()
    rotation = getattr(frame, "rotation", 0) or 0
    if rotation % 360:
        # Display-matrix rotation (phones): the angle is counter-clockwise, np.rot90 too.
        arr = np.ascontiguousarray(np.rot90(arr, k=round(rotation / 90) % 4))
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), arr.shape[1], arr.shape[0]


def iter_frames(
    path: Path,
    fps: float,
    short_side: int = 256,
    jpeg_quality: int = 90,
    stats: DecodeStats | None = None,
) -> Iterator[SampledFrame]:
    """Yield one JPEG per ``1/fps`` seconds, in order (see module docstring for the timing rule).

    Corrupt packets are skipped and counted in ``stats`` rather than aborting the video, the way
    ffmpeg itself conceals them; the caller decides what a count or a short decode means.
    """
    stats = stats if stats is not None else DecodeStats()
    with open_video(path) as c:
        if not c.streams.video:
            raise VideoError("no-video-stream", "no video stream")
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        tb = vs.time_base or Fraction(1, 90000)
        declared = _stream_duration(vs, c) or 0.0
        start_pts = vs.start_time if vs.start_time is not None else None
        size = target_size(vs.codec_context.width, vs.codec_context.height, short_side)
        k = 0
        prev: av.VideoFrame | None = None
        prev_t = 0.0
        # The last frame is shown for as long as the interval before it (exact for constant
        # frame rate); decoder-reported frame durations are unreliable across containers.
        last_interval = 1.0 / float(vs.average_rate) if vs.average_rate else 1.0 / 30

        def emit(frame: av.VideoFrame, frame_t: float) -> SampledFrame:
            nonlocal k
            jpeg, w, h = encode_jpeg(frame, size, jpeg_quality)
            s = SampledFrame(index=k, t=round(k / fps, 6), pts_time=round(frame_t, 6), jpeg=jpeg, width=w, height=h)
            k += 1
            return s

        for packet in c.demux(vs):
            try:
                frames = packet.decode()
            except (av.error.InvalidDataError, av.error.FFmpegError):
                stats.corrupt_packets += 1
                continue
            for frame in frames:
                pts = frame.pts if frame.pts is not None else frame.dts
                if pts is None:
                    continue
                if start_pts is None:
                    start_pts = pts
                t = float((pts - start_pts) * tb)
                stats.decoded_frames += 1
                if prev is not None and t > prev_t:
                    last_interval = t - prev_t
                # Every target time before this frame's time was showing the previous frame.
                while prev is not None and k / fps < t - 1e-9:
                    yield emit(prev, prev_t)
                prev, prev_t = frame, t
                stats.decoded_until = t + last_interval  # frames arrive in presentation order
        if prev is None:
            raise VideoError("no-frames", "no decodable video frame")
        # Headers can understate a VFR stream's length; the decoded presentation times are the truth.
        while k < n_samples(stats.decoded_until, fps):
            yield emit(prev, prev_t)
        if declared > 0 and stats.decoded_until < declared - max(1.0, 0.02 * declared):
            stats.warnings.append(f"truncated: decoded {stats.decoded_until:.1f} s of {declared:.1f} s")
        if stats.corrupt_packets:
            stats.warnings.append(f"{stats.corrupt_packets} corrupt packet(s) skipped")
