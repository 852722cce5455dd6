"""``ingest --rttm`` and ``--participants``: read the file, record its identity, match it to videos.

Why here and not in :mod:`egoindex.ingest.run`: both follow ``--transcripts``' pattern (the file's
sha256 goes into the :class:`IngestConfig`, so ``check_config`` refuses a resume with another
file; its names are matched to the videos by the captions' keys) and report what they matched;
kept apart, the run stays the orchestration.

Matching (:func:`match_names`): a video takes the entry of its first name
(``egoindex.ingest.run.caption_keys``: uid, relative path, path without extension, file name
without extension) that the file holds; an entry that two videos would take is an
:class:`IngestError`. RTTM entries are file ids first, then file stems (a file per video named
after it): every key of a video is tried as a file id before any is tried as a stem.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, field, replace
from pathlib import Path

from egoindex.errors import IngestError, MediaError
from egoindex.ingest.config import IngestConfig
from egoindex.ingest.participants import Participant, read_participants
from egoindex.media.discover import VideoFile
from egoindex.media.speakers import Rttm, Turn, read_rttm

#: ``keys(video)``: the names a file may use for a video, most specific first.
Keys = Callable[[VideoFile], list[str]]
#: How many unmatched names a report lists.
EXAMPLES = 5


def match_names(names: Container[str], videos: list[VideoFile], keys: Keys, what: str) -> dict[str, str]:
    """``{video uid: the name in the file it takes}`` (module docstring); ``what`` names the file
    in the error for a name that two videos would take."""
    claims: dict[str, list[VideoFile]] = {}
    for v in videos:
        name = next((k for k in keys(v) if k in names), None)
        if name is not None:
            claims.setdefault(name, []).append(v)
    for name, vs in claims.items():
        if len(vs) > 1:
            named = ", ".join(x.source for x in vs[:3])
            raise IngestError(f"{what} entry {name!r} matches {len(vs)} videos ({named}); "
                              "name the video by its relative path (without extension) in that file")
    return {vs[0].video_uid: name for name, vs in claims.items()}


@dataclass
class RttmReport:
    """What ``--rttm`` held and matched, for the summary: rows, turns, skipped rows by reason (and
    the first few), the labels, the videos of this part that take turns, and the file ids no video
    takes (count and the first few)."""

    files: int = 0
    rows: int = 0
    turns: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skip_examples: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    videos: int = 0
    unmatched: int = 0
    unmatched_examples: list[str] = field(default_factory=list)


def load_rttm(cfg: IngestConfig, path: Path | None, videos: list[VideoFile],
              keys: Keys) -> tuple[IngestConfig, dict[str, list[Turn]], RttmReport | None]:
    """Read ``--rttm`` (:func:`egoindex.media.speakers.read_rttm`) and put its sha256 into the
    config; returns ``{video uid: turns}`` for the videos it names and the report (None without)."""
    if path is None:
        if cfg.rttm_sha256 is not None:
            raise IngestError("this IngestConfig names an RTTM file (rttm_sha256); pass it as rttm")
        return cfg, {}, None
    try:
        rttm = read_rttm(Path(path))
    except MediaError as e:
        raise IngestError(f"--rttm: {e}") from e
    if cfg.rttm_sha256 not in (None, rttm.sha256):
        raise IngestError(f"--rttm {path} has sha256 {rttm.sha256}, not the config's {cfg.rttm_sha256}")
    by_uid = _match_rttm(rttm, videos, keys)
    taken = {fid for uid, (by, name) in by_uid.items() for fid in ([name] if by == "id" else rttm.stems[name])}
    unmatched = [fid for fid in rttm.turns if fid not in taken]
    report = RttmReport(files=len(rttm.files), rows=rttm.rows, turns=rttm.n_turns, skipped=dict(rttm.skipped),
                        skip_examples=list(rttm.examples),
                        labels=sorted({t.label for ts in rttm.turns.values() for t in ts}),
                        unmatched=len(unmatched), unmatched_examples=unmatched[:EXAMPLES])
    turns = {uid: rttm.turns_for(name, by=by) or [] for uid, (by, name) in by_uid.items()}
    return replace(cfg, rttm_sha256=rttm.sha256), turns, report


def _match_rttm(rttm: Rttm, videos: list[VideoFile], keys: Keys) -> dict[str, tuple[str, str]]:
    """``{video uid: ("id" | "stem", name)}``: file ids first, then, for the videos no file id
    names, file stems."""
    by_id = match_names(rttm.turns, videos, keys, "RTTM file id")
    rest = [v for v in videos if v.video_uid not in by_id]
    by_stem = match_names(rttm.stems, rest, keys, "RTTM file")
    taken_ids = set(by_id.values())
    for uid, stem in by_stem.items():
        both = taken_ids & set(rttm.stems[stem])
        if both:
            raise IngestError(f"the turns of RTTM file id {sorted(both)[0]!r} would go to two videos (by file id and "
                              f"by the file name {stem}.rttm); give each video its own file id")
    return {**{u: ("id", n) for u, n in by_id.items()}, **{u: ("stem", n) for u, n in by_stem.items()}}


@dataclass
class ParticipantsReport:
    """What ``--participants`` held and matched: rows, extra columns, videos with a row (of all
    parts), and the rows no video takes (count and the first few)."""

    rows: int = 0
    extra_columns: list[str] = field(default_factory=list)
    videos: int = 0
    unmatched: int = 0
    unmatched_examples: list[str] = field(default_factory=list)


def load_participants(cfg: IngestConfig, path: Path | None, videos: list[VideoFile],
                      keys: Keys) -> tuple[IngestConfig, dict[str, Participant] | None, ParticipantsReport | None]:
    """Read ``--participants`` (:mod:`egoindex.ingest.participants`) and put its sha256 into the
    config; returns ``{video uid: Participant}`` for every video it names (None without a file,
    then nothing is written) and the report."""
    if path is None:
        if cfg.participants_sha256 is not None:
            raise IngestError("this IngestConfig names a participants file (participants_sha256); pass it")
        return cfg, None, None
    table = read_participants(Path(path))
    if cfg.participants_sha256 not in (None, table.sha256):
        raise IngestError(f"--participants {path} has sha256 {table.sha256}, not the config's "
                          f"{cfg.participants_sha256}")
    by_uid = match_names(table.rows, videos, keys, "participants")
    taken = set(by_uid.values())
    unmatched = [name for name in table.rows if name not in taken]
    report = ParticipantsReport(rows=len(table.rows), extra_columns=list(table.extra_columns), videos=len(by_uid),
                                unmatched=len(unmatched), unmatched_examples=unmatched[:EXAMPLES])
    return replace(cfg, participants_sha256=table.sha256), {u: table.rows[n] for u, n in by_uid.items()}, report
