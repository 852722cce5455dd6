"""Timestamped captions from files (human narrations, subtitles, transcripts) instead of Whisper.

Why a registry: every caption-file format (EgoClip, CSV, SRT, WebVTT, CHAT, ELAN, TextGrid) is
one :class:`CaptionFormat` in :data:`FORMATS` (a name, its extensions, a header test, a reader
and whether one file captions one video), and everything above this package (``egoindex ingest
--transcripts``) only ever calls :func:`read_captions`. docs/formats.md is the user's reference.

What a reader returns: ``{file video uid: [Utterance, ...]}`` in file order, every utterance
``kept=True`` with no Whisper scores (``no_speech_prob = avg_logprob = compression_ratio = 0``),
``seg_start/seg_end = start/end``, ``source`` = the format's name and ``speaker`` where the
format names one. A row that cannot become a caption is skipped and counted by reason
(:class:`Captions` ``skipped``, with the first few), never dropped silently; a file that is
unusable as a whole (unknown header, missing columns, not UTF-8, unparsable, no usable row) is a
:class:`~egoindex.errors.MediaError` naming the file (and line where there is one).

Files are UTF-8 (a BOM is allowed) or UTF-16 with a BOM (Praat writes a TextGrid with non-ASCII
text as UTF-16).

Multi-video formats (EgoClip, CSV) name each row's video. Per-video formats (SRT, WebVTT, CHAT,
ELAN, TextGrid; ``CaptionFormat.per_video``) caption one video per file: its uid is the file name
without extension (``kid01_day3.srt`` -> ``kid01_day3``), or the video that a
``--transcript-map`` (:func:`read_video_map`) gives the file.

A folder: its files are read in path order and may mix formats (``Captions.format`` is then
:data:`MIXED`, while each utterance's ``source`` stays its own format); a video uid in two files
is an error. A per-video file of a folder that is unusable as a whole does not stop the others:
it is recorded in ``Captions.failed`` (relative path -> reason) and its video simply has no file
captions (an ingest transcribes it with Whisper). Why only per-video files: a broken file of a
multi-video format takes an unknown set of videos with it, which is worth stopping for; and a
folder in which no file is usable is an error, not a silent fall-back to Whisper for everything.

The package, one module per job and one owner per format: :mod:`.registry` (:class:`Captions`,
:class:`CaptionFormat`, :data:`FORMATS`), :mod:`.reading` (:func:`read_captions`, the
``--transcript-map``, format detection and decoding), :mod:`.rows` (the row checks and caption
building every reader shares), and the formats: :mod:`.egoclip`, :mod:`.csv_table` (CSV),
:mod:`.subtitles` (SRT, WebVTT), :mod:`.chat`, :mod:`.elan`, :mod:`.textgrid`; each format's
module docstring is its reference (header, text, speaker, ids). The formats are registered below, in
one place: the tuple's order is the order in which :func:`detect_format` tries their header tests
and the CLI lists them.

Skip reasons (the keys of ``skipped``): ``missing field``, ``bad number`` (unparsable, NaN or
infinite), ``negative time``, ``end before start``, ``empty text``, ``extra fields``,
``duplicate id``, ``no time`` (a subtitle block without a timing line, a CHAT utterance without
a bullet, an ELAN annotation on an unaligned time slot), ``bad time`` (an unparsable timing
line).
"""

from __future__ import annotations

from egoindex.media.captions.chat import CHAT, CHAT_UNSPOKEN, chat_text, read_chat
from egoindex.media.captions.csv_table import CSV, CSV_COLUMNS, read_csv
from egoindex.media.captions.egoclip import EGOCLIP, EGOCLIP_COLUMNS, EGOCLIP_REQUIRED, read_egoclip
from egoindex.media.captions.elan import ELAN, read_elan
from egoindex.media.captions.reading import (
    MAP_COLUMNS,
    caption_files,
    decode_text,
    detect_format,
    read_captions,
    read_video_map,
)
from egoindex.media.captions.registry import (
    EXAMPLES,
    FORMATS,
    MIXED,
    CaptionFormat,
    Captions,
    Reader,
    format_names,
    register,
)
from egoindex.media.captions.rows import parse_tags
from egoindex.media.captions.subtitles import SRT, WEBVTT, read_srt, read_vtt
from egoindex.media.captions.textgrid import TEXTGRID, read_textgrid

for _fmt in (EGOCLIP, CSV, SRT, WEBVTT, CHAT, ELAN, TEXTGRID):
    register(_fmt)

__all__ = [
    "CHAT_UNSPOKEN", "CSV_COLUMNS", "EGOCLIP_COLUMNS", "EGOCLIP_REQUIRED", "EXAMPLES", "FORMATS", "MAP_COLUMNS",
    "MIXED", "CaptionFormat", "Captions", "Reader", "caption_files", "chat_text", "decode_text", "detect_format",
    "format_names", "parse_tags", "read_captions", "read_chat", "read_csv", "read_egoclip", "read_elan", "read_srt",
    "read_textgrid", "read_video_map", "read_vtt", "register",
]
