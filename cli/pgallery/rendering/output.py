"""Print search results the way the user asked: a table, JSON, and/or an HTML page.

``query`` describes the search (see rendering/html.py): ``mode`` ("painting", "new-image",
"vector", "text", "hybrid"), and ``image_file``, ``image_path``, ``prompt``, ``filters``,
``model``, ``k`` where they apply. The table's and the page's titles both come from
:func:`describe_search`, so they name the same query, filters and model.
"""

from __future__ import annotations

import webbrowser
from pathlib import Path

from rich.markup import escape

from pgallery.rendering.result_json import result_objects
from pgallery.rendering.tables import console, err_console, print_json, results_table

MODE_TITLES = {"painting": "more like this", "new-image": "similar to your image",
               "vector": "nearest to the vector", "text": "text search",
               "hybrid": "hybrid search", "colour": "colour search",
               # the names before issue 12, for callers that still pass them
               "image": "more like this", "file": "similar to your image"}


def describe_search(query: dict, painting_title: str | None = None) -> str:
    """"more like this 'Shipwreck on a Rocky Coast' where painting_type = landscape, model
    local-descriptors/v1": what was searched, in one line."""
    mode = query.get("mode")
    heading = MODE_TITLES.get(mode, mode or "results")
    if query.get("image_file"):
        heading += f" '{painting_title or query['image_file']}'"
    elif query.get("image_path"):
        heading += f" {Path(str(query['image_path'])).name}"
    if query.get("prompt"):
        heading += (" + " if query.get("image_path") else " ") + f"'{query['prompt']}'"
    filters = query.get("filters") or {}
    if filters:
        heading += " where " + ", ".join(f"{k} = {v}" for k, v in filters.items())
    if query.get("model"):
        heading += f", model {query['model']}"
    return heading


def no_results_hint(reason) -> str | None:
    """Which filter left nothing (a flow.EmptyReason), each filter named by its CLI flag."""
    if reason is None:
        return None
    return reason.message(lambda param, value: f"{param.flag} {value!r}")


def emit_results(rows: list[dict], *, query: dict, options, painting_title: str | None = None,
                 locations: dict | None = None, empty=None) -> None:
    """Print ``rows`` as the user asked (``options``: commands.common.SearchOptions).
    The caller passes what the database knows: the query painting's title, the images'
    locations (for --html) and, for an empty result, why (a flow.EmptyReason)."""
    query = {**query, "k": options.k, "filters": options.filters.active()}
    title = painting_title
    heading = describe_search(query, title)
    if query.get("keyword_only"):
        err_console.print(f"note: {escape(query['keyword_only'])}", highlight=False)
    if options.json:   # the API's result objects (rendering/result_json.py)
        page = getattr(options.result, "page", None) or 1
        print_json(result_objects(rows, first=(page - 1) * options.k + 1))
    else:
        console.print(results_table(rows, title=f"{heading}: {len(rows)} result(s)"))
    if not rows:
        hint = no_results_hint(empty)
        if hint:
            err_console.print(f"no results: {escape(hint)}", highlight=False)
    if options.html is not None:
        from pgallery.rendering.html import write_results_page

        html = Path(options.html)
        write_results_page(html, rows, query=query, title=f"pgallery: {heading}",
                           image_resolver=(locations or {}).get)
        err_console.print(f"wrote {html}")
        if options.open_page:
            if not webbrowser.open(html.absolute().as_uri()):
                err_console.print("no browser found; open the file yourself")
