"""open_clip_train's own data pipeline over the demo's train shards: pairs only, counted right.

open_clip_train (installed in .venv with open_clip_torch 3.3.0) pins ``webdataset<=0.2.86``;
egoindex pins 1.0.2. So this test makes, once per run under the pytest base temp, an environment
with uv that has ``webdataset==0.2.86`` and pandas (from the package registry: the one download
this suite allows, under the slow marker; skipped with the reason when it cannot be had) ahead of .venv's
packages (a ``.pth`` line appended *after* its own site-packages). In it,
``open_clip_train_probe.py`` runs ``open_clip_train.data.get_data`` with arguments parsed by
open_clip_train's own parser, as ``python -m open_clip_train.main --train-data PATTERN
--dataset-type webdataset`` would, and iterates one epoch. It must see no empty caption, and the
number of pairs must equal ``sizes.json``'s count and the captioned frames of the manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections import Counter
from pathlib import Path

import pytest

from egoindex.dataset.layout import is_captioned, read_manifest, read_pair_sizes, read_sizes
from egoindex.dataset.shards import iter_samples, list_pair_shards, list_shards, train_data_pattern
from tests.conftest import build_once

pytestmark = pytest.mark.slow
PROBE = Path(__file__).with_name("open_clip_train_probe.py")
#: open_clip_train's pin, and pandas (open_clip_torch[training]; open_clip_train.data imports it) with the one
#: dependency .venv lacks; installed --no-deps: numpy, dateutil and the rest are .venv's.
OPEN_CLIP_TRAIN_EXTRAS = ["webdataset==0.2.86", "pandas==2.2.3", "pytz==2024.2"]


def _uv() -> list[str] | None:
    """The uv command (scripts/setup.sh installs it for the base python; .venv may have it too)."""
    for cmd in ([sys.executable, "-m", "uv"], ["python3", "-m", "uv"]):
        try:
            if subprocess.run([*cmd, "--version"], capture_output=True, timeout=60).returncode == 0:
                return cmd
        except (OSError, subprocess.TimeoutExpired):
            continue
    exe = shutil.which("uv")
    return [exe] if exe else None


@pytest.fixture(scope="session")
def open_clip_train_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of an environment where ``import webdataset`` is 0.2.86 and everything else
    (torch, open_clip, open_clip_train, braceexpand) is .venv's."""

    def build(folder: Path) -> Path:
        uv = _uv()
        if uv is None:
            pytest.skip("uv is not available (python3 -m uv, .venv/bin/python -m uv or uv on PATH): "
                        "cannot make open_clip_train's environment")
        venv = folder / "venv"
        subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=300)
        py = venv / "bin" / "python"
        r = subprocess.run([*uv, "pip", "install", "--quiet", "--python", str(py), "--no-deps",
                            *OPEN_CLIP_TRAIN_EXTRAS], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.skip(f"cannot install {' '.join(OPEN_CLIP_TRAIN_EXTRAS)} from the package registry (unreachable?): "
                        f"{(r.stderr or r.stdout).strip()[-500:]}")
        site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                            text=True).strip())
        # a path line in a .pth goes on sys.path after the venv's own site-packages: its webdataset wins
        (site / "zz_egoindex_dot_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
        return py

    return build_once(tmp_path_factory, "open_clip_train_env", build)


def test_open_clip_train_reads_only_pairs_and_counts_them(open_clip_train_python: Path, demo_shards: Path,
                                                           tmp_path: Path) -> None:
    train, val = (train_data_pattern([p.resolve() for p in list_pair_shards(demo_shards, s)]) for s in ("train", "val"))
    out = tmp_path / "report.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(open_clip_train_python), str(PROBE), train, val, str(out)], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    rep = json.loads(out.read_text(encoding="utf-8"))
    assert rep["webdataset"] == "0.2.86" and Path(rep["webdataset_file"]).is_relative_to(open_clip_train_python.parents[1])

    manifest = read_manifest(demo_shards)
    for split, runs in (("train", ("train", "train_all")), ("val", ("val",))):
        pairs = sum(n for name, n in read_pair_sizes(demo_shards).items() if name.startswith(f"{split}-"))
        captioned = sum(int(m["captioned_frames"]) for m in manifest if m["split"] == split and m["status"] == "ok")
        frames = sum(int(m["frames"]) for m in manifest if m["split"] == split and m["status"] == "ok")
        every = list(iter_samples(list_shards(demo_shards, split)))  # what the build reads: every frame
        assert len(every) == frames > captioned  # the demo has frames without speech, and they are kept
        texts = Counter(s["txt"].decode("utf-8") for s in every if is_captioned(s.get("txt")))
        assert pairs == captioned == sum(texts.values()) > 0, split
        for run in runs:
            got = rep[run]
            assert got["yielded"] == pairs, (run, got["yielded"], pairs)
            assert got["empty_token_rows"] == 0 and all(t.strip() for t in got["texts"]), run
            assert Counter(got["texts"]) == texts, run  # exactly the captions of the captioned frames
    assert rep["sizes_count"] == rep["train"]["num_samples"] == sum(
        n for name, n in read_pair_sizes(demo_shards).items() if name.startswith("train-"))
    assert sum(read_sizes(demo_shards).values()) == sum(int(m["frames"]) for m in manifest if m["status"] == "ok")


def test_the_same_probe_catches_an_egoindex_0_2_folder(open_clip_train_python: Path, demo_shards: Path,
                                                       tmp_path: Path) -> None:
    """The check can fail: over a 0.2-style folder (uncaptioned frames inside the train shards,
    counted in sizes.json) the same pipeline trains on empty captions."""
    from tests.unit.test_pair_shards import _as_0_2

    old = _as_0_2(demo_shards, tmp_path / "old")
    pattern = train_data_pattern([p.resolve() for p in list_pair_shards(old, "train")])
    val = train_data_pattern([p.resolve() for p in list_pair_shards(old, "val")])
    out = tmp_path / "report.json"
    r = subprocess.run([str(open_clip_train_python), str(PROBE), pattern, val, str(out)], capture_output=True, text=True,
                       cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    rep = json.loads(out.read_text(encoding="utf-8"))
    captioned = sum(int(m["captioned_frames"]) for m in read_manifest(old) if m["split"] == "train")
    assert rep["sizes_count"] > captioned and rep["train_all"]["yielded"] == rep["sizes_count"]
    assert rep["train_all"]["empty_token_rows"] == rep["sizes_count"] - captioned > 0
