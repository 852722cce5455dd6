"""Concurrent load on ``egoindex serve``: N client threads against a real uvicorn on loopback.

The app of ``egoindex serve STORE`` (:func:`egoindex.serve.create_app`, thumbnails cached in
memory only so the store is only read) runs under uvicorn in this process, on a free loopback
port; ``--url`` loads an already running server instead (e.g. ``egoindex serve`` in another
terminal, where the server does not share this process's GIL with the clients).

The requests are a fixed plan drawn from a seeded RNG before the clock starts, so two runs send
the same requests: text search (varied queries, levels, k and filters: videos, split, time
range), more-like-this moments, thumbnails (repeats hit the cache), video byte ranges, health,
and one request in 25 that the server must refuse (unknown video: 404, k=0: 422) or answer with
nothing (an injected split: 200, zero hits). Each request carries the statuses it may get;
anything else, a failed content check or an exception is an error. ``--clients`` threads (one
``httpx.Client`` each, keep-alive) take requests from the plan until it is done or ``--seconds``
have passed (bounded count and bounded time).

Reported: requests served, errors, throughput, latency p50/p99 per endpoint (the server's route
template, as ``/metrics`` names it) and overall, measured at the client around the whole
response body; plus the server's own ``/metrics`` before and after.

Usage:
    python -m benchmarks.serve_load STORE [--clients 8] [--requests 400] [--seconds 60]
    python -m benchmarks.serve_load STORE --url http://127.0.0.1:8000   # a running server
Results: ``benchmarks/results/serve-load-{cpu|gpu}.json`` (``--out`` for another file).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from benchmarks.machine import describe, save
from egoindex.serve import create_app
from egoindex.store import Store

QUERIES = (
    "the baby grabs the red ball", "someone pours coffee into a blue cup", "a teddy bear on the sofa",
    "washing the dishes in the kitchen", "opening the fridge", "a dog runs across the room",
    "reading a book", "cutting vegetables", "the door opens", "breakfast at the table",
    "where did I leave my keys", "a green plant by the window",
)
LEVELS = ("clips", "frames", "utterances")

#: share of the plan per kind of request (the rest of 1.0 is health)
MIX = {"search": 0.35, "like": 0.15, "thumb": 0.2, "video": 0.2}
#: every this many requests, one the server must refuse or answer with nothing (cycling through them)
BAD_EVERY = 25


@dataclass(frozen=True)
class Req:
    """One planned request: ``endpoint`` is the server's route template (``GET /api/search``)."""

    endpoint: str
    path: str
    params: tuple[tuple[str, Any], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    expect: tuple[int, ...] = (200,)
    check: str = ""  # "": status only; "hits<=k"; "range:N" (body is N bytes); "jpeg"; "nohits"
    k: int = 0


@dataclass
class Outcome:
    endpoint: str
    status: int | None
    seconds: float
    error: str | None = None


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    planned: int = 0
    wall_s: float = 0.0
    clients: int = 0


# ---- the server -------------------------------------------------------------------------------

@contextlib.contextmanager
def serve_in_thread(app: Any, timeout: float = 60.0) -> Iterator[str]:
    """``app`` under a real uvicorn in a daemon thread on a free loopback port; yields its base URL."""
    import uvicorn

    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                       access_log=False))
    thread = threading.Thread(target=srv.run, name="egoindex-serve-load", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not srv.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        port = srv.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def open_app(store_dir: Path) -> Any:
    """The app ``egoindex serve STORE --no-thumb-cache`` runs, model loaded before the clock starts."""
    store = Store(store_dir)
    store.embedder
    return create_app(store)


# ---- the plan ---------------------------------------------------------------------------------

def discover(client: httpx.Client) -> list[dict[str, Any]]:
    """The served videos with their file sizes (from a one-byte range request's Content-Range)."""
    videos = client.get("/api/videos").raise_for_status().json()
    for v in videos:
        r = client.get(f"/api/video/{quote(v['video_uid'], safe='')}", headers={"Range": "bytes=0-0"})
        r.raise_for_status()
        v["size"] = int(r.headers["content-range"].rsplit("/", 1)[1])
    return videos


def plan_requests(videos: list[dict[str, Any]], n: int, seed: int = 0) -> list[Req]:
    """``n`` requests of the mix, drawn from ``seed`` (same videos + seed -> same plan)."""
    rng = random.Random(seed)
    uids = sorted(v["video_uid"] for v in videos)
    by_uid = {v["video_uid"]: v for v in videos}
    splits = sorted({v["split"] for v in videos if v.get("split")})
    kinds, weights = list(MIX), list(MIX.values())
    kinds.append("health")
    weights.append(max(0.0, 1.0 - sum(weights)))
    plan: list[Req] = []
    for i in range(n):
        kind = "bad" if i % BAD_EVERY == BAD_EVERY // 2 else rng.choices(kinds, weights)[0]
        uid = rng.choice(uids)
        duration = float(by_uid[uid].get("duration") or 10.0)
        if kind in ("search", "like"):
            k = rng.choice((1, 5, 10, 12, 20, 50))
            params: list[tuple[str, Any]] = [("level", rng.choice(LEVELS)), ("k", k)]
            f = rng.random()
            if f < 0.2:
                params += [("video", u) for u in rng.sample(uids, rng.randint(1, min(3, len(uids))))]
            elif f < 0.35 and splits:
                params.append(("split", rng.choice(splits)))
            elif f < 0.5:
                a = round(rng.uniform(0, 20), 1)
                params += [("start", a), ("end", round(a + rng.uniform(2, 10), 1))]
            if kind == "search":
                plan.append(Req("GET /api/search", "/api/search", (("q", rng.choice(QUERIES)), *params),
                                check="hits<=k", k=k))
            else:
                t = round(rng.uniform(1.0, max(1.0, duration - 1.0)), 1)
                plan.append(Req("GET /api/search/like", "/api/search/like", (("moment", f"{uid}@{t}"), *params),
                                check="hits<=k", k=k))
        elif kind == "thumb":
            t = round(rng.randrange(0, max(1, int(duration))) + rng.choice((0.0, 0.5)), 1)  # repeats: cache hits
            plan.append(Req("GET /api/thumb/{video_uid}", f"/api/thumb/{quote(uid, safe='')}", (("t", t),),
                            check="jpeg"))
        elif kind == "video":
            size = int(by_uid[uid]["size"])
            first = rng.randrange(0, size)
            last = min(size - 1, first + rng.choice((1023, 65535, 262143)))
            plan.append(Req("GET /api/video/{video_uid}", f"/api/video/{quote(uid, safe='')}",
                            headers=(("Range", f"bytes={first}-{last}"),), expect=(206,),
                            check=f"range:{last - first + 1}"))
        elif kind == "bad":
            which = (i // BAD_EVERY) % 3
            if which == 0:
                plan.append(Req("GET /api/video/{video_uid}", "/api/video/no-such-video", expect=(404,)))
            elif which == 1:
                plan.append(Req("GET /api/search", "/api/search", (("q", rng.choice(QUERIES)), ("k", 0)),
                                expect=(422,)))
            else:  # injection attempt through the split filter: a literal, matching nothing
                plan.append(Req("GET /api/search", "/api/search",
                                (("q", rng.choice(QUERIES)), ("split", "val' OR '1'='1"), ("k", 10)),
                                check="nohits", k=10))
        else:
            plan.append(Req("GET /health", "/health"))
    return plan


# ---- the load -----------------------------------------------------------------------------------

def _check(req: Req, r: httpx.Response) -> str | None:
    if r.status_code not in req.expect:
        return f"status {r.status_code} (expected {'/'.join(map(str, req.expect))}): {r.text[:200]}"
    if req.check == "hits<=k":
        data = r.json()
        if not (0 <= data["count"] == len(data["hits"]) <= req.k):
            return f"{data['count']} hits for k={req.k}"
    elif req.check == "nohits":
        if r.json()["count"] != 0:
            return "an injected split returned hits"
    elif req.check == "jpeg":
        if not r.content.startswith(b"\xff\xd8"):
            return "not a JPEG"
    elif req.check.startswith("range:"):
        if len(r.content) != int(req.check[6:]):
            return f"{len(r.content)} bytes for a range of {req.check[6:]}"
    return None


def run_load(url: str, plan: list[Req], clients: int = 8, seconds: float = 60.0,
             timeout: float = 60.0) -> LoadResult:
    """Send ``plan`` from ``clients`` threads until it is done or ``seconds`` have passed."""
    result = LoadResult(planned=len(plan), clients=clients)
    lock = threading.Lock()
    nxt = 0
    deadline = time.monotonic() + seconds

    def take() -> Req | None:
        nonlocal nxt
        with lock:
            if nxt >= len(plan) or time.monotonic() >= deadline:
                return None
            nxt += 1
            return plan[nxt - 1]

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=timeout) as client:
            while (req := take()) is not None:
                t0 = time.perf_counter()
                status, error = None, None
                try:
                    r = client.get(req.path, params=list(req.params), headers=dict(req.headers))
                    status = r.status_code
                    error = _check(req, r)
                except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
                    error = f"{type(e).__name__}: {e}"
                out = Outcome(req.endpoint, status, time.perf_counter() - t0, error)
                with lock:
                    result.outcomes.append(out)

    threads = [threading.Thread(target=worker, name=f"load-client-{i}", daemon=True) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.wall_s = time.perf_counter() - t0
    return result


def _stats(lat_s: list[float]) -> dict[str, float | None]:
    if not lat_s:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None}
    ms = np.asarray(lat_s) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2), "max_ms": round(float(ms.max()), 2)}


def summarize(result: LoadResult) -> dict[str, Any]:
    """Requests, errors, throughput and latency percentiles, overall and per endpoint."""
    per: dict[str, list[Outcome]] = {}
    for o in result.outcomes:
        per.setdefault(o.endpoint, []).append(o)
    errors = [o for o in result.outcomes if o.error]
    return {
        "clients": result.clients,
        "planned": result.planned,
        "requests": len(result.outcomes),
        "not_sent": result.planned - len(result.outcomes),  # the time cap stopped the run first
        "errors": len(errors),
        "error_samples": sorted({f"{o.endpoint}: {o.error}" for o in errors})[:10],
        "wall_s": round(result.wall_s, 3),
        "throughput_rps": round(len(result.outcomes) / result.wall_s, 2) if result.wall_s > 0 else None,
        **_stats([o.seconds for o in result.outcomes]),
        "endpoints": {name: {"requests": len(os_), "errors": sum(1 for o in os_ if o.error),
                             "statuses": {str(s): sum(1 for o in os_ if o.status == s)
                                          for s in sorted({o.status for o in os_}, key=str)},
                             **_stats([o.seconds for o in os_])}
                      for name, os_ in sorted(per.items())},
    }


def sent_per_endpoint(result: LoadResult) -> dict[str, dict[str, int]]:
    """Per endpoint: responses received and how many were 4xx / 5xx (to compare with ``/metrics``)."""
    out: dict[str, dict[str, int]] = {}
    for o in result.outcomes:
        d = out.setdefault(o.endpoint, {"requests": 0, "client_errors": 0, "server_errors": 0})
        d["requests"] += 1
        if o.status is not None and 400 <= o.status < 500:
            d["client_errors"] += 1
        elif o.status is not None and o.status >= 500:
            d["server_errors"] += 1
    return out


def load(url: str, clients: int, requests: int, seconds: float, seed: int = 0) -> dict[str, Any]:
    """Discover, plan, run and summarize against the server at ``url``; server metrics included."""
    with httpx.Client(base_url=url, timeout=60) as c:
        plan = plan_requests(discover(c), requests, seed)
        before = c.get("/metrics").json()
    result = run_load(url, plan, clients=clients, seconds=seconds)
    with httpx.Client(base_url=url, timeout=60) as c:
        after = c.get("/metrics").json()
    summary = summarize(result)
    summary["seed"] = seed
    summary["server_metrics_before"], summary["server_metrics_after"] = before, after
    return summary


# ---- the report -----------------------------------------------------------------------------------

def print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    table = Table(title=f"egoindex serve under load: {summary['clients']} clients, {summary['requests']} requests "
                        f"in {summary['wall_s']:.1f} s ({summary['throughput_rps']} req/s)")
    for col in ("endpoint", "requests", "errors", "p50 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    for name, e in summary["endpoints"].items():
        table.add_row(name, str(e["requests"]), str(e["errors"]), ms(e["p50_ms"]), ms(e["p99_ms"]), ms(e["max_ms"]))
    table.add_row("[bold]all[/bold]", str(summary["requests"]), str(summary["errors"]), ms(summary["p50_ms"]),
                  ms(summary["p99_ms"]), ms(summary["max_ms"]))
    console = Console()
    console.print(table)
    if summary["not_sent"]:
        console.print(f"[yellow]{summary['not_sent']} planned requests not sent: the time cap came first[/yellow]")
    for s in summary["error_samples"]:
        console.print(f"[red]error[/red] {s}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__.split("\n\n")[0])
    ap.add_argument("store", type=Path, help="Store folder (served in this process unless --url).")
    ap.add_argument("--clients", type=int, default=8, help="Concurrent client threads.")
    ap.add_argument("--requests", type=int, default=400, help="Requests in the plan (all clients together).")
    ap.add_argument("--seconds", type=float, default=60.0, help="Stop sending after this long.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the in-process server.")
    ap.add_argument("--url", default=None, help="Load this running server instead of serving STORE here.")
    ap.add_argument("--out", type=Path, default=None, help="Write the JSON here instead of benchmarks/results/.")
    a = ap.parse_args(argv)
    if a.clients < 1 or a.requests < 1 or a.seconds <= 0:
        ap.error("--clients, --requests and --seconds must be positive")

    if a.url:
        summary = load(a.url.rstrip("/"), a.clients, a.requests, a.seconds, a.seed)
        summary["server"] = a.url
    else:
        import torch

        torch.set_num_threads(a.threads)
        with serve_in_thread(open_app(a.store)) as url:
            summary = load(url, a.clients, a.requests, a.seconds, a.seed)
        summary["server"] = f"in-process uvicorn (torch threads {a.threads})"
    summary["store"] = str(a.store)
    print_table(summary)
    packages = ("egoindex", "fastapi", "starlette", "uvicorn", "httpx", "lancedb", "torch", "faiss-cpu")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"benchmark": "serve-load", "machine": describe(packages), **summary}, indent=1)
                         + "\n")
        path = a.out
    else:
        path = save("serve-load", summary, packages=packages)
    print(f"saved {path}")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
