"""`pgallery map ...`: the collection as a 2-D map (its layout, its status, a picture)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pgallery.commands.common import gallery
from pgallery.errors import ArgError
from pgallery.map.layout import METHODS
from pgallery.rendering.tables import console, err_console, rows_table
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(
    help=("The collection as a map: neighbours on it look alike. `pgallery map layout` "
          "computes it (a load does it for you up to 20,000 paintings), `pgallery map "
          "--png map.png` draws it, `pgallery serve` shows it at /explore.\n\n"
          "Example: `pgallery map --png map.png --size 1600`"),
    invoke_without_command=True)

Model = Annotated[Optional[str], typer.Option(
    "--model", metavar="NAME", help="Whose map: this model's. [default: the active model]")]
STAGES = {"read": "reading vectors", "graph": "finding neighbours", "layout": "laying out"}


@app.callback()
def picture(ctx: typer.Context,
            png: Annotated[Optional[Path], typer.Option(
                "--png", dir_okay=False, metavar="FILE",
                help="Draw the map into FILE (PNG): dots for every painting, thumbnails of "
                     "an even sample on top.")] = None,
            size: Annotated[int, typer.Option(
                "--size", min=200, max=8000, help="The picture's side in pixels.")] = 1600,
            thumbnails: Annotated[int, typer.Option(
                "--thumbnails", min=0, max=2000,
                help="How many paintings are drawn as thumbnails.")] = 120,
            model: Model = None):
    """Draw the map (--png FILE), or run a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    if png is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    if not png.parent.is_dir():
        raise ArgError(f"{png.parent}: no such directory for the picture")
    from pgallery.rendering.map_picture import draw_map, save

    with gallery(ctx) as core:
        points = core.map_points(None, 5000, model=model)
        if not points:
            raise ArgError("the map is empty: run `pgallery map layout` first")
        sample = core.map_points(None, thumbnails, model=model) if thumbnails else []
        where = core.image_locations([p["image_file"] for p in sample])
    save(draw_map(points, size, thumbnails=sample, image_of=where.get), png)
    console.print(f"wrote {png} ({len(points):,} paintings, {len(sample)} as thumbnails)")


@app.command()
def layout(ctx: typer.Context,
           method: Annotated[str, typer.Option(
               "--method", help=f"How: {' or '.join(METHODS)} (the default keeps about "
                                "twice the neighbours PCA keeps).")] = "neighbours",
           model: Model = None):
    """Lay out every painting of the model afresh (new paintings placed since move too).

    Example: `pgallery map layout`
    """
    if method not in METHODS:
        raise ArgError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), console=err_console)
    with gallery(ctx) as core, bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(STAGES.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = core.map_layout(model=model, method=method, progress=progress)
    console.print(f"laid out {summary.paintings:,} paintings of {summary.model} "
                  f"({summary.method}) in {summary.seconds:.1f} s")


@app.command()
def status(ctx: typer.Context, model: Model = None):
    """How many paintings the map holds, laid out or placed since.

    Example: `pgallery map status`
    """
    with gallery(ctx) as core:
        s = core.map_status(model)
    console.print(rows_table([{"model": s.model, "vectors": s.vectors,
                               "laid_out": s.laid_out, "placed_since": s.placed,
                               "not_on_map": s.unplaced}],
                             ("model", "vectors", "laid_out", "placed_since", "not_on_map")))
