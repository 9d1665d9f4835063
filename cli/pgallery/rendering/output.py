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

from pgallery.rendering.tables import console, err_console, print_json, results_table

MODE_TITLES = {"painting": "more like this", "new-image": "similar to your image",
               "vector": "nearest to the vector", "text": "text search",
               "hybrid": "hybrid search",
               # the names before issue 12, for callers that still pass them
               "image": "more like this", "file": "similar to your image"}

# CLI option names of the filters, for the hints
FILTER_FLAGS = {"painting_type": "--type"}


def image_locations(conn, image_files: list[str]) -> dict[str, str]:
    """image_file -> where the image is (image_uri as loaded), for thumbnails."""
    if not image_files:
        return {}
    rows = conn.execute(
        "SELECT image_file, image_uri FROM painting WHERE image_file = ANY(%s)",
        (image_files,)).fetchall()
    if not conn.autocommit:
        conn.rollback()
    return {f: uri for f, uri in rows if uri}


def _painting_title(conn, image_file: str) -> str | None:
    row = conn.execute("SELECT title FROM painting WHERE image_file = %s",
                       (image_file,)).fetchone()
    if not conn.autocommit:
        conn.rollback()
    return row[0] if row and row[0] else None


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


def _active_model(conn) -> str | None:
    row = conn.execute("SELECT name FROM embedding_model WHERE is_active").fetchone()
    if not conn.autocommit:
        conn.rollback()
    return row[0] if row else None


def _filter_counts(conn, filters: dict, model: str | None) -> list[tuple[str, object, int]]:
    """For each filter alone: how many paintings with a vector of the model pass it."""
    counts = []
    for name, value in filters.items():
        args = {key: None for key in ("author", "technique", "school", "painting_type",
                                      "timeframe", "year_from", "year_to")}
        args[name] = value
        row = conn.execute(
            "SELECT count(*) FROM painting p WHERE painting_matches(p, search_request("
            "author => %(author)s, technique => %(technique)s, school => %(school)s,"
            " painting_type => %(painting_type)s, timeframe => %(timeframe)s,"
            " year_from => %(year_from)s::integer, year_to => %(year_to)s::integer))"
            " AND EXISTS (SELECT 1 FROM"
            " painting_embedding e WHERE e.painting_id = p.painting_id AND e.model ="
            " %(model)s)", {**args, "model": model}).fetchone()
        counts.append((name, value, row[0]))
    if not conn.autocommit:
        conn.rollback()
    return counts


def no_results_hint(conn, filters: dict, model: str | None) -> str | None:
    """Which filter left nothing: each filter's own count of the model's paintings."""
    if not filters or not model:
        return None
    counts = [(f"{FILTER_FLAGS.get(name, '--' + name.replace('_', '-'))} {value!r}", count)
              for name, value, count in _filter_counts(conn, filters, model)]
    empty = [flag for flag, count in counts if count == 0]
    others = [f"{flag}: {count}" for flag, count in counts if count]
    if empty:
        return (f"{' and '.join(empty)} {'matches' if len(empty) == 1 else 'match'} no "
                f"painting of {model}" + (f" (on its own {', '.join(others)})" if others else ""))
    return (f"each filter matches paintings of {model} on its own ({', '.join(others)}), "
            "but none passes them all")


def emit_results(conn, rows: list[dict], *, query: dict, options) -> None:
    """Print ``rows`` as the user asked (``options``: commands.common.SearchOptions)."""
    query = {**query, "k": options.k, "filters": options.filters.active()}
    if not query.get("model"):
        query["model"] = options.model or _active_model(conn)
    title = _painting_title(conn, query["image_file"]) if query.get("image_file") else None
    heading = describe_search(query, title)
    if query.get("keyword_only"):
        err_console.print(f"note: {escape(query['keyword_only'])}", highlight=False)
    if options.json:
        print_json(rows)
    else:
        console.print(results_table(rows, title=f"{heading}: {len(rows)} result(s)"))
    if not rows:
        hint = no_results_hint(conn, query["filters"], query.get("model"))
        if hint:
            err_console.print(f"no results: {escape(hint)}", highlight=False)
    if options.html is not None:
        from pgallery.rendering.html import write_results_page

        html = Path(options.html)
        locations = image_locations(conn, [r["image_file"] for r in rows]
                                    + ([query["image_file"]] if query.get("image_file") else []))
        write_results_page(html, rows, query=query, title=f"pgallery: {heading}",
                           image_resolver=locations.get)
        err_console.print(f"wrote {html}")
        if options.open_page:
            if not webbrowser.open(html.absolute().as_uri()):
                err_console.print("no browser found; open the file yourself")
