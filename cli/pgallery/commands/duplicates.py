"""`pgallery duplicates`: groups of near-duplicate paintings (SQL near_duplicates())."""

from __future__ import annotations

import dataclasses
import webbrowser
from pathlib import Path
from typing import Annotated, Optional

import typer

from pgallery.commands.common import Json, Model, filter_options, gallery
from pgallery.search import SearchFilters
from pgallery.rendering.tables import console, err_console, print_json, rows_table

MinSimilarity = Annotated[Optional[float], typer.Option(
    "--min-similarity", min=-1.0, max=1.0,
    help="Pair paintings scoring at least this. [default: the model's calibrated "
         "threshold, duplicate_threshold() in SQL]")]


@filter_options
def duplicates(
    ctx: typer.Context,
    min_similarity: MinSimilarity = None,
    filters: SearchFilters = SearchFilters(),
    model: Model = None,
    json: Json = False,
    html: Annotated[Optional[Path], typer.Option(
        "--html", dir_okay=False, help="Also write an HTML page: each group side by "
                                       "side.")] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the HTML page.")] = False,
):
    """Versions of the same picture: resized, cropped, re-encoded or colour-shifted copies.

    Each group's most central member comes first, with similarity 1; the others show their
    similarity to it. Example: `pgallery duplicates --html dupes.html`
    """
    with gallery(ctx) as core:
        rows = [dataclasses.asdict(d) for d in core.duplicates(
            min_similarity, model=model, **filters.by_api())]
        locations = core.image_locations([r["image_file"] for r in rows]) if html else {}
    if json:
        print_json(rows)
    else:
        groups = len({r["group_id"] for r in rows})
        console.print(rows_table(rows, ("group_id", "similarity", "title", "author",
                                        "image_file"),
                                 title=f"near duplicates: {groups} group(s), "
                                       f"{len(rows)} painting(s)"))
    if html is not None:
        from pgallery.rendering.duplicates_html import write_duplicates_page

        write_duplicates_page(html, rows, image_resolver=locations.get,
                              min_similarity=min_similarity,
                              filters=filters.active())
        err_console.print(f"wrote {html}")
        if open_page and not webbrowser.open(Path(html).absolute().as_uri()):
            err_console.print("no browser found; open the file yourself")
