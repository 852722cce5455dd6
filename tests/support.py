"""Small helpers the test modules share (kept out of conftest.py so modules can import them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run in-process model work with ``n`` torch threads and put the count back afterwards: on
    two cores shared with other processes, two OpenMP threads spin against each other and run
    several times slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def file_tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime: equal before and after means nothing was written."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def moving_square(n: int, seed: int, frames: int = 4) -> "torch.Tensor":
    """(n, T, 3, 64, 64) clips of a coloured square moving left -> right over a noisy background."""
    import torch

    g = torch.Generator().manual_seed(seed)
    video = torch.rand(n, frames, 3, 64, 64, generator=g) * 0.3
    for i in range(n):
        row = int(torch.randint(0, 48, (1,), generator=g))
        colour = torch.rand(3, 1, 1, generator=g) + 0.7
        for t in range(frames):
            col = 4 + t * (44 // (frames - 1))
            video[i, t, :, row:row + 14, col:col + 14] = colour
    return video
