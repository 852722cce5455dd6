"""``egoindex users add|remove|list STORE_OR_FILE``: who may log in to ``egoindex serve``, with which role and scope.

A thin map onto :mod:`egoindex.serve.users` (the users file's owner) and
:class:`~egoindex.serve.scopes.Scope`. Passwords are never taken from the command line (where
``ps`` and shell histories would keep them): they are prompted for twice, or read from the first
line of standard input with ``--password-stdin``. An API token (``--token``) is printed once and
only its SHA-256 is kept. A running server picks every change up at its users' next request.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from egoindex.cli.common import console
from egoindex.errors import AccessError
from egoindex.serve.scopes import Scope
from egoindex.serve.users import ROLES, UsersFile, hash_password, make_user, new_token, token_digest, users_path

users_app = typer.Typer(help="Who may log in to `egoindex serve`: add, remove and list users (roles, scopes, "
                             "passwords, API tokens).", no_args_is_help=True)

TARGET = typer.Argument(..., help="A store folder (its users file is STORE/_access/users.json), an s3://BUCKET/PREFIX "
                        "store (the users file of its local folder, which `egoindex serve` reads) or a users .json file.")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line.strip():
            raise AccessError("--password-stdin: standard input had no password line")
        return line.rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
def add(
    target: str = TARGET,
    name: str = typer.Argument(..., help="The user name they log in with."),
    role: str = typer.Option("user", "--role", help=f"One of {', '.join(ROLES)}: an admin sees every video and "
                             "the service endpoints (/metrics, /api/info); a user sees their scope."),
    video: list[str] = typer.Option([], "--video", help="Scope: only these video uids (repeatable)."),
    child: list[str] = typer.Option([], "--child", help="Scope: only videos of these children (participants' "
                                    "child_id; repeatable)."),
    split: Optional[str] = typer.Option(None, "--split", help="Scope: only this split (train / val)."),
    speaker: list[str] = typer.Option([], "--speaker", help="Scope: only rows of these speakers (repeatable); "
                                      "such users get no whole video files."),
    age_min: Optional[int] = typer.Option(None, "--age-min", min=0, help="Scope: only videos recorded at this age "
                                          "(days) or older."),
    age_max: Optional[int] = typer.Option(None, "--age-max", min=0, help="Scope: ... or younger."),
    all_videos: bool = typer.Option(False, "--all-videos", help="No scope limit: every video (admins always)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from the first line of "
                                        "standard input instead of prompting."),
    no_password: bool = typer.Option(False, "--no-password", help="No password (API token only; needs --token)."),
    token: bool = typer.Option(False, "--token", help="Also make an API token (printed once) for scripts: "
                               "Authorization: Bearer TOKEN."),
    replace_existing: bool = typer.Option(False, "--replace", help="Replace an existing user of that name (their "
                                          "sessions end)."),
) -> None:
    """Add a user (or --replace one): role, scope, password and/or API token.

    Examples: egoindex users add STORE alice --role admin --all-videos
              egoindex users add STORE bob --child S --child A --split val
    """
    path = users_path(target)
    if role == "admin" and not any((video, child, split, speaker, age_min is not None, age_max is not None)):
        all_videos = True  # an admin's scope is every video; saying so is not required
    scope = Scope.build(all_videos=all_videos, video_uids=video, child_ids=child, split=split, speakers=speaker,
                        min_age_days=age_min, max_age_days=age_max)
    if no_password and not token:
        raise AccessError("--no-password needs --token: the user must have some way to log in")
    hashed = None if no_password else hash_password(_password(password_stdin))
    secret = new_token() if token else None
    user = make_user(name, role, scope, password_hash=hashed, token_sha256=token_digest(secret) if secret else None)
    user = UsersFile(path).put(user, replace_existing=replace_existing)
    console.print(f"{'replaced' if replace_existing else 'added'} user {escape(user.name)} ({user.role}; "
                  f"{escape(user.scope.describe())}) in {escape(str(path))}", soft_wrap=True)
    if secret:
        console.print("API token (shown once; send as Authorization: Bearer TOKEN):", soft_wrap=True)
        console.print(secret, soft_wrap=True, markup=False, highlight=False)


@users_app.command("remove")
def remove(target: str = TARGET, name: str = typer.Argument(..., help="The user to remove.")) -> None:
    """Remove a user: their sessions and API token stop working at once, also on a running server."""
    path = users_path(target)
    gone = UsersFile(path).remove(name)
    console.print(f"removed user {escape(gone.name)} from {escape(str(path))}", soft_wrap=True)


@users_app.command("list")
def list_users(target: str = TARGET,
               as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table.")) -> None:
    """The users, their roles and scopes, and which credentials they have (never the hashes)."""
    path = users_path(target)
    users = UsersFile(path).load()
    if as_json:
        for u in users.values():
            console.print(json.dumps(u.public()), soft_wrap=True, markup=False, highlight=False)
        return
    if not users:
        console.print(f"no users in {escape(str(path))} (egoindex users add {escape(str(target))} NAME)")
        return
    table = Table(title=f"users of {path}")
    for col in ("name", "role", "scope", "password", "token", "updated"):
        table.add_column(col)
    for u in users.values():
        p = u.public()
        table.add_row(escape(u.name), u.role, escape(p["scope"]), "yes" if p["password"] else "-",
                      "yes" if p["token"] else "-", p["updated_at"])
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``users`` group."""
    app.add_typer(users_app, name="users")
