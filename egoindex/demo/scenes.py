"""A fast numpy/PIL renderer for synthetic head-camera ("egocentric") video (vocabulary in :mod:`egoindex.demo.vocab`).

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

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from egoindex.demo.paint import jitter, lerp, shade, smoothstep
from egoindex.demo.rooms import Canvas, room_background
from egoindex.demo.sprites import object_sprite, shadow_sprite
from egoindex.demo.vocab import (
    ACTIONS,
    COLOURS,
    MOTION_ACTIONS,
    MOTION_OPPOSITE,
    OBJECTS,
    ROOMS,
    SKIN_TONES,
    SLEEVES,
    SURFACES,
    Scene,
)

__all__ = [
    "ROOMS",
    "OBJECTS",
    "COLOURS",
    "ACTIONS",
    "MOTION_ACTIONS",
    "MOTION_OPPOSITE",
    "SURFACES",
    "Scene",
    "SceneRenderer",
    "Camera",
    "VideoRenderer",
    "render_frame",
    "motion_window",
]

#: Seconds a directional motion rests at each end of its scene (at most a tenth of the scene).
MOTION_HOLD_S = 0.3


def motion_window(duration: float) -> tuple[float, float]:
    """``(t0, t1)``, seconds into a scene of ``duration``: when a directional action
    (:data:`MOTION_ACTIONS`) moves. The object rests for the same time before and after, so the
    window is symmetric about the scene's middle (what makes the time-reversal of one direction
    exactly the other: see :meth:`SceneRenderer.pose`)."""
    hold = min(MOTION_HOLD_S, 0.1 * float(duration))
    return hold, float(duration) - hold

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
        self.c = Canvas(size)
        rng = np.random.default_rng([scene.variant, 11])
        self.rng_side = 1.0 if rng.random() < 0.5 else -1.0
        self.obj_px = max(8, int(round(self.c.h * 0.25 * rng.uniform(0.9, 1.12))))
        self.sprite = object_sprite(scene.object, COLOURS[scene.colour], self.obj_px)
        self.shadow = shadow_sprite(self.obj_px)
        self.skin = SKIN_TONES[int(rng.integers(0, len(SKIN_TONES)))]
        self.sleeve = SLEEVES[int(rng.integers(0, len(SLEEVES)))]
        self.x0 = self.c.cw * (0.5 + rng.uniform(-0.08, 0.08))
        self.shake_hz = float(rng.uniform(2.8, 4.0))
        self.spin_dps = float(rng.uniform(180, 320)) * (1 if rng.random() < 0.5 else -1)
        self.bounce_period = float(rng.uniform(0.7, 1.0))
        bg = room_background(scene.room, size, scene.variant if scene.room_seed is None else scene.room_seed)
        if scene.action == "falls":  # a small table to fall from
            d = ImageDraw.Draw(bg)
            c, u = self.c, self.c.u
            tx = self.x0 - self.rng_side * 0.2 * c.cw
            top = c.horizon + 6 * u
            wood = jitter(rng, (150, 105, 65), 15)
            for lx in (tx - 38 * u, tx + 32 * u):
                d.rectangle([lx, top, lx + 6 * u, c.floor_y - 8 * u], fill=shade(wood, 0.7))
            d.rectangle([tx - 44 * u, top - 6 * u, tx + 44 * u, top + 4 * u], fill=wood, outline=shade(wood, 0.6))
            self.table = (tx, top - 6 * u)
        if scene.action in MOTION_ACTIONS:
            # a separate stream, so the default actions' draws above are untouched
            mrng = np.random.default_rng([scene.variant, 13])
            self.slide_amp = self.c.cw * float(mrng.uniform(0.16, 0.24))
            self.rise_amp = self.c.ch * float(mrng.uniform(0.26, 0.36))
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
                u = smoothstep((t - t_in) / (t_reach - t_in))
                hand = (lerp(base[0], palm_at_obj[0], u), lerp(base[1], palm_at_obj[1], u))
                return _Pose(ox, oy, hand=hand)
            if t < t_grip:
                return _Pose(ox, oy, hand=palm_at_obj, grasp=True)
            u = smoothstep((t - t_grip) / (t_lift - t_grip))
            tgt = (c.cw * 0.55, c.ch * 0.58)
            wob = 0.0 if t < t_lift else math.sin((t - t_lift) * 2.5)
            hx = lerp(palm_at_obj[0], tgt[0], u) + 6 * c.u * wob
            hy = lerp(palm_at_obj[1], tgt[1], u) + 3 * c.u * math.sin((t - t_grip) * 1.7) * u
            scale = 1.0 + 0.55 * u
            return _Pose(hx - 0.1 * s * scale, hy - 0.45 * s * scale, 8 * wob * u, scale, height=(oy - hy) + 0.45 * s, hand=(hx, hy), grasp=True)
        if a == "shakes":
            scale = 1.45
            u = smoothstep(t / 0.8)
            rest = (c.cw * 0.52, c.ch * 0.62)
            base = (c.cw * 0.64, c.ch + s * 0.8)
            ph = 2 * math.pi * self.shake_hz * t
            amp = u * (0.6 + 0.4 * abs(math.sin(t * 0.7)))
            hx = lerp(base[0], rest[0], u) + amp * 0.08 * c.cw * math.sin(ph)
            hy = lerp(base[1], rest[1], u) + amp * 0.025 * c.ch * math.sin(2 * ph)
            return _Pose(hx - 0.1 * s * scale, hy - 0.45 * s * scale, amp * 18 * math.sin(ph + 0.6), scale, height=c.ch, hand=(hx, hy), grasp=True)
        if a in MOTION_ACTIONS:
            return self._directional_pose(t, ground)
        raise ValueError(a)  # pragma: no cover

    def _directional_pose(self, t: float, ground: float) -> _Pose:
        """A directional action: one smooth, monotone move between two rest points.

        Why this shape: with ``f`` = smoothstep over the symmetric :func:`motion_window`,
        ``f(1 - u) = 1 - f(u)``, so ``pose_left(t) == pose_right(D - t)`` and ``pose_rises(t) ==
        pose_sinks(D - t)`` exactly: a pair covers the same set of positions (same start/end
        points, same speed profile, no rotation), and only the order of frames tells the
        directions apart. Rest points and the rest of the look come from ``variant``, never from
        the direction, so a scene and its opposite with the same variant differ only in time."""
        t0, t1 = motion_window(self.scene.duration)
        u = smoothstep((t - t0) / (t1 - t0)) if t1 > t0 else 1.0
        a = self.scene.action
        if a in ("slides left", "slides right"):
            left, right = self.x0 - self.slide_amp, self.x0 + self.slide_amp
            x = right + (left - right) * u if a == "slides left" else left + (right - left) * u
            return _Pose(x, ground)
        h = self.rise_amp * (u if a == "rises" else 1.0 - u)
        return _Pose(self.x0, ground - h, height=h)

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
        mid = (lerp(base[0], wrist[0], 0.45), lerp(base[1], wrist[1], 0.45))
        d.line([base, mid], fill=self.sleeve, width=int(width * 1.25))
        r = 0.36 * s * scale
        d.ellipse([hx - r, hy - r * 0.85, hx + r, hy + r * 0.85], fill=self.skin, outline=shade(self.skin, 0.8))

    def _draw_fingers(self, d: ImageDraw.ImageDraw, hand: tuple[float, float], scale: float, grasp: bool) -> None:
        s = self.obj_px
        hx, hy = hand
        fw, fl = 0.13 * s * scale, (0.26 if grasp else 0.36) * s * scale
        edge = shade(self.skin, 0.78)
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
        self.c = Canvas(size)
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
