"""The three Slurm templates submitted for real to a single-host Slurm cluster.

``scripts/slurm_cluster.sh start`` (Debian's slurm-wlm and munge: slurmctld + slurmd on this host,
2 CPUs, as root, no cgroups) runs one cluster for these tests, in its own folder and on free ports;
the tests submit ``slurm/*.sbatch`` from a temporary folder (where the templates' ``%x-%j.out``
logs land) with only the resources overridden that a CPU-only 2-CPU node lacks (``--gres=none``,
``--gpus-per-node=0``, ``--cpus-per-task=1``, ``--mem``), as a user on such a cluster would:

* ``sbatch --array=0-1 slurm/ingest.sbatch``: cancelled (``scancel``) mid-run, resubmitted; the
  two array tasks give exactly the samples of the session's single-process ingest;
* ``slurm/train.sbatch`` with 2 tasks on one node (srun, one torchrun each, c10d rendezvous, DDP on
  gloo), requeued (``scontrol requeue``) after its first checkpoint: the same job continues from it;
* ``slurm/build.sbatch`` with 2 tasks: the store equals the single-process build.

Where the cluster cannot start (not root, no slurm-wlm: ``bash scripts/slurm_cluster.sh install``
installs it) these tests skip with the reason; under ``EGOINDEX_REQUIRE_SLURM=1`` (``.ci/run``)
they fail instead, so CI always runs them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from egoindex.dataset.shards import SHARD_RE, iter_samples, list_shards
from egoindex.train.log import read_jsonl
from tests.e2e.test_store import assert_indexes_match_tables, assert_same_tables, read_table

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "scripts" / "slurm_cluster.sh"
TEMPLATES = REPO / "slurm"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
            "DEADLINE"}
#: a CPU-only 2-CPU node runs the templates with these resources (the rest is the templates' own)
CPU_TASKS = ("--gpus-per-node=0", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1")
pytestmark = pytest.mark.slow


def free_port_pair() -> int:
    """A port whose next port is free too (slurmctld, slurmd)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two consecutive free ports")


@dataclass
class Slurm:
    """The test cluster: submit, look at and wait for jobs (through the real client commands)."""

    env: dict[str, str]

    def cmd(self, *args: object, cwd: Path | None = None, check: bool = True) -> str:
        r = subprocess.run([str(a) for a in args], env=self.env, cwd=cwd, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def sbatch(self, template: str, *args: object, options: tuple[str, ...], cwd: Path) -> int:
        out = self.cmd("sbatch", "--parsable", *options, TEMPLATES / template, *args, cwd=cwd)
        return int(out.strip().split(";")[0])

    def jobs(self, job: int) -> list[dict[str, str]]:
        """``scontrol show job`` of ``job``: one record per array task (or the job itself)."""
        out = self.cmd("scontrol", "show", "job", "-o", job)
        return [dict(t.split("=", 1) for t in line.split() if "=" in t) for line in out.splitlines() if line.strip()]

    def wait(self, job: int, timeout: float, until: Callable[[], bool] | None = None,
             log: Callable[[], str] = lambda: "") -> list[dict[str, str]]:
        """Poll until every record of ``job`` is in a terminal state (or ``until()`` holds)."""
        end = time.monotonic() + timeout
        while True:
            recs = self.jobs(job)
            if until is not None and until():
                return recs
            if recs and all(r["JobState"] in TERMINAL for r in recs):
                if until is not None:
                    raise AssertionError(f"job {job} ended before the awaited point: "
                                         f"{[r['JobState'] for r in recs]}\n{log()[-3000:]}")
                return recs
            if time.monotonic() > end:
                raise AssertionError(f"job {job} still {[r['JobState'] for r in recs]} after {timeout:.0f} s\n"
                                     f"{log()[-3000:]}")
            time.sleep(0.2)

    def assert_completed(self, recs: list[dict[str, str]], log: str) -> None:
        states = [(r.get("ArrayTaskId", r["JobId"]), r["JobState"], r["ExitCode"]) for r in recs]
        assert all(s == "COMPLETED" and code == "0:0" for _, s, code in states), f"{states}\n{log[-4000:]}"


@pytest.fixture(scope="session")  # session: set up (or skipped) before the session's demo fixtures it would wait for
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    root = tmp_path_factory.mktemp("slurm")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env.update(EGOINDEX_SLURM_DIR=str(root / "cluster"), EGOINDEX_SLURM_PORT=str(free_port_pair()),
               SLURM_CONF=str(root / "cluster" / "slurm.conf"))
    started = subprocess.run(["bash", str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        reason = f"no Slurm test cluster ({CLUSTER.name} start: {started.stderr.strip()[-600:]})"
        if os.environ.get("EGOINDEX_REQUIRE_SLURM") == "1":
            pytest.fail(reason + "; EGOINDEX_REQUIRE_SLURM=1 says these tests must run")
        pytest.skip(reason)
    # the jobs' environment (sbatch exports this one): the project's venv, offline, one thread each
    env.update(EGOINDEX_VENV=str(REPO / ".venv"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    try:
        yield Slurm(env)
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop"], env=env, capture_output=True, timeout=120)


def read_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else f"(no log {path.name})"


def samples(out: Path) -> dict[str, tuple[bytes, bytes | None, bytes]]:
    return {s["__key__"]: (s["jpg"], s.get("txt"), s["json"]) for s in iter_samples(list_shards(out))}


def test_cluster_runs_a_job_as_submitted(slurm: Slurm, tmp_path: Path) -> None:
    """The cluster itself: a batch job with 2 tasks runs both through srun (what the templates rely on)."""
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/bash\n#SBATCH --output=%x-%j.out\nsrun bash -c 'echo task $SLURM_PROCID'\n")
    job = int(slurm.cmd("sbatch", "--parsable", "--ntasks=2", script, cwd=tmp_path).strip())
    (rec,) = slurm.wait(job, 60)
    text = read_log(tmp_path / f"hello.sh-{job}.out")
    slurm.assert_completed([rec], text)
    assert sorted(text.split("\n")[:2]) == ["task 0", "task 1"], text


def test_ingest_array_cancelled_and_resubmitted_gives_the_samples_of_one_run(
        slurm: Slurm, demo_videos: Path, demo_shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    # the settings of the session's demo_shards (tests/conftest.py), which one process ingested
    args = (demo_videos, out, "--fps", "2", "--val-fraction", "0.3", "--shard-size", "40")
    options = ("--array=0-1", "--gres=none", "--cpus-per-task=1", "--mem=1G")
    records = out / "_ingest" / "videos"
    first = slurm.sbatch("ingest.sbatch", *args, options=options, cwd=tmp_path)

    def logs(job: int) -> str:  # the template's log of each array task, in the submit folder
        return "\n".join(read_log(tmp_path / f"egoindex-ingest-{job}_{i}.out") for i in (0, 1))

    slurm.wait(first, 300, until=lambda: records.is_dir() and any(records.glob("*.json")), log=lambda: logs(first))
    slurm.cmd("scancel", first)
    recs = slurm.wait(first, 120)
    assert any(r["JobState"] == "CANCELLED" for r in recs), [r["JobState"] for r in recs]
    assert not (out / "sizes.json").exists()  # it was stopped mid-run: nothing published
    finished = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert finished

    again = slurm.sbatch("ingest.sbatch", *args, options=options, cwd=tmp_path)
    slurm.assert_completed(slurm.wait(again, 420, log=lambda: logs(again)), logs(again))
    assert all((records / n).stat().st_mtime_ns == m for n, m in finished.items())  # not redone
    assert samples(out) == samples(demo_shards)  # the two tasks' shards hold exactly one run's samples
    assert {SHARD_RE.match(p.name)["part"] for p in list_shards(out)} == {"0000", "0001"}  # both tasks wrote shards
    assert (tmp_path / f"egoindex-ingest-{again}_1.out").is_file()  # the template's log, in the submit folder


def test_train_on_two_tasks_requeued_continues_from_its_checkpoint(slurm: Slurm, demo_shards: Path,
                                                                   tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = (demo_shards, run_dir, "--model", "ego-tiny-vit", "--epochs", "3", "--batch-size", "8",
            "--train-num-samples", "32", "--workers", "0", "--threads", "1", "--save-every-steps", "1",
            "--no-progress", "--report-to", "none", "--log-every", "1", "--lr", "1e-3", "--warmup", "1")
    job = slurm.sbatch("train.sbatch", *args, options=CPU_TASKS, cwd=tmp_path)
    log = tmp_path / f"egoindex-train-{job}.out"
    latest = run_dir / "latest.pt"
    slurm.wait(job, 300, until=latest.exists, log=lambda: read_log(log))
    slurm.cmd("scontrol", "requeue", job)
    # a requeued job waits ~2 minutes (its BeginTime) before it may start again: start it now
    slurm.wait(job, 120, until=lambda: slurm.jobs(job)[0]["JobState"] == "PENDING", log=lambda: read_log(log))
    slurm.cmd("scontrol", "update", f"jobid={job}", "StartTime=now")
    (rec,) = slurm.wait(job, 420, log=lambda: read_log(log))
    text = read_log(log)
    slurm.assert_completed([rec], text)
    assert rec["Restarts"] == "1"

    # one log (--open-mode=append) with both attempts: 2 tasks x 1 process, one rendezvous
    assert "egoindex train: 2 tasks on 1 nodes x 1 processes" in text and "attempt 2" in text, text[-3000:]
    resumed = re.search(r"resuming \S+ from step (\d+)", text)
    assert resumed, text[-3000:]
    saved = int(resumed[1])
    plan = json.loads((run_dir / "config.json").read_text())["plan"]
    assert plan["world_size"] == 2 and plan["steps_per_epoch"] == 2
    total = plan["total_steps"]
    assert 1 <= saved < total
    for rank in (0, 1):  # both ranks took every step exactly once (the steps after the checkpoint redone)
        assert [r["step"] for r in read_jsonl(run_dir / "ranks" / f"rank-{rank}.jsonl")] == list(range(1, total + 1))
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in metrics if r["kind"] == "resume"] == [saved]
    assert [r["step"] for r in metrics if r["kind"] == "train"] == list(range(1, total + 1))
    assert [r["step"] for r in metrics if r["kind"] == "val"] == [2, 4, 6]  # every epoch validated once
    assert torch.load(latest, map_location="cpu", weights_only=True)["step"] == total


def test_build_on_two_tasks_equals_the_one_process_store(slurm: Slurm, demo_checkpoint: Path, demo_shards: Path,
                                                         demo_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    job = slurm.sbatch("build.sbatch", demo_checkpoint, demo_shards, store, "--workers", "0", options=CPU_TASKS,
                       cwd=tmp_path)
    log = tmp_path / f"egoindex-build-{job}.out"
    (rec,) = slurm.wait(job, 420, log=lambda: read_log(log))
    text = read_log(log)
    slurm.assert_completed([rec], text)
    assert "egoindex build: 2 tasks on 1 nodes x 1 processes" in text, text[-3000:]
    n = len(list_shards(demo_shards))
    assert f"shards embedded now {(n + 1) // 2}, reused 0" in " ".join(text.split())  # rank 0's half: work was split
    assert_same_tables(store, demo_store)
    assert read_table(store, "frames")["key"].to_pylist() == read_table(demo_store, "frames")["key"].to_pylist()
    assert_indexes_match_tables(store)
