"""Search results and single paintings as self-contained HTML pages.

    from pgallery.rendering.html import write_results_page
    write_results_page("results.html", rows, title="More like this: Spring",
                       query={"mode": "image", "image_file": "p-Spring.jpg",
                              "filters": {"school": "italian"}, "k": 10},
                       image_resolver=lambda f: images_dir / f)

A page is one HTML5 file: inline CSS, no script, no external resource. It is drawn with the
Jinja templates that pgallery serve uses too (pgallery/templates/: the same result card,
painting metadata and CSS; see templating.py). Pictures are embedded
as small JPEG data: URIs (see thumbnails.py), so the page keeps working when it is moved or
mailed. A Content-Security-Policy meta tag forbids scripts and any non-data: image, so even
a hostile string that slipped past escaping could not run or phone home. Every piece of
text is HTML-escaped.

``image_resolver(image_file)`` says where a picture is: a local path (str, Path or a
``file://`` URI) is embedded as a thumbnail and linked to the full file; an ``http(s)://`` URL is only linked
(never fetched by the page); None, or a path that is missing or not an image, shows a
placeholder.

``query`` describes the search; every key is optional:

    mode        "painting" (more like this painting of the collection), "new-image" (a
                picture of your own), "vector", "text", "hybrid", or any other label
                (shown as given; "image" and "file" are the old names of the first two)
    image_file  the gallery painting the search started from (thumbnail via image_resolver)
    image_path  a query picture that is not in the gallery (a local file)
    prompt      the text prompt
    filters     dict of filter name -> value (None values are left out), or a SearchFilters
    model       the embedding model's name
    k           how many results were asked for
    keyword_only  why a hybrid search ranked by keywords alone (shown under the title)
"""

from __future__ import annotations

import html
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from pgallery.errors import ArgError
from pgallery.rendering.templating import CSS, render
from pgallery.rendering.thumbnails import thumbnail_data_uri
from pgallery.vocabulary import FILTERS

ImageResolver = Callable[[str], "Path | str | None"]

THUMB_SIDE = 256
QUERY_THUMB_SIDE = 320
PAINTING_SIDE = 1024

MODE_LABELS = {
    "painting": "More like this",
    "new-image": "Similar to your image",
    "image": "More like this",          # the modes' names before issue 12
    "file": "Similar to your image",
    "vector": "Nearest to a vector",
    "text": "Text search",
    "hybrid": "Hybrid search",
    "colour": "Colour search",
}

# How a filter chip names each filter: its form label, in lower case ("from year").
FILTER_LABELS = {param.sql: param.label.lower() for param in FILTERS}

# Metadata fields of the painting page, in order, with their labels.
PAINTING_FIELDS = (
    ("title", "Title"),
    ("author", "Author"),
    ("date", "Date"),
    ("technique", "Technique"),
    ("painting_type", "Type"),
    ("school", "School"),
    ("timeframe", "Timeframe"),
    ("description", "Description"),
    ("image_file", "Image file"),
    ("painting_id", "Painting id"),
)

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'")


def esc(value: object) -> str:
    """Text made safe for HTML content and attribute values (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def _is_url(location: object) -> bool:
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


def _present(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return str(value).strip() not in ("", "-")


def format_similarity(value: float | None) -> str:
    """0.87312 -> "0.873"; None -> ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.3f}"


def format_score(value: float | None) -> str:
    """Hybrid (rank-fusion) scores are small: four decimals. None -> ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.4f}"


# --- pictures -------------------------------------------------------------------------------

def picture(location: object, alt: str, max_side: int, css: str = "pic") -> dict:
    """What the picture box shows (the templates' picture()): an embedded thumbnail linked
    to the full file, or a placeholder saying why there is none."""
    if location is None or (isinstance(location, str) and not location.strip()):
        return {"css": css, "missing": "no image"}
    if _is_url(location):
        return {"css": css, "missing": "open image ↗", "href": str(location)}
    path = _local_path(location)
    uri = thumbnail_data_uri(path, max_side=max_side)
    if uri is None:
        return {"css": css, "missing": ("image not found" if not os.path.isfile(path)
                                        else "unreadable image")}
    try:
        href = path.resolve().as_uri()
    except ValueError:
        href = None
    return {"css": css, "src": uri, "alt": alt, "href": href,
            "title": "open the full image"}


def _local_path(location: object) -> Path:
    if isinstance(location, str) and location.lower().startswith("file:"):
        return Path(url2pathname(urlsplit(location).path))
    return Path(location)


def _alt(row: Mapping) -> str:
    title = row.get("title") if _present(row.get("title")) else row.get("image_file")
    author = row.get("author")
    return f"{title} — {author}" if _present(author) else str(title or "painting")


def _number(value: object) -> float | None:
    """A finite number, or None (NaN and missing values show nothing)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def card_row(row: Mapping, rank: int | None = None, best_score: float | None = None) -> dict:
    """A result row in the card's vocabulary (the web API's: ``type``, not painting_type),
    blank values dropped, so both front ends draw it with one template."""
    shown = {key: row.get(key) if _present(row.get(key)) else None
             for key in ("title", "author", "date", "school", "image_file")}
    shown["type"] = row.get("painting_type") if _present(row.get("painting_type")) else None
    similarity, score = _number(row.get("similarity")), _number(row.get("score"))
    shown.update(rank=rank, similarity=similarity, score=score,
                 distance=_number(row.get("distance")),
                 score_fraction=(min(max(score / best_score, 0.0), 1.0)
                                 if score is not None and best_score else None))
    return shown


# --- results page ---------------------------------------------------------------------------

def _filters_of(query: Mapping) -> dict:
    filters = query.get("filters")
    if filters is None:
        return {}
    if hasattr(filters, "active"):
        filters = filters.active()
    elif is_dataclass(filters):
        filters = asdict(filters)
    return {k: v for k, v in dict(filters).items() if v is not None and v != ""}


def _query_context(query: Mapping, count: int, image_resolver: ImageResolver) -> dict:
    mode = query.get("mode")
    query_picture = None
    if query.get("image_path"):
        query_picture = picture(query["image_path"], "query image", QUERY_THUMB_SIDE, "qpic")
    elif query.get("image_file"):
        query_picture = picture(image_resolver(query["image_file"]),
                                f"query: {query['image_file']}", QUERY_THUMB_SIDE, "qpic")
    source = query.get("image_file") or (Path(str(query["image_path"])).name
                                         if query.get("image_path") else None)
    summary = [f"{count} result{'s' if count != 1 else ''}"]
    if query.get("k") is not None:
        summary.append(f"k = {query['k']}")
    if _present(query.get("model")):
        summary.append(f"model {query['model']}")
    return {
        "mode_label": MODE_LABELS.get(str(mode), str(mode)) if mode else None,
        "query_picture": query_picture,
        "prompt": query.get("prompt") if _present(query.get("prompt")) else None,
        "source": source,
        "chips": [(FILTER_LABELS.get(k, k), v) for k, v in _filters_of(query).items()],
        "keyword_only": query.get("keyword_only") if _present(query.get("keyword_only"))
        else None,
        "hybrid": mode == "hybrid",
        "summary": summary,
    }


def render_results_page(results: Sequence[Mapping], *, query: Mapping | None = None,
                        title: str = "Search results",
                        image_resolver: ImageResolver = lambda _f: None) -> str:
    """A complete HTML5 page: the query, then one card per result (best first)."""
    query = query or {}
    scores = [s for s in (_number(r.get("score")) for r in results) if s is not None]
    best = max(scores) if scores and max(scores) > 0 else None
    cards = []
    for rank, row in enumerate(results, 1):
        image_file = row.get("image_file")
        location = image_resolver(image_file) if image_file else None
        cards.append({"row": card_row(row, rank, best),
                      "picture": picture(location, _alt(row), THUMB_SIDE)})
    return render("results_page.html", csp=_CSP, title=title, cards=cards,
                  **_query_context(query, len(results), image_resolver))


def write_results_page(path: str | Path, results: Sequence[Mapping], *,
                       query: Mapping | None = None, title: str = "Search results",
                       image_resolver: ImageResolver = lambda _f: None) -> Path:
    """Render the results page and write it to ``path`` (UTF-8); returns the path."""
    return write_page(path, render_results_page(results, query=query, title=title,
                                                image_resolver=image_resolver))


# --- painting page --------------------------------------------------------------------------

def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, numbers.Number)) or hasattr(
        value, "isoformat")


def _show(value: object) -> str | None:
    if not _present(value):
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return f"{float(value):.4f}"
    return str(value)


def render_painting_page(painting: Mapping, image_resolver: ImageResolver = lambda _f: None,
                         *, title: str | None = None) -> str:
    """One painting: a large picture and its metadata as a definition list."""
    image_file = painting.get("image_file")
    location = image_resolver(image_file) if image_file else None
    name = painting.get("title") if _present(painting.get("title")) else (image_file or "Painting")
    known = {key for key, _ in PAINTING_FIELDS}
    fields = list(PAINTING_FIELDS) + [
        (key, key.replace("_", " ").capitalize()) for key in painting
        if key not in known and _is_scalar(painting[key])]
    rows = [(label, _show(painting[key])) for key, label in fields if key in painting]
    shown = {"author": painting.get("author") if _present(painting.get("author")) else None,
             "date": painting.get("date") if _present(painting.get("date")) else None}
    return render("painting_page.html", csp=_CSP, title=title or str(name), name=name,
                  painting=shown, fields=rows, colours=painting.get("palette") or [],
                  big_picture=picture(location, _alt(painting), PAINTING_SIDE, "bigpic"))


def write_painting_page(path: str | Path, painting: Mapping,
                        image_resolver: ImageResolver = lambda _f: None, *,
                        title: str | None = None) -> Path:
    """Render the painting page and write it to ``path`` (UTF-8); returns the path."""
    return write_page(path, render_painting_page(painting, image_resolver, title=title))


# --- the file -------------------------------------------------------------------------------

def write_page(path: str | Path, page: str) -> Path:
    """Write the page; a directory that does not exist is the caller's to create (an
    ArgError, as is a path that cannot be written)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ArgError(f"{path}: no such directory {path.parent} (create it first)")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ArgError(f"{path}: cannot write the page ({exc.strerror or exc})") from None
    return path


__all__ = ["CSS", "PAINTING_FIELDS", "esc", "format_score", "format_similarity",
           "render_painting_page", "render_results_page", "write_painting_page",
           "write_results_page"]
