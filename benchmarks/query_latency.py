"""Query latency from a cold start and warm: the ONNX text encoder against the PyTorch path, same store, same run.

* **cold**: a new process per query, the whole ``egoindex query STORE ... --json`` command (Python
  start-up, imports, opening the store, encoding, search, printing), wall time and the child's
  CPU time (user + system), median over ``--reps`` repetitions (after one untimed run that warms
  the page cache). Floors measured the same way: ``python -c pass``, ``import lancedb``
  (what a query pays before it can open a table) and ``egoindex --help``.
* **warm**: in one process, ``Store.search`` repeated ``--warm`` times after a first call (the
  first call, which loads the encoder or the model, is reported on its own).

Paths, chosen by ``EGOINDEX_TEXT_ENCODER`` (:mod:`egoindex.store.encoders`): ``torch`` (the path
before the ONNX encoder: torch + open_clip + the checkpoint) and ``auto`` (the store's
``encoders/text.onnx`` + the pure tokenizer, no torch). Queries: ``text`` (both paths),
``image`` (``--image``: PyTorch always, a demo frame) and ``like`` (``--like``: a stored moment,
no model at all).

Store: ``--store`` (e.g. demo/store; it gains ``encoders/`` if it lacks one), else a small demo
store made once under ~/.cache/egoindex/bench-query (6 videos x 30 s, ego-tiny-rn, 1 epoch).

Usage:
    python -m benchmarks.query_latency                      # -> benchmarks/results/query-latency-cpu.json
    python -m benchmarks.query_latency --store demo/store --reps 7
    python -m benchmarks.query_latency --reps 2 --warm 5 --out /tmp/q.json   # smoke check
"""

from __future__ import annotations

import os

if not os.environ.get("LANCE_LOG"):  # an empty value (set in some shells) would mean "warn"
    os.environ["LANCE_LOG"] = "error"

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import describe, save

PACKAGES = ("torch", "open_clip_torch", "onnxruntime", "lancedb", "faiss-cpu", "numpy")
EGOINDEX = [sys.executable, "-m", "egoindex"]
TEXT = "the yellow star spins"
ENV = "EGOINDEX_TEXT_ENCODER"


def demo_store(work: Path) -> Path:
    """A small demo store, made once with the egoindex commands (minutes on 2 cores)."""
    store = work / "store"
    if (store / "egoindex.json").is_file():
        return store
    steps = [["demo-data", str(work / "videos"), "--videos", "6", "--seconds", "30"],
             ["ingest", str(work / "videos"), str(work / "shards"), "--fps", "2", "--val-fraction", "0.25",
              "--shard-size", "200", "--workers", "1"],
             ["train", str(work / "shards"), str(work / "run"), "--model", "ego-tiny-rn", "--epochs", "1"],
             ["build", str(work / "run" / "latest.pt"), str(work / "shards"), str(store)]]
    for step in steps:
        subprocess.run(EGOINDEX + step, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return store


def query_image(store: Path, out: Path) -> Path:
    """The first frame JPEG of the store's first shard, as a query image file."""
    meta = json.loads((store / "egoindex.json").read_text())
    shard = next(p for p in sorted(Path(meta["shards_dir"]).rglob("*.tar")))
    with tarfile.open(shard) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith((".jpg", ".jpeg")))
        out.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    return out


def a_moment(store: Path) -> str:
    from egoindex.store import Store

    row = Store(store).table("frames").search().select(["video_uid", "t"]).limit(50).to_arrow().to_pylist()[-1]
    return f"{row['video_uid']}@{row['t']}"


def cold(cmd: list[str], env: dict[str, str], reps: int) -> dict[str, Any]:
    """Median wall and CPU seconds of ``cmd`` in a new process, after one untimed run."""
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    walls, cpus = [], []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {"wall_s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3),
            "wall_all_s": [round(w, 3) for w in walls], "reps": reps}


def warm(store: Path, mode: str, kind: str, arg: Any, n: int) -> dict[str, Any]:
    """First ``Store.search`` (loads what the query needs) and the median of ``n`` more."""
    from egoindex.store import Store

    os.environ[ENV] = mode
    s = Store(store)
    kw = {"text": arg} if kind == "text" else {kind: arg}
    t0 = time.perf_counter()
    s.search(**kw, k=10)
    first = time.perf_counter() - t0
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        s.search(**kw, k=10)
        times.append(time.perf_counter() - t0)
    return {"first_ms": round(first * 1e3, 1), "p50_ms": round(statistics.median(times) * 1e3, 2),
            "max_ms": round(max(times) * 1e3, 2), "n": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, help="a built store (default: a small demo store, made once)")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "egoindex" / "bench-query")
    ap.add_argument("--reps", type=int, default=5, help="cold runs per case (median)")
    ap.add_argument("--warm", type=int, default=30, help="warm searches per case (median)")
    ap.add_argument("--out", type=Path, help="write the JSON here instead of benchmarks/results/")
    args = ap.parse_args()
    store = (args.store or demo_store(args.work)).resolve()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")}
    env = {k: v for k, v in env.items() if v != ""}
    if not (store / "encoders" / "text.json").is_file():
        subprocess.run(EGOINDEX + ["encoders", str(store)], check=True, env=env)
    args.work.mkdir(parents=True, exist_ok=True)
    image = query_image(store, args.work / "query.jpg")
    like = a_moment(store)

    floors = {"python -c pass": [sys.executable, "-c", "pass"],
              "import lancedb": [sys.executable, "-c", "import lancedb"],
              "egoindex --help": EGOINDEX + ["--help"]}
    rows: list[dict[str, Any]] = []
    for name, cmd in floors.items():
        rows.append({"query": name, "path": "-", **cold(cmd, env, args.reps)})
        print(rows[-1], flush=True)
    cases = [("text", "onnx", "auto", [TEXT]), ("text", "torch", "torch", [TEXT]),
             ("image", "torch", "auto", ["--image", str(image)]), ("like", "none", "auto", ["--like", like])]
    for kind, path, mode, extra in cases:
        cmd = EGOINDEX + ["query", str(store), *extra, "--k", "10", "--json"]
        rows.append({"query": kind, "path": path, **cold(cmd, {**env, ENV: mode}, args.reps)})
        print(rows[-1], flush=True)
    warm_rows = []
    for kind, path, mode, arg in [("text", "onnx", "auto", TEXT), ("like", "none", "auto", like),
                                  ("text", "torch", "torch", TEXT), ("image", "torch", "auto", image)]:
        warm_rows.append({"query": kind, "path": path, **warm(store, mode, kind, arg, args.warm)})
        print(warm_rows[-1], flush=True)

    from rich.console import Console
    from rich.table import Table

    info = describe(PACKAGES)
    meta = json.loads((store / "egoindex.json").read_text())
    t = Table(title=f"egoindex query, cold (new process, median of {args.reps}; {meta['model']}, "
                    f"{info['cpu']}, {info['cores']} cores, load {info['load_average']})")
    for col in ("query", "path", "wall s", "cpu s"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["query"], r["path"], f"{r['wall_s']:.2f}", f"{r['cpu_s']:.2f}")
    w = Table(title=f"Store.search, warm (in process, median of {args.warm})")
    for col in ("query", "path", "first call ms", "p50 ms", "max ms"):
        w.add_column(col)
    for r in warm_rows:
        w.add_row(r["query"], r["path"], f"{r['first_ms']:.0f}", f"{r['p50_ms']:.2f}", f"{r['max_ms']:.2f}")
    console = Console()
    console.print(t)
    console.print(w)
    by = {(r["query"], r["path"]): r for r in rows}
    speedup = round(by[("text", "torch")]["wall_s"] / by[("text", "onnx")]["wall_s"], 1)
    console.print(f"cold text query: {by[('text', 'onnx')]['wall_s']:.2f} s (ONNX) vs "
                  f"{by[('text', 'torch')]['wall_s']:.2f} s (PyTorch), {speedup}x")
    payload = {"store": str(store), "model": meta["model"], "rows": {k: v for k, v in meta["rows"].items()},
               "text": TEXT, "cold": rows, "warm": warm_rows, "cold_text_speedup": speedup,
               "command": "python -m benchmarks.query_latency " + " ".join(sys.argv[1:])}
    if args.out:
        args.out.write_text(json.dumps({"benchmark": "query-latency", "machine": info, **payload}, indent=1) + "\n")
        print(f"wrote {args.out}")
    else:
        print(f"wrote {save('query-latency', payload, packages=PACKAGES)}")


if __name__ == "__main__":
    main()
