"""What many commands share: the settings from the root callback, an open database, and
the option types for filters and output (defined once, used everywhere)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated, Optional

import typer

from pgallery import migrations
from pgallery.config import Settings
from pgallery.database import connect, resolve_url
from pgallery.search import EF_SEARCH_FLOOR, RecallSettings, SearchFilters


def settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, Settings) else Settings.load()


@contextmanager
def database(ctx: typer.Context, *, migrated: bool = True, autocommit: bool = False):
    """A connection to the configured database; by default it must be migrated to head."""
    url = resolve_url(settings(ctx))
    if migrated:
        migrations.require_current(url)
    conn = connect(url, autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


K = Annotated[int, typer.Option("--k", "-k", min=1, max=10000, help="How many results.")]
Author = Annotated[Optional[str], typer.Option(
    help="Author contains this (case-insensitive): 'gogh' matches 'GOGH, Vincent van'.")]
Technique = Annotated[Optional[str], typer.Option(help="Technique contains this.")]
School = Annotated[Optional[str], typer.Option(help="School contains this ('dutch').")]
PaintingType = Annotated[Optional[str], typer.Option(
    "--type", help="Type is exactly this, any case ('portrait', 'landscape').")]
Timeframe = Annotated[Optional[str], typer.Option(
    help="Timeframe is exactly this ('1601-1650').")]
YearFrom = Annotated[Optional[int], typer.Option(
    help="Painted in or after this year (on the parsed date range).")]
YearTo = Annotated[Optional[int], typer.Option(help="Painted in or before this year.")]
Model = Annotated[Optional[str], typer.Option(
    help="Search this model's vectors. [default: the active model]")]
EfSearch = Annotated[Optional[int], typer.Option(
    "--ef-search", min=1, max=1000,
    help="HNSW candidate list size (recall vs speed). [default: the database's "
         f"hnsw.ef_search, sized to the collection: {EF_SEARCH_FLOOR}, 150 at 1M]")]
Probes = Annotated[Optional[int], typer.Option(
    min=1, help="IVFFlat lists to visit, when an IVFFlat index is used.")]
Exact = Annotated[bool, typer.Option("--exact", help="Exact search, no ANN index.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]


def make_filters(author, technique, school, painting_type, timeframe, year_from,
                 year_to) -> SearchFilters:
    return SearchFilters(author, technique, school, painting_type, timeframe, year_from,
                         year_to)


def make_recall(ef_search, probes, exact) -> RecallSettings:
    return RecallSettings(ef_search=ef_search, probes=probes, exact=True if exact else None)
