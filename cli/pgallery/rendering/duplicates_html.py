"""The near-duplicate groups as one self-contained HTML page: each group a row of cards,
its central member first, every card with its similarity to that member. Same style,
thumbnails and safety rules as html.py's results page (no script, data: images only,
every string escaped)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby
from pathlib import Path

from pgallery.rendering.html import (CSS, THUMB_SIDE, ImageResolver, _alt, _document,
                                     _picture, _present, _similarity_block, _write, esc)

_GROUP_CSS = """
.group{margin:0 0 26px;padding:14px 16px 16px;background:var(--panel);border:1px solid var(--line);
border-radius:14px}
.group h2{margin:0 0 12px;font:500 1.05rem var(--serif);color:var(--muted)}
.group .row{display:flex;gap:16px;overflow-x:auto;list-style:none;margin:0;padding:0}
.group .card{flex:0 0 210px}
.group .card.central{border-color:var(--accent)}
"""


def _card(row: Mapping, central: bool, image_resolver: ImageResolver) -> str:
    image_file = row.get("image_file")
    picture = _picture(image_resolver(image_file) if image_file else None, _alt(row),
                       THUMB_SIDE)
    title = row.get("title") if _present(row.get("title")) else "Untitled"
    lines = [f'<h2 class="title" title="{esc(title)}">{esc(title)}</h2>']
    if _present(row.get("author")):
        lines.append(f'<p class="author">{esc(row["author"])}</p>')
    lines.append(_similarity_block({"similarity": row.get("similarity")}))
    if central:
        lines.append('<p class="meta">most central</p>')
    lines.append(f'<p class="file" title="{esc(image_file)}">{esc(image_file)}</p>')
    return (f'<li class="card{" central" if central else ""}"><div class="frame">{picture}'
            f'</div><div class="caption">{"".join(lines)}</div></li>')


def render_duplicates_page(rows: Sequence[Mapping], *, image_resolver: ImageResolver,
                           min_similarity: float | None = None,
                           filters: Mapping | None = None) -> str:
    groups = [list(members) for _, members in groupby(rows, key=lambda r: r["group_id"])]
    threshold = ("the model's default threshold" if min_similarity is None
                 else f"similarity ≥ {min_similarity:g}")
    chips = "".join(f'<li><span class="fk">{esc(k)}</span><span class="fv">{esc(v)}</span></li>'
                    for k, v in (filters or {}).items())
    header = (f'<header class="query"><div class="query-text"><p class="mode">Near duplicates'
              f'</p><h1>{len(groups)} group{"s" if len(groups) != 1 else ""} of versions of '
              f'the same picture</h1><p class="summary">{esc(threshold)} · {len(rows)} '
              f'paintings</p>'
              + (f'<ul class="filters">{chips}</ul>' if chips else "") + '</div></header>')
    if not groups:
        body = '<p class="empty">No near duplicates found.</p>'
    else:
        body = "".join(
            f'<section class="group"><h2>Group {esc(members[0]["group_id"])} · '
            f'{len(members)} paintings</h2><ol class="row">'
            + "".join(_card(row, n == 0, image_resolver) for n, row in enumerate(members))
            + "</ol></section>" for members in groups)
    page = _document("pgallery: near duplicates", f"{header}<main>{body}</main>")
    return page.replace(f"<style>{CSS}</style>", f"<style>{CSS}{_GROUP_CSS}</style>", 1)


def write_duplicates_page(path: str | Path, rows: Sequence[Mapping], *,
                          image_resolver: ImageResolver = lambda _f: None,
                          min_similarity: float | None = None,
                          filters: Mapping | None = None) -> Path:
    return _write(path, render_duplicates_page(rows, image_resolver=image_resolver,
                                               min_similarity=min_similarity,
                                               filters=filters))
