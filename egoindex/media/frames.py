"""Frame sampling with PyAV at a fixed rate, timed by presentation timestamps.

Why not ``frame_index / nominal_fps``: phone and head-camera recordings are often variable frame
rate, and that formula drifts by seconds over an hour. Sample k is the frame *on screen* at
``t_k = k / fps`` (the last frame whose presentation time is <= t_k), so a video of duration D
gives ``ceil(D * fps)`` samples at exact times whatever its frame timing. Only the chosen frames
are scaled and converted (in libswscale, straight to the target size), and the decoder skips the
frames that neither a sample shows nor another frame refers to (:func:`_exact_frames`), with
byte-identical samples. ``--sampling fast`` relaxes "on screen at t_k" to "within 0.5 s of t_k"
and then decodes only up to each chosen frame (:func:`_iter_fast`); the rules themselves are
pure functions of the demuxed packets in :mod:`egoindex.media.seekplan`.
"""

from __future__ import annotations

import io
import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from egoindex.errors import MediaError, VideoError
from egoindex.media.seekplan import (FAST_TOLERANCE_S, SAMPLING_MODES, fast_choice, last_frame_interval,
                                     shown_by_a_sample)
#: packets held back before deciding whether to decode one: presentation order is settled within
#: this many packets of decode order (H.264 and HEVC reorder at most 16 frames)
REORDER_WINDOW = 32
#: a fast-mode group of pictures longer than this is planned in pieces, so that memory holds at
#: most this many packets; the pieces' tails are then decoded rather than skipped
MAX_GROUP_PACKETS = 1800


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
    sampling: str = "exact",
    *,
    skip_nonref: bool = True,
    thread_type: str = "AUTO",
    thread_count: int = 0,
) -> Iterator[SampledFrame]:
    """Yield one JPEG per ``1/fps`` seconds, in order.

    ``sampling="exact"`` (the module docstring's rule) decodes every frame that is a sample or
    that another frame refers to; with ``skip_nonref`` (the default) the non-reference frames
    that no sample shows are skipped by the decoder (``skip_frame = "NONREF"``, decided per
    packet from the demuxed timestamps), which gives byte-identical samples on intact streams.
    ``sampling="fast"`` takes a frame within :data:`FAST_TOLERANCE_S` of each sample time and
    decodes only what that needs (:func:`_iter_fast`). ``thread_type`` / ``thread_count`` are the
    decoder's threading (benchmarks compare them; 0 threads is libavcodec's choice).

    Corrupt packets are skipped and counted in ``stats`` rather than aborting the video, the way
    ffmpeg itself conceals them; the caller decides what a count or a short decode means. After a
    corrupt packet the exact sampler decodes every remaining frame (a frame it planned to skip
    might then be the one on screen).
    """
    if sampling not in SAMPLING_MODES:
        raise MediaError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {sampling!r}")
    stats = stats if stats is not None else DecodeStats()
    with open_video(path) as c:
        if not c.streams.video:
            raise VideoError("no-video-stream", "no video stream")
        vs = c.streams.video[0]
        vs.thread_type = thread_type
        if thread_count:
            vs.codec_context.thread_count = thread_count
        declared = _stream_duration(vs, c) or 0.0
        size = target_size(vs.codec_context.width, vs.codec_context.height, short_side)
        out = _Emitter(fps, size, jpeg_quality)
        if sampling == "fast":
            yield from _iter_fast(c, vs, out, stats)
        else:
            yield from _iter_exact(c, vs, out, stats, skip_nonref)
        if declared > 0 and stats.decoded_until < declared - max(1.0, 0.02 * declared):
            stats.warnings.append(f"truncated: decoded {stats.decoded_until:.1f} s of {declared:.1f} s")
        if stats.corrupt_packets:
            stats.warnings.append(f"{stats.corrupt_packets} corrupt packet(s) skipped")


class _Emitter:
    """Numbers the samples and encodes their JPEGs, once per distinct frame (a frame shown by
    several samples, as at a low native frame rate or a video's tail, is encoded once)."""

    def __init__(self, fps: float, size: tuple[int, int], quality: int) -> None:
        self.fps, self.size, self.quality = fps, size, quality
        self.k = 0
        self._last: tuple[av.VideoFrame, tuple[bytes, int, int]] | None = None

    def __call__(self, frame: av.VideoFrame, frame_t: float) -> SampledFrame:
        if self._last is None or self._last[0] is not frame:
            self._last = (frame, encode_jpeg(frame, self.size, self.quality))
        jpeg, w, h = self._last[1]
        s = SampledFrame(index=self.k, t=round(self.k / self.fps, 6), pts_time=round(frame_t, 6), jpeg=jpeg,
                         width=w, height=h)
        self.k += 1
        return s


def _decode(packet: av.Packet, stats: DecodeStats) -> list[av.VideoFrame] | None:
    """The packet's frames, or None for a corrupt packet (counted)."""
    try:
        return packet.decode()
    except (av.error.InvalidDataError, av.error.FFmpegError):
        stats.corrupt_packets += 1
        return None


def _frame_pts(frame: av.VideoFrame) -> int | None:
    return frame.pts if frame.pts is not None else frame.dts


def _iter_exact(c: av.container.InputContainer, vs: av.video.stream.VideoStream, emit: _Emitter,
                stats: DecodeStats, skip_nonref: bool) -> Iterator[SampledFrame]:
    """The exact rule (module docstring) over the frames of :func:`_exact_frames`."""
    fps = emit.fps
    tb = vs.time_base or Fraction(1, 90000)
    start_pts = vs.start_time if vs.start_time is not None else None
    prev: av.VideoFrame | None = None
    prev_t = 0.0
    # The last frame is shown for as long as the interval before it (exact for constant
    # frame rate); decoder-reported frame durations are unreliable across containers.
    last_interval = 1.0 / float(vs.average_rate) if vs.average_rate else 1.0 / 30
    # planning needs packet times on the frames' clock: only with a known stream start
    for frame in _exact_frames(c, vs, stats, fps, tb, start_pts if skip_nonref else None):
        pts = _frame_pts(frame)
        if pts is None:
            continue
        if start_pts is None:
            start_pts = pts
        t = float((pts - start_pts) * tb)
        stats.decoded_frames += 1
        if prev is not None and t > prev_t:
            last_interval = t - prev_t
        # Every target time before this frame's time was showing the previous frame.
        while prev is not None and emit.k / fps < t - 1e-9:
            yield emit(prev, prev_t)
        prev, prev_t = frame, t
        stats.decoded_until = t + last_interval  # frames arrive in presentation order
    if prev is None:
        raise VideoError("no-frames", "no decodable video frame")
    # Headers can understate a VFR stream's length; the decoded presentation times are the truth.
    while emit.k < n_samples(stats.decoded_until, fps):
        yield emit(prev, prev_t)


def _exact_frames(c: av.container.InputContainer, vs: av.video.stream.VideoStream, stats: DecodeStats,
                  fps: float, tb: Fraction, start_pts: int | None) -> Iterator[av.VideoFrame]:
    """Decoded frames in presentation order; with ``start_pts`` known, the non-reference frames
    that no sample shows are not decoded.

    Why this is exact: a packet waits until :data:`REORDER_WINDOW` later packets are demuxed, so
    the time of the frame after it (in presentation order) is known; it is decoded when a sample
    time falls between the two (:func:`egoindex.media.seekplan.shown_by_a_sample`), and otherwise
    marked ``NONREF``, which the decoder honours only for frames nothing refers to. Reference
    frames always decode, so every other frame's pixels are unchanged. The first and last
    window of packets decode in full (the samples before the first frame and after the last)."""
    ctx = vs.codec_context
    if start_pts is None:
        for packet in c.demux(vs):
            yield from _decode(packet, stats) or ()
        return
    held: deque[tuple[av.Packet, float | None]] = deque()
    recent: list[float] = []  # sorted times of the last packets (next-frame look-ups)
    order: deque[float] = deque()
    released = 0
    planning = True
    for packet in c.demux(vs):
        t = float((packet.pts - start_pts) * tb) if packet.pts is not None else None
        if t is not None:
            insort(recent, t)
            order.append(t)
            if len(order) > 4 * REORDER_WINDOW:
                recent.pop(bisect_left(recent, order.popleft()))
        held.append((packet, t))
        if len(held) <= REORDER_WINDOW:
            continue
        p, pt = held.popleft()
        released += 1
        need = not planning or pt is None or released <= REORDER_WINDOW
        if not need:
            i = bisect_right(recent, pt)
            need = shown_by_a_sample(pt, recent[i] if i < len(recent) else math.inf, fps)  # type: ignore[arg-type]
        ctx.skip_frame = "DEFAULT" if need else "NONREF"
        frames = _decode(p, stats)
        if frames is None:
            planning = False
        yield from frames or ()
    ctx.skip_frame = "DEFAULT"
    for p, _ in held:
        yield from _decode(p, stats) or ()


def _iter_fast(c: av.container.InputContainer, vs: av.video.stream.VideoStream, emit: _Emitter,
               stats: DecodeStats, tolerance: float = FAST_TOLERANCE_S) -> Iterator[SampledFrame]:
    """Fast mode: sample k is the keyframe nearest to ``t = k / fps`` when one lies within
    ``tolerance`` of it (the earlier of two equally near), else the first frame at or after
    ``t - tolerance`` (:func:`egoindex.media.seekplan.fast_choice`); past the last frame, the last.

    How it decodes less: the packets of one group of pictures (keyframe to keyframe) are held
    until the next keyframe is demuxed; then the samples that fall in the group are planned, the
    packets up to the last chosen frame are decoded (``NONREF`` for the unchosen ones) and the
    rest of the group is never sent to the decoder, which is flushed before the next group. A
    group longer than :data:`MAX_GROUP_PACKETS` is planned in pieces, decoding its tail."""
    ctx = vs.codec_context
    fps = emit.fps
    tb = vs.time_base or Fraction(1, 90000)
    start_pts = vs.start_time
    group: list[tuple[av.Packet, float | None]] = []
    key_t: float | None = None  # the group's keyframe time
    key_in_group = False  # whether group[0] is that keyframe (not yet sent to the decoder)
    top: list[float] = []  # the two latest distinct packet times: the video's end
    want: set[int] = set()  # pts of chosen frames not yet decoded
    got: dict[int, tuple[av.VideoFrame, float]] = {}
    pending: deque[tuple[int, int | None]] = deque()  # (sample, chosen pts or None: any frame)
    last: tuple[av.VideoFrame, float] | None = None  # the last frame decoded
    shown: tuple[av.VideoFrame, float] | None = None  # the last frame emitted
    fed = False  # packets sent since the last flush
    default_interval = 1.0 / float(vs.average_rate) if vs.average_rate else 1.0 / 30

    def clock(pts: int) -> float:
        return float((pts - (start_pts or 0)) * tb)

    def take(frames: list[av.VideoFrame] | None) -> None:
        nonlocal last
        for f in frames or ():
            pts = _frame_pts(f)
            if pts is None:
                continue
            stats.decoded_frames += 1
            last = (f, clock(pts))
            if pts in want:
                got[pts] = last

    def feed(packets: list[tuple[av.Packet, float | None]], chosen: set[int], all_needed: bool) -> None:
        nonlocal fed
        for i, (p, _) in enumerate(packets):
            ctx.skip_frame = "DEFAULT" if all_needed or i in chosen else "NONREF"
            take(_decode(p, stats))
            fed = True

    def flush() -> None:
        nonlocal fed
        if fed:
            ctx.skip_frame = "DEFAULT"
            try:
                take(ctx.decode(None))
            except (av.error.InvalidDataError, av.error.FFmpegError):
                stats.corrupt_packets += 1
            ctx.flush_buffers()
            fed = False

    def release(flushed: bool) -> Iterator[SampledFrame]:
        nonlocal shown
        while pending:
            k, pts = pending[0]
            if pts is not None and pts in got:
                frame = got[pts]
            elif not flushed:
                return
            else:  # not decodable (a corrupt packet): the nearest frame that did decode
                near = [*got.values(), *([last] if last else []), *([shown] if shown else [])]
                if not near:
                    return  # nothing decoded yet: these samples take the next frame that does
                want_t = clock(pts) if pts is not None else k / fps
                frame = min(near, key=lambda ft: abs(ft[1] - want_t))
            pending.popleft()
            shown = frame
            yield emit(*frame)
        if flushed:
            got.clear()
            want.clear()

    def plan(times: list[float | None], next_key_t: float | None, final: bool,
             limit: int | None = None) -> set[int]:
        """Choose the frames of the next samples that fall in this group; returns their indexes."""
        chosen: set[int] = set()
        n_total = n_samples(top[-1] + last_frame_interval(top, default_interval), fps) if final and top else 0
        k = emit.k + len(pending)
        while True:
            t = k / fps
            if final and k >= n_total:
                break
            if next_key_t is not None and not final:
                if t >= next_key_t - 1e-9:
                    break
                d_next = next_key_t - t
                d_here = t - key_t if key_t is not None and key_t <= t else math.inf
                if d_next <= tolerance + 1e-9 and d_next < d_here:
                    break  # the next keyframe is nearer: it is chosen in the next group
            i = fast_choice(t, times, key_t, 0 if key_in_group else None, tolerance)
            if limit is not None and (i is None or i >= limit or t + tolerance >= max(top)):
                break  # decided later, with more of the group demuxed
            if i is None:
                if not final:
                    break
                timed = [j for j, x in enumerate(times) if x is not None]
                i = max(timed, key=lambda j: times[j]) if timed else None  # type: ignore[arg-type, return-value]
            pts = group[i][0].pts if i is not None else None
            if pts is not None:
                chosen.add(i)  # type: ignore[arg-type]
                want.add(pts)
            pending.append((k, pts))
            k += 1
        return chosen

    def close(next_key_t: float | None, final: bool) -> Iterator[SampledFrame]:
        chosen = plan([t for _, t in group], next_key_t, final)
        if chosen:
            feed(group[: max(chosen) + 1], chosen, all_needed=key_t is None)
        flush()
        yield from release(flushed=True)

    for packet in c.demux(vs):
        if packet.pts is None and packet.size == 0:
            continue  # the demuxer's end-of-stream marker: groups are flushed here
        if start_pts is None and packet.pts is not None:
            start_pts = packet.pts
        t = clock(packet.pts) if packet.pts is not None else None
        if t is not None and t not in top:
            top = sorted([*top, t])[-2:]
        if packet.is_keyframe and t is not None:
            if group:
                yield from close(t, final=False)
            group, key_t, key_in_group = [], t, True
        group.append((packet, t))
        if len(group) > MAX_GROUP_PACKETS:
            cut = len(group) - REORDER_WINDOW
            chosen = plan([t for _, t in group], None, final=False, limit=cut)
            feed(group[:cut], chosen, all_needed=key_t is None)
            yield from release(flushed=False)
            group, key_in_group = group[cut:], False
    if top:
        yield from close(None, final=True)
    stats.decoded_until = top[-1] + last_frame_interval(top, default_interval) if top else 0.0
    if emit.k == 0:
        raise VideoError("no-frames", "no decodable video frame")
