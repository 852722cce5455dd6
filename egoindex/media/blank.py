"""Blank ranges of a raw video in place: black pictures and silence there, the rest re-encoded.

Why blank instead of cut: every time egoindex keeps (frame ``t``, utterance ``start``/``end``, a
store's moments, a player's seek) is seconds from the start of the source file; cutting a range
out would shift everything after it. A blanked file keeps its length and the timing of every
frame (presentation timestamps are copied), so what remains still lines up with the shards and
the store. Used by ``egoindex redact --delete-source``.

What is written: the first video stream re-encoded (H.264, or VP9 in a ``.webm``), each frame on
screen during a range (a frame shown from its timestamp until the next one's) replaced by black;
the first audio stream re-encoded (AAC, or Opus in a ``.webm``) with the samples in a range set
to zero. Other streams (subtitles, data, a second audio track) are not carried over: they could
hold the range's content and egoindex never reads them. Stream metadata such as a rotation
matrix is not kept either, so a rotated phone video comes back stored upright-as-coded.
The new file is written beside the old one and renamed over it (a kill leaves the old file).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from egoindex.core.fsutil import tmp_name
from egoindex.errors import MediaError

Range = tuple[float, float | None]


def _in_any(ranges: Sequence[Range], lo: float, hi: float) -> bool:
    """Whether ``[lo, hi)`` meets one of the closed ``ranges`` (``end`` None: to the end)."""
    return any(lo <= (math.inf if e is None else e) and hi > s for s, e in ranges) or \
        any(lo == hi and s <= lo <= (math.inf if e is None else e) for s, e in ranges)


def _codecs(path: Path) -> tuple[str, str]:
    if path.suffix.lower() == ".webm":
        return "libvpx-vp9", "libopus"
    return "libx264", "aac"


def _with_next(frames: Iterator[av.VideoFrame]) -> Iterator[tuple[av.VideoFrame, av.VideoFrame | None]]:
    prev = None
    for f in frames:
        if prev is not None:
            yield prev, f
        prev = f
    if prev is not None:
        yield prev, None


def blank_ranges(path: Path, ranges: Sequence[Range]) -> None:
    """Rewrite ``path`` with the pictures and sound of ``ranges`` (seconds from the start of the
    video) blanked (module docstring). A file PyAV cannot read is a :class:`MediaError`."""
    path = Path(path)
    ranges = [(float(s), None if e is None else float(e)) for s, e in ranges]
    tmp = tmp_name(path)
    vcodec, acodec = _codecs(path)
    try:
        with av.open(str(path)) as src, av.open(str(tmp), "w", format=_format_of(path)) as dst:
            vin = next((s for s in src.streams.video), None)
            if vin is None:
                raise MediaError(f"{path}: no video stream to blank")
            ain = next((s for s in src.streams.audio), None)
            vtb = vin.time_base or Fraction(1, 1000)
            start0 = float((vin.start_time or 0) * vtb)
            vout = dst.add_stream(vcodec, rate=vin.average_rate or 30)
            vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
            vout.time_base = vtb
            vout.codec_context.time_base = vtb
            aout = resampler = None
            if ain is not None:
                rate = ain.codec_context.sample_rate or 48000
                aout = dst.add_stream(acodec, rate=48000 if acodec == "libopus" else rate)
                aout.layout = "stereo" if (ain.codec_context.channels or 1) > 1 else "mono"
                resampler = av.AudioResampler(format=aout.codec_context.format.name if aout.codec_context.format
                                              else "fltp", layout=aout.layout.name, rate=aout.codec_context.sample_rate)
                atb = ain.time_base or Fraction(1, rate)
                astart0 = float((ain.start_time or 0) * atb)
            streams = [s for s in (vin, ain) if s is not None]
            black = None
            vframes = (f for packet in src.demux(*streams) if packet.stream is vin for f in packet.decode())
            # audio is decoded in a second pass below (demuxing once for both would interleave the
            # two encoders' state; files egoindex ingests are small enough to read twice)
            for frame, nxt in _with_next(vframes):
                if frame.pts is None:
                    continue
                t = float(frame.pts * vtb) - start0
                t_next = float(nxt.pts * vtb) - start0 if nxt is not None and nxt.pts is not None else math.inf
                out = frame.reformat(format="yuv420p")
                if _in_any(ranges, t, max(t_next, t)):
                    if black is None:
                        black = av.VideoFrame.from_ndarray(
                            np.zeros((vout.height, vout.width, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
                    out = black.reformat(format="yuv420p")
                out.pts, out.time_base = frame.pts, vtb
                for pk in vout.encode(out):
                    dst.mux(pk)
            for pk in vout.encode():
                dst.mux(pk)
            if ain is not None and aout is not None and resampler is not None:
                src.seek(0)
                for packet in src.demux(ain):
                    for af in packet.decode():
                        if af.pts is not None:
                            af = _silence(af, float(af.pts * atb) - astart0, ranges)
                        af.pts = None
                        for rf in resampler.resample(af):
                            for pk in aout.encode(rf):
                                dst.mux(pk)
                for rf in resampler.resample(None):
                    for pk in aout.encode(rf):
                        dst.mux(pk)
                for pk in aout.encode():
                    dst.mux(pk)
    except av.error.FFmpegError as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise MediaError(f"cannot blank {path}: {e}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    tmp.replace(path)


def _silence(frame: av.AudioFrame, t0: float, ranges: Sequence[Range]) -> av.AudioFrame:
    """``frame`` (starting ``t0`` seconds into the video) with its samples inside ``ranges`` zeroed
    (a new frame; the frame itself when none is)."""
    times = t0 + np.arange(frame.samples) / frame.sample_rate
    mask = np.zeros(frame.samples, bool)
    for s, e in ranges:
        mask |= (times >= s) & (times <= (math.inf if e is None else e))
    if not mask.any():
        return frame
    arr = frame.to_ndarray().copy()  # planar: (channels, n); packed: (1, n * channels)
    if frame.format.is_planar:
        arr[:, mask] = 0
    else:
        arr.reshape(frame.samples, -1)[mask] = 0
    out = av.AudioFrame.from_ndarray(arr, format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out


def _format_of(path: Path) -> str | None:
    """The container format to write (that of the file's extension)."""
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
            ".avi": "avi"}.get(path.suffix.lower())
