"""`pgallery models ...`: the embedding models and which one searches use."""

from __future__ import annotations

from typing import Annotated

import typer

from pgallery.commands.common import Json, gallery
from pgallery.rendering.tables import console, print_json, rows_table

app = typer.Typer(help="List embedding models and switch the active one.", no_args_is_help=True)

@app.command("list")
def list_models(ctx: typer.Context, json: Json = False):
    """List the models, their dimensions and how many paintings each has embedded.

    Example: `pgallery models list`
    """
    with gallery(ctx) as core:
        rows = core.models()
    if json:
        print_json(rows)
    else:
        console.print(rows_table(rows, ("name", "dimension", "provider", "active", "vectors")))


@app.command()
def use(ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The model to make active.")]):
    """Make NAME the active model: searches use its vectors from now on (one atomic switch).

    Example: `pgallery models use local-descriptors/v1`
    """
    with gallery(ctx) as core:
        core.use_model(name)
    console.print(f"active model: {name}")
