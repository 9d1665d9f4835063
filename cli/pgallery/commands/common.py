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

import pgallery.vocabulary as vocabulary
from pgallery import migrations
from pgallery.config import Settings
from pgallery.database import connect, resolve_url
from pgallery.errors import ArgError
from pgallery.search import RecallSettings, ResultOptions, SearchFilters


def settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, Settings) else Settings.load()


@contextmanager
def gallery(ctx: typer.Context):
    """The core (pgallery.Gallery) over the configured database, migrated to head."""
    from pgallery.gallery import Gallery

    with Gallery(settings=settings(ctx)) as core:
        yield core


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


def cli_option(param: vocabulary.Param):
    """The Typer option of a vocabulary entry: its flag, type, help and limits. A filter's
    limits are SearchFilters' to check, so that every front end says the same thing."""
    decls = [param.flag] + (["-k"] if param.sql == "k" else [])
    limits = {}
    if param not in vocabulary.FILTERS and param.type in (int, float):
        limits = {"min": param.low, "max": param.high}
        if param.type is int:
            limits = {k: int(v) for k, v in limits.items() if v is not None}
    if param.type is bool:
        return Annotated[bool, typer.Option(*decls, help=param.help)]
    kind = param.type if param.cli_default is not None else Optional[param.type]
    return Annotated[kind, typer.Option(*decls, help=param.help, metavar=param.metavar,
                                        **limits)]


def _python_name(param: vocabulary.Param) -> str:
    return "order" if param.sql == "order_by" else param.sql


# One annotation per vocabulary entry, by its Python name (Author, PaintingType, ...).
OPTION_TYPES = {_python_name(p): cli_option(p) for p in vocabulary.PARAMETERS}
Author, Technique, School = (OPTION_TYPES[n] for n in ("author", "technique", "school"))
PaintingType, Timeframe = OPTION_TYPES["painting_type"], OPTION_TYPES["timeframe"]
YearFrom, YearTo, Model = OPTION_TYPES["year_from"], OPTION_TYPES["year_to"], OPTION_TYPES["model"]
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


def make_filters(*values, **named) -> SearchFilters:
    return SearchFilters(*values, **named)


def make_recall(ef_search, probes, exact) -> RecallSettings:
    return RecallSettings(ef_search=ef_search, probes=probes, exact=True if exact else None)


def _option(name, annotation, default):
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


# The filters and the search options, from the vocabulary (a new filter is an entry there).
FILTER_OPTIONS = [_option(p.sql, OPTION_TYPES[p.sql], None) for p in vocabulary.FILTERS]
SEARCH_OPTIONS = [
    *(_option(_python_name(p), OPTION_TYPES[_python_name(p)], p.cli_default)
      for p in (vocabulary.K, *vocabulary.FILTERS, *vocabulary.OPTIONS[1:])),
    _option("json", Json, False), _option("html", Html, None), _option("open_page", Open, False),
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
        filters = SearchFilters(**{p.name: given.get(p.name) for p in FILTER_OPTIONS})
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


def filter_options(command):
    """Give a command every filter of the vocabulary, in place of its ``filters``
    parameter; it receives them as one ``filters: SearchFilters``.

        @filter_options
        def duplicates(ctx: typer.Context, ..., filters: SearchFilters): ...
    """
    own = list(inspect.signature(command, eval_str=True).parameters.values())
    at = [p.name for p in own].index("filters")
    names = [p.name for p in FILTER_OPTIONS]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        filters = SearchFilters(**{name: kwargs.pop(name, None) for name in names})
        return command(*args, filters=filters, **kwargs)

    # the filters where the command has its ``filters`` parameter, keyword-only from there
    parameters = own[:at] + FILTER_OPTIONS + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                                              for p in own[at + 1:]]
    wrapper.__signature__ = inspect.Signature(parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    del wrapper.__wrapped__
    return wrapper
