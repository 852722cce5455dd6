"""The CLI's one rule for errors: an ``EgoindexError`` (a user error) prints ``error: MESSAGE`` without a
traceback and exits 2, from every command and sub-command; anything else is a bug and keeps its
traceback. Checked both through ``CliRunner`` (which calls the click command directly) and through
``python -m egoindex`` (which goes through ``app.__call__``), with nothing heavier than a missing folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import egoindex.cli.store as cli_store
from egoindex.cli.main import app
from egoindex.errors import StoreError

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def egoindex(*args: str, code: str = "") -> subprocess.CompletedProcess:
    """``python -m egoindex ARGS`` (or ``python -c CODE``) as a user runs it."""
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "egoindex", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})


def all_callbacks(typer_app: typer.Typer) -> list:
    out = [c.callback for c in typer_app.registered_commands]
    for g in typer_app.registered_groups:
        out += all_callbacks(g.typer_instance)
    return out


def test_every_command_and_sub_command_is_guarded() -> None:
    callbacks = all_callbacks(app)
    assert len(callbacks) >= 17  # 11 commands + bench (4) + export (3)
    assert all(getattr(cb, "exits_on_user_error", False) for cb in callbacks)


def test_user_error_exits_2_with_the_message_and_no_traceback(tmp_path: Path) -> None:
    r = runner.invoke(app, ["info", str(tmp_path / "nothing")])
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and "is not an egoindex store" in flat(r.output)
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)


def test_sub_command_user_errors_exit_2(tmp_path: Path) -> None:
    r = runner.invoke(app, ["bench", "compare", str(tmp_path / "missing.json")])  # raised by the library
    assert r.exit_code == 2 and "no such report" in flat(r.output)
    r = runner.invoke(app, ["bench", "mcq", str(tmp_path)])  # raised by the command (a refused option combination)
    assert r.exit_code == 2 and "exactly one of --egomcq" in flat(r.output)


def test_message_is_printed_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise StoreError("relevance must be 2-D [videos x sentences], see [bold]")

    monkeypatch.setattr(cli_store, "open_store", refuse)
    r = runner.invoke(app, ["info", str(tmp_path)])
    assert r.exit_code == 2 and "relevance must be 2-D [videos x sentences], see [bold]" in flat(r.output)


def test_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(cli_store, "open_store", bug)
    r = runner.invoke(app, ["info", str(tmp_path)])
    assert r.exit_code == 1 and isinstance(r.exception, RuntimeError)
    assert r.exc_info is not None and r.exc_info[2] is not None and "error:" not in r.output


def test_bad_option_is_a_usage_error() -> None:
    r = runner.invoke(app, ["info", "--no-such-option"])
    assert r.exit_code == 2 and "No such option" in flat(r.output)


def test_python_m_egoindex(tmp_path: Path) -> None:
    r = egoindex("info", str(tmp_path / "nothing"))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "error:" in r.stdout and "is not an egoindex store" in flat(r.stdout)
    assert "Traceback" not in r.stdout + r.stderr
    bug = ("import egoindex.cli.store as s\n"
           "def bug(*a, **k): raise RuntimeError('a bug, not a user error')\n"
           "s.open_store = bug\n"
           "from egoindex.cli.main import app\n"
           f"app(['info', {str(tmp_path)!r}], prog_name='egoindex')\n")
    r = egoindex(code=bug)
    assert r.returncode == 1 and "Traceback" in r.stderr and "RuntimeError: a bug, not a user error" in r.stderr


def test_help_loads_no_heavy_library() -> None:
    code = ("import sys; sys.argv = ['egoindex', '--help']\n"
            "from egoindex.cli.main import app\n"
            "try:\n    app(prog_name='egoindex')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'av', 'fastapi', 'lancedb', 'faiss') if m in sys.modules))")
    r = egoindex(code=code)
    assert r.returncode == 0 and r.stdout.strip().endswith("[]"), r.stdout[-500:] + r.stderr[-2000:]
