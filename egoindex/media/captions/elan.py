"""ELAN captions (``elan``, ``.eaf``; parsed by pympi-ling), one file per video.

The annotations of every independent (top-level) tier; speaker = the tier's PARTICIPANT, else its
id; ids ``{uid}/elan/{ANNOTATION_ID}``; an annotation on an unaligned time slot is skipped as ``no
time``. Dependent tiers are not read (counted in ``notes``): their annotations annotate the
parent's (translations, words, glosses; symbolic ones have no times at all) and would caption the
same seconds twice.
"""

from __future__ import annotations

from pathlib import Path

import pympi

from egoindex.errors import MediaError
from egoindex.media.captions.registry import CaptionFormat, Captions
from egoindex.media.captions.rows import _SPACES, _caption, _span


def read_elan(path: Path, text: str, out: Captions) -> None:
    """ELAN independent tiers -> the utterances of ``out.video`` (module docstring: which tiers,
    speaker). The file is parsed from its path (``text`` is only checked to be text): ELAN files
    are XML that declares its own encoding."""
    try:
        eaf = pympi.Elan.Eaf(str(path), suppress_version_warning=True)
    except Exception as e:  # ElementTree's ParseError, KeyError for a broken reference, ...
        raise MediaError(f"{path}: not a readable ELAN file ({type(e).__name__}: {e})") from e
    seen: dict[str, set[str]] = {}
    for tier_id, (aligned, _refs, attrs, _order) in eaf.tiers.items():
        if attrs.get("PARENT_REF"):
            out.note("ELAN dependent tier not read")
            continue
        speaker = (attrs.get("PARTICIPANT") or "").strip() or tier_id
        for aid, (ts1, ts2, value, _svg) in aligned.items():
            out.rows += 1
            where = f"{path.name}:{tier_id}/{aid}"
            t1, t2 = eaf.timeslots.get(ts1), eaf.timeslots.get(ts2)
            if t1 is None or t2 is None:
                out.skip(where, "no time")
                continue
            span = _span(out, where, t1 / 1000, t2 / 1000)
            if span is None:
                continue
            caption = _SPACES.sub(" ", value or "").strip()
            if not caption:
                out.skip(where, "empty text")
                continue
            _caption(out.video, seen, out, where, f"{out.video}/elan/{aid}", span[0], span[1], caption, "elan",
                     speaker)


ELAN = CaptionFormat("elan", "ELAN annotation file, one per video (.eaf)", (".eaf",), read_elan, per_video=True)
