"""What this process may use of the machine."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on: the affinity mask, which SLURM and taskset narrow, not the node's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
