"""Shared fixtures: one small demo corpus and its shards per test session (real PyAV, real Whisper).

Session-scoped because generating and transcribing video is the slow part; tests must treat
these folders as read-only (copy them to tmp_path to modify). Under pytest-xdist every worker is
its own session; ``build_once`` lets the first worker that asks build each of these folders and the
others wait for it and share it, so ``-n 2`` does not build the chain twice on two cores.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import torch_threads

# Never reach for the network: named Hugging Face models must fail fast and clearly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEMO_VIDEOS = 6
DEMO_SECONDS = 30.0
DEMO_FPS = 2.0


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` once per test run, whatever the number of xdist workers, and its result.

    Without xdist this is ``build(tmp_path_factory.mktemp(name))``. Under xdist the folder lies in the
    run's base temp folder, which all workers share; an exclusive lock makes the first worker build it
    and the others wait and then read the returned path from ``NAME.done``. A build that failed leaves
    no ``.done``: the next worker tries again (and fails the same way, with its own traceback).
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            done.write_text(str(build(folder)), encoding="utf-8")
        return Path(done.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-video x 30 s demo corpus with ground_truth.json."""
    from egoindex.demo.corpus import write_demo_corpus

    def build(out: Path) -> Path:
        write_demo_corpus(out, n_videos=DEMO_VIDEOS, seconds=DEMO_SECONDS, seed=0, progress=False)
        return out

    return build_once(tmp_path_factory, "demo_videos", build)


@pytest.fixture(scope="session")
def demo_shards(demo_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``demo_videos`` ingested at 2 fps with a val split and small shards."""
    from egoindex.ingest.run import IngestConfig, RunOptions, run

    def build(out: Path) -> Path:
        config = IngestConfig(fps=DEMO_FPS, val_fraction=0.3, shard_size=40)
        run(demo_videos, out, config, RunOptions(workers=2, progress=False))
        return out

    return build_once(tmp_path_factory, "demo_shards", build)


@pytest.fixture(scope="module")
def one_torch_thread():
    """In-process builds in a module use one torch thread (two OpenMP threads spinning on two
    shared cores run several times slower than one); the count is put back afterwards.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    with torch_threads(1):
        yield


DEMO_TRAIN_ARGS = ("--model", "ego-tiny-vit", "--epochs", "6", "--batch-size", "16", "--lr", "1e-3", "--warmup", "2",
                   "--workers", "0", "--threads", "1", "--no-progress", "--report-to", "none", "--log-every", "1000")


@pytest.fixture(scope="session")
def demo_checkpoint(demo_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ego-tiny-vit`` trained briefly (6 epochs of 11 steps, in this process) on ``demo_shards``.

    ``launch`` sets one torch thread (``--threads 1``); the count is put back afterwards.
    """
    from egoindex.train.loop import launch

    def build(out: Path) -> Path:
        run_dir = out / "run"
        with torch_threads(1):
            code = launch([str(demo_shards), str(run_dir), *DEMO_TRAIN_ARGS])
        assert code == 0, f"training the demo checkpoint failed with exit code {code}"
        return run_dir / "latest.pt"

    return build_once(tmp_path_factory, "demo_run", build)


@pytest.fixture(scope="session")
def demo_store(demo_checkpoint: Path, demo_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store built (in this process, one clean run) from ``demo_checkpoint`` and ``demo_shards``.
    Read-only for tests: copy it to tmp_path to modify."""
    from egoindex.build.run import BuildConfig, run

    def build(out: Path) -> Path:
        store = out / "store"
        with torch_threads(1):
            config = BuildConfig(checkpoint=demo_checkpoint, shards=demo_shards, store=store, workers=0,
                                 progress=False)
            summary = run(config)
        assert summary.committed and summary.rows["frames"] > 0
        return store

    return build_once(tmp_path_factory, "demo_store", build)
