"""A tiny collective check: ``all_reduce`` across every device present (NCCL) or 2 CPU ranks (gloo).

Why a module of its own: ``benchmarks/gpu_check.py`` runs it in a subprocess with a timeout, so a
hung rendezvous or a broken NCCL install costs the check one section, never the whole run.
Each rank adds ``rank + 1``; the sum must be ``world * (world + 1) / 2`` everywhere. Then the bus
bandwidth of an all_reduce of ``--mb`` MiB (NCCL's ``busbw``: ``size * 2 * (n - 1) / n / time``).

Usage:  python -m benchmarks.gpu_ddp --backend nccl --world 8 --mb 256 --out /tmp/ddp.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank: int, world: int, backend: str, port: int, mb: float, iters: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = backend == "nccl"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=rank, world_size=world,
                            **({"device_id": device} if cuda else {}))
    try:
        x = torch.full((4,), float(rank + 1), device=device)
        dist.all_reduce(x)
        expected = world * (world + 1) / 2
        correct = bool(torch.all(x == expected).item())
        buf = torch.ones(int(mb * 2**20 / 4), dtype=torch.float32, device=device)
        dist.all_reduce(buf)  # warm-up: connections, buffers
        if cuda:
            torch.cuda.synchronize(device)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(buf)
        if cuda:
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - t0) / iters
        ok = torch.tensor([int(correct)], device=device)
        dist.all_reduce(ok)
        if rank == 0:
            size = buf.numel() * 4
            Path(out).write_text(json.dumps({
                "backend": backend, "world": world, "sum_correct_on_all_ranks": int(ok.item()) == world,
                "expected_sum": expected, "mib": mb, "iters": iters, "seconds_per_all_reduce": round(seconds, 6),
                "algbw_gb_s": round(size / seconds / 1e9, 2),
                "busbw_gb_s": round(size * 2 * (world - 1) / world / seconds / 1e9, 2) if world > 1 else None,
                "nccl_version": ".".join(map(str, torch.cuda.nccl.version())) if cuda else None,
            }, indent=1) + "\n")
    finally:
        dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["nccl", "gloo"], required=True)
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--mb", type=float, default=64.0, help="MiB per all_reduce in the bandwidth test")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    mp.spawn(rank_main, args=(args.world, args.backend, free_port(), args.mb, args.iters, str(args.out)),
             nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
