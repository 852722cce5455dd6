"""What every ``egoindex`` sub-command module shares: how an error ends a command, and opening
a store with a clear message instead of a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

console = Console()


def fail(e: Exception, code: int = 2) -> None:
    """Print ``error: ...`` and exit with ``code`` (2: the input was unusable). Not wrapped at
    the terminal width, so paths in the message stay copyable."""
    console.print(f"[red]error:[/red] {e}", soft_wrap=True)
    raise typer.Exit(code)


def open_store(path: Path, **kw: Any) -> Any:
    """``egoindex.Store(path, **kw)``, or a clean exit naming what is wrong with the folder."""
    from egoindex.store import Store, StoreError

    try:
        return Store(path, **kw)
    except StoreError as e:
        fail(e)
