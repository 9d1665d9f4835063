"""`pgallery models ...`: the embedding models and which one searches use."""

from __future__ import annotations

from typing import Annotated

import typer
from psycopg.rows import dict_row

from pgallery.commands.common import Json, database
from pgallery.rendering.tables import console, print_json, rows_table

app = typer.Typer(help="List embedding models and switch the active one.", no_args_is_help=True)

MODELS_SQL = """
SELECT m.name, m.dimension, m.provider, m.is_active AS active,
       (SELECT count(*) FROM painting_embedding e WHERE e.model = m.name) AS vectors
FROM embedding_model m ORDER BY m.created_at, m.name
"""


@app.command("list")
def list_models(ctx: typer.Context, json: Json = False):
    """List the models, their dimensions and how many paintings each has embedded.

    Example: `pgallery models list`
    """
    with database(ctx, autocommit=True) as conn:
        rows = conn.cursor(row_factory=dict_row).execute(MODELS_SQL).fetchall()
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
    with database(ctx) as conn:
        with conn.transaction():
            conn.execute("SELECT use_model(%s)", (name,))
    console.print(f"active model: {name}")
