"""More ranks than work: training, validation and the build with fewer shards than processes, and
two torchrun launchers on one host meeting through a c10d rendezvous (``--nnodes 2``).

Real torchrun/gloo processes on a copy of the session's demo shards cut down to one train and one
val shard (the corpus of issue 22: ``--nproc-per-node 2`` crashed at the first validation), and to
one shard for the build. What a rank without a shard contributes is nothing: the results equal a
single process's.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from egoindex.dataset.layout import ShardsLayout, read_sizes, write_sizes
from egoindex.dataset.shards import list_clip_shards, list_pair_shards, list_shards
from egoindex.train.log import read_jsonl
from tests.e2e.test_store import assert_indexes_match_tables, assert_same_tables, build, read_table, said

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
pytestmark = pytest.mark.slow

#: what validation reports about the val set and the model's retrieval on it
VAL_KEYS = ("val_loss", "val_frames", "val_utterances", "f2t_R@1", "f2t_R@5", "f2t_R@10", "t2f_R@1", "t2f_R@5",
            "t2f_R@10", "f2t_medr", "t2f_medr", "f2t_meanr", "t2f_meanr")


def keep_only(demo_shards: Path, dst: Path, keep: set[str]) -> Path:
    """A copy of ``demo_shards`` holding only the shards named in ``keep`` (both series and the
    clip series), with sizes.json listing just those."""
    shutil.copytree(demo_shards, dst)
    layout = ShardsLayout(dst)
    for p in [*list_shards(dst), *list_clip_shards(dst, "train"), *list_clip_shards(dst, "val")]:
        if p.name not in keep:
            p.unlink()
    sizes = read_sizes(dst)
    write_sizes(dst, {n: c for n, c in sizes.items() if n in keep and layout.shard(n).is_file()})
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def egoindex(*args: object, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "egoindex", *map(str, args)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def two_launchers(*args: object, timeout: float = 400) -> list[subprocess.CompletedProcess]:
    """``egoindex ARGS --nnodes 2`` from two launchers on this host, one process each, joined by a
    c10d rendezvous on a free local port (as two nodes of a cluster would be)."""
    port = free_port()
    cmd = [sys.executable, "-m", "egoindex", *map(str, args), "--nnodes", "2", "--nproc-per-node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"test-{port}"]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr))
    return out


@pytest.fixture(scope="module")
def one_train_one_val(demo_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo shards with one train and one val shard (pairs and clips): fewer than two ranks.
    The uncaptioned val frames stay (training never reads them; EgoMCQ takes its frames from them too)."""
    keep = {list_pair_shards(demo_shards, "train")[0].name, list_pair_shards(demo_shards, "val")[0].name,
            list_clip_shards(demo_shards, "train")[0].name, list_clip_shards(demo_shards, "val")[0].name,
            *(p.name for p in list_shards(demo_shards, "val") if p.parent.name == "uncaptioned")}
    out = keep_only(demo_shards, tmp_path_factory.mktemp("one_of_each") / "shards", keep)
    assert len(list_pair_shards(out, "train")) == len(list_pair_shards(out, "val")) == 1
    return out


TRAIN = ("--model", "ego-tiny-rn", "--batch-size", "16", "--workers", "0", "--threads", "1", "--no-progress",
         "--report-to", "none", "--log-every", "1")


def val_records(run_dir: Path) -> list[dict]:
    return [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "val"]


def test_two_ranks_with_one_val_shard_validate_as_one_process(one_train_one_val: Path, tmp_path: Path) -> None:
    # the command of issue 22: one train shard and one val shard on two ranks
    run_dir = tmp_path / "ddp"
    r = egoindex("train", one_train_one_val, run_dir, *TRAIN, "--epochs", "2", "--nproc-per-node", "2")
    assert r.returncode == 0, r.stderr[-4000:]
    plan = json.loads((run_dir / "config.json").read_text())["plan"]
    assert plan["world_size"] == 2 and plan["total_steps"] == 2 * plan["steps_per_epoch"]
    vals = val_records(run_dir)
    assert [v["step"] for v in vals] == [plan["steps_per_epoch"], plan["total_steps"]]
    last = vals[-1]
    want_frames = read_sizes(one_train_one_val)[list_pair_shards(one_train_one_val, "val")[0].name]
    assert last["val_frames"] == want_frames  # every val frame scored once, on rank 0; rank 1 added nothing

    # the same weights validated by one process give the same numbers
    alone = tmp_path / "alone"
    r = egoindex("train", one_train_one_val, alone, *TRAIN, "--epochs", "0", "--init", run_dir / "latest.pt")
    assert r.returncode == 0, r.stderr[-4000:]
    (single,) = val_records(alone)
    for key in VAL_KEYS:
        assert last[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key


def test_clip_model_on_two_launchers_validates_as_one_process(one_train_one_val: Path, tmp_path: Path) -> None:
    # a clip model (clip shards: one train, one val) with EgoMCQ at every validation, on two
    # launchers joined by a c10d rendezvous: the path of a two-node Slurm job
    run_dir = tmp_path / "nnodes"
    args = ("--model", "ego-tiny-rn-video", "--num-frames", "2", "--batch-size", "3", "--workers", "0",
            "--threads", "1", "--no-progress", "--report-to", "none", "--val-egomcq", "generate")
    procs = two_launchers("train", one_train_one_val, run_dir, *args, "--epochs", "1")
    assert [p.returncode for p in procs] == [0, 0], "\n".join(p.stderr[-3000:] for p in procs)
    assert json.loads((run_dir / "config.json").read_text())["plan"]["world_size"] == 2
    (val,) = val_records(run_dir)
    assert "egomcq_inter_acc" in val and val["val_frames"] > 0

    alone = tmp_path / "alone"
    r = egoindex("train", one_train_one_val, alone, *args, "--epochs", "0", "--init", run_dir / "latest.pt")
    assert r.returncode == 0, r.stderr[-4000:]
    (single,) = val_records(alone)
    for key in VAL_KEYS:
        assert val[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key
    mcq = ("egomcq_inter_acc", "egomcq_intra_acc")  # NaN for a kind the two val videos give no question of
    assert any(math.isfinite(val[k]) for k in mcq)
    for key in mcq:
        assert val[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6, nan_ok=True), key


def test_more_build_ranks_than_shards_give_the_one_process_store(demo_checkpoint: Path, demo_shards: Path,
                                                                 tmp_path: Path) -> None:
    shards = keep_only(demo_shards, tmp_path / "shards", {list_pair_shards(demo_shards, "val")[0].name})
    assert len(list_shards(shards)) == 1
    reference = tmp_path / "one_process"
    assert build(demo_checkpoint, shards, reference).committed

    store = tmp_path / "two_ranks"  # two launchers, one process each: rank 1 gets no shard
    procs = two_launchers("build", demo_checkpoint, shards, store, "--workers", "0", "-q")
    assert [p.returncode for p in procs] == [0, 0], "\n".join((p.stdout + p.stderr)[-3000:] for p in procs)
    assert any("shards embedded now 1, reused 0" in said(p) for p in procs)  # rank 0's summary
    assert_same_tables(store, reference)
    assert read_table(store, "frames")["key"].to_pylist() == read_table(reference, "frames")["key"].to_pylist()
    assert_indexes_match_tables(store)
