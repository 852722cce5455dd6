"""TextGrid captions (``textgrid``, ``.TextGrid``; parsed by praatio), one file per video.

The intervals of every interval tier (point tiers are counted in ``notes``); speaker = the tier
name; empty intervals are pauses and are passed over without a count; ids
``{uid}/textgrid/{t}-{k}``, tier t, k-th non-empty interval.
"""

from __future__ import annotations

from pathlib import Path

from praatio import textgrid

from egoindex.errors import MediaError
from egoindex.media.captions.registry import CaptionFormat, Captions
from egoindex.media.captions.rows import _SPACES, _caption, _span


def _sniff_textgrid(line: str) -> bool:
    return line.strip().startswith('File type = "ooTextFile"')


def read_textgrid(path: Path, text: str, out: Captions) -> None:
    """Praat TextGrid interval tiers -> the utterances of ``out.video`` (module docstring:
    speaker, pauses); parsed by praatio from the path (long and short text formats, UTF-8 or
    UTF-16), which refuses a file whose intervals overlap or run backwards as a whole."""
    try:
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False, reportingMode="silence")
    except Exception as e:  # praatio raises IndexError, ValueError, its own errors on a broken file
        raise MediaError(f"{path}: not a readable TextGrid ({type(e).__name__}: {e})") from e
    seen: dict[str, set[str]] = {}
    for t, tier in enumerate(tg.tiers, 1):
        if not isinstance(tier, textgrid.IntervalTier):
            out.note("TextGrid point tier not read")
            continue
        k = 0
        for iv in tier.entries:
            caption = _SPACES.sub(" ", iv.label).strip()
            if not caption:  # a pause
                continue
            k += 1
            out.rows += 1
            where = f"{path.name}:{tier.name}[{k}]"
            span = _span(out, where, float(iv.start), float(iv.end))
            if span is None:
                continue
            _caption(out.video, seen, out, where, f"{out.video}/textgrid/{t}-{k}", span[0], span[1], caption,
                     "textgrid", tier.name)


TEXTGRID = CaptionFormat("textgrid", "Praat TextGrid, one file per video (interval tiers)", (".textgrid",),
                         read_textgrid, _sniff_textgrid, per_video=True)
