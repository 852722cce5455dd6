"""Room backgrounds: each room drawn once per scene on an oversized canvas (the view drifts over it),
with its own palette and furniture so that a frame alone identifies the room.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from egoindex.demo.paint import jitter, shade
from egoindex.demo.vocab import RGB, ROOMS

# --------------------------------------------------------------------------------------------
# backgrounds


class Canvas:
    """Geometry of the oversized canvas the camera looks at (margin lets the view drift)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.w, self.h = size
        self.m = max(8, int(round(0.2 * self.h)))
        self.cw = self.w + 2 * self.m
        self.ch = self.h + 2 * self.m
        self.u = self.h / 240.0  # unit: 1 px at 240 lines
        self.horizon = int(self.ch * 0.47)
        self.floor_y = int(self.ch * 0.75)  # where objects touch the floor


def _floor_x(c: Canvas, vx: float, vy: float, xb: float, y: float) -> float:
    """x at height y on the perspective line from the vanishing point to (xb, bottom)."""
    return vx + (xb - vx) * (y - vy) / (c.ch - vy)


def _perspective_tiles(
    draw: ImageDraw.ImageDraw,
    c: Canvas,
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


def _wall_and_floor(draw: ImageDraw.ImageDraw, c: Canvas, wall: RGB, floor: RGB, skirting: RGB | None) -> None:
    draw.rectangle([0, 0, c.cw, c.horizon], fill=wall)
    draw.rectangle([0, c.horizon, c.cw, c.ch], fill=floor)
    if skirting is not None:
        draw.rectangle([0, c.horizon - 4 * c.u, c.cw, c.horizon], fill=skirting)


def _draw_kitchen(draw: ImageDraw.ImageDraw, c: Canvas, rng: np.random.Generator) -> None:
    u = c.u
    wall = jitter(rng, (238, 226, 184))
    _wall_and_floor(draw, c, wall, (200, 200, 200), None)
    light, dark = jitter(rng, (236, 236, 232), 6), jitter(rng, (70, 74, 84), 8)
    _perspective_tiles(draw, c, rng, 14, 7, lambda i, j: light if (i + j) % 2 else dark)
    # backsplash tiles
    top = c.horizon - 70 * u
    draw.rectangle([0, top, c.cw, c.horizon - 30 * u], fill=shade(wall, 1.12))
    step = 12 * u
    x = 0.0
    while x < c.cw:
        draw.line([(x, top), (x, c.horizon - 30 * u)], fill=shade(wall, 0.85), width=1)
        x += step
    # lower cabinets with worktop, upper cabinets, fridge
    cab = jitter(rng, (92, 140, 170), 20)
    draw.rectangle([0, c.horizon - 30 * u, c.cw, c.horizon + 6 * u], fill=cab)
    draw.rectangle([0, c.horizon - 34 * u, c.cw, c.horizon - 28 * u], fill=(60, 60, 64))
    n = 7
    for k in range(n):
        x0 = k * c.cw / n
        draw.rectangle([x0 + 2 * u, c.horizon - 26 * u, x0 + c.cw / n - 2 * u, c.horizon + 3 * u], outline=shade(cab, 0.7), width=max(1, int(u)))
        draw.rectangle([x0 + c.cw / n / 2 - 6 * u, c.horizon - 20 * u, x0 + c.cw / n / 2 + 6 * u, c.horizon - 17 * u], fill=(210, 210, 215))
    for k in range(4):
        x0 = c.cw * (0.05 + 0.2 * k)
        draw.rectangle([x0, 10 * u, x0 + c.cw * 0.16, top - 12 * u], fill=shade(cab, 1.1), outline=shade(cab, 0.7), width=max(1, int(u)))
    fx = c.cw * rng.uniform(0.72, 0.82)
    draw.rectangle([fx, 4 * u, fx + 70 * u, c.horizon + 8 * u], fill=(236, 238, 240), outline=(150, 150, 155), width=max(1, int(2 * u)))
    draw.line([(fx, c.horizon - 70 * u), (fx + 70 * u, c.horizon - 70 * u)], fill=(150, 150, 155), width=max(1, int(2 * u)))
    draw.rectangle([fx + 58 * u, c.horizon - 110 * u, fx + 62 * u, c.horizon - 80 * u], fill=(120, 120, 125))


def _draw_living_room(draw: ImageDraw.ImageDraw, c: Canvas, rng: np.random.Generator) -> None:
    u = c.u
    wall = jitter(rng, (226, 208, 180))
    _wall_and_floor(draw, c, wall, (150, 100, 60), (240, 240, 235))
    base = jitter(rng, (156, 104, 62), 14)
    tones = [shade(base, f) for f in (0.85, 0.95, 1.0, 1.08)]
    _perspective_tiles(draw, c, rng, 16, 1, lambda i, j: tones[(i * 7) % 4], line=shade(base, 0.6))
    # window with sky and frame
    wx = c.cw * rng.uniform(0.08, 0.2)
    draw.rectangle([wx, 20 * u, wx + 90 * u, c.horizon - 45 * u], fill=(170, 210, 240), outline=(250, 250, 250), width=max(1, int(4 * u)))
    draw.line([(wx + 45 * u, 20 * u), (wx + 45 * u, c.horizon - 45 * u)], fill=(250, 250, 250), width=max(1, int(3 * u)))
    draw.line([(wx, (20 * u + c.horizon - 45 * u) / 2), (wx + 90 * u, (20 * u + c.horizon - 45 * u) / 2)], fill=(250, 250, 250), width=max(1, int(3 * u)))
    # picture frame
    px = c.cw * rng.uniform(0.6, 0.75)
    draw.rectangle([px, 25 * u, px + 50 * u, 60 * u], fill=jitter(rng, (90, 150, 110), 40), outline=(60, 40, 20), width=max(1, int(3 * u)))
    # sofa
    sofa = jitter(rng, (70, 110, 130), 30)
    sx = c.cw * rng.uniform(0.3, 0.45)
    sw = 170 * u
    draw.rounded_rectangle([sx, c.horizon - 55 * u, sx + sw, c.horizon - 15 * u], radius=10 * u, fill=shade(sofa, 0.9))
    draw.rounded_rectangle([sx - 12 * u, c.horizon - 35 * u, sx + sw + 12 * u, c.horizon + 12 * u], radius=8 * u, fill=sofa)
    draw.line([(sx + sw / 2, c.horizon - 30 * u), (sx + sw / 2, c.horizon)], fill=shade(sofa, 0.7), width=max(1, int(2 * u)))
    # rug
    rug = jitter(rng, (180, 60, 70), 30)
    draw.ellipse([c.cw * 0.12, c.horizon + 40 * u, c.cw * 0.88, c.ch - 10 * u], fill=rug, outline=shade(rug, 1.3), width=max(1, int(4 * u)))
    draw.ellipse([c.cw * 0.22, c.horizon + 60 * u, c.cw * 0.78, c.ch - 40 * u], outline=shade(rug, 1.25), width=max(1, int(3 * u)))


def _draw_bedroom(draw: ImageDraw.ImageDraw, c: Canvas, rng: np.random.Generator) -> None:
    u = c.u
    wall = jitter(rng, (196, 200, 236))
    _wall_and_floor(draw, c, wall, jitter(rng, (150, 160, 180), 10), (245, 245, 250))
    # wallpaper stripes
    x = 0.0
    while x < c.cw:
        draw.rectangle([x, 0, x + 8 * u, c.horizon - 4 * u], fill=shade(wall, 1.08))
        x += 26 * u
    # bed with headboard, blanket, pillow
    bx = c.cw * rng.uniform(0.45, 0.6)
    bw = 180 * u
    wood = jitter(rng, (130, 90, 60), 15)
    draw.rectangle([bx, c.horizon - 80 * u, bx + 14 * u, c.horizon + 10 * u], fill=wood)
    draw.rounded_rectangle([bx, c.horizon - 80 * u, bx + bw, c.horizon - 60 * u], radius=8 * u, fill=wood)
    draw.rectangle([bx + 10 * u, c.horizon - 42 * u, bx + bw, c.horizon + 14 * u], fill=(240, 240, 246))
    blanket = jitter(rng, (230, 150, 170), 30)
    draw.rectangle([bx + 60 * u, c.horizon - 44 * u, bx + bw, c.horizon + 18 * u], fill=blanket)
    for k in range(4):
        draw.line([(bx + 60 * u, c.horizon - 30 * u + k * 14 * u), (bx + bw, c.horizon - 30 * u + k * 14 * u)], fill=shade(blanket, 1.2), width=max(1, int(3 * u)))
    draw.rounded_rectangle([bx + 18 * u, c.horizon - 58 * u, bx + 58 * u, c.horizon - 38 * u], radius=8 * u, fill=(252, 252, 255))
    # wardrobe and lamp
    wx = c.cw * rng.uniform(0.05, 0.15)
    draw.rectangle([wx, 10 * u, wx + 80 * u, c.horizon + 6 * u], fill=shade(wood, 1.15), outline=shade(wood, 0.7), width=max(1, int(2 * u)))
    draw.line([(wx + 40 * u, 10 * u), (wx + 40 * u, c.horizon + 6 * u)], fill=shade(wood, 0.7), width=max(1, int(2 * u)))
    lx = wx + 120 * u
    draw.polygon([(lx, 40 * u), (lx + 30 * u, 40 * u), (lx + 38 * u, 65 * u), (lx - 8 * u, 65 * u)], fill=(255, 236, 170))
    draw.line([(lx + 15 * u, 65 * u), (lx + 15 * u, c.horizon - 20 * u)], fill=(90, 90, 90), width=max(1, int(2 * u)))


def _draw_bathroom(draw: ImageDraw.ImageDraw, c: Canvas, rng: np.random.Generator) -> None:
    u = c.u
    wall = jitter(rng, (214, 240, 240), 8)
    _wall_and_floor(draw, c, wall, (120, 150, 190), None)
    grout = shade(wall, 0.8)
    step = 18 * u
    y = 0.0
    while y < c.horizon:
        draw.line([(0, y), (c.cw, y)], fill=grout, width=1)
        y += step
    x = 0.0
    while x < c.cw:
        draw.line([(x, 0), (x, c.horizon)], fill=grout, width=1)
        x += step
    t1, t2 = jitter(rng, (90, 130, 190), 10), jitter(rng, (110, 150, 205), 10)
    _perspective_tiles(draw, c, rng, 22, 9, lambda i, j: t1 if (i + j) % 2 else t2, line=(230, 230, 235))
    # bathtub, mirror, towel
    tx = c.cw * rng.uniform(0.5, 0.62)
    draw.rounded_rectangle([tx, c.horizon - 50 * u, tx + 190 * u, c.horizon + 16 * u], radius=14 * u, fill=(250, 250, 252), outline=(200, 205, 210), width=max(1, int(3 * u)))
    draw.rectangle([tx + 160 * u, c.horizon - 80 * u, tx + 166 * u, c.horizon - 48 * u], fill=(180, 180, 190))
    mx = c.cw * rng.uniform(0.1, 0.22)
    draw.ellipse([mx, 18 * u, mx + 70 * u, 88 * u], fill=(200, 225, 235), outline=(170, 170, 175), width=max(1, int(3 * u)))
    towel = jitter(rng, (240, 170, 80), 40)
    draw.rectangle([mx + 100 * u, 60 * u, mx + 140 * u, c.horizon - 20 * u], fill=towel)
    draw.rectangle([mx + 95 * u, 56 * u, mx + 145 * u, 62 * u], fill=(170, 170, 180))


def _draw_garden(draw: ImageDraw.ImageDraw, c: Canvas, rng: np.random.Generator) -> None:
    u = c.u
    hz = c.horizon
    for k in range(8):  # sky gradient in bands (cheap)
        y0, y1 = hz * k / 8, hz * (k + 1) / 8 + 1
        draw.rectangle([0, y0, c.cw, y1], fill=(120 + 12 * k, 180 + 7 * k, 240 - 2 * k))
    sx = c.cw * rng.uniform(0.7, 0.9)
    draw.ellipse([sx, 10 * u, sx + 34 * u, 44 * u], fill=(255, 240, 150))
    # hedge and fence
    hedge = jitter(rng, (50, 110, 50), 10)
    draw.rectangle([0, hz - 40 * u, c.cw, hz], fill=hedge)
    for k in range(int(c.cw / (20 * u)) + 1):
        draw.ellipse([k * 20 * u - 6 * u, hz - 52 * u, k * 20 * u + 20 * u, hz - 30 * u], fill=shade(hedge, 1.05 + 0.1 * (k % 2)))
    fence = jitter(rng, (190, 150, 105), 15)
    x = 0.0
    while x < c.cw:
        draw.polygon([(x, hz - 26 * u), (x + 7 * u, hz - 32 * u), (x + 14 * u, hz - 26 * u), (x + 14 * u, hz + 4 * u), (x, hz + 4 * u)], fill=fence, outline=shade(fence, 0.7))
        x += 20 * u
    # tree
    tx = c.cw * rng.uniform(0.1, 0.3)
    draw.rectangle([tx, hz - 90 * u, tx + 16 * u, hz + 10 * u], fill=(110, 75, 45))
    leaf = jitter(rng, (40, 130, 50), 15)
    for dx, dy, r in ((-30, -110, 38), (10, -130, 42), (40, -100, 36), (0, -90, 34)):
        draw.ellipse([tx + dx * u - r * u, hz + dy * u - r * u, tx + dx * u + r * u, hz + dy * u + r * u], fill=leaf)
    # lawn with mowing stripes and flowers
    g1, g2 = jitter(rng, (90, 170, 70), 8), jitter(rng, (76, 150, 60), 8)
    _perspective_tiles(draw, c, rng, 12, 1, lambda i, j: g1 if i % 2 else g2)
    for _ in range(40):
        fx, fy = rng.uniform(0, c.cw), rng.uniform(hz + 6 * u, c.ch)
        r = (1.5 + 3 * (fy - hz) / (c.ch - hz)) * u
        col = ((255, 255, 255), (255, 220, 60), (230, 80, 120))[int(rng.integers(0, 3))]
        draw.ellipse([fx - r, fy - r, fx + r, fy + r], fill=col)


def _draw_playroom(draw: ImageDraw.ImageDraw, c: Canvas, rng: np.random.Generator) -> None:
    u = c.u
    wall = jitter(rng, (250, 236, 160), 8)
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
    mats = [jitter(rng, p, 6) for p in pastel]
    _perspective_tiles(draw, c, rng, 10, 5, lambda i, j: mats[(i * 3 + j * 2) % len(mats)], line=(240, 240, 240))
    # toy shelf with boxes, play tent
    sx = c.cw * rng.uniform(0.55, 0.7)
    draw.rectangle([sx, c.horizon - 90 * u, sx + 120 * u, c.horizon + 6 * u], fill=(240, 240, 240), outline=(180, 180, 180), width=max(1, int(2 * u)))
    for row in range(3):
        yy = c.horizon - 88 * u + row * 31 * u
        draw.line([(sx, yy + 29 * u), (sx + 120 * u, yy + 29 * u)], fill=(180, 180, 180), width=max(1, int(2 * u)))
        for col in range(3):
            box = pastel[(row * 3 + col) % len(pastel)]
            draw.rectangle([sx + 6 * u + col * 38 * u, yy + 8 * u, sx + 36 * u + col * 38 * u, yy + 28 * u], fill=shade(box, 0.85))
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


def room_background(room: str, size: tuple[int, int], variant: int) -> Image.Image:
    """Draw a room on the oversized canvas, with lighting falloff and static texture."""
    c = Canvas(size)
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
