"""A painting's dominant colours: five colours in CIE Lab with their shares of the picture.

    from pgallery.palette import extract_palette, parse_colours
    palette = extract_palette(read_image("sunflowers.jpg"))
    palette.lab, palette.shares, palette.hex()      # largest share first
    parse_colours(["#1e3a8a:3", "d4af37"])           # [("#1e3a8a", 0.75), ("#d4af37", 0.25)]

How: the image is reduced to a THUMBNAIL_SIDE px thumbnail (box filter: every pixel
counts once), its pixels converted from sRGB to CIE Lab (D65), and clustered by k-means
in Lab (k-means++ seeding from fixed seeds, so one image always gives one palette; the
best of three runs, near-identical clusters merged). Lab
is used because Euclidean distance there (CIE76 Delta E) follows perceived difference far
better than in RGB; the search ranks by the same distance (sql/idempotent/
26_search_by_colour.sql, which converts '#rrggbb' with the same formulas as here).

An image with fewer than five distinct colours gets fewer; shares sum to 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pgallery.errors import ArgError
from pgallery.intake import CheckedImage, decoding, read_image

COLOURS = 5                 # dominant colours kept per painting
THUMBNAIL_SIDE = 64         # the longest side clustered: 4096 pixels at most
ITERATIONS = 30             # k-means rounds at most (they converge in ~10)
SEED = 20231                # k-means++ seeding: fixed, so palettes are reproducible
RESTARTS = 3                # k-means runs from different seeds; the best is kept
MERGE_DELTA_E = 10.0        # clusters nearer than this (CIE76) are one colour

# sRGB (IEC 61966-2-1) to XYZ, D65 white; Lab against the same white.
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPSILON, _KAPPA = 216 / 24389, 24389 / 27


@dataclass(frozen=True)
class Palette:
    """Dominant colours, largest share first: ``lab`` (n x 3: L*, a*, b*), ``shares`` (n)."""

    lab: np.ndarray
    shares: np.ndarray

    def hex(self) -> list[str]:
        return [lab_to_hex(c) for c in self.lab]

    def __len__(self) -> int:
        return len(self.shares)


def srgb_to_lab(rgb) -> np.ndarray:
    """sRGB values in 0..255 (shape (..., 3)) to CIE Lab, D65."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), (_KAPPA * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_srgb(lab) -> np.ndarray:
    """CIE Lab (D65) to sRGB 0..255, clipped to the gamut."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f ** 3 > _EPSILON, f ** 3, (116 * f - 16) / _KAPPA) * _WHITE
    linear = np.clip(xyz @ _XYZ_TO_RGB.T, 0, 1)
    c = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.round(c * 255), 0, 255)


def lab_to_hex(lab) -> str:
    r, g, b = (int(v) for v in lab_to_srgb(lab))
    return f"#{r:02x}{g:02x}{b:02x}"


# The anchors of the index's histograms: the sRGB cube at six levels a channel in Lab, to
# four places, as SQL's colour_anchors() writes them out (a test holds the two equal).
_LEVELS = np.arange(6) * 51.0
ANCHORS = np.round(srgb_to_lab(np.stack(np.meshgrid(_LEVELS, _LEVELS, _LEVELS,
                                                    indexing="ij"), -1).reshape(-1, 3)), 4)
HISTOGRAM_WIDTH = 20.0      # Delta E: the kernel each colour spreads over the anchors


def histogram(lab, shares) -> np.ndarray:
    """A palette as the unit vector over the anchors that SQL's palette_histogram() makes
    (the index's vector): anchor a gets sum of share * exp(-dE(a, colour)^2 / (2 * 20^2)).
    The loader sends it with each palette, so a bulk write computes none in SQL."""
    lab = np.asarray(lab, dtype=np.float64).reshape(-1, 3)
    d2 = ((ANCHORS[:, None, :] - lab[None, :, :]) ** 2).sum(axis=2)
    h = (np.exp(-d2 / (2 * HISTOGRAM_WIDTH ** 2))
         * np.asarray(shares, dtype=np.float64)[None, :]).sum(axis=1)
    return (h / np.linalg.norm(h)).astype(np.float32)


def extract_palette(source, colours: int = COLOURS) -> Palette:
    """The dominant colours of an image (a path, bytes, a CheckedImage or a Pillow image).
    Raises the intake's typed errors (ImageNotFound, UnreadableImage, ...) for a bad one."""
    if isinstance(source, Image.Image):
        return palette_of_pixels(_thumbnail_pixels(source), colours)
    checked = source if isinstance(source, CheckedImage) else read_image(source, decode=False)
    with checked.open() as image, decoding(checked.name):
        pixels = _thumbnail_pixels(image)
    return palette_of_pixels(pixels, colours)


def _thumbnail_pixels(image: Image.Image) -> np.ndarray:
    if image.format == "JPEG":      # decode at a reduced scale: much faster, same colours
        image.draft("RGB", (THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))
    rgb = image.convert("RGB")
    scale = THUMBNAIL_SIDE / max(rgb.size)
    if scale < 1:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BOX)
    return np.asarray(rgb, dtype=np.float64).reshape(-1, 3)


def palette_of_pixels(rgb: np.ndarray, colours: int = COLOURS) -> Palette:
    """k-means in Lab over sRGB pixels (n x 3, 0..255): the palette, largest share first.

    The best of RESTARTS runs (least squared error; each seeded from SEED + its number), then
    clusters nearer than MERGE_DELTA_E merged: k-means splits one large flat colour into
    several near-identical ones rather than leave a centre unused, and a palette should
    say "70% this blue", not "35% and 35% of two indistinguishable blues"."""
    lab = srgb_to_lab(rgb)
    best = None
    for restart in range(RESTARTS):
        centres, labels, error = _kmeans(lab, colours, np.random.default_rng(SEED + restart))
        if best is None or error < best[2] - 1e-9:
            best = centres, labels, error
    centres, labels, _ = best
    counts = np.bincount(labels, minlength=len(centres)).astype(np.float64)
    centres, counts = _merge_near(centres[counts > 0], counts[counts > 0])
    order = np.lexsort((centres[:, 0], -counts))      # share, then lightness
    return Palette(lab=centres[order].astype(np.float32),
                   shares=(counts[order] / counts.sum()).astype(np.float32))


def _kmeans(lab: np.ndarray, k: int, rng: np.random.Generator):
    centres = _seed(lab, k, rng)
    for _ in range(ITERATIONS):
        labels = _nearest(lab, centres)
        counts = np.bincount(labels, minlength=len(centres))
        sums = np.stack([np.bincount(labels, weights=lab[:, c], minlength=len(centres))
                         for c in range(3)], axis=1)
        moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
        if np.abs(moved - centres).max() < 1e-3:
            break
        centres = moved
    labels = _nearest(lab, centres)
    return centres, labels, float(((lab - centres[labels]) ** 2).sum())


def _merge_near(centres: np.ndarray, counts: np.ndarray):
    """Merge the nearest two clusters (their pixel-weighted mean) while any two are within
    MERGE_DELTA_E."""
    centres, counts = list(centres), list(counts)
    while len(centres) > 1:
        pairs = [(np.linalg.norm(centres[i] - centres[j]), i, j)
                 for i in range(len(centres)) for j in range(i + 1, len(centres))]
        distance, i, j = min(pairs)
        if distance >= MERGE_DELTA_E:
            break
        total = counts[i] + counts[j]
        centres[i] = (centres[i] * counts[i] + centres[j] * counts[j]) / total
        counts[i] = total
        del centres[j], counts[j]
    return np.array(centres), np.array(counts)


def _nearest(lab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    # |x - c|^2 = |c|^2 - 2 x.c + |x|^2, the last the same for every centre
    return ((centres ** 2).sum(axis=1)[None, :] - 2 * lab @ centres.T).argmin(axis=1)


def _seed(lab: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++: each next centre drawn with probability proportional to its squared
    distance from the nearest chosen one; fewer than k when the image has fewer colours."""
    centres = [lab[rng.integers(len(lab))]]
    d2 = ((lab - centres[0]) ** 2).sum(axis=1)
    while len(centres) < k and d2.sum() > 1e-9:
        chosen = lab[rng.choice(len(lab), p=d2 / d2.sum())]
        centres.append(chosen)
        d2 = np.minimum(d2, ((lab - chosen) ** 2).sum(axis=1))
    return np.array(centres)


def chips(lab, shares) -> list[dict]:
    """A stored palette (SQL's lab and shares arrays) as [{"hex", "share"}], largest first,
    for pages and JSON; [] when there is none."""
    if not lab or not shares:
        return []
    return [{"hex": lab_to_hex(colour), "share": round(float(share), 4)}
            for colour, share in zip(lab, shares)]


# --- colours as people write them --------------------------------------------------------

_COLOUR = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})(?::([0-9]*\.?[0-9]+))?")


def parse_colours(specs) -> list[tuple[str, float]]:
    """('#rrggbb', weight) for each of '#rrggbb', 'rrggbb', '#rgb', each optionally with
    ':weight' (relative: '#1e3a8a:3' '#d4af37:1' asks for three parts blue to one of gold;
    default 1). The weights come back summing to 1. ArgError for anything else."""
    if isinstance(specs, str):
        specs = [s for s in re.split(r"[,\s]+", specs) if s]
    parsed = []
    for spec in specs:
        match = _COLOUR.fullmatch(str(spec).strip())
        if not match:
            raise ArgError(f"{str(spec)[:40]!r} is not a colour: write '#rrggbb' (e.g. "
                           "'#1e3a8a'), optionally with a weight, '#1e3a8a:0.7'")
        digits = match[1] if len(match[1]) == 6 else "".join(c * 2 for c in match[1])
        weight = float(match[2]) if match[2] is not None else 1.0
        if not 0 < weight <= 1000:
            raise ArgError(f"the weight of {spec!r} must be above 0 (and at most 1000)")
        parsed.append(("#" + digits.lower(), weight))
    if not parsed:
        raise ArgError("give at least one colour, e.g. '#1e3a8a'")
    if len(parsed) > COLOURS:
        raise ArgError(f"give at most {COLOURS} colours, got {len(parsed)}")
    total = sum(w for _, w in parsed)
    return [(colour, weight / total) for colour, weight in parsed]


def colour_arguments(specs) -> list[str]:
    """The SQL function's text[]: '#rrggbb:weight' with the weights normalised."""
    return [f"{c}:{w:.6g}" for c, w in parse_colours(specs)]
