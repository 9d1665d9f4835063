"""What the routes ask of the database and the embedding provider, one method each.

Every search is one call of a SQL search function (through pgallery.search.run_search):

    image    search_by_image(similar)         more like this painting
    text     search_by_text(prompt)           when the active model reads text
    hybrid   search_hybrid(prompt)            when it does not (the `local` provider):
                                              the keyword ranking, said so on the page
    upload   search_by_vector(vector)         an uploaded image (with text: both combined)
    browse   SELECT ... FROM painting          filters alone, no query: the collection

The methods that touch the database are coroutines, awaited on the server's event loop
(web/database.py); what blocks for long (a provider embedding a prompt) runs in a worker
thread. Around the search, only bookkeeping that saves round trips: the active model is re-read at
most every MODEL_TTL seconds, the type/timeframe choices every CHOICES_TTL seconds, and
image locations are remembered for thumbnails. When a filtered search finds nothing,
:meth:`SearchService.why_empty` asks the database which filter matched nothing, with
the SQL's own painting_matches() so the answer follows the search's own rules.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import psycopg
from anyio.to_thread import run_sync
from psycopg.rows import dict_row

from pgallery import search as core
from pgallery.commands.search import combine
from pgallery.config import Settings
from pgallery.errors import (ModelMismatch, PaintingNotFound, PgalleryError, UnknownModel,
                             from_database_error)
from pgallery.providers import PROVIDERS, get_provider
from pgallery.web.database import Database
from pgallery.web.query import FILTER_FIELDS, MAX_RANK, SearchRequest

MODEL_TTL = 5.0
CHOICES_TTL = 60.0
SUGGEST_FIELDS = ("author", "technique", "school")   # substring filters: suggestions
CHOICE_FIELDS = {"type": "painting_type", "timeframe": "timeframe"}  # exact: choices
PAINTING_COLUMNS = ("painting_id", "image_file", "title", "author", "date", "technique",
                    "painting_type", "school", "timeframe", "description")
FILTER_WORDS = {"author": "author contains", "technique": "technique contains",
                "school": "school contains", "type": "type is", "timeframe": "timeframe is",
                "year_from": "painted in or after", "year_to": "painted in or before"}

# Filters alone: the collection in its own order. A fixed statement; values are bound.
BROWSE = """
SELECT p.painting_id, p.image_file, p.title, p.author, p.technique, p.painting_type,
       p.school, p.timeframe, p.date,
       NULL::float8 AS distance, NULL::float8 AS similarity, NULL::float8 AS score
FROM painting p
WHERE painting_matches(p, search_request(
          author => %(author)s, technique => %(technique)s, school => %(school)s,
          painting_type => %(painting_type)s, timeframe => %(timeframe)s,
          year_from => %(year_from)s::integer, year_to => %(year_to)s::integer))
ORDER BY p.painting_id
LIMIT %(limit)s OFFSET %(offset)s
"""


@dataclass(frozen=True)
class Model:
    name: str
    provider: str | None
    supports_text: bool


@dataclass
class Outcome:
    """The rows of one page of a search, and what the page should say about them."""

    rows: list[dict]
    mode: str                       # image, text, hybrid, upload, browse
    model: str | None
    notices: list[str] = field(default_factory=list)
    empty_because: str | None = None
    more: bool = False              # a next page may have results


def _texts_provider(name: str | None) -> bool:
    return name in ("azure", "clip")


class SearchService:
    def __init__(self, db: Database, settings: Settings, uploads):
        self.db = db
        self.settings = settings
        self.uploads = uploads
        self._lock = threading.Lock()
        self._model: tuple[float, Model | None] | None = None
        self._choices: tuple[float, dict] | None = None
        self._providers: dict[str, object] = {}
        self._provider_lock = threading.Lock()
        self._cached_prompts: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._text_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._locations: OrderedDict[str, str | None] = OrderedDict()

    # --- the model and its provider ----------------------------------------------------------

    async def model(self) -> Model | None:
        now = time.monotonic()
        with self._lock:
            if self._model and now - self._model[0] < MODEL_TTL:
                return self._model[1]
        row = await self.db.fetchone("SELECT name, provider FROM embedding_model"
                                     " WHERE is_active")
        model = Model(row[0], row[1], _texts_provider(row[1])) if row else None
        with self._lock:
            self._model = (now, model)
        return model

    async def require_model(self) -> Model:
        model = await self.model()
        if model is None:
            raise UnknownModel("no active embedding model: load a collection first "
                               "(pgallery load ...) or SELECT use_model('name')")
        return model

    def provider(self, model: Model):
        """The provider that made the model's vectors (one per model, kept)."""
        with self._provider_lock:
            provider = self._providers.get(model.name)
            if provider is None:
                name = model.provider if model.provider in PROVIDERS else None
                provider = get_provider(name, self.settings)
                if provider.model != model.name:
                    provider.close()
                    raise ModelMismatch(
                        f"the active model is {model.name!r} but the {provider.name!r} "
                        f"provider embeds with {provider.model!r}; restart pgallery serve "
                        "with that model's provider configured")
                self._providers[model.name] = provider
            return provider

    def embed_image(self, model: Model):
        provider = self.provider(model)
        return lambda path: provider.embed_image(path)

    def _text_vector(self, model: Model, text: str) -> np.ndarray:
        key = (model.name, text)
        with self._lock:
            if key in self._text_vectors:
                self._text_vectors.move_to_end(key)
                return self._text_vectors[key]
        vector = np.asarray(self.provider(model).embed_text(text), dtype=np.float32)
        with self._lock:
            self._text_vectors[key] = vector
            while len(self._text_vectors) > 512:
                self._text_vectors.popitem(last=False)
        return vector

    async def _ensure_prompt_cached(self, model: Model, text: str) -> bool:
        """Make search_by_text(text) answerable; False if it cannot be (no writer rights)."""
        key = (model.name, text)
        if key in self._cached_prompts:
            return True
        row = await self.db.fetchone("SELECT prompt_vector(%s, %s) IS NOT NULL",
                                     (text, model.name))
        cached = row[0]
        if not cached:
            vector = await run_sync(self._text_vector, model, text)
            try:
                cached = await self.db.write_prompt(text, vector, model.name)
            except psycopg.Error as exc:
                raise from_database_error(exc) from None
        if cached:
            with self._lock:   # remembered, boundedly: a hostile client sends many prompts
                self._cached_prompts[key] = None
                while len(self._cached_prompts) > 4096:
                    self._cached_prompts.popitem(last=False)
        return cached

    # --- searches ----------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> Outcome:
        """One page of k rows: SQL's own ``page`` (a search) or LIMIT/OFFSET (browsing),
        so a request fetches only the rows it shows (plus one, browsing, to know whether
        there is a next page)."""
        notices: list[str] = []
        if request.mode == "browse":
            rows = await self._browse(request)
            model = await self.model()
            mode, model_name = "browse", model.name if model else None
            more = len(rows) > request.k
            rows = rows[:request.k]
        else:
            model = await self.require_model()
            model_name = model.name
            kind, query = await self._plan(request, model, notices)
            mode = kind if request.mode != "upload" else "upload"
            async with self.db.connection() as conn:
                rows = await core.run_search_async(
                    conn, kind, query, k=request.k, filters=request.filters,
                    model=model.name, result=core.ResultOptions(page=request.page))
            more = len(rows) >= request.k
        # "load more" stops at MAX_RANK results, whatever the search could still give
        more = more and (request.page + 1) * request.k <= MAX_RANK
        outcome = Outcome(rows, mode, model_name, notices, more=more)
        if not rows and request.page == 1 and request.filters.active():
            outcome.empty_because = await self.why_empty(request)
        return outcome

    async def _plan(self, request: SearchRequest, model: Model, notices: list[str]):
        """(kind of SQL search, its first argument) for this request under this model."""
        if request.mode == "image":
            return "image", request.similar
        if request.mode == "upload":
            upload = self.uploads.get(request.upload)
            if upload.model != model.name:
                raise ModelMismatch(f"that upload was embedded with {upload.model!r}, and "
                                    f"the active model is now {model.name!r}; upload the "
                                    "image again")
            vector = upload.vector
            if request.text:
                if model.supports_text:
                    vector = combine(vector, await run_sync(self._text_vector, model,
                                                            request.text))
                else:
                    notices.append(f"The active model ({model.name}) cannot read text, so "
                                   "the prompt was left out: these results are for the "
                                   "image alone.")
            return "vector", vector
        if model.supports_text:
            if await self._ensure_prompt_cached(model, request.text):
                return "text", request.text
            return "vector", await run_sync(self._text_vector, model, request.text)
        notices.append(f"The active model ({model.name}) cannot read text: these results "
                       "are ranked by keywords in titles, authors and descriptions "
                       "(search_hybrid). Text search needs Azure AI Vision or CLIP.")
        return "hybrid", request.text

    async def _browse(self, request: SearchRequest) -> list[dict]:
        args = {name: None for name in FILTER_FIELDS.values()}
        args.update(request.filters.active())
        args.update(limit=request.k + 1, offset=(request.page - 1) * request.k)
        try:
            return await self.db.fetchall(BROWSE, args, row_factory=dict_row)
        except psycopg.Error as exc:
            raise from_database_error(exc) from None

    async def why_empty(self, request: SearchRequest) -> str:
        """Which filter matched no painting (each counted alone), or that only together
        they match nothing."""
        active = request.filter_params()
        names = list(active)
        none = {name: None for name in FILTER_FIELDS.values()}
        counts = []
        args: dict = {}
        for i, param in enumerate(names):
            field_name = FILTER_FIELDS[param]
            one = dict(none, **{field_name: getattr(request.filters, field_name)})
            if field_name == "year_from" and request.filters.year_to is not None:
                one["year_to"] = request.filters.year_to      # a range is one filter
            if field_name == "year_to" and request.filters.year_from is not None:
                one["year_from"] = request.filters.year_from
            for key, value in one.items():
                args[f"{key}_{i}"] = value
            counts.append(
                f"count(*) FILTER (WHERE painting_matches(p, search_request("
                f"author => %(author_{i})s, technique => %(technique_{i})s, "
                f"school => %(school_{i})s, painting_type => %(painting_type_{i})s, "
                f"timeframe => %(timeframe_{i})s, year_from => %(year_from_{i})s::integer, "
                f"year_to => %(year_to_{i})s::integer)))")
        # The statement is built from this module's own fragments and the positions of the
        # active filters; every value is a bound parameter.
        row = await self.db.fetchone(f"SELECT {', '.join(counts)} FROM painting p", args)
        empty = [param for param, count in zip(names, row) if count == 0]
        if empty:
            return "; ".join(f"no painting matches {FILTER_WORDS[p]} {active[p]!r}"
                             for p in empty)
        if len(names) == 1:
            return (f"paintings match {FILTER_WORDS[names[0]]} {active[names[0]]!r}, but "
                    "none of them has an embedding for the active model")
        return ("each filter matches some paintings, but no painting matches all of them "
                "together: " + ", ".join(f"{FILTER_WORDS[p]} {active[p]!r}" for p in names))

    # --- paintings, locations, filter values -------------------------------------------------

    async def painting(self, image_file: str) -> dict:
        rows = await self.db.fetchall(f"SELECT {', '.join(PAINTING_COLUMNS)}, image_uri"
                                      " FROM painting WHERE image_file = %s", (image_file,),
                                      row_factory=dict_row)
        row = rows[0] if rows else None
        if row is None:
            raise PaintingNotFound(f"no painting has image_file {image_file[:200]!r}")
        self._remember(image_file, row.pop("image_uri"))
        return row

    async def image_location(self, image_file: str) -> str | None:
        """Where a painting's image is (as loaded); PaintingNotFound if no such painting."""
        with self._lock:
            if image_file in self._locations:
                self._locations.move_to_end(image_file)
                return self._locations[image_file]
        row = await self.db.fetchone("SELECT image_uri FROM painting WHERE image_file = %s",
                                     (image_file,))
        if row is None:
            raise PaintingNotFound(f"no painting has image_file {image_file[:200]!r}")
        self._remember(image_file, row[0])
        return row[0]

    def _remember(self, image_file: str, location: str | None) -> None:
        with self._lock:
            self._locations[image_file] = location
            self._locations.move_to_end(image_file)
            while len(self._locations) > 20000:
                self._locations.popitem(last=False)

    async def choices(self) -> dict[str, list[str]]:
        """The collection's types and timeframes (for the page's select boxes)."""
        now = time.monotonic()
        with self._lock:
            if self._choices and now - self._choices[0] < CHOICES_TTL:
                return self._choices[1]
        out = {}
        for param, column in CHOICE_FIELDS.items():
            # column is one of two constants above, never user text
            rows = await self.db.fetchall(
                f"SELECT DISTINCT lower({column}) AS v FROM painting"
                f" WHERE nullif(btrim({column}), '') IS NOT NULL ORDER BY v LIMIT 500")
            out[param] = [r[0] for r in rows]
        with self._lock:
            self._choices = (now, out)
        return out

    async def suggest(self, field_name: str, prefix: str, limit: int = 15) -> list[str]:
        """Distinct author/technique/school values containing ``prefix`` (case-insensitive),
        those that start with it first."""
        if field_name not in SUGGEST_FIELDS:
            raise PgalleryError(f"no suggestions for {field_name!r}")
        # field_name is one of SUGGEST_FIELDS (checked above); the text is a bound value
        # matched through like_pattern(), the same escaping the search filters use.
        statement = (
            f"SELECT v FROM (SELECT DISTINCT {field_name} AS v FROM painting"
            f" WHERE {field_name} ILIKE like_pattern(%(q)s)) AS d"
            " ORDER BY (v ILIKE substr(like_pattern(%(q)s), 2)) DESC, v"
            " LIMIT %(limit)s")
        rows = await self.db.fetchall(statement, {"q": prefix, "limit": limit})
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._provider_lock:
            for provider in self._providers.values():
                provider.close()
            self._providers.clear()
