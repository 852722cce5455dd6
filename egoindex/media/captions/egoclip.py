"""EgoClip captions (``egoclip``; EgoVLP's ``egoclip.csv``, tab-separated in spite of its name).

Header ``clip_idx, video_uid, video_dur, narration_source, narration_ind, narration_time,
clip_start, clip_end, clip_text, tag_verb, tag_noun``. One utterance per row: ``start =
clip_start``, ``end = clip_end``, ``text = clip_text`` as in the file, Ego4D's ``#C`` / ``#O``
markers included. They are kept on purpose: EgoVLP trains on ``clip_text`` as it is (LaViLa strips
``#C``), the offline tagger (``egoindex.metrics.tags``) treats them as stopwords, and a caption
equal to the file's text is what a user searching the store expects to find; stripping is a
training-time choice, not an ingest one. Ids are stable across reruns: ``{video_uid}/egoclip/
{narration_source}-{narration_ind}`` (narration indices restart in each annotation pass, so the
pass is part of the id), ``{video_uid}/egoclip/{narration_ind}`` without a source,
``{video_uid}/egoclip/line{n}`` without an index. Tags (list literals: ``[93]``, ``[192, 115,
12]``, ``[]``) become ``tag_verb`` / ``tag_noun``; a missing or unreadable tag leaves that list
None (counted in ``notes``, the caption is kept). Rows: fields are split at tabs; a row with fewer
fields keeps what it has (tags are optional), a row with extra non-empty fields after the last
column is skipped like EgoVLP's ``on_bad_lines`` skip (a tab inside the text would shift the
columns).
"""

from __future__ import annotations

from pathlib import Path

from egoindex.errors import MediaError
from egoindex.media.captions.registry import CaptionFormat, Captions
from egoindex.media.captions.rows import _caption, _times, parse_tags

EGOCLIP_COLUMNS = ("clip_idx", "video_uid", "video_dur", "narration_source", "narration_ind", "narration_time",
                   "clip_start", "clip_end", "clip_text", "tag_verb", "tag_noun")
EGOCLIP_REQUIRED = ("video_uid", "clip_start", "clip_end", "clip_text")


def _unquote(s: str) -> str:
    """A tab-separated field as pandas reads it: surrounding double quotes removed, ``""`` -> ``"``."""
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return s[1:-1].replace('""', '"')
    return s


def _egoclip_header(line: str) -> list[str]:
    return [_unquote(c) for c in line.rstrip("\r\n").split("\t")]


def _sniff_egoclip(line: str) -> bool:
    return set(EGOCLIP_REQUIRED) <= set(_egoclip_header(line))


def read_egoclip(path: Path, text: str, out: Captions) -> None:
    """EgoClip metadata rows -> utterances (module docstring: ids, text, tags, skipped rows)."""
    lines = enumerate(text.splitlines(), 1)
    _, head = next(lines, (1, ""))
    header = _egoclip_header(head)
    missing = [c for c in EGOCLIP_REQUIRED if c not in header]
    if missing:
        raise MediaError(f"{path}:1: EgoClip header lacks {', '.join(missing)} (tab-separated columns "
                         f"{', '.join(EGOCLIP_COLUMNS)}); got {header[:12]}")
    col = {c: i for i, c in enumerate(header)}
    seen: dict[str, set[str]] = {}
    for n, line in lines:
        if not line.strip():
            continue
        out.rows += 1
        where = f"{path.name}:{n}"
        cells = [_unquote(c) for c in line.split("\t")]
        if any(c for c in cells[len(header):]):
            out.skip(where, "extra fields")
            continue

        def get(name: str) -> str | None:
            i = col.get(name)
            return cells[i] if i is not None and i < len(cells) else None

        uid = (get("video_uid") or "").strip()
        if not uid:
            out.skip(where, "missing field")
            continue
        times = _times(out, where, get("clip_start"), get("clip_end"))
        if times is None:
            continue
        caption = (get("clip_text") or "").strip()
        if not caption:
            out.skip(where, "empty text")
            continue
        tags: dict[str, list[int] | None] = {}
        for name in ("tag_verb", "tag_noun"):
            raw = get(name)
            tags[name] = parse_tags(raw)
            if tags[name] is None and name in col:
                out.note(f"{name} missing or unreadable")
        src, ind = (get("narration_source") or "").strip(), (get("narration_ind") or "").strip()
        if ind and src:
            key = f"{src}-{ind}"
        elif ind:
            key = ind
        else:
            key = f"line{n}"
        _caption(uid, seen, out, where, f"{uid}/egoclip/{key}", times[0], times[1], caption, "egoclip", **tags)


EGOCLIP = CaptionFormat(
    name="egoclip",
    description="EgoClip / EgoVLP narration metadata (tab-separated, header clip_idx, video_uid, ..., clip_start, "
                "clip_end, clip_text, tag_verb, tag_noun)",
    extensions=(".csv", ".tsv"),
    read=read_egoclip,
    sniff=_sniff_egoclip,
)
