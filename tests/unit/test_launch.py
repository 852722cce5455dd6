"""The launch options that train and build pass to torchrun (egoindex.core.launch)."""

from __future__ import annotations

import sys

from egoindex.core.launch import torchrun_command, wants_torchrun, without_launch_options


def test_one_process_needs_no_torchrun() -> None:
    assert not wants_torchrun({"nproc_per_node": 1, "nnodes": "1"})
    assert not wants_torchrun({"nproc_per_node": "1", "nnodes": "1:1"})
    assert not wants_torchrun({})
    assert wants_torchrun({"nproc_per_node": 2, "nnodes": "1"})
    assert wants_torchrun({"nproc_per_node": 1, "nnodes": "2"})  # two launchers of one process each


def test_launch_options_are_dropped_with_their_values() -> None:
    argv = ["build", "ckpt", "shards", "store", "--clip-stride", "2", "--nproc-per-node", "2", "--nnodes=2",
            "--rdzv-endpoint", "host:1234", "--rdzv-id", "job7", "-q"]
    assert without_launch_options(argv) == ["build", "ckpt", "shards", "store", "--clip-stride", "2", "-q"]


def test_single_node_is_standalone_and_several_use_the_rendezvous() -> None:
    one = torchrun_command({"nproc_per_node": 2, "nnodes": "1"}, ["-m", "egoindex", "build", "a"])
    assert one == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--nnodes=1", "--standalone",
                   "-m", "egoindex", "build", "a"]
    two = torchrun_command({"nproc_per_node": 1, "nnodes": "2", "rdzv_backend": "c10d",
                            "rdzv_endpoint": "127.0.0.1:29400", "rdzv_id": "j1", "node_rank": None},
                           ["-m", "egoindex.train", "s", "r"])
    assert "--standalone" not in two
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:29400", "--rdzv-id=j1"} <= set(two)
    assert not any(t.startswith("--node-rank") for t in two)  # options not given are not passed
    # one node with an explicit endpoint is a rendezvous too (several launchers on one host)
    assert "--standalone" not in torchrun_command({"nnodes": "1", "rdzv_endpoint": "h:1"}, [])
