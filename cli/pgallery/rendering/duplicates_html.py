"""The near-duplicate groups as one self-contained HTML page: each group a row of cards,
its central member first, every card with its similarity to that member. Drawn with the
same templates, thumbnails and safety rules as html.py's results page (no script, data:
images only, every string escaped)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby
from pathlib import Path

from pgallery.rendering.html import (_CSP, THUMB_SIDE, ImageResolver, _alt, card_row, picture,
                                     write_page)
from pgallery.rendering.templating import render


def _card(row: Mapping, image_resolver: ImageResolver) -> dict:
    image_file = row.get("image_file")
    shown = card_row({key: row.get(key) for key in ("title", "author", "image_file",
                                                    "similarity")})
    return {"row": shown, "picture": picture(image_resolver(image_file) if image_file
                                             else None, _alt(row), THUMB_SIDE)}


def render_duplicates_page(rows: Sequence[Mapping], *, image_resolver: ImageResolver,
                           min_similarity: float | None = None,
                           filters: Mapping | None = None) -> str:
    groups = [{"id": group_id, "cards": [_card(row, image_resolver) for row in members]}
              for group_id, members in groupby(rows, key=lambda r: r["group_id"])]
    threshold = ("the model's default threshold" if min_similarity is None
                 else f"similarity ≥ {min_similarity:g}")
    return render("duplicates_page.html", csp=_CSP, title="pgallery: near duplicates",
                  groups=groups, threshold=threshold, count=len(rows),
                  chips=list((filters or {}).items()))


def write_duplicates_page(path: str | Path, rows: Sequence[Mapping], *,
                          image_resolver: ImageResolver = lambda _f: None,
                          min_similarity: float | None = None,
                          filters: Mapping | None = None) -> Path:
    return write_page(path, render_duplicates_page(rows, image_resolver=image_resolver,
                                                   min_similarity=min_similarity,
                                                   filters=filters))
