"""`pgallery index ...`: the vector indexes."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pgallery.commands.common import database
from pgallery.loading.after_load import after_load
from pgallery.rendering.tables import console, rows_table

app = typer.Typer(help="Build and inspect the vector indexes (HNSW, IVFFlat).",
                  no_args_is_help=True)

INDEX_SQL = """
SELECT c.relname AS index, am.amname AS method,
       pg_size_pretty(pg_relation_size(c.oid)) AS size,
       coalesce(array_to_string(c.reloptions, ', '), '') AS options
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = 'painting_embedding'::regclass AND am.amname IN ('hnsw', 'ivfflat')
ORDER BY 1
"""

COLUMNS = ("index", "method", "size", "options")


def index_rows(conn) -> list[dict]:
    return [dict(zip(COLUMNS, row)) for row in conn.execute(INDEX_SQL).fetchall()]


@app.command()
def build(
    ctx: typer.Context,
    lists: Annotated[Optional[int], typer.Option(
        min=1, max=32768, help="IVFFlat lists. [default: rows/1000, sqrt(rows) past 1M]")] = None,
):
    """(Re)build the IVFFlat index from the vectors loaded now, and refresh statistics;
    also puts back the HNSW index if an interrupted bulk load left it dropped.

    IVFFlat learns its clusters from the data, so build it after a bulk load.
    Same as `CALL build_ivfflat_index()` in psql. Example: `pgallery index build`
    """
    with database(ctx, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        with console.status("building the indexes ..."):
            done = after_load(conn, build_ivfflat=True, ivfflat_lists=lists)
        for note in done.notes:
            console.print(note)
        if done.ef_search_default:
            console.print(f"hnsw.ef_search default is now {done.ef_search_default} for new "
                          "sessions (sized to the collection)")
        for notice in notices:
            console.print(notice)
        console.print(rows_table(index_rows(conn), COLUMNS))


@app.command("list")
def list_indexes(ctx: typer.Context):
    """List the vector indexes with their sizes and settings.

    Example: `pgallery index list`
    """
    with database(ctx, autocommit=True) as conn:
        console.print(rows_table(index_rows(conn), COLUMNS))


@app.command()
def drop_ivfflat(ctx: typer.Context):
    """Drop the IVFFlat index (searches then use HNSW).

    Example: `pgallery index drop-ivfflat`
    """
    with database(ctx, autocommit=True) as conn:
        conn.execute("CALL drop_ivfflat_index()")
    console.print("dropped painting_embedding_ivfflat (if it existed)")
