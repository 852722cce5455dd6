"""The ``egoindex`` command line: the app, its command groups, and the one place user errors end.

Every group module exposes ``register(app)``; :data:`GROUPS` is the order they appear in
``egoindex --help`` (the data flow: make data, ingest, train, build, use the store).

Why errors are handled here and not in the commands: a user error is an
:class:`~egoindex.errors.EgoindexError` whose message says what to do, so it is printed without a
traceback and the command exits 2, whichever command raised it; anything else is a bug and keeps its
traceback. The handler wraps each registered command's callback (sub-apps' too) rather than
``app.__call__``, because ``typer.testing.CliRunner`` invokes the click command directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from egoindex.version import __version__
from egoindex.cli import (audit, bench, build, classify, demo, export, finetune, ingest, redact, serve, store, train,
                          users)
from egoindex.cli.common import USER_ERROR_EXIT, console, print_user_error
from egoindex.errors import EgoindexError

GROUPS = (demo, ingest, train, finetune, build, store, redact, classify, serve, users, audit, bench, export)

app = typer.Typer(
    name="egoindex",
    help="Turn a folder of egocentric (head-camera) video into a searchable, benchmarkable feature store.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        console.print(f"egoindex {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """egoindex: ingest -> pretrain -> build -> query, on a laptop or a SLURM cluster."""


def exit_on_user_error(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` with an :class:`EgoindexError` turned into ``error: MESSAGE`` and exit status 2."""
    if getattr(callback, "exits_on_user_error", False):
        return callback

    @functools.wraps(callback)  # typer reads the options from the signature and the help from __doc__
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except EgoindexError as e:
            print_user_error(e)
            raise typer.Exit(USER_ERROR_EXIT) from None

    guarded.exits_on_user_error = True  # type: ignore[attr-defined]
    return guarded


def guard_commands(typer_app: typer.Typer) -> None:
    """Apply :func:`exit_on_user_error` to every command of ``typer_app`` and of its sub-apps."""
    for command in typer_app.registered_commands:
        if command.callback is not None:
            command.callback = exit_on_user_error(command.callback)
    for group in typer_app.registered_groups:
        if isinstance(group.typer_instance, typer.Typer):
            guard_commands(group.typer_instance)


for _group in GROUPS:
    _group.register(app)
guard_commands(app)

if __name__ == "__main__":  # pragma: no cover  (tests and torchrun run ``python -m egoindex.cli.main``)
    app(prog_name="egoindex")
