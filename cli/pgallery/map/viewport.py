"""One viewport request of the map: the box and limit checked, and the one SQL call that
answers it (map_points, sql/idempotent/85_map.sql). pgallery.Gallery and the web service
both run :data:`STATEMENT` with :func:`arguments`, so the CLI, the library and
``GET /api/map`` check and say the same things."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pgallery.vocabulary as vocabulary
from pgallery.errors import ArgError

LIMIT_DEFAULT, LIMIT_MAX = 500, 5000
WHOLE_MAP = (0.0, 0.0, 1.0, 1.0)

# The filter columns, in map_points' argument order (the vocabulary's SQL names)
_FILTER_NAMES = tuple(p.sql for p in vocabulary.FILTERS)
STATEMENT = ("SELECT painting_id, image_file, title, x, y, sample_rank FROM map_points("
             "%(x0)s, %(y0)s, %(x1)s, %(y1)s, lim => %(lim)s, "
             + ", ".join(f"{name} => %({name})s" for name in _FILTER_NAMES)
             + ", model => %(model)s)")


@dataclass(frozen=True)
class Viewport:
    x0: float
    y0: float
    x1: float
    y1: float


def parse_bbox(text: str | None) -> Viewport:
    """``"x0,y0,x1,y1"`` (the map is the unit square) -> Viewport; the whole map if empty."""
    if text is None or not str(text).strip():
        return Viewport(*WHOLE_MAP)
    parts = str(text).split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ArgError(f"bbox must be four numbers x0,y0,x1,y1, got {str(text)[:80]!r}")
    return check(Viewport(*values))


def check(box: Viewport) -> Viewport:
    if box.x0 > box.x1 or box.y0 > box.y1:
        raise ArgError(f"bbox must have x0 <= x1 and y0 <= y1, got "
                       f"{box.x0:g},{box.y0:g},{box.x1:g},{box.y1:g}")
    return box


def parse_limit(value) -> int:
    if value is None or value == "":
        return LIMIT_DEFAULT
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise ArgError(f"limit must be a whole number, got {str(value)[:40]!r}") from None
    if not 1 <= limit <= LIMIT_MAX:
        raise ArgError(f"limit must be between 1 and {LIMIT_MAX}, got {limit}")
    return limit


def arguments(box: Viewport, limit: int, filters, model: str | None) -> dict:
    """STATEMENT's arguments: the box, the limit, SearchFilters and the model."""
    args = {"x0": box.x0, "y0": box.y0, "x1": box.x1, "y1": box.y1, "lim": limit,
            "model": model}
    args.update({name: getattr(filters, name) for name in _FILTER_NAMES})
    return args
