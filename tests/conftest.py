"""Shared fixtures: one small demo corpus and its shards per test session (real PyAV, real Whisper).

Session-scoped because generating and transcribing video is the slow part; tests must treat
these folders as read-only (copy them to tmp_path to modify).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import torch_threads

# Never reach for the network: named Hugging Face models must fail fast and clearly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEMO_VIDEOS = 6
DEMO_SECONDS = 30.0
DEMO_FPS = 2.0


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-video x 30 s demo corpus with ground_truth.json."""
    from egoindex.demo.corpus import write_demo_corpus

    out = tmp_path_factory.mktemp("demo_videos")
    write_demo_corpus(out, n_videos=DEMO_VIDEOS, seconds=DEMO_SECONDS, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def demo_shards(demo_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``demo_videos`` ingested at 2 fps with a val split and small shards."""
    from egoindex.ingest.run import IngestConfig, RunOptions, run

    out = tmp_path_factory.mktemp("demo_shards")
    run(demo_videos, out, IngestConfig(fps=DEMO_FPS, val_fraction=0.3, shard_size=40), RunOptions(workers=2, progress=False))
    return out


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

    run_dir = tmp_path_factory.mktemp("demo_run") / "run"
    with torch_threads(1):
        code = launch([str(demo_shards), str(run_dir), *DEMO_TRAIN_ARGS])
    assert code == 0, f"training the demo checkpoint failed with exit code {code}"
    return run_dir / "latest.pt"


@pytest.fixture(scope="session")
def demo_store(demo_checkpoint: Path, demo_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store built (in this process, one clean run) from ``demo_checkpoint`` and ``demo_shards``.
    Read-only for tests: copy it to tmp_path to modify."""
    from egoindex.build.run import BuildConfig, run

    store = tmp_path_factory.mktemp("demo_store") / "store"
    with torch_threads(1):
        summary = run(BuildConfig(checkpoint=demo_checkpoint, shards=demo_shards, store=store, workers=0, progress=False))
    assert summary.committed and summary.rows["frames"] > 0
    return store
