"""Shared fixtures: one small demo corpus and its shards per test session (real PyAV, real Whisper).

Session-scoped because generating and transcribing video is the slow part; tests must treat
these folders as read-only (copy them to tmp_path to modify).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    from pipelines.ingest import IngestConfig, RunOptions, run

    out = tmp_path_factory.mktemp("demo_shards")
    run(demo_videos, out, IngestConfig(fps=DEMO_FPS, val_fraction=0.3, shard_size=40), RunOptions(workers=2, progress=False))
    return out
