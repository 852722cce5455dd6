"""What the ``egoindex`` command modules share: where output goes, how a user error is shown, and
opening a store without making every ``--help`` pay for LanceDB."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from egoindex.errors import EgoindexError, StoreError

if TYPE_CHECKING:
    from egoindex.store import Store

console = Console()
"""Results and error messages (stdout: scripts and tests read both from there)."""

err_console = Console(stderr=True)
"""Warnings and status lines of long-running servers, kept apart from their output."""

USER_ERROR_EXIT = 2
"""Exit status of a command refused because of its input (an :class:`EgoindexError`), as click uses for usage errors."""


def print_user_error(e: EgoindexError) -> None:
    """``error: MESSAGE`` in red, without a traceback: the message says what to do. Not wrapped at the
    terminal width, so paths in it stay copyable; escaped, so ``[videos x sentences]`` is not rich markup."""
    console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)


def open_store(path: str | Path, **kw: Any) -> Store:
    """``egoindex.Store(path, **kw)``; a folder that is not a store raises ``StoreError`` (a user error)."""
    if isinstance(path, Path) and str(path).startswith("s3:/"):  # a Path argument folded s3:// into s3:/
        raise StoreError(f"this command takes a store folder, not {str(path).replace('s3:/', 's3://', 1)}: "
                         "s3:// stores work with build, info, index --report, query, serve and bench")
    from egoindex.store import Store  # lancedb + faiss take ~2 s to import; `egoindex --help` should not pay that

    return Store(path, **kw)
