"""Subtitle captions, one file per video: SRT and WebVTT (blank-line separated blocks of a timing
line and text).

SRT (``srt``, ``.srt``): blocks separated by blank lines, ``[index]`` then ``HH:MM:SS,mmm -->
HH:MM:SS,mmm`` then the text lines (joined with spaces; ``<i>``-style tags and ``{\\an8}``-style
override codes removed). No speaker: a leading ``NAME:`` stays in the text, since SRT has no
speaker syntax and ``Note:`` would read as one. Ids ``{uid}/srt/{n}``, n = the block's position.

WebVTT (``webvtt``, ``.vtt``): the ``WEBVTT`` header block, ``NOTE``, ``STYLE`` and ``REGION``
blocks are not captions; a cue is ``[identifier]``, ``[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm
[settings]``, text. The speaker is the cue's ``<v Name>`` voice (only voice tags name one; a
cue with two different voices has none, counted in ``notes``); tags are removed and character
references (``&amp;``) decoded. Ids ``{uid}/webvtt/{n}``, n = the cue's position.

A block without a timing line is skipped as ``no time``, one with an unparsable timing line as
``bad time``.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from egoindex.errors import MediaError
from egoindex.media.captions.registry import CaptionFormat, Captions
from egoindex.media.captions.rows import _SPACES, _caption, _span


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """A subtitle file's blank-line separated blocks: (the block's first line number, its lines)."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            current = None
        elif current is None:
            current = [line.rstrip()]
            blocks.append((n, current))
        else:
            current.append(line.rstrip())
    return blocks


_TAG = re.compile(r"<[^>]*>")
_OVERRIDE = re.compile(r"\{\\[^}]*\}")  # {\an8}, {\i1}: SubStation Alpha codes that SRT files carry
_SRT_TS = r"(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})"
_SRT_TIMING = re.compile(rf"^\s*{_SRT_TS}\s*-->\s*{_SRT_TS}(?:\s|$)")
_VTT_TS = r"(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})"
_VTT_TIMING = re.compile(rf"^\s*{_VTT_TS}\s+-->\s+{_VTT_TS}(?:\s|$)")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?[ \t]+([^>]+)>")
_VTT_OTHER = re.compile(r"^(NOTE|STYLE|REGION)(\s|$)")


def _timing(pattern: re.Pattern[str], line: str) -> tuple[float, float] | None:
    """A timing line's start and end in seconds (to the millisecond), or None when unparsable
    (minutes or seconds of 60 and more included)."""
    m = pattern.match(line)
    if m is None:
        return None
    out = []
    for h, mi, s, frac in (m.groups()[:4], m.groups()[4:]):
        if int(mi) >= 60 or int(s) >= 60:
            return None
        out.append(round(int(h or 0) * 3600 + int(mi) * 60 + int(s) + int(frac) / 10 ** len(frac), 3))
    return out[0], out[1]


def _cue(out: Captions, where: str, block: list[str],
         timing: re.Pattern[str]) -> tuple[tuple[float, float], list[str]] | None:
    """A subtitle block's times and text lines: ``[identifier]``, timing line, text (counting
    the reason when it has no usable timing line)."""
    i = 0 if "-->" in block[0] else 1
    if i >= len(block) or "-->" not in block[i]:
        out.skip(where, "no time")
        return None
    times = _timing(timing, block[i])
    if times is None:
        out.skip(where, "bad time")
        return None
    span = _span(out, where, *times)
    return (span, block[i + 1:]) if span is not None else None


def read_srt(path: Path, text: str, out: Captions) -> None:
    """SubRip blocks -> the utterances of ``out.video`` (module docstring: text, no speaker)."""
    seen: dict[str, set[str]] = {}
    for n, (line, block) in enumerate(_blocks(text), 1):
        out.rows += 1
        where = f"{path.name}:{line}"
        cue = _cue(out, where, block, _SRT_TIMING)
        if cue is None:
            continue
        (start, end), lines = cue
        caption = _SPACES.sub(" ", _OVERRIDE.sub("", _TAG.sub("", " ".join(lines)))).strip()
        if not caption:
            out.skip(where, "empty text")
            continue
        _caption(out.video, seen, out, where, f"{out.video}/srt/{n}", start, end, caption, "srt")


def _sniff_vtt(line: str) -> bool:
    return re.match(r"^WEBVTT([ \t].*)?$", line.rstrip("\r\n")) is not None


def read_vtt(path: Path, text: str, out: Captions) -> None:
    """WebVTT cues -> the utterances of ``out.video`` (module docstring: voices, markup)."""
    blocks = _blocks(text)
    if not blocks or not _sniff_vtt(blocks[0][1][0]):
        raise MediaError(f"{path}:1: a WebVTT file starts with the line WEBVTT")
    first, header = blocks[0]
    # a cue right under the header, without the blank line the spec asks for, is still a cue
    timed = next((i for i, x in enumerate(header) if "-->" in x), None)
    blocks = ([(first + timed, header[timed:])] if timed else []) + blocks[1:]
    seen: dict[str, set[str]] = {}
    n = 0
    for line, block in blocks:
        if _VTT_OTHER.match(block[0]):
            continue
        n += 1
        out.rows += 1
        where = f"{path.name}:{line}"
        cue = _cue(out, where, block, _VTT_TIMING)
        if cue is None:
            continue
        (start, end), lines = cue
        payload = "\n".join(lines)
        voices = list(dict.fromkeys(v.strip() for v in _VOICE.findall(payload)))
        if len(voices) > 1:
            out.note("several voices in one cue (no speaker)")
        caption = _SPACES.sub(" ", html.unescape(_TAG.sub("", payload))).strip()
        if not caption:
            out.skip(where, "empty text")
            continue
        _caption(out.video, seen, out, where, f"{out.video}/webvtt/{n}", start, end, caption, "webvtt",
                 voices[0] if len(voices) == 1 else None)

SRT = CaptionFormat("srt", "SubRip subtitles, one file per video (HH:MM:SS,mmm --> HH:MM:SS,mmm)", (".srt",),
                    read_srt, per_video=True)
WEBVTT = CaptionFormat("webvtt", "WebVTT captions, one file per video (first line WEBVTT; <v Speaker> voices)",
                       (".vtt",), read_vtt, _sniff_vtt, per_video=True)
