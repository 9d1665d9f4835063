"""The Jinja templates and the CSS that the static pages and pgallery serve share.

    from pgallery.rendering.templating import CSS, render
    page = render("results_page.html", title="...", cards=[...])

They live in pgallery/templates/ (outside rendering/ and web/, so that neither front end
depends on the other): the partials (_macros.html: the picture box, the result card, the
similarity bar, the filter chips, the painting's metadata), the static pages' skeleton and
pages (_page.html, results_page.html, painting_page.html, duplicates_page.html), the web's
pages (base.html, search.html, painting.html, error.html, _card.html) and pgallery.css.
Every value is escaped (autoescape); a template never runs code of its own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
CSS = (TEMPLATES / "pgallery.css").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.ChainableUndefined, auto_reload=False)


def render(template: str, **context) -> str:
    """The template named ``template`` rendered with ``context`` (the CSS as ``css``)."""
    return environment().get_template(template).render(css=Markup(CSS), **context)
