"""Scene vocabulary and a fast numpy/PIL renderer for synthetic head-camera ("egocentric") video.

Why synthetic: the project needs a demo/benchmark corpus whose content is known exactly (ground
truth for retrieval and captioning metrics) without shipping or downloading real home videos.
Each scene is one *room* (background), one coloured *object* and one *action*; the renderer draws
them with simple shapes but gives the footage the look that matters to the pipeline: a camera
worn on a baby's head that drifts slowly, bobs, rolls a little, glances aside now and then, has
auto-exposure wobble and sensor noise, and sees the wearer's own hand reaching in to grab things.

Speed is a design constraint (the default corpus is ~10k frames and must render in well under a
minute per core), so everything static is drawn once per scene on an oversized canvas, each frame
only pastes one small sprite (plus a hand) and applies one affine warp, and noise comes from a
precomputed bank applied with saturating PIL operations.  Everything is a pure function of the
seed, the scene and the time, so frames are reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

__all__ = [
    "ROOMS",
    "OBJECTS",
    "COLOURS",
    "ACTIONS",
    "SURFACES",
    "Scene",
    "SceneRenderer",
    "Camera",
    "VideoRenderer",
    "render_frame",
]

RGB = tuple[int, int, int]

#: Rooms (backgrounds).  Each has its own palette and furniture so that a frame alone identifies it.
ROOMS: tuple[str, ...] = ("kitchen", "living room", "bedroom", "bathroom", "garden", "playroom")
#: Objects, each drawn as a distinct silhouette.
OBJECTS: tuple[str, ...] = (
    "ball",
    "cup",
    "block",
    "book",
    "spoon",
    "banana",
    "car",
    "teddy bear",
    "bottle",
    "star",
)
#: Object colours (name -> RGB).  Chosen to be far apart in hue so colour is a reliable cue.
COLOURS: dict[str, RGB] = {
    "red": (214, 38, 38),
    "blue": (36, 92, 220),
    "green": (44, 164, 64),
    "yellow": (246, 212, 40),
    "purple": (136, 58, 190),
    "orange": (248, 134, 26),
}
#: Actions.  ``grabs`` and ``shakes`` involve the wearer's own (skin-coloured) hand and arm.
ACTIONS: tuple[str, ...] = ("rolls", "bounces", "falls", "spins", "grabs", "shakes")
#: What the floor of each room is called in narration ("... bounces on the rug").
SURFACES: dict[str, str] = {
    "kitchen": "floor",
    "living room": "rug",
    "bedroom": "carpet",
    "bathroom": "tiles",
    "garden": "grass",
    "playroom": "mat",
}

_SKIN_TONES: tuple[RGB, ...] = ((247, 205, 172), (236, 184, 146), (212, 150, 110), (170, 112, 76), (120, 78, 52))
_SLEEVES: tuple[RGB, ...] = ((250, 250, 245), (160, 200, 235), (245, 180, 200), (190, 225, 170), (255, 225, 150))


@dataclass(frozen=True)
class Scene:
    """What one scene shows.  ``variant`` seeds per-scene details (object size and start side,
    hand skin tone, motion speeds ...), so two scenes with the same words still look a little
    different.  ``room_seed`` seeds the room itself (furniture layout and colours); the corpus
    gives every scene in the same room of the same home the same ``room_seed``, as a real home's
    kitchen looks the same every day.  Why that matters: if every scene had its own room, the
    background alone would identify the scene and a model could memorise backgrounds instead of
    learning what the narration talks about (the object).  ``None`` falls back to ``variant``."""

    room: str
    object: str
    colour: str
    action: str
    duration: float
    variant: int = 0
    room_seed: int | None = None

    def __post_init__(self) -> None:
        if self.room not in ROOMS:
            raise ValueError(f"unknown room {self.room!r}; expected one of {ROOMS}")
        if self.object not in OBJECTS:
            raise ValueError(f"unknown object {self.object!r}; expected one of {OBJECTS}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; expected one of {tuple(COLOURS)}")
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; expected one of {ACTIONS}")
        if not self.duration > 0:
            raise ValueError("scene duration must be positive")


# --------------------------------------------------------------------------------------------
# small helpers


def _shade(c: RGB, f: float) -> RGB:
    """Scale a colour towards black (f<1) or white (f>1) to get cheap shading."""
    if f <= 1.0:
        return (int(c[0] * f), int(c[1] * f), int(c[2] * f))
    g = f - 1.0
    return (int(c[0] + (255 - c[0]) * g), int(c[1] + (255 - c[1]) * g), int(c[2] + (255 - c[2]) * g))


def _jitter(rng: np.random.Generator, c: RGB, amount: int = 12) -> RGB:
    d = rng.integers(-amount, amount + 1, size=3)
    return (int(np.clip(c[0] + d[0], 0, 255)), int(np.clip(c[1] + d[1], 0, 255)), int(np.clip(c[2] + d[2], 0, 255)))


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _lerp(a: float, b: float, u: float) -> float:
    return a + (b - a) * u


# --------------------------------------------------------------------------------------------
# backgrounds


class _Canvas:
    """Geometry of the oversized canvas the camera looks at (margin lets the view drift)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.w, self.h = size
        self.m = max(8, int(round(0.2 * self.h)))
        self.cw = self.w + 2 * self.m
        self.ch = self.h + 2 * self.m
        self.u = self.h / 240.0  # unit: 1 px at 240 lines
        self.horizon = int(self.ch * 0.47)
        self.floor_y = int(self.ch * 0.75)  # where objects touch the floor


def _floor_x(c: _Canvas, vx: float, vy: float, xb: float, y: float) -> float:
    """x at height y on the perspective line from the vanishing point to (xb, bottom)."""
    return vx + (xb - vx) * (y - vy) / (c.ch - vy)


def _perspective_tiles(
    draw: ImageDraw.ImageDraw,
    c: _Canvas,
    rng: np.random.Generator,
    ncols: int,
    nrows: int,
    colour_of: Callable[[int, int], RGB],
    line: RGB | None = None,
) -> None:
    """Draw a tiled floor with a mild one-point perspective (rows get taller towards the camera)."""
    vx = c.cw / 2 + rng.uniform(-0.15, 0.15) * c.cw
    vy = c.horizon - c.ch * 0.9
    span = c.cw * 1.8
    xs = [c.cw / 2 - span / 2 + span * i / ncols for i in range(ncols + 1)]
    ys = [c.horizon + (c.ch - c.horizon) * (j / nrows) ** 1.4 for j in range(nrows + 1)]
    for j in range(nrows):
        for i in range(ncols):
            y0, y1 = ys[j], ys[j + 1]
            poly = [
                (_floor_x(c, vx, vy, xs[i], y0), y0),
                (_floor_x(c, vx, vy, xs[i + 1], y0), y0),
                (_floor_x(c, vx, vy, xs[i + 1], y1), y1),
                (_floor_x(c, vx, vy, xs[i], y1), y1),
            ]
            draw.polygon(poly, fill=colour_of(i, j), outline=line)


def _wall_and_floor(draw: ImageDraw.ImageDraw, c: _Canvas, wall: RGB, floor: RGB, skirting: RGB | None) -> None:
    draw.rectangle([0, 0, c.cw, c.horizon], fill=wall)
    draw.rectangle([0, c.horizon, c.cw, c.ch], fill=floor)
    if skirting is not None:
        draw.rectangle([0, c.horizon - 4 * c.u, c.cw, c.horizon], fill=skirting)


def _draw_kitchen(draw: ImageDraw.ImageDraw, c: _Canvas, rng: np.random.Generator) -> None:
    u = c.u
    wall = _jitter(rng, (238, 226, 184))
    _wall_and_floor(draw, c, wall, (200, 200, 200), None)
    light, dark = _jitter(rng, (236, 236, 232), 6), _jitter(rng, (70, 74, 84), 8)
    _perspective_tiles(draw, c, rng, 14, 7, lambda i, j: light if (i + j) % 2 else dark)
    # backsplash tiles
    top = c.horizon - 70 * u
    draw.rectangle([0, top, c.cw, c.horizon - 30 * u], fill=_shade(wall, 1.12))
    step = 12 * u
    x = 0.0
    while x < c.cw:
        draw.line([(x, top), (x, c.horizon - 30 * u)], fill=_shade(wall, 0.85), width=1)
        x += step
    # lower cabinets with worktop, upper cabinets, fridge
    cab = _jitter(rng, (92, 140, 170), 20)
    draw.rectangle([0, c.horizon - 30 * u, c.cw, c.horizon + 6 * u], fill=cab)
    draw.rectangle([0, c.horizon - 34 * u, c.cw, c.horizon - 28 * u], fill=(60, 60, 64))
    n = 7
    for k in range(n):
        x0 = k * c.cw / n
        draw.rectangle([x0 + 2 * u, c.horizon - 26 * u, x0 + c.cw / n - 2 * u, c.horizon + 3 * u], outline=_shade(cab, 0.7), width=max(1, int(u)))
        draw.rectangle([x0 + c.cw / n / 2 - 6 * u, c.horizon - 20 * u, x0 + c.cw / n / 2 + 6 * u, c.horizon - 17 * u], fill=(210, 210, 215))
    for k in range(4):
        x0 = c.cw * (0.05 + 0.2 * k)
        draw.rectangle([x0, 10 * u, x0 + c.cw * 0.16, top - 12 * u], fill=_shade(cab, 1.1), outline=_shade(cab, 0.7), width=max(1, int(u)))
    fx = c.cw * rng.uniform(0.72, 0.82)
    draw.rectangle([fx, 4 * u, fx + 70 * u, c.horizon + 8 * u], fill=(236, 238, 240), outline=(150, 150, 155), width=max(1, int(2 * u)))
    draw.line([(fx, c.horizon - 70 * u), (fx + 70 * u, c.horizon - 70 * u)], fill=(150, 150, 155), width=max(1, int(2 * u)))
    draw.rectangle([fx + 58 * u, c.horizon - 110 * u, fx + 62 * u, c.horizon - 80 * u], fill=(120, 120, 125))


def _draw_living_room(draw: ImageDraw.ImageDraw, c: _Canvas, rng: np.random.Generator) -> None:
    u = c.u
    wall = _jitter(rng, (226, 208, 180))
    _wall_and_floor(draw, c, wall, (150, 100, 60), (240, 240, 235))
    base = _jitter(rng, (156, 104, 62), 14)
    tones = [_shade(base, f) for f in (0.85, 0.95, 1.0, 1.08)]
    _perspective_tiles(draw, c, rng, 16, 1, lambda i, j: tones[(i * 7) % 4], line=_shade(base, 0.6))
    # window with sky and frame
    wx = c.cw * rng.uniform(0.08, 0.2)
    draw.rectangle([wx, 20 * u, wx + 90 * u, c.horizon - 45 * u], fill=(170, 210, 240), outline=(250, 250, 250), width=max(1, int(4 * u)))
    draw.line([(wx + 45 * u, 20 * u), (wx + 45 * u, c.horizon - 45 * u)], fill=(250, 250, 250), width=max(1, int(3 * u)))
    draw.line([(wx, (20 * u + c.horizon - 45 * u) / 2), (wx + 90 * u, (20 * u + c.horizon - 45 * u) / 2)], fill=(250, 250, 250), width=max(1, int(3 * u)))
    # picture frame
    px = c.cw * rng.uniform(0.6, 0.75)
    draw.rectangle([px, 25 * u, px + 50 * u, 60 * u], fill=_jitter(rng, (90, 150, 110), 40), outline=(60, 40, 20), width=max(1, int(3 * u)))
    # sofa
    sofa = _jitter(rng, (70, 110, 130), 30)
    sx = c.cw * rng.uniform(0.3, 0.45)
    sw = 170 * u
    draw.rounded_rectangle([sx, c.horizon - 55 * u, sx + sw, c.horizon - 15 * u], radius=10 * u, fill=_shade(sofa, 0.9))
    draw.rounded_rectangle([sx - 12 * u, c.horizon - 35 * u, sx + sw + 12 * u, c.horizon + 12 * u], radius=8 * u, fill=sofa)
    draw.line([(sx + sw / 2, c.horizon - 30 * u), (sx + sw / 2, c.horizon)], fill=_shade(sofa, 0.7), width=max(1, int(2 * u)))
    # rug
    rug = _jitter(rng, (180, 60, 70), 30)
    draw.ellipse([c.cw * 0.12, c.horizon + 40 * u, c.cw * 0.88, c.ch - 10 * u], fill=rug, outline=_shade(rug, 1.3), width=max(1, int(4 * u)))
    draw.ellipse([c.cw * 0.22, c.horizon + 60 * u, c.cw * 0.78, c.ch - 40 * u], outline=_shade(rug, 1.25), width=max(1, int(3 * u)))


def _draw_bedroom(draw: ImageDraw.ImageDraw, c: _Canvas, rng: np.random.Generator) -> None:
    u = c.u
    wall = _jitter(rng, (196, 200, 236))
    _wall_and_floor(draw, c, wall, _jitter(rng, (150, 160, 180), 10), (245, 245, 250))
    # wallpaper stripes
    x = 0.0
    while x < c.cw:
        draw.rectangle([x, 0, x + 8 * u, c.horizon - 4 * u], fill=_shade(wall, 1.08))
        x += 26 * u
    # bed with headboard, blanket, pillow
    bx = c.cw * rng.uniform(0.45, 0.6)
    bw = 180 * u
    wood = _jitter(rng, (130, 90, 60), 15)
    draw.rectangle([bx, c.horizon - 80 * u, bx + 14 * u, c.horizon + 10 * u], fill=wood)
    draw.rounded_rectangle([bx, c.horizon - 80 * u, bx + bw, c.horizon - 60 * u], radius=8 * u, fill=wood)
    draw.rectangle([bx + 10 * u, c.horizon - 42 * u, bx + bw, c.horizon + 14 * u], fill=(240, 240, 246))
    blanket = _jitter(rng, (230, 150, 170), 30)
    draw.rectangle([bx + 60 * u, c.horizon - 44 * u, bx + bw, c.horizon + 18 * u], fill=blanket)
    for k in range(4):
        draw.line([(bx + 60 * u, c.horizon - 30 * u + k * 14 * u), (bx + bw, c.horizon - 30 * u + k * 14 * u)], fill=_shade(blanket, 1.2), width=max(1, int(3 * u)))
    draw.rounded_rectangle([bx + 18 * u, c.horizon - 58 * u, bx + 58 * u, c.horizon - 38 * u], radius=8 * u, fill=(252, 252, 255))
    # wardrobe and lamp
    wx = c.cw * rng.uniform(0.05, 0.15)
    draw.rectangle([wx, 10 * u, wx + 80 * u, c.horizon + 6 * u], fill=_shade(wood, 1.15), outline=_shade(wood, 0.7), width=max(1, int(2 * u)))
    draw.line([(wx + 40 * u, 10 * u), (wx + 40 * u, c.horizon + 6 * u)], fill=_shade(wood, 0.7), width=max(1, int(2 * u)))
    lx = wx + 120 * u
    draw.polygon([(lx, 40 * u), (lx + 30 * u, 40 * u), (lx + 38 * u, 65 * u), (lx - 8 * u, 65 * u)], fill=(255, 236, 170))
    draw.line([(lx + 15 * u, 65 * u), (lx + 15 * u, c.horizon - 20 * u)], fill=(90, 90, 90), width=max(1, int(2 * u)))


def _draw_bathroom(draw: ImageDraw.ImageDraw, c: _Canvas, rng: np.random.Generator) -> None:
    u = c.u
    wall = _jitter(rng, (214, 240, 240), 8)
    _wall_and_floor(draw, c, wall, (120, 150, 190), None)
    grout = _shade(wall, 0.8)
    step = 18 * u
    y = 0.0
    while y < c.horizon:
        draw.line([(0, y), (c.cw, y)], fill=grout, width=1)
        y += step
    x = 0.0
    while x < c.cw:
        draw.line([(x, 0), (x, c.horizon)], fill=grout, width=1)
        x += step
    t1, t2 = _jitter(rng, (90, 130, 190), 10), _jitter(rng, (110, 150, 205), 10)
    _perspective_tiles(draw, c, rng, 22, 9, lambda i, j: t1 if (i + j) % 2 else t2, line=(230, 230, 235))
    # bathtub, mirror, towel
    tx = c.cw * rng.uniform(0.5, 0.62)
    draw.rounded_rectangle([tx, c.horizon - 50 * u, tx + 190 * u, c.horizon + 16 * u], radius=14 * u, fill=(250, 250, 252), outline=(200, 205, 210), width=max(1, int(3 * u)))
    draw.rectangle([tx + 160 * u, c.horizon - 80 * u, tx + 166 * u, c.horizon - 48 * u], fill=(180, 180, 190))
    mx = c.cw * rng.uniform(0.1, 0.22)
    draw.ellipse([mx, 18 * u, mx + 70 * u, 88 * u], fill=(200, 225, 235), outline=(170, 170, 175), width=max(1, int(3 * u)))
    towel = _jitter(rng, (240, 170, 80), 40)
    draw.rectangle([mx + 100 * u, 60 * u, mx + 140 * u, c.horizon - 20 * u], fill=towel)
    draw.rectangle([mx + 95 * u, 56 * u, mx + 145 * u, 62 * u], fill=(170, 170, 180))


def _draw_garden(draw: ImageDraw.ImageDraw, c: _Canvas, rng: np.random.Generator) -> None:
    u = c.u
    hz = c.horizon
    for k in range(8):  # sky gradient in bands (cheap)
        y0, y1 = hz * k / 8, hz * (k + 1) / 8 + 1
        draw.rectangle([0, y0, c.cw, y1], fill=(120 + 12 * k, 180 + 7 * k, 240 - 2 * k))
    sx = c.cw * rng.uniform(0.7, 0.9)
    draw.ellipse([sx, 10 * u, sx + 34 * u, 44 * u], fill=(255, 240, 150))
    # hedge and fence
    hedge = _jitter(rng, (50, 110, 50), 10)
    draw.rectangle([0, hz - 40 * u, c.cw, hz], fill=hedge)
    for k in range(int(c.cw / (20 * u)) + 1):
        draw.ellipse([k * 20 * u - 6 * u, hz - 52 * u, k * 20 * u + 20 * u, hz - 30 * u], fill=_shade(hedge, 1.05 + 0.1 * (k % 2)))
    fence = _jitter(rng, (190, 150, 105), 15)
    x = 0.0
    while x < c.cw:
        draw.polygon([(x, hz - 26 * u), (x + 7 * u, hz - 32 * u), (x + 14 * u, hz - 26 * u), (x + 14 * u, hz + 4 * u), (x, hz + 4 * u)], fill=fence, outline=_shade(fence, 0.7))
        x += 20 * u
    # tree
    tx = c.cw * rng.uniform(0.1, 0.3)
    draw.rectangle([tx, hz - 90 * u, tx + 16 * u, hz + 10 * u], fill=(110, 75, 45))
    leaf = _jitter(rng, (40, 130, 50), 15)
    for dx, dy, r in ((-30, -110, 38), (10, -130, 42), (40, -100, 36), (0, -90, 34)):
        draw.ellipse([tx + dx * u - r * u, hz + dy * u - r * u, tx + dx * u + r * u, hz + dy * u + r * u], fill=leaf)
    # lawn with mowing stripes and flowers
    g1, g2 = _jitter(rng, (90, 170, 70), 8), _jitter(rng, (76, 150, 60), 8)
    _perspective_tiles(draw, c, rng, 12, 1, lambda i, j: g1 if i % 2 else g2)
    for _ in range(40):
        fx, fy = rng.uniform(0, c.cw), rng.uniform(hz + 6 * u, c.ch)
        r = (1.5 + 3 * (fy - hz) / (c.ch - hz)) * u
        col = ((255, 255, 255), (255, 220, 60), (230, 80, 120))[int(rng.integers(0, 3))]
        draw.ellipse([fx - r, fy - r, fx + r, fy + r], fill=col)


def _draw_playroom(draw: ImageDraw.ImageDraw, c: _Canvas, rng: np.random.Generator) -> None:
    u = c.u
    wall = _jitter(rng, (250, 236, 160), 8)
    _wall_and_floor(draw, c, wall, (200, 200, 200), (255, 255, 255))
    pastel = [(250, 160, 160), (150, 200, 250), (170, 230, 160), (250, 210, 120), (210, 170, 240)]
    for _ in range(30):  # polka dots
        x, y, r = rng.uniform(0, c.cw), rng.uniform(0, c.horizon - 10 * u), rng.uniform(4, 9) * u
        draw.ellipse([x - r, y - r, x + r, y + r], fill=pastel[int(rng.integers(0, len(pastel)))])
    # bunting
    y0 = 14 * u
    draw.line([(0, y0), (c.cw, y0 + 10 * u)], fill=(120, 120, 120), width=1)
    k = 0
    x = 0.0
    while x < c.cw:
        yy = y0 + 10 * u * x / c.cw
        draw.polygon([(x, yy), (x + 16 * u, yy), (x + 8 * u, yy + 18 * u)], fill=pastel[k % len(pastel)])
        x += 22 * u
        k += 1
    # foam mat in perspective
    mats = [_jitter(rng, p, 6) for p in pastel]
    _perspective_tiles(draw, c, rng, 10, 5, lambda i, j: mats[(i * 3 + j * 2) % len(mats)], line=(240, 240, 240))
    # toy shelf with boxes, play tent
    sx = c.cw * rng.uniform(0.55, 0.7)
    draw.rectangle([sx, c.horizon - 90 * u, sx + 120 * u, c.horizon + 6 * u], fill=(240, 240, 240), outline=(180, 180, 180), width=max(1, int(2 * u)))
    for row in range(3):
        yy = c.horizon - 88 * u + row * 31 * u
        draw.line([(sx, yy + 29 * u), (sx + 120 * u, yy + 29 * u)], fill=(180, 180, 180), width=max(1, int(2 * u)))
        for col in range(3):
            box = pastel[(row * 3 + col) % len(pastel)]
            draw.rectangle([sx + 6 * u + col * 38 * u, yy + 8 * u, sx + 36 * u + col * 38 * u, yy + 28 * u], fill=_shade(box, 0.85))
    tx = c.cw * rng.uniform(0.08, 0.2)
    draw.polygon([(tx, c.horizon + 8 * u), (tx + 55 * u, c.horizon - 90 * u), (tx + 110 * u, c.horizon + 8 * u)], fill=(230, 110, 110))
    draw.polygon([(tx + 40 * u, c.horizon + 8 * u), (tx + 55 * u, c.horizon - 40 * u), (tx + 70 * u, c.horizon + 8 * u)], fill=(120, 60, 60))


_ROOM_DRAWERS = {
    "kitchen": _draw_kitchen,
    "living room": _draw_living_room,
    "bedroom": _draw_bedroom,
    "bathroom": _draw_bathroom,
    "garden": _draw_garden,
    "playroom": _draw_playroom,
}


def _room_background(room: str, size: tuple[int, int], variant: int) -> Image.Image:
    """Draw a room on the oversized canvas, with lighting falloff and static texture."""
    c = _Canvas(size)
    rng = np.random.default_rng([variant, ROOMS.index(room), 7])
    img = Image.new("RGB", (c.cw, c.ch))
    _ROOM_DRAWERS[room](ImageDraw.Draw(img), c, rng)
    arr = np.asarray(img).astype(np.float32)
    # light from a random side + vignette-free falloff, plus fixed texture (surfaces are not flat colour)
    xs = np.linspace(-1.0, 1.0, c.cw, dtype=np.float32)
    side = float(rng.uniform(-1, 1))
    light = 1.0 + 0.10 * side * xs[None, :] - 0.06 * np.linspace(0, 1, c.ch, dtype=np.float32)[:, None]
    texture = rng.normal(0.0, 3.0, size=(c.ch // 2 + 1, c.cw // 2 + 1)).astype(np.float32)
    texture = np.kron(texture, np.ones((2, 2), np.float32))[: c.ch, : c.cw]
    arr = arr * light[:, :, None] + texture[:, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------------------------
# objects


def _object_sprite(obj: str, colour: RGB, px: int) -> Image.Image:
    """Draw ``obj`` in ``colour`` as an RGBA sprite of ``px`` x ``px`` (supersampled for smooth edges)."""
    ss = 3
    n = px * ss
    img = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    dark, light = _shade(colour, 0.62), _shade(colour, 1.35)
    w = max(1, int(n * 0.03))

    def P(x: float, y: float) -> tuple[float, float]:
        return (x * n, y * n)

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [x0 * n, y0 * n, x1 * n, y1 * n]

    if obj == "ball":
        d.ellipse(box(0.05, 0.05, 0.95, 0.95), fill=colour, outline=dark, width=w)
        d.chord(box(0.05, 0.05, 0.95, 0.95), 200, 340, fill=(250, 250, 250))
        d.line([P(0.08, 0.55), P(0.92, 0.45)], fill=(250, 250, 250), width=int(n * 0.08))
        d.ellipse(box(0.25, 0.2, 0.4, 0.35), fill=light)
    elif obj == "cup":
        d.ellipse(box(0.62, 0.3, 0.95, 0.7), outline=dark, width=int(n * 0.07))
        d.polygon([P(0.1, 0.18), P(0.78, 0.18), P(0.7, 0.92), P(0.18, 0.92)], fill=colour, outline=dark)
        d.ellipse(box(0.1, 0.1, 0.78, 0.26), fill=dark, outline=colour, width=w)
        d.rectangle(box(0.22, 0.4, 0.3, 0.8), fill=light)
    elif obj == "block":
        d.polygon([P(0.1, 0.3), P(0.3, 0.1), P(0.92, 0.1), P(0.72, 0.3)], fill=light, outline=dark)
        d.polygon([P(0.72, 0.3), P(0.92, 0.1), P(0.92, 0.72), P(0.72, 0.92)], fill=dark)
        d.rectangle(box(0.1, 0.3, 0.72, 0.92), fill=colour, outline=dark, width=w)
        d.rectangle(box(0.24, 0.44, 0.58, 0.78), outline=(255, 255, 255), width=int(n * 0.06))
    elif obj == "book":
        d.rectangle(box(0.18, 0.12, 0.9, 0.9), fill=(250, 248, 235))
        d.rectangle(box(0.12, 0.08, 0.84, 0.86), fill=colour, outline=dark, width=w)
        d.rectangle(box(0.12, 0.08, 0.24, 0.86), fill=dark)
        d.rectangle(box(0.34, 0.26, 0.74, 0.4), fill=(255, 255, 255))
        d.ellipse(box(0.42, 0.5, 0.66, 0.74), fill=light)
    elif obj == "spoon":
        d.line([P(0.5, 0.45), P(0.9, 0.95)], fill=colour, width=int(n * 0.1))
        d.line([P(0.5, 0.45), P(0.9, 0.95)], fill=light, width=int(n * 0.03))
        d.ellipse(box(0.1, 0.05, 0.6, 0.55), fill=colour, outline=dark, width=w)
        d.ellipse(box(0.2, 0.14, 0.5, 0.42), fill=dark)
    elif obj == "banana":
        d.ellipse(box(0.02, -0.35, 0.98, 0.9), fill=colour)
        d.ellipse(box(0.0, -0.55, 1.0, 0.68), fill=(0, 0, 0, 0))
        d.arc(box(0.02, -0.35, 0.98, 0.9), 20, 160, fill=dark, width=w)
        d.ellipse(box(0.0, 0.3, 0.12, 0.42), fill=(80, 60, 30))
        d.ellipse(box(0.88, 0.3, 1.0, 0.42), fill=(80, 60, 30))
    elif obj == "car":
        d.rounded_rectangle(box(0.04, 0.42, 0.96, 0.74), radius=int(n * 0.08), fill=colour, outline=dark, width=w)
        d.polygon([P(0.24, 0.44), P(0.34, 0.2), P(0.68, 0.2), P(0.8, 0.44)], fill=colour, outline=dark)
        d.polygon([P(0.3, 0.42), P(0.37, 0.25), P(0.5, 0.25), P(0.5, 0.42)], fill=(190, 225, 245))
        d.polygon([P(0.54, 0.42), P(0.54, 0.25), P(0.66, 0.25), P(0.74, 0.42)], fill=(190, 225, 245))
        for cx in (0.25, 0.75):
            d.ellipse(box(cx - 0.13, 0.6, cx + 0.13, 0.86), fill=(30, 30, 30))
            d.ellipse(box(cx - 0.05, 0.68, cx + 0.05, 0.78), fill=(200, 200, 200))
        d.ellipse(box(0.88, 0.48, 0.96, 0.56), fill=(255, 250, 200))
    elif obj == "teddy bear":
        d.ellipse(box(0.22, 0.42, 0.78, 0.98), fill=colour, outline=dark, width=w)  # body
        d.ellipse(box(0.08, 0.5, 0.3, 0.72), fill=colour, outline=dark, width=w)  # arms
        d.ellipse(box(0.7, 0.5, 0.92, 0.72), fill=colour, outline=dark, width=w)
        d.ellipse(box(0.36, 0.6, 0.64, 0.88), fill=light)  # tummy
        d.ellipse(box(0.2, 0.02, 0.38, 0.2), fill=colour, outline=dark, width=w)  # ears
        d.ellipse(box(0.62, 0.02, 0.8, 0.2), fill=colour, outline=dark, width=w)
        d.ellipse(box(0.24, 0.06, 0.76, 0.52), fill=colour, outline=dark, width=w)  # head
        d.ellipse(box(0.4, 0.28, 0.6, 0.46), fill=light)  # muzzle
        d.ellipse(box(0.46, 0.3, 0.54, 0.36), fill=(30, 20, 20))
        d.ellipse(box(0.34, 0.18, 0.41, 0.25), fill=(30, 20, 20))
        d.ellipse(box(0.59, 0.18, 0.66, 0.25), fill=(30, 20, 20))
    elif obj == "bottle":
        d.rounded_rectangle(box(0.25, 0.3, 0.75, 0.96), radius=int(n * 0.1), fill=colour, outline=dark, width=w)
        d.rectangle(box(0.38, 0.14, 0.62, 0.32), fill=colour, outline=dark, width=w)
        d.rounded_rectangle(box(0.36, 0.02, 0.64, 0.16), radius=int(n * 0.04), fill=(245, 245, 245), outline=(150, 150, 150))
        d.rectangle(box(0.25, 0.52, 0.75, 0.72), fill=(250, 250, 250))
        d.rectangle(box(0.32, 0.36, 0.38, 0.9), fill=light)
    elif obj == "star":
        pts = []
        for k in range(10):
            r = 0.47 if k % 2 == 0 else 0.2
            a = -math.pi / 2 + k * math.pi / 5
            pts.append(P(0.5 + r * math.cos(a), 0.53 + r * math.sin(a)))
        d.polygon(pts, fill=colour, outline=dark)
        d.line(pts + [pts[0]], fill=dark, width=w)
        d.ellipse(box(0.42, 0.42, 0.58, 0.58), fill=light)
    else:  # pragma: no cover - guarded by Scene validation
        raise ValueError(obj)
    return img.resize((px, px), Image.Resampling.LANCZOS)


def _shadow_sprite(px: int) -> Image.Image:
    """Soft dark ellipse used as the object's contact shadow (an 'L' mask for Image.paste)."""
    w, h = px, max(2, px // 4)
    m = Image.new("L", (w + 8, h + 8), 0)
    ImageDraw.Draw(m).ellipse([4, 4, w + 4, h + 4], fill=110)
    return m.filter(ImageFilter.GaussianBlur(2))


# --------------------------------------------------------------------------------------------
# per-scene renderer


@dataclass
class _Pose:
    """Where the object is at a given time (canvas pixels), and whether the hand holds it."""

    x: float
    y: float  # object centre
    angle: float = 0.0
    scale: float = 1.0
    height: float = 0.0  # height above the floor, for the shadow (px)
    hand: tuple[float, float] | None = None  # palm centre
    grasp: bool = False
    shadow_y: float | None = None  # surface the shadow falls on (None = the floor)


class SceneRenderer:
    """Draws one :class:`Scene` on the oversized canvas at any time ``t`` within the scene.

    Why per-scene state: the background and sprites are drawn once (tens of ms) and reused for
    every frame of the scene, which is what keeps rendering at a few ms per frame.
    """

    def __init__(self, scene: Scene, size: tuple[int, int] = (320, 240)) -> None:
        self.scene = scene
        self.c = _Canvas(size)
        rng = np.random.default_rng([scene.variant, 11])
        self.rng_side = 1.0 if rng.random() < 0.5 else -1.0
        self.obj_px = max(8, int(round(self.c.h * 0.25 * rng.uniform(0.9, 1.12))))
        self.sprite = _object_sprite(scene.object, COLOURS[scene.colour], self.obj_px)
        self.shadow = _shadow_sprite(self.obj_px)
        self.skin = _SKIN_TONES[int(rng.integers(0, len(_SKIN_TONES)))]
        self.sleeve = _SLEEVES[int(rng.integers(0, len(_SLEEVES)))]
        self.x0 = self.c.cw * (0.5 + rng.uniform(-0.08, 0.08))
        self.shake_hz = float(rng.uniform(2.8, 4.0))
        self.spin_dps = float(rng.uniform(180, 320)) * (1 if rng.random() < 0.5 else -1)
        self.bounce_period = float(rng.uniform(0.7, 1.0))
        bg = _room_background(scene.room, size, scene.variant if scene.room_seed is None else scene.room_seed)
        if scene.action == "falls":  # a small table to fall from
            d = ImageDraw.Draw(bg)
            c, u = self.c, self.c.u
            tx = self.x0 - self.rng_side * 0.2 * c.cw
            top = c.horizon + 6 * u
            wood = _jitter(rng, (150, 105, 65), 15)
            for lx in (tx - 38 * u, tx + 32 * u):
                d.rectangle([lx, top, lx + 6 * u, c.floor_y - 8 * u], fill=_shade(wood, 0.7))
            d.rectangle([tx - 44 * u, top - 6 * u, tx + 44 * u, top + 4 * u], fill=wood, outline=_shade(wood, 0.6))
            self.table = (tx, top - 6 * u)
        self.background = bg
        self._sprite_cache: dict[tuple[int, int], Image.Image] = {}

    # ---- motion ---------------------------------------------------------------------------

    def pose(self, t: float) -> _Pose:
        """Object (and hand) placement at time ``t`` seconds into the scene."""
        c, s, D = self.c, self.obj_px, self.scene.duration
        ground = c.floor_y - s / 2
        side = self.rng_side
        a = self.scene.action
        if a == "rolls":
            u = t / D
            x = c.cw * (0.5 - side * 0.33) + side * c.cw * 0.66 * (1 - (1 - u) ** 1.6)
            dist = x - c.cw * (0.5 - side * 0.33)
            angle = 0.0 if self.scene.object == "car" else -math.degrees(dist / (s / 2))
            bob = abs(math.sin(t * 9.0)) * 1.5 * c.u if self.scene.object != "ball" else 0.0
            return _Pose(x, ground - bob, angle)
        if a == "bounces":
            T = self.bounce_period
            amp = c.ch * 0.32 * (0.75 + 0.25 * math.cos(t * 0.9))
            h = amp * abs(math.sin(math.pi * t / T))
            x = self.x0 + side * c.cw * 0.12 * math.sin(t * 0.6)
            squash = 1.0 - 0.12 * max(0.0, 1.0 - h / (0.08 * amp + 1e-6))
            return _Pose(x, ground - h + s * (1 - squash) / 2, 10 * math.sin(t * 2.0), scale=1.0, height=h)
        if a == "falls":
            tx, top = self.table
            t_tip, t_drop = 1.0, 1.35
            y_table = top - s / 2
            if t < t_tip:  # resting on the table, wobbling
                return _Pose(tx, y_table, 3 * math.sin(t * 12) * t, shadow_y=top)
            if t < t_drop:  # sliding to the edge
                u = (t - t_tip) / (t_drop - t_tip)
                return _Pose(tx + side * 40 * c.u * u, y_table, side * 25 * u, shadow_y=top)
            g = 2.2 * c.ch  # px/s^2, tuned so the fall takes ~0.6 s
            dt = t - t_drop
            x_edge = tx + side * 40 * c.u
            fall_h = ground - y_table
            t_fall = math.sqrt(2 * fall_h / g)
            if dt < t_fall:
                y = y_table + 0.5 * g * dt * dt
                return _Pose(x_edge + side * 60 * c.u * dt, y, side * (25 + 200 * dt), height=ground - y)
            x_land = x_edge + side * 60 * c.u * t_fall
            rest_angle = side * (25 + 200 * t_fall)
            db = dt - t_fall
            h = 0.12 * c.ch * abs(math.sin(db * 7.0)) * math.exp(-db * 5.0)
            return _Pose(x_land + side * 20 * c.u * (1 - math.exp(-db * 3)), ground - h, rest_angle + side * 20 * (1 - math.exp(-db * 3)), height=h)
        if a == "spins":
            return _Pose(self.x0, ground - 2 * c.u * abs(math.sin(t * 3)), self.spin_dps * t)
        if a == "grabs":
            ox, oy = self.x0, ground
            base = (c.cw * 0.64, c.ch + s * 0.8)
            t_in, t_reach, t_grip, t_lift = 0.6, 1.9, 2.3, 3.5
            palm_at_obj = (ox + 0.1 * s, oy + 0.45 * s)
            if t < t_in:
                return _Pose(ox, oy)
            if t < t_reach:
                u = _smoothstep((t - t_in) / (t_reach - t_in))
                hand = (_lerp(base[0], palm_at_obj[0], u), _lerp(base[1], palm_at_obj[1], u))
                return _Pose(ox, oy, hand=hand)
            if t < t_grip:
                return _Pose(ox, oy, hand=palm_at_obj, grasp=True)
            u = _smoothstep((t - t_grip) / (t_lift - t_grip))
            tgt = (c.cw * 0.55, c.ch * 0.58)
            wob = 0.0 if t < t_lift else math.sin((t - t_lift) * 2.5)
            hx = _lerp(palm_at_obj[0], tgt[0], u) + 6 * c.u * wob
            hy = _lerp(palm_at_obj[1], tgt[1], u) + 3 * c.u * math.sin((t - t_grip) * 1.7) * u
            scale = 1.0 + 0.55 * u
            return _Pose(hx - 0.1 * s * scale, hy - 0.45 * s * scale, 8 * wob * u, scale, height=(oy - hy) + 0.45 * s, hand=(hx, hy), grasp=True)
        if a == "shakes":
            scale = 1.45
            u = _smoothstep(t / 0.8)
            rest = (c.cw * 0.52, c.ch * 0.62)
            base = (c.cw * 0.64, c.ch + s * 0.8)
            ph = 2 * math.pi * self.shake_hz * t
            amp = u * (0.6 + 0.4 * abs(math.sin(t * 0.7)))
            hx = _lerp(base[0], rest[0], u) + amp * 0.08 * c.cw * math.sin(ph)
            hy = _lerp(base[1], rest[1], u) + amp * 0.025 * c.ch * math.sin(2 * ph)
            return _Pose(hx - 0.1 * s * scale, hy - 0.45 * s * scale, amp * 18 * math.sin(ph + 0.6), scale, height=c.ch, hand=(hx, hy), grasp=True)
        raise ValueError(a)  # pragma: no cover

    # ---- drawing --------------------------------------------------------------------------

    def _sprite(self, angle: float, scale: float) -> Image.Image:
        """Rotated/scaled sprite, quantised (2 degrees, 2 %) and memoised: frames reuse them."""
        key = (int(round(angle / 2.0)) % 180, int(round(scale * 50)))
        spr = self._sprite_cache.get(key)
        if spr is None:
            spr = self.sprite
            if key[1] != 50:
                px = max(4, int(round(self.obj_px * key[1] / 50)))
                spr = spr.resize((px, px), Image.Resampling.BILINEAR)
            if key[0] != 0:
                spr = spr.rotate(key[0] * 2.0, resample=Image.Resampling.BILINEAR, expand=True)
            if len(self._sprite_cache) > 400:
                self._sprite_cache.clear()
            self._sprite_cache[key] = spr
        return spr

    def _draw_arm(self, d: ImageDraw.ImageDraw, hand: tuple[float, float], scale: float) -> None:
        c, s = self.c, self.obj_px
        base = (c.cw * 0.66, c.ch + s * 1.2)
        hx, hy = hand
        width = int(0.5 * s * scale)
        wrist = (hx + 0.12 * s * scale, hy + 0.35 * s * scale)
        d.line([base, wrist], fill=self.skin, width=width)
        # sleeve covers the part of the arm nearest the camera
        mid = (_lerp(base[0], wrist[0], 0.45), _lerp(base[1], wrist[1], 0.45))
        d.line([base, mid], fill=self.sleeve, width=int(width * 1.25))
        r = 0.36 * s * scale
        d.ellipse([hx - r, hy - r * 0.85, hx + r, hy + r * 0.85], fill=self.skin, outline=_shade(self.skin, 0.8))

    def _draw_fingers(self, d: ImageDraw.ImageDraw, hand: tuple[float, float], scale: float, grasp: bool) -> None:
        s = self.obj_px
        hx, hy = hand
        fw, fl = 0.13 * s * scale, (0.26 if grasp else 0.36) * s * scale
        edge = _shade(self.skin, 0.78)
        for k in range(4):
            fx = hx - 0.3 * s * scale + k * 0.17 * s * scale
            top = hy - 0.35 * s * scale - fl + (0.04 * s * scale if k in (0, 3) else 0.0)
            d.rounded_rectangle([fx, top, fx + fw, top + fl + 0.2 * s * scale], radius=fw / 2, fill=self.skin, outline=edge)
        tx = hx + 0.3 * s * scale
        d.rounded_rectangle([tx, hy - 0.45 * s * scale, tx + fw * 1.1, hy + 0.05 * s * scale], radius=fw / 2, fill=self.skin, outline=edge)

    def draw(self, t: float) -> Image.Image:
        """Return a new canvas image (oversized, RGB) showing the scene at ``t`` seconds."""
        img = self.background.copy()
        p = self.pose(t)
        d = ImageDraw.Draw(img)
        # contact shadow, fading and shrinking with height
        fade = max(0.0, 1.0 - p.height / (0.45 * self.c.ch))
        if fade > 0.05:
            sh = self.shadow if fade > 0.95 else self.shadow.point(lambda v: int(v * fade))
            sy = self.c.floor_y if p.shadow_y is None else p.shadow_y
            img.paste((0, 0, 0), (int(p.x - sh.width / 2), int(sy - sh.height / 2)), sh)
        if p.hand is not None:
            self._draw_arm(d, p.hand, p.scale)
        spr = self._sprite(p.angle, p.scale)
        img.paste(spr, (int(round(p.x - spr.width / 2)), int(round(p.y - spr.height / 2))), spr)
        if p.hand is not None:
            self._draw_fingers(d, p.hand, p.scale, p.grasp)
        return img


# --------------------------------------------------------------------------------------------
# camera and whole-frame rendering


class Camera:
    """Head-mounted camera motion for one video: slow drift, head bob, roll, zoom breathing,
    occasional quick glances, and auto-exposure wobble.  A smooth, deterministic function of time.

    Why sums of sines with seeded frequencies/phases: they are smooth (no frame-to-frame jumps a
    real head cannot make), cheap, and reproducible without carrying random state across frames.
    """

    def __init__(self, seed: int, size: tuple[int, int] = (320, 240), duration_hint: float = 600.0) -> None:
        self.c = _Canvas(size)
        rng = np.random.default_rng([seed, 3])
        self.drift = [(rng.uniform(0.02, 0.09), rng.uniform(0, 2 * math.pi), rng.uniform(0.4, 1.0)) for _ in range(3)]
        self.drift_y = [(rng.uniform(0.03, 0.11), rng.uniform(0, 2 * math.pi), rng.uniform(0.4, 1.0)) for _ in range(2)]
        self.bob = [(rng.uniform(1.4, 2.4), rng.uniform(0, 2 * math.pi)), (rng.uniform(2.6, 3.7), rng.uniform(0, 2 * math.pi))]
        self.roll = [(rng.uniform(0.03, 0.1), rng.uniform(0, 2 * math.pi)), (rng.uniform(0.9, 1.6), rng.uniform(0, 2 * math.pi))]
        self.zoom = (rng.uniform(0.02, 0.06), rng.uniform(0, 2 * math.pi))
        self.expo = (rng.uniform(0.02, 0.05), rng.uniform(0, 2 * math.pi))
        n_glance = int(duration_hint / 9)
        self.glances = sorted(
            (float(rng.uniform(0, duration_hint)), float(rng.choice([-1.0, 1.0])) * rng.uniform(0.5, 1.0), float(rng.uniform(0.5, 1.0)))
            for _ in range(n_glance)
        )

    def params(self, t: float) -> tuple[float, float, float, float, float]:
        """``(dx, dy, roll_degrees, zoom, exposure_gain)`` at global time ``t``."""
        c = self.c
        tau = 2 * math.pi
        lim = c.m - 0.08 * c.w  # keep the rotated, shifted view inside the canvas
        dx = sum(w * math.sin(tau * f * t + p) for f, p, w in self.drift) / 2.0 * lim * 0.7
        dy = sum(w * math.sin(tau * f * t + p) for f, p, w in self.drift_y) / 1.4 * lim * 0.45
        for t0, amp, length in self.glances:  # quick look aside and back
            if t0 <= t <= t0 + length:
                dx += amp * lim * 0.45 * math.sin(math.pi * (t - t0) / length) ** 2
        bob = c.u * (1.6 * math.sin(tau * self.bob[0][0] * t + self.bob[0][1]) + 0.7 * math.sin(tau * self.bob[1][0] * t + self.bob[1][1]))
        dy += bob
        dx += 0.5 * c.u * math.sin(tau * self.bob[1][0] * 0.5 * t + self.bob[0][1])
        dx = max(-lim, min(lim, dx))
        dy = max(-lim, min(lim, dy))
        roll = 2.2 * math.sin(tau * self.roll[0][0] * t + self.roll[0][1]) + 0.6 * math.sin(tau * self.roll[1][0] * t + self.roll[1][1])
        zoom = 1.02 + self.zoom[0] * (0.5 + 0.5 * math.sin(tau * 0.035 * t + self.zoom[1]))
        gain = 1.0 + self.expo[0] * math.sin(tau * 0.05 * t + self.expo[1])
        return dx, dy, roll, zoom, gain

    def view(self, canvas: Image.Image, t: float) -> Image.Image:
        """Warp the oversized canvas into the output frame as seen by the camera at time ``t``."""
        c = self.c
        dx, dy, roll, zoom, _ = self.params(t)
        a = math.radians(roll)
        ca, sa = math.cos(a) / zoom, math.sin(a) / zoom
        cx, cy = c.w / 2.0, c.h / 2.0
        # output (x, y) -> input: R(roll)/zoom about the centre, then translate into the canvas
        coeffs = (ca, -sa, c.m + cx + dx - ca * cx + sa * cy, sa, ca, c.m + cy + dy - sa * cx - ca * cy)
        return canvas.transform((c.w, c.h), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)


class VideoRenderer:
    """Renders frames of one video (a fixed camera and noise pattern) for any scene and time.

    Why a class: it keeps the camera, the noise bank and the current scene's pre-drawn assets
    alive between frames; :func:`render_frame` is the stateless convenience wrapper.
    """

    NOISE_BANK = 8
    _NOISE_OFFSET = 32

    def __init__(self, seed: int, size: tuple[int, int] = (320, 240), duration_hint: float = 600.0) -> None:
        self.seed = int(seed)
        self.size = (int(size[0]), int(size[1]))
        self.camera = Camera(self.seed, self.size, duration_hint)
        rng = np.random.default_rng([self.seed, 5])
        # Noise is stored offset by +_NOISE_OFFSET (uint8 cannot hold signed values); the offset is
        # removed again inside the single ImageChops.add pass in render_image.
        self.noise: list[Image.Image] = []
        w, h = self.size
        for _ in range(self.NOISE_BANK):
            n = rng.normal(0.0, 2.6, size=(h, w, 3))
            n += rng.normal(0.0, 1.2, size=(h, w, 1))  # luma-correlated part, like real sensor noise
            self.noise.append(Image.fromarray(np.clip(np.rint(n) + self._NOISE_OFFSET, 0, 255).astype(np.uint8)))
        self._scene: Scene | None = None
        self._renderer: SceneRenderer | None = None

    def scene_renderer(self, scene: Scene) -> SceneRenderer:
        if self._renderer is None or self._scene != scene:
            self._renderer = SceneRenderer(scene, self.size)
            self._scene = scene
        return self._renderer

    def render_image(self, scene: Scene, t_in_scene: float, t_global: float) -> Image.Image:
        """Frame as a PIL RGB image (what the encoder consumes directly)."""
        canvas = self.scene_renderer(scene).draw(t_in_scene)
        img = self.camera.view(canvas, t_global)
        # one saturating C pass applies exposure gain and signed noise:
        # add() computes (img + noise') / scale + offset with noise' = noise + K, scale = 1/gain
        gain = self.camera.params(t_global)[4]
        k = (int(round(t_global * 1000.0)) * 2654435761 + self.seed) % self.NOISE_BANK
        img = ImageChops.add(img, self.noise[k], scale=1.0 / gain, offset=-int(round(gain * self._NOISE_OFFSET)))
        return img

    def render(self, scene: Scene, t_in_scene: float, t_global: float) -> np.ndarray:
        """Frame as an ``H x W x 3`` uint8 array."""
        return np.asarray(self.render_image(scene, t_in_scene, t_global))


@lru_cache(maxsize=4)
def _video_renderer(seed: int, size: tuple[int, int]) -> VideoRenderer:
    return VideoRenderer(seed, size)


def render_frame(
    scene: Scene,
    t_in_scene: float,
    t_global: float,
    seed: int = 0,
    size: tuple[int, int] = (320, 240),
) -> np.ndarray:
    """Render one ``H x W x 3`` uint8 frame of ``scene`` at ``t_in_scene`` seconds into the scene.

    ``t_global`` (seconds into the video) drives the head-camera motion and ``seed`` selects the
    video's camera/noise pattern, so consecutive calls produce a smoothly moving, deterministic
    view.  Renderers are cached, so calling this per frame is cheap.
    """
    return _video_renderer(int(seed), (int(size[0]), int(size[1]))).render(scene, t_in_scene, t_global)
