"""Who spoke: speaker turns from RTTM files, and the rule that gives an utterance its speaker.

Why RTTM: it is what the Voice Type Classifier (``KCHI``, ``CHI``, ``FEM``, ``MAL``, ``SPEECH``)
and pyannote's diarization write, one line per turn::

    SPEAKER <file id> <channel> <onset s> <duration s> <NA> <NA> <label> <NA> <NA>

Fields are split at whitespace; the label is the 8th field and may be anything. Blank lines and
comments (``;;`` or ``#``) are not rows. A row that cannot become a turn is skipped and counted by
reason (:class:`Rttm` ``skipped``, with the first few ``file:line: reason``): ``not a SPEAKER
line`` (NIST's other types, e.g. ``SPKR-INFO``), ``too few fields`` (fewer than 8), ``bad
number`` (unparsable, NaN or infinite onset or duration), ``negative time`` (onset < 0),
``non-positive duration``, ``no label`` (``<NA>`` or empty). A file that is not UTF-8, or an input
without a single usable turn, is a :class:`~egoindex.errors.MediaError`.

A path is one ``.rttm`` file (any number of file ids) or a folder of them (recursively, sorted,
hidden files left out). A file id in two files of a folder is an error: the Voice Type Classifier
writes ``all.rttm`` beside one file per class (``KCHI.rttm`` ...), which repeat its turns, so
point at ``all.rttm`` (or at a folder of per-video files). Which turns belong to a video is
:meth:`Rttm.turns_for`: a file id equal to one of the video's names, else a file whose stem is one
(a file per video named after it, whatever file id its writer put inside).

The overlap rule (:func:`speaker_of`, one place for ingest and the store's clips): a span
``[start, end]`` takes the label whose turns cover the most of it (the union of that label's
turns, so a label's own overlapping turns are not counted twice). Ties (within ``TIE_EPS``
seconds) go to the label whose overlapping turn starts earliest, then to the alphabetically first
label. No overlap (touching edges do not overlap) gives None. A span of zero length (``end <=
start``) takes the label of a turn that contains its instant, ties broken the same way.
:func:`attach_speakers` applies it to utterances; an utterance that already has a speaker (a
transcript's tier or speaker code) keeps it.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from egoindex.errors import MediaError
from egoindex.media.speech import Utterance

#: How many skipped lines an :class:`Rttm` remembers (with their reason) for the report.
EXAMPLES = 5
#: Two overlaps closer than this many seconds are a tie (RTTM times are written to the ms).
TIE_EPS = 1e-6
#: The extension of RTTM files in a folder.
RTTM_SUFFIX = ".rttm"
#: What an RTTM row's label is when its writer had none.
NA = "<NA>"


@dataclass(frozen=True)
class Turn:
    """One speaker turn: ``label`` spoke from ``onset`` to ``end`` (seconds in the recording)."""

    onset: float
    end: float
    label: str


@dataclass
class Rttm:
    """The turns of an RTTM file or folder by file id, plus what reading it found."""

    turns: dict[str, list[Turn]] = field(default_factory=dict)  # file id -> turns, by onset
    stems: dict[str, list[str]] = field(default_factory=dict)  # file stem -> the file ids in that file
    rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    sha256: str = ""  # the input's identity, recorded by ``ingest --rttm``

    @property
    def n_turns(self) -> int:
        return sum(len(v) for v in self.turns.values())

    def skip(self, where: str, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    def turns_for(self, name: str, *, by: str) -> list[Turn] | None:
        """The turns that ``name`` names, ``by`` ``"id"`` (a file id) or ``"stem"`` (every turn of
        the file of that stem); None when it names none."""
        if by == "id":
            return self.turns.get(name)
        ids = self.stems.get(name)
        if ids is None:
            return None
        return sorted((t for i in ids for t in self.turns[i]), key=lambda t: (t.onset, t.end, t.label))


def rttm_files(path: Path) -> list[Path]:
    """The files :func:`read_rttm` reads: ``path`` itself, or a folder's ``.rttm`` files."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() == RTTM_SUFFIX)
        if not files:
            raise MediaError(f"no {RTTM_SUFFIX} files in {path}")
        return files
    if path.is_file():
        return [path]
    raise MediaError(f"RTTM file not found: {path}")


def _number(s: str) -> float | None:
    try:
        x = float(s)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def read_rttm(path: Path) -> Rttm:
    """Read an RTTM file or folder (module docstring: rows, skips, file ids in two files)."""
    path = Path(path)
    out = Rttm()
    owner: dict[str, Path] = {}
    folder_hash = hashlib.sha256()
    for f in rttm_files(path):
        raw = f.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise MediaError(f"{f}:{line}: not UTF-8 text ({e.reason} at byte {e.start})") from e
        digest = hashlib.sha256(raw).hexdigest()
        folder_hash.update(f"{f.relative_to(path).as_posix() if path.is_dir() else f.name}\0{digest}\n".encode())
        out.files.append(f)
        mine: dict[str, list[Turn]] = {}
        for n, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if not s or s.startswith((";;", "#")):
                continue
            out.rows += 1
            where = f"{f.name}:{n}"
            cells = s.split()
            if cells[0] != "SPEAKER":
                out.skip(where, "not a SPEAKER line")
                continue
            if len(cells) < 8:
                out.skip(where, "too few fields")
                continue
            onset, dur = _number(cells[3]), _number(cells[4])
            if onset is None or dur is None:
                out.skip(where, "bad number")
                continue
            if onset < 0:
                out.skip(where, "negative time")
                continue
            if dur <= 0:
                out.skip(where, "non-positive duration")
                continue
            label = cells[7]
            if label == NA:
                out.skip(where, "no label")
                continue
            mine.setdefault(cells[1], []).append(Turn(onset, onset + dur, label))
        for fid, turns in mine.items():
            if fid in owner:
                raise MediaError(f"RTTM file id {fid!r} is in two files: {owner[fid]} and {f}. Point --rttm at one "
                                 "file per recording (the Voice Type Classifier's all.rttm, not its per-class files "
                                 "beside it)")
            owner[fid] = f
            out.turns[fid] = sorted(turns, key=lambda t: (t.onset, t.end, t.label))
        if mine:
            out.stems.setdefault(f.stem, []).extend(mine)
    if not out.turns:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(out.skipped.items())) or "no rows"
        raise MediaError(f"{path}: no usable speaker turn in {out.rows} RTTM rows ({kinds}); first: "
                         f"{'; '.join(out.examples) or '-'}. Lines look like: SPEAKER <file id> 1 <onset> <duration> "
                         "<NA> <NA> <label> <NA> <NA>")
    out.sha256 = hashlib.sha256(raw).hexdigest() if path.is_file() else folder_hash.hexdigest()
    return out


# ----------------------------------------------------------------------------------------------
# The overlap rule


def _union(intervals: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by at least one of ``intervals``."""
    total, reach = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def speaker_of(start: float, end: float, turns: Iterable[Turn]) -> str | None:
    """The label of the span ``[start, end]`` by the overlap rule (module docstring), or None."""
    covered: dict[str, list[tuple[float, float]]] = {}
    first: dict[str, float] = {}
    instant = end <= start
    for t in turns:
        if instant:
            if not t.onset <= start <= t.end:
                continue
            piece = (start, start)
        else:
            lo, hi = max(start, t.onset), min(end, t.end)
            if hi <= lo:
                continue
            piece = (lo, hi)
        covered.setdefault(t.label, []).append(piece)
        first[t.label] = min(first.get(t.label, math.inf), t.onset)
    if not covered:
        return None
    amount = {label: _union(pieces) for label, pieces in covered.items()}
    best = max(amount.values())
    tied = [label for label, a in amount.items() if a >= best - TIE_EPS]
    return min(tied, key=lambda label: (first[label], label))


class TurnIndex:
    """Turns sorted by onset, for the overlap rule over many spans: only the turns that can
    overlap a span are looked at (those starting within the longest turn's length before it)."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.turns = sorted(turns, key=lambda t: (t.onset, t.end, t.label))
        self.onsets = [t.onset for t in self.turns]
        self.longest = max((t.end - t.onset for t in self.turns), default=0.0)

    def speaker_of(self, start: float, end: float) -> str | None:
        lo = bisect.bisect_left(self.onsets, start - self.longest - TIE_EPS)
        hi = bisect.bisect_right(self.onsets, max(start, end))
        return speaker_of(start, end, self.turns[lo:hi])


def attach_speakers(utterances: Sequence[Utterance], turns: Sequence[Turn]) -> list[Utterance]:
    """``utterances`` with their speaker by the overlap rule; one that already has a speaker
    keeps it, one that overlaps no turn stays None. New objects: the inputs are not changed."""
    index = TurnIndex(turns)
    return [u if u.speaker is not None else replace(u, speaker=index.speaker_of(u.start, u.end))
            for u in utterances]
