"""What many commands share: the settings from the root callback, an open database, and
the options every search takes (defined once here, added to each search command by
:func:`search_options`)."""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from pgallery import migrations
from pgallery.config import Settings
from pgallery.database import connect, resolve_url
from pgallery.errors import ArgError
from pgallery.search import EF_SEARCH_FLOOR, RecallSettings, ResultOptions, SearchFilters


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
MinSimilarity = Annotated[Optional[float], typer.Option(
    "--min-similarity", min=-1.0, max=1.0, metavar="S",
    help="Only results with a similarity of at least S (still best first, at most --k).")]
Order = Annotated[Optional[str], typer.Option(
    "--order", metavar="ORDER",
    help="similarity (default), date or date_desc: the same k best results by the first "
         "year of their date, unknown years last.")]
Page = Annotated[Optional[int], typer.Option(
    "--page", min=1, help="Page n of the ranking: results (n-1)*k+1 .. n*k.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
Html = Annotated[Optional[Path], typer.Option(
    "--html", dir_okay=False, metavar="FILE",
    help="Also write a self-contained HTML page of the results (its directory must exist).")]
Open = Annotated[bool, typer.Option("--open", help="Open the HTML page in a browser.")]


def writable_file(path: Path | None) -> Path | None:
    """``path`` if a file can be written there: its directory must exist (pgallery creates
    no directory the user did not ask for) and the path must not be a directory."""
    if path is None:
        return None
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ArgError(f"{path}: is a directory; give a file name for the page")
    if not parent.is_dir():
        raise ArgError(f"{path}: no such directory {parent} (create it first, or write "
                       "the page somewhere that exists)")
    return path


@dataclass(frozen=True)
class SearchOptions:
    """What every search command takes besides its query: how many, the filters, the model,
    the recall knobs and where the results go."""

    k: int = 10
    filters: SearchFilters = SearchFilters()
    model: str | None = None
    recall: RecallSettings = RecallSettings()
    result: ResultOptions = ResultOptions()
    json: bool = False
    html: Path | None = None
    open_page: bool = False


def make_filters(author=None, technique=None, school=None, painting_type=None,
                 timeframe=None, year_from=None, year_to=None) -> SearchFilters:
    return SearchFilters(author, technique, school, painting_type, timeframe, year_from,
                         year_to)


def make_recall(ef_search, probes, exact) -> RecallSettings:
    return RecallSettings(ef_search=ef_search, probes=probes, exact=True if exact else None)


def _option(name, annotation, default):
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


# The seven filters: one entry per SearchFilters field, the one place a CLI filter is
# declared (a new filter is a field there and a line here).
FILTER_OPTIONS = [
    _option("author", Author, None), _option("technique", Technique, None),
    _option("school", School, None), _option("painting_type", PaintingType, None),
    _option("timeframe", Timeframe, None), _option("year_from", YearFrom, None),
    _option("year_to", YearTo, None),
]
SEARCH_OPTIONS = [
    _option("k", K, 10), *FILTER_OPTIONS, _option("model", Model, None),
    _option("ef_search", EfSearch, None), _option("probes", Probes, None),
    _option("exact", Exact, False), _option("min_similarity", MinSimilarity, None),
    _option("order", Order, None), _option("page", Page, None), _option("json", Json, False),
    _option("html", Html, None), _option("open_page", Open, False),
]


def search_options(command):
    """Give a search command --k, the seven filters, --model, the recall knobs and the
    outputs (--json, --html, --open); it receives them as one ``search: SearchOptions``.

        @app.command()
        @search_options
        def text(ctx: typer.Context, prompt: str, search: SearchOptions): ...
    """
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
           if p.name != "search"]
    names = [p.name for p in SEARCH_OPTIONS]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        given = {name: kwargs.pop(name) for name in names if name in kwargs}
        filters = make_filters(**{p.name: given.get(p.name) for p in FILTER_OPTIONS})
        options = SearchOptions(
            k=given.get("k", 10), filters=filters, model=given.get("model"),
            recall=make_recall(given.get("ef_search"), given.get("probes"),
                               given.get("exact")),
            result=ResultOptions(given.get("min_similarity"),
                                 given.get("order").lower() if given.get("order") else None,
                                 given.get("page")),
            json=bool(given.get("json")), html=writable_file(given.get("html")),
            open_page=bool(given.get("open_page")))
        return command(*args, search=options, **kwargs)

    parameters = own + SEARCH_OPTIONS
    wrapper.__signature__ = inspect.Signature(parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    del wrapper.__wrapped__  # typer must read the wrapper's signature, not the command's
    return wrapper
