"""Check what ``pip install .`` installs: exactly one top-level package, ``egoindex``, that runs from the wheel.

Builds the wheel from a copy of the tree as a clone would have it (tracked files plus untracked ones git
does not ignore: no .venv, no egg-info, no build/), so a stray package at the top of the repository or
a too-wide ``packages.find`` shows up. Then it installs the wheel without dependencies into a temporary
folder and runs ``python -m egoindex --help`` from there (not from the editable checkout), which also
catches package data missing from the wheel at import time.

Run: ``.venv/bin/python scripts/check_package.py`` (needs ``python3 -m uv``, which scripts/setup.sh installs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXPECTED = {"egoindex"}
UV = [os.environ.get("PYTHON", "python3"), "-m", "uv"]


def clone_like_copy(dest: Path) -> None:
    """Copy the files a fresh clone would have, plus work in progress that git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():  # tracked files deleted in the working tree are listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def wheel_top_levels(wheel: Path) -> tuple[set[str], set[str]]:
    """(top-level names of the installed files, names in top_level.txt when setuptools wrote one)."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
        tops = {t[:-3] if t.endswith(".py") else t for t in tops}
        declared = {line.strip() for n in names if n.endswith(".dist-info/top_level.txt")
                    for line in zf.read(n).decode().splitlines() if line.strip()}
    return tops, declared


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="egoindex-pkg-") as tmp:
        src, dist, target = Path(tmp, "src"), Path(tmp, "dist"), Path(tmp, "site")
        clone_like_copy(src)
        subprocess.run([*UV, "build", "--wheel", "--quiet", "--out-dir", str(dist), str(src)], check=True)
        (wheel,) = dist.glob("*.whl")
        tops, declared = wheel_top_levels(wheel)
        problems = []
        if tops != EXPECTED:
            problems.append(f"{wheel.name} installs top-level {sorted(tops)}, expected exactly {sorted(EXPECTED)}")
        if declared and declared != EXPECTED:
            problems.append(f"{wheel.name} top_level.txt declares {sorted(declared)}, expected {sorted(EXPECTED)}")
        subprocess.run([*UV, "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
                       check=True)
        env = {**os.environ, "PYTHONPATH": str(target)}
        probe = subprocess.run(
            [sys.executable, "-c", "import egoindex; print(egoindex.__file__)"],
            env=env, cwd=tmp, capture_output=True, text=True, check=True)
        if not probe.stdout.strip().startswith(str(target)):
            problems.append(f"egoindex was imported from {probe.stdout.strip()}, not from the installed wheel")
        cli = subprocess.run([sys.executable, "-m", "egoindex", "--help"], env=env, cwd=tmp, capture_output=True,
                             text=True)
        if cli.returncode != 0:
            problems.append(f"python -m egoindex --help from the wheel exited {cli.returncode}:\n{cli.stderr[-2000:]}")
    if problems:
        for problem in problems:
            print(f"check_package: {problem}", file=sys.stderr)
        return 1
    print(f"check_package: {wheel.name} installs exactly {sorted(EXPECTED)}; python -m egoindex --help runs from it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
