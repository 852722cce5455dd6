"""Describe the machine a benchmark ran on and save its results; shared by every benchmark."""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from egoindex.core.resources import available_cpus

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        return None


def describe(packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """CPU, cores, memory, GPU and the versions of the packages that matter to the benchmark."""
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    versions = {}
    for p in packages:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": available_cpus(),
        "memory_gb": mem_gb,
        "gpu": gpu_name(),
        # other work on the machine skews timings: record it (1, 5, 15 min averages at save time)
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "packages": versions,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def result_path(name: str, machine: dict[str, Any]) -> Path:
    """``results/{name}-{cpu|gpu}.json``: where :func:`save` writes for this machine."""
    return RESULTS / f"{name}-{'gpu' if machine['gpu'] else 'cpu'}.json"


def save(name: str, results: dict[str, Any], packages: tuple[str, ...] = ()) -> Path:
    """Write ``results/{name}-{cpu|gpu}.json`` and return its path."""
    machine = describe(packages)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = result_path(name, machine)
    path.write_text(json.dumps({"benchmark": name, "machine": machine, **results}, indent=1) + "\n")
    return path
