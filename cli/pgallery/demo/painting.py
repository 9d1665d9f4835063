"""Paint one sample painting: a composition of the painter's family, overpainted with the
painter's brush. A pure function of its arguments (numpy's seeded generators)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pgallery.demo.painters import BRUSHES, COSTUMES, PALETTES, Brush, Colour, Painter

LONG_SIDE = 320                    # px, the longest side of every painting


# -- drawing helpers ---------------------------------------------------------------------------

def _jitter(colour, rng: np.random.Generator, amount: float) -> Colour:
    c = np.asarray(colour, float) + rng.normal(0.0, amount, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _mix(a, b, t: float) -> Colour:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _vertical_gradient(size, top, bottom, image=None, box=None) -> Image.Image:
    """A vertical gradient from ``top`` to ``bottom`` (whole image, or pasted in ``box``)."""
    w, h = size if box is None else (box[2] - box[0], box[3] - box[1])
    t = np.linspace(0.0, 1.0, max(h, 1))[:, None, None]
    rows = np.asarray(top, float) * (1 - t) + np.asarray(bottom, float) * t
    tile = Image.fromarray(np.repeat(rows, w, axis=1).astype(np.uint8), "RGB")
    if image is None:
        return tile
    image.paste(tile, box[:2])
    return image


def _figure(draw, x, y, h, body, skin, rng, halo=None):
    """A standing figure: a robe (trapezoid), a head, optionally a halo."""
    w = h * 0.32
    if halo:
        r = h * 0.16
        draw.ellipse([x - r, y - r * 0.2, x + r, y + r * 1.8], fill=halo)
    draw.polygon([(x - w * 0.35, y + h * 0.2), (x + w * 0.35, y + h * 0.2),
                  (x + w * 0.6, y + h), (x - w * 0.6, y + h)], fill=body)
    r = h * 0.09
    draw.ellipse([x - r, y, x + r, y + 2.2 * r], fill=skin)


def _tree(draw, x, ground, h, trunk, leaves, rng, poplar=False):
    draw.rectangle([x - h * 0.03, ground - h * 0.45, x + h * 0.03, ground], fill=trunk)
    rx = h * (0.12 if poplar else 0.28)
    draw.ellipse([x - rx, ground - h, x + rx, ground - h * 0.35], fill=leaves)


# -- composition families ----------------------------------------------------------------------

def _landscape(img, draw, rng, pal, subject, w, h):
    horizon = int(h * rng.uniform(0.45, 0.62))
    _vertical_gradient((w, h), _jitter(pal[0] if subject != 4 else pal[1], rng, 8),
                       _jitter(_mix(pal[3], (255, 255, 255), 0.4), rng, 8), img,
                       (0, 0, w, horizon))
    _vertical_gradient((w, h), _jitter(pal[4], rng, 8), _jitter(pal[2], rng, 8), img,
                       (0, horizon, w, h))
    for _ in range(int(rng.integers(2, 5))):       # clouds
        cx, cy = rng.uniform(0, w), rng.uniform(0.05, 0.35) * h
        draw.ellipse([cx - 40, cy - 10, cx + 40, cy + 10], fill=_jitter((240, 240, 236), rng, 8))
    hill = [(0, horizon)] + [(x, horizon - rng.uniform(0, h * 0.18))
                             for x in np.linspace(0, w, 6)] + [(w, horizon)]
    draw.polygon(hill, fill=_jitter(_mix(pal[4], pal[1], 0.4), rng, 10))
    if subject == 0:                                 # river and windmill
        draw.polygon([(w * 0.3, h), (w * 0.55, h), (w * 0.52, horizon), (w * 0.47, horizon)],
                     fill=_jitter(pal[0], rng, 10))
        mx, my = w * 0.7, horizon - 10
        draw.rectangle([mx - 6, my - 40, mx + 6, my + 10], fill=pal[1])
        for a in (0.3, 1.87, 3.44, 5.01):
            draw.line([mx, my - 40, mx + 34 * math.cos(a), my - 40 + 34 * math.sin(a)],
                      fill=(60, 50, 40), width=3)
    elif subject == 2:                               # castle on the hill
        cx, top = w * rng.uniform(0.35, 0.65), horizon - h * 0.3
        draw.rectangle([cx - 30, top, cx + 30, horizon - h * 0.12], fill=_jitter(pal[2], rng, 6))
        for k in range(-30, 30, 12):
            draw.rectangle([cx + k, top - 8, cx + k + 6, top], fill=_jitter(pal[2], rng, 6))
    elif subject == 4:                               # mountains and lake
        for k in range(3):
            x0 = rng.uniform(-40, w * 0.6)
            draw.polygon([(x0, horizon), (x0 + 90, horizon - rng.uniform(50, 100)),
                          (x0 + 180, horizon)], fill=_jitter(pal[2], rng, 12))
        draw.rectangle([0, horizon, w, horizon + h * 0.2], fill=_jitter(pal[0], rng, 6))
    n_trees = 6 if subject == 3 else 3
    for k in range(n_trees):
        x = (k + 0.5) * w / n_trees + rng.normal(0, 6)
        _tree(draw, x, horizon + rng.uniform(5, 30), rng.uniform(50, 90), pal[1],
              _jitter(pal[4], rng, 14), rng, poplar=subject == 3)


def _seascape(img, draw, rng, pal, subject, w, h):
    horizon = int(h * rng.uniform(0.4, 0.55))
    stormy = subject in (0, 3)
    sky_top = pal[1] if stormy else pal[4]
    _vertical_gradient((w, h), _jitter(sky_top, rng, 8), _jitter(pal[2], rng, 8), img,
                       (0, 0, w, horizon))
    _vertical_gradient((w, h), _jitter(pal[0], rng, 8), _jitter(pal[1], rng, 8), img,
                       (0, horizon, w, h))
    for _ in range(int(rng.integers(25, 45)) if stormy else 10):   # wave crests
        x, y = rng.uniform(0, w), rng.uniform(horizon + 5, h)
        span = rng.uniform(10, 40) * (1 + (y - horizon) / h)
        draw.arc([x - span, y - 6, x + span, y + 6], 200, 340, fill=_jitter(pal[2], rng, 10),
                 width=2)
    if subject == 0:                                   # rocks and lighthouse
        draw.polygon([(w * 0.6, h), (w * 0.7, horizon + 20), (w * 0.95, horizon + 10), (w, h)],
                     fill=_jitter(pal[4], rng, 8))
        lx = w * 0.8
        draw.rectangle([lx - 7, horizon - 60, lx + 7, horizon + 14], fill=(230, 226, 218))
        draw.polygon([(lx - 9, horizon - 60), (lx + 9, horizon - 60), (lx, horizon - 74)],
                     fill=(160, 30, 30))
        draw.ellipse([lx - 18, horizon - 78, lx + 18, horizon - 50], fill=(250, 236, 150))
    else:
        n_boats = 4 if subject == 2 else 2
        for k in range(n_boats):
            bx = w * (0.15 + 0.7 * k / max(n_boats - 1, 1)) + rng.normal(0, 10)
            by = horizon + rng.uniform(8, 40)
            draw.polygon([(bx - 22, by), (bx + 22, by), (bx + 14, by + 9), (bx - 14, by + 9)],
                         fill=(60, 40, 30))
            if subject == 3 and k == 0:
                draw.line([bx, by, bx + 20, by - 35], fill=(50, 40, 30), width=3)
            else:
                draw.polygon([(bx, by - 2), (bx, by - 44), (bx + 18, by - 4)],
                             fill=_jitter((240, 236, 226), rng, 6))
        if subject == 2:
            draw.rectangle([0, h * 0.85, w, h], fill=_jitter(pal[4], rng, 8))


def _portrait(img, draw, rng, pal, subject, w, h):
    _vertical_gradient((w, h), _jitter(_mix(pal[0], (0, 0, 0), 0.3), rng, 6),
                       _jitter(pal[0], rng, 6), img, (0, 0, w, h))
    costume = _mix(COSTUMES[subject % len(COSTUMES)], pal[1], 0.25)
    cx = w * rng.uniform(0.44, 0.56)
    shoulders = h * rng.uniform(0.62, 0.7)
    draw.ellipse([cx - w * 0.45, shoulders, cx + w * 0.45, h * 1.4], fill=_jitter(costume, rng, 6))
    skin = _jitter(pal[3], rng, 8)
    draw.rectangle([cx - w * 0.07, h * 0.5, cx + w * 0.07, shoulders + 8], fill=skin)
    fw, fh = w * rng.uniform(0.17, 0.21), h * rng.uniform(0.19, 0.23)
    fy = h * 0.36
    draw.ellipse([cx - fw, fy - fh, cx + fw, fy + fh], fill=skin)
    hair = (200, 200, 196) if subject == 1 else _jitter((60, 40, 26), rng, 10)
    draw.chord([cx - fw - 3, fy - fh - 6, cx + fw + 3, fy + fh * 0.4], 180, 360, fill=hair)
    for ex in (-0.4, 0.4):
        draw.ellipse([cx + ex * fw - 3, fy - 4, cx + ex * fw + 3, fy + 1], fill=(40, 30, 26))
    if subject == 1:                                   # white beard
        draw.chord([cx - fw, fy, cx + fw, fy + fh * 1.6], 0, 180, fill=(230, 230, 226))
    if subject == 2:                                   # lace collar
        draw.ellipse([cx - w * 0.2, shoulders - 10, cx + w * 0.2, shoulders + 16],
                     fill=(244, 242, 236))
    if subject == 3:                                   # pearl necklace
        for k in range(9):
            a = math.pi * (0.15 + 0.7 * k / 8)
            px, py = cx + w * 0.09 * math.cos(a), shoulders - 2 + 10 * math.sin(a)
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=(250, 250, 244))


def _stilllife(img, draw, rng, pal, subject, w, h):
    _vertical_gradient((w, h), _jitter(_mix(pal[0], (0, 0, 0), 0.4), rng, 5),
                       _jitter(pal[0], rng, 6), img, (0, 0, w, h))
    table = int(h * rng.uniform(0.6, 0.7))
    draw.rectangle([0, table, w, h], fill=_jitter(pal[1], rng, 8))
    draw.line([0, table, w, table], fill=_jitter(pal[2], rng, 8), width=2)
    if subject == 2:                                   # vase of flowers
        cx = w * 0.5
        draw.ellipse([cx - 30, table - 80, cx + 30, table], fill=(40, 70, 150))
        for _ in range(14):
            fx, fy = cx + rng.normal(0, 38), table - 100 + rng.normal(0, 35)
            r = rng.uniform(8, 14)
            draw.ellipse([fx - r, fy - r, fx + r, fy + r],
                         fill=_jitter(pal[int(rng.integers(0, 5))] if rng.random() < 0.5
                                      else (220, 60, 60), rng, 20))
        return
    if subject == 3:                                   # skull and candle
        sx = w * 0.4
        draw.ellipse([sx - 32, table - 58, sx + 32, table - 4], fill=(226, 216, 190))
        for ex in (-12, 12):
            draw.ellipse([sx + ex - 7, table - 40, sx + ex + 7, table - 26], fill=(30, 24, 20))
        draw.rectangle([w * 0.72 - 6, table - 90, w * 0.72 + 6, table], fill=(240, 236, 220))
        draw.ellipse([w * 0.72 - 5, table - 104, w * 0.72 + 5, table - 88], fill=(255, 210, 80))
        return
    fruit = (236, 210, 60) if subject == 0 else (190, 40, 36)
    for _ in range(int(rng.integers(4, 7))):
        fx, r = rng.uniform(w * 0.15, w * 0.85), rng.uniform(12, 20)
        fy = table + rng.uniform(-4, 10)
        draw.ellipse([fx - r, fy - 2 * r, fx + r, fy], fill=_jitter(fruit, rng, 14))
    jx = w * rng.uniform(0.6, 0.75)
    colour = (190, 194, 200) if subject == 0 else (120, 60, 110)
    draw.rectangle([jx - 18, table - 90, jx + 18, table - 6], fill=_jitter(colour, rng, 8))
    draw.ellipse([jx - 22, table - 30, jx + 22, table], fill=_jitter(colour, rng, 8))


def _interior(img, draw, rng, pal, subject, w, h):
    _vertical_gradient((w, h), _jitter(pal[2], rng, 8), _jitter(pal[1], rng, 8), img, (0, 0, w, h))
    floor = int(h * 0.72)
    for i in range(8):                                  # tiled floor
        for j in range(3):
            if (i + j) % 2 == 0:
                y0 = floor + j * (h - floor) / 3
                draw.rectangle([i * w / 8, y0, (i + 1) * w / 8, y0 + (h - floor) / 3],
                               fill=_jitter(pal[0], rng, 6))
    if subject == 2:                                    # columns
        for k in range(4):
            x = w * (0.12 + 0.25 * k)
            draw.rectangle([x - 9, h * 0.1, x + 9, floor], fill=_jitter((236, 232, 222), rng, 6))
        draw.rectangle([w * 0.3, 0, w * 0.7, h * 0.12], fill=(250, 248, 236))
        return
    wx = w * 0.08
    draw.rectangle([wx, h * 0.12, wx + w * 0.22, h * 0.55], fill=_jitter((236, 236, 210), rng, 6))
    draw.line([wx + w * 0.11, h * 0.12, wx + w * 0.11, h * 0.55], fill=pal[0], width=2)
    if subject == 3:
        draw.rectangle([w * 0.6, h * 0.25, w * 0.8, floor], fill=(252, 240, 190))
        return
    draw.rectangle([w * 0.45, floor - 40, w * 0.85, floor - 32], fill=_jitter(pal[0], rng, 6))
    _figure(draw, w * rng.uniform(0.45, 0.6), h * 0.3, h * 0.5,
            (40, 80, 150) if subject == 1 else _jitter(pal[4], rng, 10), pal[3], rng)


def _night(img, draw, rng, pal, subject, w, h):
    _vertical_gradient((w, h), _jitter(pal[2], rng, 4), _jitter(pal[1], rng, 6), img,
                       (0, 0, w, h))
    horizon = int(h * rng.uniform(0.6, 0.72))
    if subject in (0, 3):
        mx, my = w * rng.uniform(0.2, 0.8), h * rng.uniform(0.12, 0.3)
        draw.ellipse([mx - 16, my - 16, mx + 16, my + 16], fill=_jitter(pal[3], rng, 6))
        draw.rectangle([mx - 4, horizon + 8, mx + 4, h], fill=_mix(pal[3], pal[0], 0.5))
    n_stars = 60 if subject == 1 else 15
    for _ in range(n_stars):
        sx, sy = rng.uniform(0, w), rng.uniform(0, horizon * 0.8)
        r = rng.uniform(0.6, 2.2 if subject == 1 else 1.2)
        draw.ellipse([sx - r, sy - r, sx + r, sy + r], fill=_jitter(pal[3], rng, 10))
    x = 0.0
    while x < w:                                        # town silhouette
        bw, bh = rng.uniform(14, 30), rng.uniform(10, 45)
        draw.rectangle([x, horizon - bh, x + bw, horizon + 4], fill=pal[2])
        if rng.random() < 0.4:
            draw.rectangle([x + 4, horizon - bh + 6, x + 8, horizon - bh + 10], fill=pal[3])
        x += bw
    draw.rectangle([0, horizon, w, h], fill=_jitter(pal[0], rng, 5))
    if subject == 2:                                    # fireworks
        for _ in range(4):
            fx, fy = rng.uniform(30, w - 30), rng.uniform(20, horizon - 50)
            colour = _jitter((250, 120, 60) if rng.random() < 0.5 else (120, 220, 250), rng, 20)
            for a in np.linspace(0, 2 * math.pi, 14, endpoint=False):
                draw.line([fx, fy, fx + 22 * math.cos(a), fy + 22 * math.sin(a)], fill=colour)


def _religious(img, draw, rng, pal, subject, w, h):
    draw.rectangle([0, 0, w, h], fill=_jitter(pal[4], rng, 4))
    draw.rectangle([10, 40, w - 10, h - 10], fill=_jitter(pal[0], rng, 6))   # gold ground
    draw.pieslice([10, 4, w - 10, 80], 180, 360, fill=_jitter(pal[0], rng, 6))
    halo = _mix(pal[0], (255, 240, 180), 0.4)
    if subject == 0:
        _figure(draw, w / 2, h * 0.22, h * 0.7, _jitter(pal[2], rng, 8), pal[3], rng, halo)
        for x in (w * 0.2, w * 0.8):
            _figure(draw, x, h * 0.35, h * 0.55, _jitter(pal[1], rng, 8), pal[3], rng, halo)
    elif subject == 1:
        _figure(draw, w * 0.3, h * 0.4, h * 0.45, _jitter(pal[1], rng, 8), pal[3], rng, halo)
        _figure(draw, w * 0.7, h * 0.3, h * 0.55, _jitter(pal[2], rng, 8), pal[3], rng, halo)
    elif subject == 2:
        draw.polygon([(10, h), (w * 0.4, h * 0.5), (w * 0.7, h)], fill=(120, 110, 90))
        _figure(draw, w * 0.55, h * 0.45, h * 0.45, _jitter(pal[1], rng, 8), pal[3], rng, halo)
    else:
        draw.rectangle([w / 2 - 4, h * 0.15, w / 2 + 4, h * 0.9], fill=(80, 50, 30))
        draw.rectangle([w / 2 - 40, h * 0.25, w / 2 + 40, h * 0.25 + 7], fill=(80, 50, 30))
        for x in (w * 0.22, w * 0.78):
            _figure(draw, x, h * 0.45, h * 0.45, _jitter(pal[2 if x < w / 2 else 1], rng, 8),
                    pal[3], rng, halo)


def _figures(img, draw, rng, pal, subject, w, h):
    _landscape_ground = int(h * rng.uniform(0.5, 0.6))
    sky = (pal[2] if subject != 4 else pal[1])
    _vertical_gradient((w, h), _jitter(sky, rng, 8), _jitter(pal[3], rng, 8), img,
                       (0, 0, w, _landscape_ground))
    ground = pal[0] if subject == 4 else _mix(pal[4], (90, 110, 60), 0.5)
    _vertical_gradient((w, h), _jitter(ground, rng, 8), _jitter(_mix(ground, (0, 0, 0), 0.3),
                       rng, 8), img, (0, _landscape_ground, w, h))
    if subject == 0:                                    # sea and shell
        draw.rectangle([0, _landscape_ground, w, h], fill=_jitter((70, 130, 170), rng, 8))
        draw.pieslice([w * 0.35, h * 0.62, w * 0.65, h * 0.95], 180, 360, fill=(240, 210, 190))
    n = {0: 4, 1: 5, 2: 12, 3: 10, 4: 14}[subject]
    for _ in range(n):
        x = rng.uniform(w * 0.08, w * 0.92)
        fh = rng.uniform(0.25, 0.4) * h
        y = _landscape_ground - fh * rng.uniform(0.2, 0.7)
        body = _jitter(pal[int(rng.integers(0, 5))], rng, 16)
        if subject == 2:                                # horsemen
            draw.ellipse([x - 20, y + fh * 0.55, x + 20, y + fh * 0.85], fill=(90, 60, 40))
        _figure(draw, x, y, fh, body, _jitter((230, 190, 160), rng, 10), rng)
    if subject == 2:
        for _ in range(3):
            bx = rng.uniform(20, w - 20)
            draw.line([bx, h * 0.15, bx, h * 0.5], fill=(60, 40, 30), width=2)
            draw.rectangle([bx, h * 0.15, bx + 22, h * 0.27], fill=_jitter(pal[1], rng, 10))


def _abstract(img, draw, rng, pal, subject, w, h):
    draw.rectangle([0, 0, w, h], fill=_jitter((244, 242, 234), rng, 3))
    if subject == 0:                                    # grid of coloured rectangles
        xs = sorted(rng.uniform(0.15, 0.85, 2) * w)
        ys = sorted(rng.uniform(0.15, 0.85, 2) * h)
        cells = [(0, 0, xs[0], ys[0]), (xs[1], ys[1], w, h), (xs[0], ys[1], xs[1], h)]
        for box, colour in zip(cells, (pal[0], pal[1], pal[2])):
            draw.rectangle(box, fill=colour)
        for x in xs:
            draw.line([x, 0, x, h], fill=pal[3], width=6)
        for y in ys:
            draw.line([0, y, w, y], fill=pal[3], width=6)
        return
    for _ in range(int(rng.integers(5, 9))):
        colour = _jitter(pal[int(rng.integers(0, 5))], rng, 10)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(15, 60)
        if subject == 1:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        else:
            draw.polygon([(cx - r, cy + r), (cx + r, cy + r), (cx, cy - r)], fill=colour)
    for _ in range(int(rng.integers(3, 6))):
        draw.line([rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h)],
                  fill=(20, 20, 20), width=int(rng.integers(2, 5)))


def _study(img, draw, rng, pal, subject, w, h):
    draw.rectangle([0, 0, w, h], fill=_jitter(pal[0], rng, 4))
    ink = _jitter(pal[1], rng, 10)
    cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.4, 0.55)
    if subject == 0:                                    # horse's head: a long tilted oval
        draw.ellipse([cx - 40, cy - 70, cx + 20, cy + 50], outline=ink, width=2)
        draw.polygon([(cx - 20, cy - 70), (cx - 10, cy - 100), (cx, cy - 68)], outline=ink)
    elif subject == 1:
        for k in range(3):
            hx = w * (0.25 + 0.25 * k)
            draw.rounded_rectangle([hx - 22, cy - 30, hx + 22, cy + 30], 12, outline=ink, width=2)
    else:
        draw.ellipse([cx - 14, cy - 90, cx + 14, cy - 58], outline=ink, width=2)
        draw.polygon([(cx - 30, cy - 50), (cx + 30, cy - 50), (cx + 50, cy + 60),
                      (cx - 50, cy + 60)], outline=ink)
    for _ in range(int(rng.integers(60, 110))):       # shading hatches
        x, y = cx + rng.normal(0, 40), cy + rng.normal(0, 45)
        draw.line([x, y, x + 8, y - 6], fill=_jitter(pal[2], rng, 20), width=1)


FAMILIES = {"landscape": _landscape, "seascape": _seascape, "portrait": _portrait,
            "stilllife": _stilllife, "interior": _interior, "night": _night,
            "religious": _religious, "figures": _figures, "abstract": _abstract,
            "study": _study}
UPRIGHT = {"portrait", "religious", "study"}


# -- painting ----------------------------------------------------------------------------------

def _brushwork(img: Image.Image, brush: Brush, rng: np.random.Generator) -> Image.Image:
    """Overpaint with short strokes in the colours underneath, then grain, blur, varnish."""
    w, h = img.size
    pixels = np.asarray(img)
    draw = ImageDraw.Draw(img)
    count = int(brush.strokes * w * h / 100)
    xs = rng.integers(0, w, count)
    ys = rng.integers(0, h, count)
    if brush.angle is None:
        angles = rng.uniform(0, math.pi, count)
    else:
        angles = np.radians(brush.angle) + rng.normal(0, 0.2, count)
    lengths = brush.length * rng.uniform(0.6, 1.4, count)
    shifts = rng.normal(0, brush.jitter, (count, 3))
    colours = np.clip(pixels[ys, xs].astype(float) + shifts, 0, 255).astype(int)
    dx = np.cos(angles) * lengths / 2
    dy = np.sin(angles) * lengths / 2
    for i in range(count):
        draw.line([xs[i] - dx[i], ys[i] - dy[i], xs[i] + dx[i], ys[i] + dy[i]],
                  fill=tuple(colours[i].tolist()), width=brush.width)
    if brush.blur:
        img = img.filter(ImageFilter.GaussianBlur(brush.blur))
    array = np.asarray(img, dtype=float)
    array += rng.normal(0, brush.grain, array.shape[:2])[..., None]
    if brush.varnish:
        array = array * (1 - 0.25 * brush.varnish) + np.array([200, 160, 80]) * 0.25 * brush.varnish
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB")


def _canvas_size(family: str, rng: np.random.Generator) -> tuple[int, int]:
    short = int(rng.integers(int(LONG_SIDE * 0.7), int(LONG_SIDE * 0.82)))
    return (short, LONG_SIDE) if family in UPRIGHT else (LONG_SIDE, short)


def paint(painter: Painter, subject: int, seed: int, version: int = 0) -> Image.Image:
    """One painting: ``seed`` fixes the composition; a ``version`` > 0 repaints it with
    slightly shifted colours, different brushwork and a slightly different framing."""
    rng = np.random.default_rng([seed, 1])
    family = painter.family
    w, h = _canvas_size(family, rng)
    pal = list(PALETTES[painter.palette])
    if version:
        vary = np.random.default_rng([seed, 2, version])
        pal = [_jitter(c, vary, 10) for c in pal]
    img = Image.new("RGB", (w, h))
    FAMILIES[family](img, ImageDraw.Draw(img), rng, pal, subject, w, h)
    img = _brushwork(img, BRUSHES[painter.brush], np.random.default_rng([seed, 3, version]))
    if version:
        m = int(min(w, h) * 0.04 * version)
        img = img.crop((m, m // 2, w - m // 2, h - m)).resize((w, h), Image.Resampling.BILINEAR)
    return img
