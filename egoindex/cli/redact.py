"""``egoindex redact SHARDS_DIR STORE``: :func:`egoindex.redact.run.run` over a ``--video`` range or a ``--list``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from egoindex.cli.common import console
from egoindex.dataset.blackouts import Blackout, read_blackout_list, read_journal
from egoindex.errors import RedactionError
from egoindex.store.layout import StoreLayout


def redact(
    shards_dir: Path = typer.Argument(..., help="Folder written by `egoindex ingest`."),
    store: str = typer.Argument(..., help="Store folder built from it (`egoindex build`)."),
    video: Optional[str] = typer.Option(None, "--video", help="The video: its video_uid (manifest.csv) or source "
                                        "path."),
    start: Optional[float] = typer.Option(None, "--start", min=0.0, help="Range start, seconds (default 0)."),
    end: Optional[float] = typer.Option(None, "--end", min=0.0, help="Range end, seconds (default: the end of "
                                        "the video). Without --start and --end the whole video is removed."),
    blackout_list: Optional[Path] = typer.Option(
        None, "--list", help="CSV with header video,start,end (empty start/end: the video's start/end), or a "
                             "blackouts.json (docs/formats.md#blackouts-and-the-redaction-log)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who redacts, for the log (default: the OS user)."),
    delete_source: bool = typer.Option(False, "--delete-source", help="Also blank the ranges in the raw video files "
                                       "(black pictures, silence; the rest re-encoded, its timing kept); a wholly "
                                       "redacted video's file is deleted."),
    allow_unknown: bool = typer.Option(False, "--allow-unknown", help="Record blackouts of videos SHARDS_DIR and "
                                       "STORE do not know (ingest leaves them out when they come)."),
) -> None:
    """Remove ranges of videos for good: frames, captions, utterances, clips and vectors, from the
    shards, transcripts, every store table and its old versions, the FAISS indexes and caches.

    The ranges are recorded as blackouts that later ingests and builds honour, and in a redaction
    log (what, when, by whom). Killed, the same command finishes the redaction. A running
    `egoindex serve` notices it without a restart.

    Example: egoindex redact demo/shards demo/store --video 3ec0ab15 --start 12 --end 30
    """
    from egoindex.redact.run import RedactRequest, run  # lancedb, faiss and PyAV

    StoreLayout(store).refuse_remote("`egoindex redact`")  # it rewrites tables, indexes and caches in place
    if video is not None and blackout_list is not None:
        raise RedactionError("give --video (with --start/--end) or --list, not both")
    if blackout_list is None and video is None and (start is not None or end is not None):
        raise RedactionError("--start/--end need --video")
    items: list[Blackout] = []
    if video is not None:
        items = [Blackout(video, start or 0.0, end)]
    elif blackout_list is not None:
        items = read_blackout_list(blackout_list)
    elif read_journal(shards_dir) is None:
        raise RedactionError("say what to redact: --video UID [--start S --end E], or --list blackouts.csv")
    for s in run(RedactRequest(shards=shards_dir, store=Path(store), blackouts=items, by=by, delete_source=delete_source,
                               allow_unknown=allow_unknown)):
        t = Table(title=f"redaction {s.id}{' (resumed)' if s.resumed else ''} by {s.by}", show_header=False)
        t.add_row("ranges", "; ".join(Blackout.from_json(r).describe() for r in s.ranges))
        t.add_row("shards", ", ".join(f"{k} {v}" for k, v in s.removed.items()) + " removed; "
                  f"{s.shards_rewritten} shards rewritten, {s.shards_removed} removed")
        t.add_row("store rows removed", ", ".join(f"{k} {v}" for k, v in s.store_removed.items()) or "-")
        t.add_row("old versions", f"{s.bytes_purged:,} bytes removed")
        if s.sources:
            t.add_row("raw videos", ", ".join(s.sources))
        console.print(t)
        for w in s.warnings:
            console.print(f"[yellow]warning:[/yellow] {w}")


def register(app: typer.Typer) -> None:
    """Add ``redact``."""
    app.command("redact")(redact)
