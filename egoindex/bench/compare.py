"""``egoindex bench compare``: several reports (checkpoints) side by side, one column each,
through :func:`egoindex.core.report.compare_reports` (the report format's owner)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from egoindex.core.fsutil import atomic_open
from egoindex.core.report import compare_reports
from egoindex.errors import BenchError

__all__ = ["compare"]


def compare(reports: Sequence[str | Path], out: str | Path | None = None) -> str:
    """Markdown table of several reports' metrics side by side, optionally written to ``out``
    (atomically). A missing or unreadable report is a BenchError naming it."""
    missing = [str(p) for p in reports if not Path(p).is_file()]
    if missing:
        raise BenchError(f"no such report: {', '.join(missing)}")
    try:
        text = compare_reports([Path(p) for p in reports])
    except (KeyError, ValueError, json.JSONDecodeError) as e:
        raise BenchError(f"cannot read the reports: {e}") from e
    if out is not None:
        with atomic_open(Path(out), "w") as f:
            f.write(text)
    return text
