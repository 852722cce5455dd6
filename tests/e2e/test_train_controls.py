"""The controls as runs: --epochs 0 (the untrained model, saved and validated) and --shuffle-pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from egoindex.dataset.layout import read_manifest, read_transcript
from egoindex.model.openclip import load_model, read_checkpoint
from egoindex.train.log import read_jsonl
from egoindex.train.loop import launch
from tests.support import torch_threads

ARGS = ("--model", "ego-tiny-vit", "--batch-size", "8", "--workers", "0", "--threads", "1", "--no-progress",
        "--report-to", "none", "--log-every", "1")


@pytest.mark.slow
def test_epochs_0_writes_the_seeded_untrained_model_with_its_validation(demo_shards: Path, tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        with torch_threads(1):
            assert launch([str(demo_shards), str(tmp_path / name), *ARGS, "--epochs", "0", "--seed", str(seed)]) == 0
        runs[name] = tmp_path / name
    ckpt = read_checkpoint(runs["a"] / "latest.pt")
    assert ckpt["step"] == 0 and ckpt["epoch"] == 0 and (runs["a"] / "epoch_0.pt").is_file()
    vals = [r for r in read_jsonl(runs["a"] / "metrics.jsonl") if r["kind"] == "val"]
    assert [v["step"] for v in vals] == [0] and vals[0]["val_frames"] > 0  # scored like any checkpoint
    sd = {k: load_model(runs[k] / "latest.pt").model.state_dict() for k in runs}
    assert all(torch.equal(sd["a"][k], sd["b"][k]) for k in sd["a"])  # the same seed, the same random model
    assert not all(torch.equal(sd["a"][k], sd["c"][k]) for k in sd["a"])


@pytest.mark.slow
def test_shuffle_pairs_trains_on_every_train_utterance_reassigned(demo_shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "shuffled"
    with torch_threads(1):
        assert launch([str(demo_shards), str(run), *ARGS, "--epochs", "1", "--shuffle-pairs"]) == 0
    config = json.loads((run / "config.json").read_text())
    train_uids = [r["video_uid"] for r in read_manifest(demo_shards) if r["split"] == "train" and r["status"] == "ok"]
    n_utts = sum(len(read_transcript(demo_shards, uid)) for uid in train_uids)
    assert config["shuffle_pairs"] is True and config["shuffled_utterances"] == n_utts > 1
    assert read_checkpoint(run / "latest.pt")["config"]["shuffle_pairs"] is True
