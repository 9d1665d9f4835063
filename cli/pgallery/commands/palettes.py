"""`pgallery palettes ...`: the dominant colours of the paintings, which colour search ranks.

The loader computes each image's palette as it loads it; `backfill` computes the missing
ones of a collection loaded before (or of images loaded by URL or from an embeddings file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pgallery.commands.common import Json, database
from pgallery.errors import ArgError
from pgallery.loading.palettes import DEFAULT_BATCH, backfill_palettes
from pgallery.rendering.progress import LoadProgress
from pgallery.rendering.tables import console, err_console, print_json

app = typer.Typer(help="The paintings' dominant colours (what `pgallery search colour` "
                       "ranks by).", no_args_is_help=True)


@app.command()
def backfill(
    ctx: typer.Context,
    images: Annotated[Optional[Path], typer.Option(
        "--images", file_okay=False,
        help="Where to find images whose recorded location is missing (by image_file).")] = None,
    batch_size: Annotated[int, typer.Option(
        min=1, max=100000, help="Palettes per transaction.")] = DEFAULT_BATCH,
    limit: Annotated[Optional[int], typer.Option(
        min=1, help="Stop after this many paintings (the rest on the next run).")] = None,
    json: Json = False,
):
    """Compute the palette of every painting that has none, from its image.

    Resumable: stop it at any time (Ctrl-C); every batch committed is kept and the next
    run does only the paintings still without a palette.

    Example: `pgallery palettes backfill --images SemArt/Images`
    """
    if images is not None and not images.is_dir():
        raise ArgError(f"{images}: no such directory")
    with database(ctx) as conn:
        with LoadProgress("palettes") as progress:
            summary = backfill_palettes(conn, images_dir=images, batch_size=batch_size,
                                        progress=progress, limit=limit)
    if json:
        print_json({"computed": summary.done, "remaining": summary.remaining,
                    "failed": [{"image_file": f, "reason": r} for f, r in summary.failed]})
        return
    for image_file, reason in summary.failed[:20]:
        err_console.print(f"  {image_file}: {reason}", highlight=False, soft_wrap=True)
    if len(summary.failed) > 20:
        err_console.print(f"  ... and {len(summary.failed) - 20} more", highlight=False)
    console.print(f"palettes computed: {summary.done}; paintings still without one: "
                  f"{summary.remaining}", highlight=False)
