"""The torchrun launch options that ``egoindex train`` and ``egoindex build`` pass through, and the
command that re-runs a command under torchrun.

Why one module: both commands start several processes the same way (``--nproc-per-node N`` on one
machine, ``--nnodes M`` with a rendezvous across machines, or several launchers on one machine), so
the option names, their meaning and the way they are stripped from the command line before it is
handed to the ranks must agree; they are defined here once and each command only declares them in
its own parser. torchrun itself checks the values.

Rendezvous: one node (``--nnodes 1``) without an endpoint uses ``--standalone`` (a free local port,
so concurrent runs never clash). Otherwise the options go to torchrun unchanged; with
``--rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id ID`` every launcher of the job (one per
node, or several on one host) joins the same rendezvous, and the one on HOST that binds PORT first
hosts it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

#: option -> (default, help); every option takes one value
LAUNCH_OPTIONS: dict[str, tuple[str | None, str]] = {
    "--nproc-per-node": ("1", "processes (devices) per node; > 1 re-runs under torchrun"),
    "--nnodes": ("1", "number of nodes, or of launchers (torchrun syntax, e.g. 2 or 1:4); > 1 re-runs under torchrun"),
    "--node-rank": (None, "this node's rank (static rendezvous)"),
    "--master-addr": (None, "address of node 0 (static rendezvous)"),
    "--master-port": (None, "port on node 0 (static rendezvous)"),
    "--rdzv-backend": (None, "rendezvous backend, e.g. c10d"),
    "--rdzv-endpoint": (None, "rendezvous host:port"),
    "--rdzv-id": (None, "rendezvous job id (e.g. $SLURM_JOB_ID): the same for every launcher of one job"),
    "--max-restarts": (None, "torchrun worker-group restarts on failure"),
}


def attr(option: str) -> str:
    """``--nproc-per-node`` -> ``nproc_per_node`` (the name argparse and typer give it)."""
    return option[2:].replace("-", "_")


def under_torchrun() -> bool:
    """Whether this process is a rank that torchrun started (then it never re-launches)."""
    return "LOCAL_RANK" in os.environ


def wants_torchrun(values: Mapping[str, object]) -> bool:
    """Whether the launch options ask for more than this one process (keys: :func:`attr` names)."""
    nproc = str(values.get("nproc_per_node") or "1")
    nnodes = str(values.get("nnodes") or "1")
    return nproc != "1" or nnodes not in ("1", "1:1")


def without_launch_options(argv: list[str]) -> list[str]:
    """``argv`` minus the launch options (each as ``--opt v`` or ``--opt=v``), every other token in order."""
    out, skip = [], False
    for tok in argv:
        if skip:
            skip = False
        elif tok in LAUNCH_OPTIONS:
            skip = True
        elif tok.split("=", 1)[0] not in LAUNCH_OPTIONS:
            out.append(tok)
    return out


def torchrun_command(values: Mapping[str, object], program: list[str]) -> list[str]:
    """``python -m torch.distributed.run OPTIONS *program`` (``program``: e.g. ``["-m", "egoindex", ...]``,
    already without launch options); ``values`` by :func:`attr` name, None for options not given."""
    nproc = values.get("nproc_per_node") or "1"
    nnodes = values.get("nnodes") or "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--nnodes={nnodes}"]
    for opt in LAUNCH_OPTIONS:
        value = values.get(attr(opt))
        if opt not in ("--nproc-per-node", "--nnodes") and value is not None:
            cmd.append(f"{opt}={value}")
    if str(nnodes) in ("1", "1:1") and values.get("rdzv_endpoint") is None and values.get("master_addr") is None:
        cmd.append("--standalone")  # single node: a free local port, no clash between concurrent runs
    return cmd + list(program)


def exec_torchrun(values: Mapping[str, object], program: list[str]) -> None:
    """Replace this process by :func:`torchrun_command` (output flushed first); never returns."""
    cmd = torchrun_command(values, program)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)
