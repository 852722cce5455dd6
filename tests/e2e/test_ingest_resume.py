"""Kill -9 the real ingest process at several points; the rerun must equal an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from egoindex.dataset.layout import read_sizes
from egoindex.dataset.shards import SHARD_RE, iter_samples, list_shards

REPO = Path(__file__).resolve().parents[2]
ARGS = ["--fps", "1", "--val-fraction", "0.3", "--shard-size", "16", "-q"]
pytestmark = pytest.mark.slow


def ingest_cmd(videos: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "egoindex", "ingest", str(videos), str(out), *ARGS, *extra]


def fingerprint(out: Path) -> dict[str, str]:
    """Hashes of everything a consumer reads: both shard series, both sizes.json, transcripts."""
    files = list_shards(out) + [out / "sizes.json", out / "uncaptioned" / "sizes.json"] + \
        sorted((out / "transcripts").glob("*.json"))
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def samples(out: Path) -> dict[str, tuple[bytes, bytes, bytes]]:
    return {s["__key__"]: (s["jpg"], s.get("txt"), s["json"]) for s in iter_samples(list_shards(out))}


@pytest.fixture(scope="module")
def reference(demo_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(ingest_cmd(demo_videos, out), check=True, cwd=REPO)
    return out


def wait_for(pred, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while not pred():
        assert proc.poll() is None, "ingest finished before the kill point"
        assert time.time() < end, "kill point not reached"
        time.sleep(0.02)


def test_kill_after_first_video_then_resume(demo_videos: Path, reference: Path, tmp_path: Path):
    out = tmp_path / "out"
    proc = subprocess.Popen(ingest_cmd(demo_videos, out), cwd=REPO)
    records = out / "_ingest" / "videos"
    wait_for(lambda: records.is_dir() and any(records.glob("*.json")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 1 <= len(finished) < 6 and not list(out.glob("*.tar"))  # nothing half-packed is visible
    subprocess.run(ingest_cmd(demo_videos, out), check=True, cwd=REPO)
    assert all((records / n).stat().st_mtime_ns == m for n, m in finished.items())  # not redone
    assert fingerprint(out) == fingerprint(reference)


def test_kill_in_the_middle_of_packing_then_resume(demo_videos: Path, reference: Path, tmp_path: Path):
    out = tmp_path / "out"
    env = {**os.environ, "EGOINDEX_FAILPOINT": "shard-done:2"}  # SIGKILL after the 2nd shard
    r = subprocess.run(ingest_cmd(demo_videos, out), cwd=REPO, env=env)
    assert r.returncode == -signal.SIGKILL
    assert len(list_shards(out)) == 2 and not (out / "sizes.json").exists()
    subprocess.run(ingest_cmd(demo_videos, out), check=True, cwd=REPO)
    assert fingerprint(out) == fingerprint(reference)


def test_repeated_random_kills_with_workers(demo_videos: Path, reference: Path, tmp_path: Path):
    out = tmp_path / "out"
    rng = random.Random(7)
    for _ in range(3):
        proc = subprocess.Popen(ingest_cmd(demo_videos, out, "--workers", "2"), cwd=REPO, start_new_session=True)
        time.sleep(rng.uniform(2.0, 8.0))
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the workers die too
        proc.wait()
    subprocess.run(ingest_cmd(demo_videos, out, "--workers", "2"), check=True, cwd=REPO)
    assert fingerprint(out) == fingerprint(reference)
    # Rerunning a finished job is a no-op that changes nothing.
    subprocess.run(ingest_cmd(demo_videos, out), check=True, cwd=REPO)
    assert fingerprint(out) == fingerprint(reference)


def test_array_parts_together_give_the_same_samples(demo_videos: Path, reference: Path, tmp_path: Path):
    out = tmp_path / "out"
    procs = [subprocess.Popen(ingest_cmd(demo_videos, out), cwd=REPO,
                              env={**os.environ, "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_ID": str(i)})
             for i in range(2)]
    assert [p.wait() for p in procs] == [0, 0]
    assert {json.loads(s[2])["split"] for s in samples(out).values()} == {"train", "val"}
    assert samples(out) == samples(reference)
    sizes = read_sizes(out)
    assert sum(sizes.values()) == len(samples(reference))
    assert {SHARD_RE.match(n)["part"] for n in sizes} == {"0000", "0001"}
