"""The one progress-bar factory: every long job (ingest, train, build, bench, export, probe, demo)
shows the same columns, and a disabled bar costs nothing.

Why one place: eight hand-built ``rich.progress.Progress`` copies had drifted (some without a
time estimate, some transient); a job's progress is part of its user interface and should read the
same everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(label: str = "", *, enabled: bool = True, fields: str | None = None, console: Console | None = None,
                 transient: bool = False) -> Progress:
    """A ``rich`` Progress with the project's columns: ``label description  bar  n/N  [fields]  elapsed  eta``.

    ``fields`` names a task field shown after the count (``add_task(..., info="...")``).
    """
    cols: list[Any] = [TextColumn((f"[bold]{label}[/bold] " if label else "") + "{task.description}"), BarColumn(),
                       MofNCompleteColumn()]
    if fields:
        cols.append(TextColumn("{task.fields[" + fields + "]}"))
    cols += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*cols, console=console, disable=not enabled, transient=transient)


@contextlib.contextmanager
def counting(what: str, total: int, *, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A bar over ``total`` units as a context that yields ``advance(n=1)``; a no-op when disabled."""
    with progress_bar(enabled=enabled) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n=1: bar.advance(task, n)
