"""``egoindex audit STORE``: what the audit log of ``egoindex serve`` says, per user and most recent first.

A thin view over :mod:`egoindex.serve.audit` (the log's owner): a table per user (logins, failed
logins, searches, moments opened, thumbnails, streamed requests, refused answers, first and last
event), the failed logins by name or address, and the most recent events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from egoindex.cli.common import console
from egoindex.serve.audit import read_events, summarise
from egoindex.serve.users import audit_path


def _what(e: dict[str, Any]) -> str:
    """An event's gist: the query, the moment, the video and range, or the reason."""
    p = e.get("params") or {}
    bits = [f"{k}={p[k]!r}" if isinstance(p[k], str) else f"{k}={p[k]}" for k in
            ("q", "moment", "video_uid", "t", "range", "video", "child", "speaker", "split") if k in p]
    if e.get("reason"):
        bits.append(str(e["reason"]))
    return " ".join(bits)[:160]


def audit(
    target: Path = typer.Argument(..., help="A store folder (log: STORE/_access/audit.jsonl) or an audit .jsonl file."),
    recent: int = typer.Option(20, "--recent", min=0, help="How many of the latest events to list."),
    user: Optional[str] = typer.Option(None, "--user", help="Only this user's events."),
    as_json: bool = typer.Option(False, "--json", help="The summary as one JSON object."),
) -> None:
    """Summarise the audit log: per-user counts, failed logins, recent events.

    Example: egoindex audit demo/store --recent 50
    """
    path = target if target.suffix == ".jsonl" else audit_path(target)
    events, bad = read_events(path)
    if user is not None:
        events = [e for e in events if e.get("user") == user]
    per_user = summarise(events)
    latest = events[-recent:][::-1] if recent else []
    if as_json:
        console.print(json.dumps({"log": str(path), "events": len(events), "unreadable_lines": bad,
                                  "users": {k: v.as_dict() for k, v in per_user.items()}, "recent": latest},
                                 ensure_ascii=False), soft_wrap=True, markup=False, highlight=False)
        return
    console.print(f"{escape(str(path))}: {len(events)} events" + (f", {bad} unreadable line(s)" if bad else ""),
                  soft_wrap=True)
    table = Table(title="per user")
    for col in ("user", "logins", "failed logins", "searches", "opened", "thumbnails", "streams", "refused",
                "first", "last"):
        table.add_column(col, justify="right" if col not in ("user", "first", "last") else "left")
    for name, s in sorted(per_user.items()):
        table.add_row(escape(name), str(s.logins), str(s.failed_logins), str(s.searches), str(s.opened),
                      str(s.thumbnails), str(s.streams), str(s.refused), s.first, s.last)
    console.print(table)
    if latest:
        recent_table = Table(title=f"latest {len(latest)} events")
        for col in ("time", "user", "client", "event", "status", "what"):
            recent_table.add_column(col)
        for e in latest:
            recent_table.add_row(str(e.get("ts", "")), escape(str(e.get("user") or "-")), escape(str(e.get("client"))),
                                 escape(str(e.get("event"))), str(e.get("status", "")), escape(_what(e)))
        console.print(recent_table)


def register(app: typer.Typer) -> None:
    """Add ``audit``."""
    app.command("audit")(audit)
