"""Print search results the way the user asked: a table, JSON, and/or an HTML page."""

from __future__ import annotations

import webbrowser
from pathlib import Path

from pgallery.rendering.tables import console, err_console, print_json, results_table


MODE_TITLES = {"image": "more like this", "file": "similar to your image",
               "vector": "nearest to the vector", "text": "text search", "hybrid": "hybrid search"}


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


def emit_results(conn, rows: list[dict], *, query: dict, json: bool = False,
                 html: Path | None = None, open_page: bool = False) -> None:
    if json:
        print_json(rows)
    else:
        title = MODE_TITLES.get(query.get("mode"), query.get("mode", "results"))
        console.print(results_table(rows, title=f"{title}: {len(rows)} result(s)"))
    if html is not None:
        from pgallery.rendering.html import write_results_page

        locations = image_locations(conn, [r["image_file"] for r in rows]
                                    + ([query["image_file"]] if query.get("image_file") else []))
        write_results_page(Path(html), rows, query=query,
                           title="pgallery: " + MODE_TITLES.get(query.get("mode"), "results"),
                           image_resolver=locations.get)
        err_console.print(f"wrote {html}")
        if open_page:
            if not webbrowser.open(Path(html).absolute().as_uri()):
                err_console.print("no browser found; open the file yourself")
