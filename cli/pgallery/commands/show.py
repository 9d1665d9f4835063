"""`pgallery show IMAGE_FILE`: one painting's metadata (and, with --html, its picture)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pgallery.commands.common import Json, gallery, writable_file
from pgallery.rendering.tables import console, err_console, key_value_table, print_json

def show(
    ctx: typer.Context,
    image_file: Annotated[str, typer.Argument(metavar="IMAGE_FILE",
                                              help="The painting's image_file.")],
    json: Json = False,
    html: Annotated[Optional[Path], typer.Option(
        "--html", dir_okay=False, metavar="FILE",
        help="Write a page with the picture and its metadata (its directory must exist).")] = None,
):
    """Show one painting: metadata, parsed years, and the models it is embedded with.

    Example: `pgallery show 00015-shipwreck-on-a-rocky-coast.jpg --html painting.html`
    """
    html = writable_file(html)
    with gallery(ctx) as core:
        painting = core.painting(image_file)
    if json:
        print_json(painting)
    else:
        console.print(key_value_table(
            [(k, _listed(k, v) if isinstance(v, list) else v) for k, v in painting.items()],
            title=painting["title"] or image_file))
    if html is not None:
        from pgallery.rendering.html import write_painting_page

        location = painting.get("image_uri")
        write_painting_page(html, painting, image_resolver=lambda _f: location)
        err_console.print(f"wrote {html}")


def _listed(key: str, values: list) -> str:
    if key == "palette":        # [{"hex", "share"}]: '#1e3a8a 42%, ...'
        return ", ".join(f"{c['hex']} {c['share']:.0%}" for c in values)
    return ", ".join(values)
