"""Object sprites (one distinct silhouette per object, supersampled) and their soft shadow.
"""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFilter

from egoindex.demo.paint import shade
from egoindex.demo.vocab import RGB

# --------------------------------------------------------------------------------------------
# objects


def object_sprite(obj: str, colour: RGB, px: int) -> Image.Image:
    """Draw ``obj`` in ``colour`` as an RGBA sprite of ``px`` x ``px`` (supersampled for smooth edges)."""
    ss = 3
    n = px * ss
    img = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    dark, light = shade(colour, 0.62), shade(colour, 1.35)
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


def shadow_sprite(px: int) -> Image.Image:
    """Soft dark ellipse used as the object's contact shadow (an 'L' mask for Image.paste)."""
    w, h = px, max(2, px // 4)
    m = Image.new("L", (w + 8, h + 8), 0)
    ImageDraw.Draw(m).ellipse([4, 4, w + 4, h + 4], fill=110)
    return m.filter(ImageFilter.GaussianBlur(2))
