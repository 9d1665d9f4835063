"""What the routes ask of the database and the embedding provider, one method each.

A search is pgallery.flow's, the same flow the CLI and pgallery.Gallery run: this module
is its asyncio driver (:meth:`SearchService.drive`). Each statement the flow asks for is
awaited on the server's pool (web/database.py), on the event loop that received the
request, with no hand-off to a worker thread; what blocks (building a provider, embedding
a prompt) runs in a worker thread; a prompt is cached through the writer connection. The
flow's state (the active model, re-read at most every MODEL_TTL seconds; the prompts known
to be cached; the providers) is kept here, one per server.

    image    search_by_image(similar)         more like this painting
    text     search_by_text(prompt)           when the active model reads text
    hybrid   search_hybrid(prompt)            when it does not: the keyword ranking,
                                              said so on the page
    upload   search_by_vector(vector)         an uploaded image (with text: both combined)
    browse   SELECT ... FROM painting         filters alone, no query: the collection

Around the search, only bookkeeping that saves round trips: the type/timeframe choices
are re-read every CHOICES_TTL seconds, and image locations are remembered for thumbnails.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import psycopg
from anyio.to_thread import run_sync
from psycopg.rows import dict_row

import pgallery.flow as flow
from pgallery.config import Settings
from pgallery.errors import PaintingNotFound, PgalleryError, from_database_error
from pgallery.palette import chips
from pgallery.flow import (AddressPolicy, Block, Fetch, ModelInfo, SearchParams,
                           SearchState, embed_new_image)
from pgallery.search import ResultOptions
from pgallery.vocabulary import FILTERS
from pgallery.web.database import Database
from pgallery.web.query import MAX_RANK, SearchRequest

MODEL_TTL = flow.MODEL_TTL
CHOICES_TTL = 60.0
# Filters the page suggests values for as you type, and those it offers as a list (their
# URL name -> the painting column of the same SQL name), from the vocabulary.
SUGGEST_FIELDS = tuple(p.api for p in FILTERS if p.widget == "suggest")
CHOICE_FIELDS = {p.api: p.sql for p in FILTERS if p.widget == "choices"}
_SUGGEST_COLUMNS = {p.api: p.sql for p in FILTERS if p.widget == "suggest"}
PAINTING_COLUMNS = ("painting_id", "image_file", "title", "author", "date", "technique",
                    "painting_type", "school", "timeframe", "description")

Model = ModelInfo


@dataclass
class Outcome:
    """The rows of one page of a search, and what the page should say about them."""

    rows: list[dict]
    mode: str                       # image, text, hybrid, upload, browse
    model: str | None
    notices: list[str] = field(default_factory=list)
    empty_because: str | None = None
    more: bool = False              # a next page may have results


def web_name(param, value) -> str:
    """How a page names a filter in an explanation: "school contains 'dutch'"."""
    return f"{param.words} {str(value)!r}"


class SearchService:
    def __init__(self, db: Database, settings: Settings, uploads):
        self.db = db
        self.settings = settings
        self.uploads = uploads
        self.state = SearchState(settings)
        self._lock = threading.Lock()
        self._choices: tuple[float, dict] | None = None
        self._locations: OrderedDict[str, str | None] = OrderedDict()

    # --- the flow's driver -------------------------------------------------------------------

    async def drive(self, steps: flow.Flow):
        """Run a flow (pgallery.flow): statements awaited on the pool, blocking calls in a
        worker thread, prompts cached as the writer. An error is thrown back into the flow
        at the step that asked. Once the flow has cached a prompt, its statements read
        from the primary: a standby may not have replayed the write yet (web/database.py)."""
        answer, error = None, None
        wrote = False
        while True:
            try:
                op = steps.throw(error) if error is not None else steps.send(answer)
            except StopIteration as stop:
                return stop.value
            answer, error = None, None
            try:
                if type(op) is Fetch:
                    answer = await self.db.fetch(op.statement, op.args, one=op.one,
                                                 on_primary=wrote)
                elif type(op) is Block:
                    answer = await run_sync(op.fn, *op.args)
                else:
                    answer = await self.db.write_prompt(op.prompt, op.vector, op.model)
                    wrote = wrote or bool(answer)
            except psycopg.Error as exc:
                error = from_database_error(exc)
            except Exception as exc:    # thrown into the flow
                error = exc

    # --- the model and its provider ----------------------------------------------------------

    async def model(self) -> ModelInfo | None:
        return await self.drive(flow.model(self.state))

    async def require_model(self) -> ModelInfo:
        return await self.drive(flow.require_model(self.state))

    def provider(self, model: ModelInfo):
        """The provider that made the model's vectors (one per model, kept)."""
        return self.state.provider(model)

    def embed_image(self, model: ModelInfo):
        provider = self.provider(model)
        return lambda path: embed_new_image(provider, path, AddressPolicy.PUBLIC_ONLY)

    # --- searches ----------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> Outcome:
        """One page of k rows: SQL's own ``page`` (a search) or LIMIT/OFFSET (browsing),
        so a request fetches only the rows it shows (plus one, browsing, to know whether
        there is a next page)."""
        params = SearchParams(
            text=request.text, similar=request.similar, filters=request.filters, k=request.k,
            colour=request.colours(), result=ResultOptions(page=request.page),
            policy=AddressPolicy.PUBLIC_ONLY)
        if request.mode == "upload":
            upload = self.uploads.get(request.upload)
            params = SearchParams(text=request.text, vector=upload.vector,
                                  vector_model=upload.model, filters=request.filters,
                                  k=request.k, result=ResultOptions(page=request.page))
        outcome = await self.drive(flow.search(params, self.state))
        # "load more" stops at MAX_RANK results, whatever the search could still give
        more = outcome.more and (request.page + 1) * request.k <= MAX_RANK
        # (a prompt this login may not cache is searched by its vector: still a text search)
        mode = ("upload" if request.mode == "upload" else
                "text" if outcome.kind == "vector" else outcome.kind)
        return Outcome(outcome.rows, mode, outcome.model, outcome.notices,
                       outcome.empty.message(web_name) if outcome.empty else None, more)

    # --- paintings, locations, filter values -------------------------------------------------

    async def painting(self, image_file: str) -> dict:
        columns = ", ".join(f"p.{c}" for c in PAINTING_COLUMNS)
        rows = await self.db.fetchall(
            f"SELECT {columns}, p.image_uri, pp.lab, pp.shares FROM painting p"
            " LEFT JOIN painting_palette pp ON pp.painting_id = p.painting_id"
            " WHERE p.image_file = %s", (image_file,), row_factory=dict_row)
        row = rows[0] if rows else None
        if row is None:
            raise PaintingNotFound(f"no painting has image_file {image_file[:200]!r}")
        self._remember(image_file, row.pop("image_uri"))
        row["palette"] = chips(row.pop("lab"), row.pop("shares"))
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
        # column is the vocabulary's name of one of SUGGEST_FIELDS (checked above); the
        # text is a bound value matched through like_pattern(), the filters' own escaping.
        column = _SUGGEST_COLUMNS[field_name]
        statement = (
            f"SELECT v FROM (SELECT DISTINCT {column} AS v FROM painting"
            f" WHERE {column} ILIKE like_pattern(%(q)s)) AS d"
            " ORDER BY (v ILIKE substr(like_pattern(%(q)s), 2)) DESC, v"
            " LIMIT %(limit)s")
        rows = await self.db.fetchall(statement, {"q": prefix, "limit": limit})
        return [r[0] for r in rows]

    async def map_points(self, args: dict) -> list[dict]:
        """One viewport of the map: SQL map_points (pgallery/map/viewport.py's statement)."""
        from pgallery.map.viewport import STATEMENT

        return await self.db.fetchall(STATEMENT, args, row_factory=dict_row)

    def close(self) -> None:
        self.state.close()
