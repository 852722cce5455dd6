"""Faults: kill -9 each stage several times in a row on one output folder, then finish it.

Real ``egoindex ingest`` / ``train`` / ``build`` processes, real SIGKILL (to the whole process
group, so loader and worker processes die too), no mocks. Kill points are drawn at random (seeded:
``EGOINDEX_FAULT_SEED``, default 8) and fired on evidence that real work started: a video record,
a logged optimizer step or a shard's "done" mark appearing (plus a random delay), or a named
failpoint reached for a random N-th time (``egoindex.core.failpoints``). After the last kill the same
command runs to completion and its output is compared with an uninterrupted run's: the session's
``demo_shards`` / ``demo_store`` (built in-process by conftest with the same settings).

What was injected and what came out is written by :func:`tests.badmedia.record_faults` (printed as
``FAULTS: ...`` lines, and merged into ``$EGOINDEX_FAULT_REPORT`` when set).

Other fault tests: ``test_ingest_resume.py`` (single kills, array parts), ``test_store.py`` (one
kill per build failpoint, damaged shards), ``test_train.py`` (one kill + resume).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lance
import numpy as np
import pytest

from egoindex.model.openclip import load_model, read_checkpoint
from egoindex.dataset.layout import ShardsLayout, read_sizes, write_sizes
from egoindex.dataset.shards import SHARD_RE, iter_samples, list_shards
from egoindex.store import LEVELS, Store, StoreError
from egoindex.store import ann
from egoindex.store.schema import TABLES, VECTOR_TABLES
from egoindex.train.log import read_jsonl
from tests.badmedia import record_faults
from tests.conftest import DEMO_FPS, DEMO_TRAIN_ARGS
from tests.e2e.test_store import assert_indexes_match_tables, assert_same_tables, build, copy_shards, read_table

REPO = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("EGOINDEX_FAULT_SEED", "8"))
ENV = {k: v for k, v in os.environ.items() if k != "EGOINDEX_FAILPOINT"}
ENV.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "LANCE_LOG": "error",
            "COLUMNS": "200"})
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


# ---- running and killing ------------------------------------------------------------------------


def tail(log: Path, n: int = 3000) -> str:
    return log.read_text(errors="replace")[-n:] if log.is_file() else ""


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, output to ``log``."""
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, cwd=REPO, env=env or ENV, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], log: Path, delay: float = 0.0,
              timeout: float = 400, poll: Callable[[], None] | None = None) -> float:
    """SIGKILL ``proc``'s process group ``delay`` seconds after ``ready()`` first holds; returns
    the seconds it ran. Fails if it ends by itself first (the kill point was never reached)."""
    t0 = time.monotonic()
    fire = None
    while fire is None or time.monotonic() < fire:
        if fire is None and ready():
            fire = time.monotonic() + delay
        assert proc.poll() is None, f"ended (rc {proc.returncode}) before the kill point:\n{tail(log)}"
        assert time.monotonic() - t0 < timeout, f"kill point not reached in {timeout} s:\n{tail(log)}"
        if poll:
            poll()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return round(time.monotonic() - t0, 2)


def run_to_failpoint(cmd: list[str], log: Path, failpoint: str, timeout: float = 400) -> None:
    """Run ``cmd`` with ``EGOINDEX_FAILPOINT``: it must kill itself there (SIGKILL)."""
    proc = start(cmd, log, {**ENV, "EGOINDEX_FAILPOINT": failpoint})
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, f"not killed at {failpoint} (rc {proc.returncode}):\n{tail(log)}"


def run_to_end(cmd: list[str], log: Path, timeout: float = 500) -> None:
    proc = start(cmd, log)
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"rc {proc.returncode}:\n{tail(log)}"


def leftovers(root: Path) -> list[str]:
    """Temporary files of killed writers still lying around."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp-" in p.name)


# ---- ingest ---------------------------------------------------------------------------------------


INGEST_ARGS = ["--fps", str(DEMO_FPS), "--val-fraction", "0.3", "--shard-size", "40", "--workers", "2", "-q"]


def shard_samples(out: Path) -> dict[str, tuple[str, bytes, bytes]]:
    """Every sample of every shard, by key: (sha256 of the jpg, txt, json). A dict: order-free."""
    got: dict[str, tuple[str, bytes, bytes]] = {}
    for s in iter_samples(list_shards(out)):
        assert s["__key__"] not in got, f"sample {s['__key__']} is in the shards twice"
        got[s["__key__"]] = (hashlib.sha256(s["jpg"]).hexdigest(), s.get("txt", b""), s["json"])
    return got


def test_ingest_killed_three_times_then_equals_an_uninterrupted_run(demo_videos: Path, demo_shards: Path,
                                                                    tmp_path: Path) -> None:
    """Two kills from outside while videos are transcribed and sampled (after the k-th video
    record appears, k random, plus a random delay), one inside packing (after a random N-th
    shard is published), then a rerun: the samples equal ``demo_shards``'."""
    rng = random.Random(f"{SEED}/ingest")
    out, log = tmp_path / "shards", tmp_path / "ingest.log"
    cmd = [sys.executable, "-m", "egoindex", "ingest", str(demo_videos), str(out), *INGEST_ARGS]
    records = out / "_ingest" / "videos"
    n_records = lambda: len(list(records.glob("*.json"))) if records.is_dir() else 0  # noqa: E731
    n_videos = len(json.loads((demo_videos / "ground_truth.json").read_text(encoding="utf-8"))["videos"])
    n_shards = len(list_shards(demo_shards))
    kills = []

    for _ in range(2):
        want, delay = min(n_records() + rng.randint(1, 2), n_videos - 1), round(rng.uniform(0.0, 1.0), 2)
        assert want > n_records(), "the first kill came too late to leave work for a second"
        secs = kill_when(start(cmd, log), lambda: n_records() >= want, log, delay)
        done = n_records()
        kills.append({"how": "SIGKILL (process group)", "trigger": f"video record {want} written + {delay} s",
                      "after_s": secs, "videos_finished": done})
        assert not list_shards(out), "a shard was published before every video was finished"
        for p in records.glob("*.json"):  # finished records are whole (atomic writes)
            assert json.loads(p.read_text(encoding="utf-8"))["status"] == "ok"

    nth = rng.randint(1, n_shards - 1)
    run_to_failpoint(cmd, log, f"shard-done:{nth}")
    assert len(list_shards(out)) == nth and not (out / "sizes.json").exists()
    kills.append({"how": "SIGKILL (failpoint)", "trigger": f"shard-done:{nth} (packing)", "videos_finished": n_records()})

    run_to_end(cmd, log)
    got, want = shard_samples(out), shard_samples(demo_shards)
    assert got.keys() == want.keys()
    assert got == want  # same jpg bytes, captions and metadata for every sample
    assert (out / "sizes.json").read_bytes() == (demo_shards / "sizes.json").read_bytes()
    assert not leftovers(out) and not list((out / "_ingest" / "staging").iterdir())
    record_faults("ingest", {"seed": SEED, "kills": kills, "killed": len(kills), "videos": n_videos,
                             "samples_equal": True, "samples": len(got), "shards": len(list_shards(out))})


# ---- train ----------------------------------------------------------------------------------------


def test_train_killed_three_times_then_finishes_the_same_run(demo_shards: Path, demo_checkpoint: Path,
                                                            tmp_path: Path) -> None:
    """Kill -9 at three random optimizer steps (seen in the rank log) of a 2-epoch run that saves
    every 2 steps, resume each time, then finish.

    Not bit-for-bit: a resumed run starts its data stream at the shard of its step (not the
    sample) and re-seeds the shuffle and augmentation RNGs, so its final weights differ from an
    uninterrupted run's, and are not compared. What must hold, and is checked: every
    resume starts at the last checkpoint, every step 1..N is logged exactly once, the final
    checkpoint is at step N = 2 epochs (the uninterrupted demo run's steps per epoch x 2) with
    its optimizer state, losses are finite, and the model loads and embeds.
    """
    rng = random.Random(f"{SEED}/train")
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    spe = read_checkpoint(demo_checkpoint)["config"]["plan"]["steps_per_epoch"]
    total = 2 * spe
    base = [sys.executable, "-m", "egoindex.cli.main", "train", str(demo_shards), str(run_dir), *DEMO_TRAIN_ARGS,
            "--epochs", "2", "--log-every", "1", "--save-every-steps", "2"]
    rank_log, latest = run_dir / "ranks" / "rank-0.jsonl", run_dir / "latest.pt"

    def last_step() -> int:
        if not rank_log.is_file():
            return 0
        steps = [0]
        for line in rank_log.read_text(encoding="utf-8").splitlines():
            try:
                steps.append(json.loads(line)["step"])
            except (ValueError, KeyError):  # the line being written
                pass
        return max(steps)

    # one random kill step in each third of the run (never before real progress in this run)
    thirds = [(2, total // 3), (total // 3 + 1, 2 * total // 3), (2 * total // 3 + 1, total - 3)]
    kills, saved_at = [], []
    for i, (lo, hi) in enumerate(thirds):
        target = max(rng.randint(lo, hi), last_step() + 1)
        delay = round(rng.uniform(0.0, 0.5), 2)
        cmd = base + (["--resume"] if i else [])
        secs = kill_when(start(cmd, log), lambda: last_step() >= target, log, delay)
        reached = last_step()
        saved = read_checkpoint(latest)["step"] if latest.exists() else 0  # loads: never half-written
        assert saved <= reached and (saved % 2 == 0 or saved % spe == 0), (saved, reached)
        saved_at.append(saved)
        kills.append({"how": "SIGKILL (process group)", "trigger": f"step {target} logged + {delay} s",
                      "after_s": secs, "last_step_logged": reached, "checkpoint_step": saved})
    # a kill during a save leaves a checkpoint-sized temporary; the resumed run must clear it
    (run_dir / ".latest.pt.tmp-999999").write_bytes(b"\0" * 4096)

    run_to_end(base + ["--resume"], log)
    ckpt = read_checkpoint(latest)
    assert ckpt["step"] == total and ckpt["epoch"] == 2 and ckpt["name"] == "ego-tiny-vit"
    assert ckpt["optimizer"]["state"], "optimizer state missing"
    assert sorted(p.name for p in run_dir.glob("epoch_*.pt")) == ["epoch_1.pt", "epoch_2.pt"]
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    train_steps = [r["step"] for r in metrics if r["kind"] == "train"]
    assert train_steps == list(range(1, total + 1))  # killed steps were redone, none twice
    resumes = [r["step"] for r in metrics if r["kind"] == "resume"]
    assert resumes == [s for s in saved_at if s > 0]  # each resume started at the last checkpoint
    said = " ".join(tail(log, 10**6).split())
    assert all(f"resuming {run_dir} from step {s}" in said for s in resumes) and "changed:" not in said
    assert all(np.isfinite(r["loss"]) for r in metrics if r["kind"] == "train")
    vals = [r["step"] for r in metrics if r["kind"] == "val"]
    # a kill while validating at the end of epoch 1 (after its checkpoint) skips that one
    # validation on resume; the final one always runs
    assert vals in ([spe, total], [total]), vals
    assert all(np.isfinite(r["val_loss"]) for r in metrics if r["kind"] == "val")
    assert [r["step"] for r in read_jsonl(rank_log)] == list(range(1, total + 1))
    assert not leftovers(run_dir)
    loaded = load_model(latest)
    vec = loaded.model.encode_text(loaded.tokenizer(["the baby grabs the red ball"]), normalize=True)
    assert vec.shape == (1, 128) and bool(vec.isfinite().all())
    record_faults("train", {"seed": SEED, "kills": kills, "killed": len(kills), "final_step": ckpt["step"],
                            "total_steps": total, "resumed_from": resumes, "val_steps": vals,
                            "deterministic": "no (data position and augmentation RNG re-seeded on resume)"})


# ---- build ----------------------------------------------------------------------------------------


def build_cmd(ckpt: Path, shards: Path, store: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "egoindex.cli.main", "build", str(ckpt), str(shards), str(store), "--workers", "0", "-q",
            *extra]


def test_build_killed_three_times_then_equals_an_uninterrupted_build(demo_checkpoint: Path, demo_shards: Path,
                                                                     demo_store: Path, tmp_path: Path) -> None:
    """One kill from outside while frames are embedded (after the k-th shard's done mark, k
    random, plus a random delay), one at a random failpoint around the frames commit and one
    at a random failpoint among derived tables and indexes; then the build finishes and every
    table (all columns, vectors to 1e-5) and FAISS index equals ``demo_store``'s."""
    rng = random.Random(f"{SEED}/build")
    store, log = tmp_path / "store", tmp_path / "build.log"
    cmd = build_cmd(demo_checkpoint, demo_shards, store)
    marks = store / "_build" / "frames"
    n_marks = lambda: len(list(marks.glob("*.json"))) if marks.is_dir() else 0  # noqa: E731
    n_shards = len(list_shards(demo_shards))
    kills = []

    k, delay = rng.randint(1, n_shards - 3), round(rng.uniform(0.0, 0.3), 2)
    secs = kill_when(start(cmd, log), lambda: n_marks() >= k, log, delay)
    kills.append({"how": "SIGKILL (process group)", "trigger": f"shard {k} embedded + {delay} s", "after_s": secs,
                  "shards_done": n_marks()})
    second = rng.choice(["build-shard-done:1", "build-frames-committed:1"]) if n_marks() < n_shards \
        else "build-frames-committed:1"
    third = rng.choice(["build-derived-done:1", "build-index-done:1", "build-index-done:2"])
    for fp in (second, third):
        with pytest.raises(StoreError, match="never committed"):  # never half a store
            Store(store)
        run_to_failpoint(cmd, log, fp)
        kills.append({"how": "SIGKILL (failpoint)", "trigger": fp, "shards_done": n_marks()})
    with pytest.raises(StoreError, match="never committed"):
        Store(store)

    run_to_end(cmd, log)
    assert "shards embedded now 0," in " ".join(tail(log, 2000).split())  # every shard embedded once only
    assert_same_tables(store, demo_store)
    assert_indexes_match_tables(store)
    ntotal = {t: ann.load_index(store / "indexes", t)[1].ntotal for t in VECTOR_TABLES}
    assert ntotal == {t: ann.load_index(demo_store / "indexes", t)[1].ntotal for t in VECTOR_TABLES}
    assert not leftovers(store)
    rows = json.loads((store / "egoindex.json").read_text())["rows"]
    record_faults("build", {"seed": SEED, "kills": kills, "killed": len(kills), "rows": rows, "faiss_ntotal": ntotal,
                            "rows_equal": True, "vectors_equal_atol": 1e-5})


# ---- a store being appended to stays readable at its previous version ----------------------------


def test_store_stays_readable_at_its_previous_version_during_append(demo_checkpoint: Path, demo_shards: Path,
                                                                   demo_store: Path, tmp_path: Path) -> None:
    """Build a store from the train shards, then ``build --append`` the val shards in a
    subprocess, twice: killed right after its frames commit (the worst moment: the frames table
    has grown, nothing else has), then to completion. All the while the test process opens
    ``Store`` over and over: every read sees the previous version or the complete new one
    (row counts of every table together), and searches at every level answer."""
    shards = copy_shards(demo_shards, tmp_path / "shards")
    sizes = read_sizes(shards)  # both series
    later = sorted(n for n in sizes if SHARD_RE.match(n)["split"] == "val")
    held = tmp_path / "held"
    held.mkdir()
    for n in later:
        ShardsLayout(shards).shard(n).rename(held / n)
    write_sizes(shards, {n: c for n, c in sizes.items() if n not in later})
    store = tmp_path / "store"
    build(demo_checkpoint, shards, store)
    for n in later:
        (held / n).rename(ShardsLayout(shards).shard(n))
    write_sizes(shards, sizes)

    old = tuple(Store(store).count(t) for t in TABLES)
    new = tuple(read_table(demo_store, t).num_rows for t in TABLES)  # the append equals one build
    assert old != new
    q = np.random.default_rng(SEED).normal(size=Store(store).dim).astype(np.float32)
    seen: dict[str, int] = {"previous": 0, "new": 0}
    errors: list[str] = []

    def read() -> None:
        try:
            st = Store(store)
            counts = tuple(st.count(t) for t in TABLES)
            assert counts in (old, new), f"partial state: {dict(zip(TABLES, counts))}"
            for level in LEVELS:
                hits = st.search(vector=q, level=level, k=5)
                assert len(hits) == 5 and all(h.video_uid in st.videos for h in hits), level
            seen["previous" if counts == old else "new"] += 1
        except Exception as e:  # noqa: BLE001  (collected: the assertion below shows them all)
            errors.append(f"{type(e).__name__}: {e}")

    log = tmp_path / "append.log"
    cmd = build_cmd(demo_checkpoint, shards, store, "--append")
    proc = start(cmd, log, {**ENV, "EGOINDEX_FAILPOINT": "build-frames-committed:1"})
    while proc.poll() is None:
        read()
        time.sleep(0.2)  # leave the builder its CPU
    assert proc.returncode == -signal.SIGKILL, tail(log)
    assert lance.dataset(str(store / "lance" / "frames.lance")).count_rows() == new[0]  # committed, yet:
    for _ in range(3):
        read()
    assert not errors, errors[:5]
    assert seen["new"] == 0 and seen["previous"] > 3
    during_kill = dict(seen)

    proc = start(cmd, log)
    while proc.poll() is None:
        read()
        time.sleep(0.2)  # leave the builder its CPU
    assert proc.returncode == 0, tail(log)
    read()
    assert not errors, errors[:5]
    assert tuple(Store(store).count(t) for t in TABLES) == new
    assert_indexes_match_tables(store)
    assert all(Store(store).index(t) is not None for t in VECTOR_TABLES)
    record_faults("store_readable_during_append", {
        "kills": [{"how": "SIGKILL (failpoint)", "trigger": "build-frames-committed:1 (during --append)"}],
        "reads_while_killed_append_ran": during_kill["previous"],
        "reads_previous_version": seen["previous"], "reads_new_version": seen["new"], "partial_reads": 0,
        "rows_previous": dict(zip(TABLES, old)), "rows_new": dict(zip(TABLES, new))})
