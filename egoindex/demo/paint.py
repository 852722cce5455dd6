"""Small drawing helpers shared by the room backgrounds, the sprites and the scene renderer.
"""

from __future__ import annotations

import numpy as np

from egoindex.demo.vocab import RGB

# --------------------------------------------------------------------------------------------
# small helpers


def shade(c: RGB, f: float) -> RGB:
    """Scale a colour towards black (f<1) or white (f>1) to get cheap shading."""
    if f <= 1.0:
        return (int(c[0] * f), int(c[1] * f), int(c[2] * f))
    g = f - 1.0
    return (int(c[0] + (255 - c[0]) * g), int(c[1] + (255 - c[1]) * g), int(c[2] + (255 - c[2]) * g))


def jitter(rng: np.random.Generator, c: RGB, amount: int = 12) -> RGB:
    d = rng.integers(-amount, amount + 1, size=3)
    return (int(np.clip(c[0] + d[0], 0, 255)), int(np.clip(c[1] + d[1], 0, 255)), int(np.clip(c[2] + d[2], 0, 255)))


def smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def lerp(a: float, b: float, u: float) -> float:
    return a + (b - a) * u
