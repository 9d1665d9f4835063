"""The search flow, written once, for the CLI, the Python library and the web server.

A search takes a few decisions: which model (the active one, unless named), which provider
(the one registered for the model's row, unless the caller names one), whether the prompt
must be embedded (not when the database has it cached), what to do when the model reads no
text (the keyword ranking, with a notice) or when the prompt cannot be cached (no writer
rights: search by the vector instead), then exactly one SQL search function, and, when that
finds nothing under filters, which filter left nothing.

Why a generator that yields operations (sans-IO) and not a function over a connection: the
same decisions run in two worlds. The CLI and :class:`pgallery.Gallery` are synchronous,
on one psycopg connection; the web server is asyncio, awaiting each statement on a pool
(web/database.py), and a hand-off to a worker thread per request cost it ~0.35 ms of CPU
(bench/benchmarks/web.py), a third of its own cost. Written as a function over a connection the
flow would have to exist twice (sync and async), as it did. Written as a generator, it
decides and *describes* each step - :class:`Fetch` (run this statement with these bound
arguments), :class:`StorePrompt` (cache this prompt's vector, as the writer),
:class:`Block` (call this blocking function: load a provider, embed) - and a driver
performs it and sends the answer back: :func:`run` on a connection, and the web's
``SearchService.drive`` awaiting the pool and running :class:`Block` in a worker thread.
An error an operation raises is thrown back into the flow at the step that asked for it.
A generator step costs about a microsecond: nothing against a search.

What the flow remembers between searches (the active model for a few seconds, the prompts
known to be cached, the providers it built, recent prompt vectors) lives in a
:class:`SearchState` (search_state.py) the caller keeps; nothing here does I/O.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np
import psycopg

import pgallery.vocabulary as vocabulary
from pgallery.errors import (ArgError, EmbeddingFailed, ModelMismatch, PermissionDenied,
                             ProviderError, UnknownModel)
from pgallery.search import (RecallSettings, ResultOptions, SearchFilters,
                             combined_statement, fetch_statement, search_statement)
from pgallery.palette import colour_arguments
from pgallery.providers import build_provider
from pgallery.search_state import (MODEL_TTL, AddressPolicy, ModelInfo,  # noqa: F401
                                   SearchState, as_vector, combine, embed_new_image)
from pgallery.vocabulary import FILTERS

# --- the operations a flow asks its driver to perform -----------------------------------------

@dataclass(frozen=True)
class Fetch:
    """Run one statement (fixed text, bound arguments) as a reader. The driver sends back
    a list of dict rows, or with ``one`` the first row as a tuple (None if there is none)."""

    statement: str
    args: object = None
    one: bool = False


@dataclass(frozen=True)
class StorePrompt:
    """Cache a prompt's vector (store_prompt_embedding). The driver sends back True, or
    False when it has no right to write (nothing is stored then)."""

    prompt: str
    vector: np.ndarray
    model: str


@dataclass(frozen=True)
class Block:
    """Call ``fn(*args)``, which blocks (loads a model, embeds): its result is sent back."""

    fn: Callable
    args: tuple = ()


Flow = Generator[Fetch | StorePrompt | Block, object, object]


def run(flow: Flow, conn: psycopg.Connection):
    """Drive a flow on one synchronous connection: its return value."""
    answer, error = None, None
    while True:
        try:
            op = flow.throw(error) if error is not None else flow.send(answer)
        except StopIteration as stop:
            return stop.value
        answer, error = None, None
        try:
            if type(op) is Fetch:
                answer = fetch(conn, op)
            elif type(op) is Block:
                answer = op.fn(*op.args)
            else:
                answer = store_prompt(conn, op)
        except Exception as exc:     # thrown into the flow at the step that asked
            error = exc


def fetch(conn: psycopg.Connection, op: Fetch):
    return fetch_statement(conn, op.statement, op.args, one=op.one)


def store_prompt(conn: psycopg.Connection, op: StorePrompt) -> bool:
    from pgallery.search import cache_prompt

    try:
        cache_prompt(conn, op.prompt, op.vector, op.model)
    except PermissionDenied:
        return False
    return True


# --- the model ------------------------------------------------------------------------------

MODEL_SQL = ("SELECT name, provider, dimension, is_active FROM embedding_model"
             " WHERE name = coalesce(%s, (SELECT name FROM embedding_model WHERE is_active))")


def model(state: SearchState, name: str | None = None) -> Flow:
    """The named model, or the active one (None when there is none): the one place a
    model is looked up, remembered for MODEL_TTL seconds."""
    found = state.cached_model(name)
    if found is not False:
        return found
    row = yield Fetch(MODEL_SQL, (name,), one=True)
    if row is not None:
        found = ModelInfo(row[0], row[1], row[2], bool(row[3]))
    elif name is not None:
        found = ModelInfo(name, known=False)
    else:
        found = None
    state.remember_model(name, found)
    return found


def require_model(state: SearchState, name: str | None = None) -> Flow:
    found = yield from model(state, name)
    if found is None:
        raise UnknownModel("no active embedding model: load a collection first "
                           "(pgallery load ...) or SELECT use_model('name')")
    return found


# --- what a search is and what it gives ------------------------------------------------------

@dataclass(frozen=True)
class SearchParams:
    """One search. At most one of similar, image, vector and query; text alone is a text
    search, text with an image or a vector steers it; nothing at all browses the
    collection under the filters."""

    text: str | None = None
    similar: str | None = None            # a stored painting's image_file
    image: object = None                  # a new image: path, URL or bytes
    vector: object = None                 # a vector you have
    query: str | None = None              # a composed query (query_syntax.py)
    colour: object = None                 # colours: '#rrggbb[:weight]', a list or "a,b"
    filters: SearchFilters = field(default_factory=SearchFilters)
    k: int = 10
    model: str | None = None
    recall: RecallSettings = field(default_factory=RecallSettings)
    result: ResultOptions = field(default_factory=ResultOptions)
    hybrid: bool = False                  # fuse with the keyword ranking (search_hybrid)
    # When the model reads no text: rank by keywords / leave the prompt out, with a
    # notice (True), or raise TextNotSupported, the provider's own message (False).
    fallback: bool = True
    provider: str | None = None           # a provider to embed with, instead of the model's
    vector_model: str | None = None       # the model ``vector`` was embedded with, if known
    policy: AddressPolicy = AddressPolicy.ANY

    @property
    def mode(self) -> str:
        given = [name for name in ("similar", "image", "vector", "query", "colour")
                 if getattr(self, name) is not None]
        if len(given) > 1 or given == ["colour"] and self.text is not None:
            given += ["text"] if self.text is not None else []
            raise ArgError(f"search by one of similar, image, vector, query or colour, "
                           f"not {' and '.join(given)}")
        if given:
            return given[0]
        return "text" if self.text is not None else "browse"


@dataclass(frozen=True)
class FilterCount:
    param: vocabulary.Param
    value: object
    count: int


@dataclass(frozen=True)
class EmptyReason:
    """Why a filtered search found nothing: how many of the model's paintings (or, browsing,
    of the collection's) each filter leaves on its own. One rule; each front end names the
    filters its own way (``--type`` on the command line, "type is" on a page)."""

    model: str | None
    counts: tuple[FilterCount, ...]

    def message(self, name: Callable[[vocabulary.Param, object], str] | None = None) -> str:
        name = name or (lambda p, v: f"{p.words} {str(v)!r}")
        of = f"painting of {self.model}" if self.model else "painting"
        empty = [name(c.param, c.value) for c in self.counts if c.count == 0]
        others = [f"{name(c.param, c.value)}: {c.count}" for c in self.counts if c.count]
        if empty:
            return (f"{' and '.join(empty)} {'matches' if len(empty) == 1 else 'match'} "
                    f"no {of}" + (f" (on its own {', '.join(others)})" if others else ""))
        if len(self.counts) == 1:
            only = self.counts[0]
            paintings = f"{only.count} painting{'s' if only.count != 1 else ''}" + (
                f" of {self.model}" if self.model else "")
            return (f"{name(only.param, only.value)} matches {paintings}, but none of them "
                    "is among the results (a search leaves its query painting out)")
        return (f"each filter matches paintings on its own ({', '.join(others)}), but no "
                f"{of} passes them all together")


@dataclass
class SearchOutcome:
    """The rows of one search (dicts by SQL column name, best first) and what to say."""

    rows: list[dict]
    kind: str              # the SQL search: image, vector, text, hybrid, combined, browse
    model: str | None
    notices: list[str] = field(default_factory=list)
    empty: EmptyReason | None = None
    more: bool = False     # a next page may have results


def keywords_only(model: str) -> str:
    return (f"ranked by keywords only: the model {model} cannot read text, so these "
            "results are search_hybrid's keyword ranking of titles, authors and "
            "descriptions. Text search needs a model that reads text (Azure AI Vision or CLIP).")


def prompt_left_out(model: str) -> str:
    return (f"The model {model} cannot read text, so the prompt was left out: these "
            "results are for the image alone.")


# --- the flow --------------------------------------------------------------------------------

def search(params: SearchParams, state: SearchState) -> Flow:
    """One search, as a flow (see the module docstring): a SearchOutcome."""
    mode = params.mode
    notices: list[str] = []
    if mode == "browse":
        target = yield from model(state, params.model)
        rows = yield from _browse(params)
        more = len(rows) > params.k
        outcome = SearchOutcome(rows[:params.k], "browse", target.name if target else None,
                                notices, more=more)
    else:
        target = yield from model(state, params.model)
        if target is None and params.provider is not None and mode in ("text", "image",
                                                                         "query"):
            # a provider that cannot be built says so first (what to install, configure)
            yield Block(_build_and_close, (state, params.provider))
        if target is None:
            target = yield from require_model(state, params.model)
        if mode == "query":
            statement, args = yield from _composed(params, target, state)
            kind = "combined"
        elif mode == "colour":
            kind = "colour"
            statement, args = search_statement(
                kind, colour_arguments(params.colour), k=params.k, filters=params.filters,
                model=target.name, recall=params.recall, result=params.result)
        else:
            kind, query = yield from _plan(mode, params, target, state, notices)
            statement, args = search_statement(
                kind, query, k=params.k, filters=params.filters, model=target.name,
                recall=params.recall, result=params.result)
        rows = yield Fetch(statement, args)
        outcome = SearchOutcome(rows, kind, target.name, notices, more=len(rows) >= params.k)
    if not outcome.rows and (params.result.page or 1) == 1 and params.filters.active():
        outcome.empty = yield from why_empty(params.filters,
                                             None if mode == "browse" else outcome.model)
    return outcome


def _build_and_close(state: SearchState, name: str) -> None:
    build_provider(name, state.settings).close()


def _plan(mode: str, params: SearchParams, target: ModelInfo, state: SearchState,
          notices: list[str]) -> Flow:
    """(kind of SQL search, its query argument) for this search under this model."""
    if mode == "similar":
        return "image", params.similar
    if mode in ("image", "vector"):
        if mode == "image":
            provider = yield Block(state.provider, (target, params.provider))
            vector = yield Block(embed_new_image, (provider, params.image, params.policy))
        else:
            if params.vector_model is not None and params.vector_model != target.name:
                raise ModelMismatch(f"that image was embedded with {params.vector_model!r}, "
                                    f"and the active model is now {target.name!r}; embed "
                                    "(upload) the image again")
            vector = as_vector(params.vector)
            provider = None
        if params.text:
            reads_text = provider.supports_text if provider else target.supports_text
            if reads_text or not params.fallback:
                if provider is None:
                    provider = yield Block(state.provider, (target, params.provider))
                text_vector = yield Block(state.text_vector, (provider, params.text))
                vector = combine(vector, text_vector)
            else:
                notices.append(prompt_left_out(target.name))
        return "vector", vector
    text = params.text
    if not text or not text.strip():
        raise ArgError("the prompt is empty")
    kind = "hybrid" if params.hybrid else "text"
    # A model whose provider reads no text has no prompt vectors at all: no need to ask.
    if (params.provider is None and target.info is not None and not target.supports_text
            and params.fallback):
        notices.append(keywords_only(target.name))
        return "hybrid", text
    if (yield from _prompt_cached(state, target, text)):
        return kind, text
    provider = yield Block(state.provider, (target, params.provider))
    if not provider.supports_text and params.fallback:
        notices.append(keywords_only(target.name))
        return "hybrid", text
    vector = yield Block(state.text_vector, (provider, text))   # TextNotSupported, if it must
    if (yield StorePrompt(text, vector, target.name)):
        state.remember_prompt(target.name, text)
        return kind, text
    return ("hybrid", text) if params.hybrid else ("vector", vector)


def _prompt_cached(state: SearchState, target: ModelInfo, text: str) -> Flow:
    if state.prompt_cached(target.name, text):
        return True
    row = yield Fetch("SELECT prompt_vector(%s, %s) IS NOT NULL", (text, target.name),
                      one=True)
    if row[0]:
        state.remember_prompt(target.name, text)
    return bool(row[0])


def _composed(params: SearchParams, target: ModelInfo, state: SearchState) -> Flow:
    """search_combined's statement for a composed query: its prompts cached (embedded
    where they are not), its new images embedded."""
    from pgallery.query_syntax import parse_query, pointed
    expression = params.query
    terms = parse_query(expression)
    for term in terms:
        if (term.kind == "image" and not str(term.value).startswith(("http://", "https://"))
                and not os.path.isfile(term.value)):
            raise ArgError(pointed(f"{term.value:.200}: no such file (a new image is a path "
                                   "or an http(s) URL; a stored painting is @image_file)",
                                   expression, term.start))
    prompts = [t for t in terms if t.kind == "prompt"]
    images = [t for t in terms if t.kind == "image"]
    missing = []
    for term in prompts:
        if not (yield from _prompt_cached(state, target, term.value)):
            missing.append(term)
    image_vectors = []
    if missing or images:
        provider = yield Block(state.provider, (target, params.provider))
        for term in missing:
            try:
                vector = yield Block(state.text_vector, (provider, term.value))
            except ProviderError as exc:
                raise type(exc)(pointed(str(exc), expression, term.start)) from None
            if (yield StorePrompt(term.value, vector, target.name)):
                state.remember_prompt(target.name, term.value)
            else:
                raise PermissionDenied("a composed query's prompts must be cached, and this "
                                       "login may not write them")
        for term in images:
            try:
                image_vectors.append((yield Block(embed_new_image,
                                                  (provider, term.value, params.policy))))
            except EmbeddingFailed as exc:
                raise EmbeddingFailed(pointed(str(exc), expression, term.start),
                                      exc.code) from None
    vectors = iter(image_vectors)
    vector_terms = [(next(vectors) if t.kind == "image" else np.asarray(t.value), t.weight)
                    for t in terms if t.kind in ("image", "vector")]
    paintings = [t for t in terms if t.kind == "painting"]
    colours = [f"{t.value}:{t.weight:g}" for t in terms if t.kind == "colour"]
    if len(colours) > 5:
        raise ArgError("a composed query takes at most 5 colours")
    return combined_statement(
        paintings=[t.value for t in paintings], painting_weights=[t.weight for t in paintings],
        prompts=[t.value for t in prompts], prompt_weights=[t.weight for t in prompts],
        vectors=[v for v, _ in vector_terms], vector_weights=[w for _, w in vector_terms],
        colours=colours, k=params.k, filters=params.filters, model=target.name, recall=params.recall,
        result=params.result)


# --- filters alone, and why a filtered search is empty ---------------------------------------

_CASTS = {str: "text", int: "integer", float: "double precision", bool: "boolean"}


def _request(suffix: str = "") -> str:
    """``search_request(author => %(author)s::text, ...)`` over every filter (built from
    vocabulary.FILTERS, never from user text; the values are bound)."""
    return "search_request(" + ", ".join(
        f"{p.sql} => %({p.sql}{suffix})s::{_CASTS[p.type]}" for p in FILTERS) + ")"


BROWSE = (f"SELECT p.painting_id, p.image_file, p.title, p.author, p.technique, "
          f"p.painting_type, p.school, p.timeframe, p.date, NULL::float8 AS distance, "
          f"NULL::float8 AS similarity, NULL::float8 AS score FROM painting p "
          f"WHERE painting_matches(p, {_request()}) ORDER BY p.painting_id "
          f"LIMIT %(limit)s OFFSET %(offset)s")


def _browse(params: SearchParams) -> Flow:
    """Filters alone, no query: the collection in its own order, one row more than a page
    (to know whether there is a next one)."""
    page = params.result.page or 1
    args = {p.sql: None for p in FILTERS}
    args.update(params.filters.active())
    args.update(limit=params.k + 1, offset=(page - 1) * params.k)
    return (yield Fetch(BROWSE, args))


def why_empty(filters: SearchFilters, model: str | None) -> Flow:
    """Each active filter counted alone (a year range as one filter) over the paintings
    that have a vector of ``model`` (over every painting when ``model`` is None): an
    EmptyReason."""
    active = [p for p in FILTERS if getattr(filters, p.sql) is not None]
    counts, args = [], {}
    for i, param in enumerate(active):
        one = {p.sql: None for p in FILTERS}
        one[param.sql] = getattr(filters, param.sql)
        for low, high in (("year_from", "year_to"), ("year_to", "year_from")):
            if param.sql == low and getattr(filters, high) is not None:
                one[high] = getattr(filters, high)   # a range is one filter
        args.update({f"{key}_{i}": value for key, value in one.items()})
        counts.append("count(*) FILTER (WHERE painting_matches(ROW(p.*)::painting, "
                      f"{_request(f'_{i}')}))")
    population = ""
    if model is not None:
        # IN, not a correlated EXISTS: Citus runs the subquery once, over every shard
        population = (" WHERE p.painting_id IN (SELECT e.painting_id FROM painting_embedding e"
                      " WHERE e.model = %(model)s)")
        args["model"] = model
    # Built from this module's fragments and the positions of the active filters; every
    # value is a bound parameter.
    row = yield Fetch(f"SELECT {', '.join(counts)} FROM painting p{population}", args,
                      one=True)
    return EmptyReason(model, tuple(FilterCount(p, getattr(filters, p.sql), n)
                                    for p, n in zip(active, row)))
