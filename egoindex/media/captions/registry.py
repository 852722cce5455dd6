"""The caption-format registry: :data:`FORMATS` (name -> :class:`CaptionFormat`) and :class:`Captions`,
what a reader fills.

Why a module of its own: every format module (and :mod:`.reading`) depends on these two types, and
they depend on nothing of the package, so the format modules meet here and never import each other.
The formats are registered, in a fixed order, by the package's ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from egoindex.media.speech import Utterance

#: How many skipped lines a :class:`Captions` remembers (with their reason) for the report.
EXAMPLES = 5
#: ``Captions.format`` of a folder whose files are of more than one format.
MIXED = "mixed"


class Captions(dict[str, list[Utterance]]):
    """``{file video uid: utterances}`` plus what reading it found: the format, how many data
    rows were read, the skipped rows by reason and the first few of them (``file:line: reason``),
    ``notes`` (kept rows with something left out, e.g. an unreadable tag list) and ``ignored``
    (good rows of video uids that ``read_captions(keep=...)`` did not ask for, by uid in file order)
    and ``failed`` (a folder's per-video files that could not be read: relative path -> reason).
    ``video``: while one per-video file is read, the uid of the video it captions."""

    def __init__(self, fmt: str = "", keep: Callable[[str], bool] | None = None, video: str = "") -> None:
        super().__init__()
        self.format = fmt
        self.keep = keep
        self.video = video
        self.failed: dict[str, str] = {}
        self.rows = 0
        self.ignored: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.notes: dict[str, int] = {}
        self.examples: list[str] = []
        self.files: list[Path] = []
        self.sha256 = ""  # the input's identity (read_captions), recorded by --transcripts

    @property
    def n_utterances(self) -> int:
        return sum(len(v) for v in self.values())

    def skip(self, where: str, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    def note(self, reason: str) -> None:
        self.notes[reason] = self.notes.get(reason, 0) + 1

    def describe_skips(self) -> str:
        """One line for a summary: ``3 rows skipped (end before start 2, empty text 1)``."""
        n = sum(self.skipped.values())
        if not n:
            return "no rows skipped"
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items()))
        return f"{n} row{'s' * (n != 1)} skipped ({kinds})"


#: ``reader(path, text, out)``: add the file's utterances to ``out`` (and count its skips there).
Reader = Callable[[Path, str, Captions], None]


@dataclass(frozen=True)
class CaptionFormat:
    """One caption-file format: ``sniff(first_line)`` says whether a file's first line is this
    format's header (None: the format has no header, only ``extensions`` find it); ``per_video``:
    a file captions one video, ``Captions.video`` (the reader names no video itself)."""

    name: str
    description: str
    extensions: tuple[str, ...]
    read: Reader
    sniff: Callable[[str], bool] | None = None
    per_video: bool = False


FORMATS: dict[str, CaptionFormat] = {}


def register(fmt: CaptionFormat) -> CaptionFormat:
    """Add a format to :data:`FORMATS` (one name, one reader)."""
    if fmt.name in FORMATS or fmt.name == "auto":
        raise ValueError(f"caption format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def format_names() -> tuple[str, ...]:
    """``auto`` and the registered formats, as the CLI offers them."""
    return ("auto", *FORMATS)
