"""The routes: each page and its JSON twin share one SearchRequest and one service call.

    GET  /                          the search page; the URL is the whole state
    POST /search                    the page's form (an image file or URL, or just text and
                                    filters): answers 303 to the GET URL of that search
    GET  /paintings/{image_file}    one painting, large, with more like this
    GET  /api/search                JSON: the same parameters as the page
    POST /api/search                JSON: multipart with a file field `image` (or image_url)
    GET  /api/paintings/{image_file}
    GET  /explore                   the collection as a zoomable map (static/explore.js)
    GET  /api/map                   JSON: at most `limit` paintings in `bbox` (the map's twin)
    GET  /api/filters               the collection's types and timeframes
    GET  /api/suggest?field=&q=     author / technique / school values containing q
    GET  /api/openapi.json          the OpenAPI 3.1 document of all this (web/openapi.py,
                                    from the @operation of each route); /api/docs shows it
    GET  /healthz, /readyz          the process answers; the database answers a search
    GET  /thumbnails/{image_file}   a painting's thumbnail (ETag, Cache-Control)
    GET  /images/{image_file}       a painting's large view (a re-encoded JPEG, never the file)
    GET  /uploads/{hash}.jpg        the preview of an uploaded query image
    GET  /static/...                CSS and JavaScript, served by pgallery (no CDN)

Image routes look the painting up by image_file in the database and read the location
recorded there; nothing from a request is ever used as a path. Around the routes, the
limits, tokens and access log of a server on a network (create_app's middleware).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
import orjson
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pgallery import __version__
from pgallery.config import Settings
from pgallery.errors import ArgError, DatabaseError, PaintingNotFound, PgalleryError
from pgallery.errors import from_database_error
from pgallery.rendering.html import CSS as BASE_CSS, PAINTING_FIELDS
from pgallery.rendering.result_json import result_object
from pgallery.web.config import WebConfig
from pgallery.web.database import Database
from pgallery.web.errors import UploadTooLarge, one_line, status_for
from pgallery.web.openapi import DIGEST, HTML, IMAGE_FILE, JPEG, operation, ref, upload_form
from pgallery.web.openapi import document as openapi_document
from pgallery.web.query import (FILTER_FIELDS, MAX_TEXT, QUERY_PARAMS, SIMILAR, TEXT_PATTERN,
                                UPLOAD, UPLOAD_HASH, WEB_FILTERS, SearchRequest, clean_text)
from pgallery.map import viewport
from pgallery.map.viewport import LIMIT_DEFAULT, LIMIT_MAX
from pgallery.web.access_log import AccessLog
from pgallery.web.limits import Limits
from pgallery.web.security import SecurityHeaders
from pgallery.web.tokens import BearerTokens
from pgallery.web.service import SUGGEST_FIELDS, SearchService
from pgallery.vocabulary import FILTERS, RESULT_COLUMNS, Param
from pgallery.web.thumbnail_cache import LARGE_SIDE, THUMB_SIDE, ThumbnailCache
from pgallery.web.uploads import UploadStore

log = logging.getLogger("pgallery.web")
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE.parent / "templates")   # shared with rendering/
FORM_OVERHEAD = 256 * 1024        # multipart headers and the text fields around a file
MODE_LABELS = {"image": "More like this", "text": "Text search", "hybrid": "Keyword ranking",
               "upload": "Similar to your image", "colour": "Colour search",
               "browse": "The collection"}
IMAGE_CACHE = "public, max-age=86400"
FORM_FIELDS = frozenset((*FILTER_FIELDS, "text", "similar", "upload", "colour", "k", "page",
                         "image_url"))


class JSONResponse(StarletteJSONResponse):
    """JSON rendered by orjson: compact UTF-8 like Starlette's, a few times faster than the
    standard library's encoder on a page of results (this is every API answer)."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def path_of(image_file: str) -> str:
    return quote(image_file, safe="")


API_NAMES = {c.sql: c.api for c in RESULT_COLUMNS}


def results_json(rows: list[dict], request: SearchRequest, first: int = 1) -> list[dict]:
    """The API's result objects, ranked from ``first``; painting links keep the filters
    (the query string is built once per answer, not per row: this is the hot path)."""
    filters = request.filter_params()
    suffix = "?" + urlencode(filters) if filters else ""
    out = []
    for rank, row in enumerate(rows, first):
        f = row["image_file"]
        path = quote(f, safe="")
        item = result_object(row, rank)     # the CLI's --json object, plus the links
        item.update(thumbnail_url=f"/thumbnails/{path}", image_url=f"/images/{path}",
                    painting_url=f"/paintings/{path}{suffix}",
                    api_url=f"/api/paintings/{path}")
        out.append(item)
    return out


def wants_json(request: Request) -> bool:
    """JSON for the API and the picture routes; a page for the pages, and for anything
    else a browser asked for."""
    path = request.url.path
    if path in ("/", "/search", "/explore") or path.startswith("/paintings/"):
        return False
    if path.startswith(("/api/", "/thumbnails/", "/images/", "/uploads/", "/static/")):
        return True
    return "text/html" not in request.headers.get("accept", "")


def error_response(request: Request, status: int, message: str) -> Response:
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    return templates.TemplateResponse(request, "error.html", _page_context(
        request, status=status, message=message), status_code=status)


def _page_context(request: Request, **extra) -> dict:
    app = request.app.state
    try:
        req = SearchRequest.from_params(request.query_params)
    except ArgError:
        req = SearchRequest()
    context = {"req": req, "version": __version__, "choices": {"type": [], "timeframe": []},
               "max_upload_mb": app.config.max_upload_bytes // (1024 * 1024),
               "path_of": path_of, "model": None,
               "filter_fields": [p for p in FILTERS if p.web]}
    context.update(extra)
    return context


# --- pages -----------------------------------------------------------------------------------

# the fields of a search form besides the image: the query parameters but a query painting
FORM_PARAMS = tuple(p for p in QUERY_PARAMS if p not in (SIMILAR, UPLOAD))


@operation("GET", "The search page (the URL is the whole search)", query=QUERY_PARAMS,
           media=HTML, tag="pages", errors=(404, 409, 422, 502))
async def home(request: Request) -> Response:
    service: SearchService = request.app.state.service
    req = SearchRequest.from_params(request.query_params)
    outcome = await service.search(req)
    query_painting = None
    if req.similar:
        query_painting = await service.painting(req.similar)
    upload = request.app.state.uploads.peek(req.upload) if req.upload else None
    choices = await service.choices()
    first = (req.page - 1) * req.k + 1
    results = results_json(outcome.rows, req, first)
    context = _page_context(
        request, req=req, outcome=outcome, results=results, choices=choices,
        mode_label=MODE_LABELS[outcome.mode], query_painting=query_painting, upload=upload,
        json_url=req.url("/api/search"), model=outcome.model,
        more_url=req.url(page=req.page + 1) if outcome.more else None,
        chips=[(name, value, req.without_filter(name).url())
               for name, value in req.filter_params().items()],
        all_results=req.page > 1)
    return templates.TemplateResponse(request, "search.html", context)


async def _model_name(service: SearchService) -> str | None:
    model = await service.model()
    return model.name if model else None


@operation("POST", "The search page's form: answers 303 to the search's GET URL",
           form=upload_form(FORM_PARAMS), media="", status=303, tag="pages",
           errors=(409, 413, 415, 422, 502), headers=("Location",))
async def search_form(request: Request) -> Response:
    """The page's form: an image makes an upload; the answer is always a GET URL (303)."""
    params, data, name, image_url = await _read_form(request)
    if data is not None or image_url:          # a new image replaces the query painting
        params.pop("similar", None)
        params.pop("upload", None)
        params.pop("colour", None)
    elif (params.get("text") or "").strip():   # a prompt typed over "more like this"
        params.pop("similar", None)
        params.pop("colour", None)
    elif (params.get("colour") or "").strip():  # colours picked over "more like this"
        params.pop("similar", None)
        params.pop("upload", None)
    params.pop("page", None)
    req = SearchRequest.from_params(params)
    if data is not None or image_url:
        digest = await _add_upload(request, data, name, image_url)
        req = req.with_(upload=digest)
    return RedirectResponse(req.url(), status_code=303)


@operation("GET", "One painting's page, with more like it", path=(IMAGE_FILE,), media=HTML,
           query=WEB_FILTERS, tag="pages", errors=(404, 422))
async def painting_page(request: Request) -> Response:
    service: SearchService = request.app.state.service
    image_file = _path_param(request)
    req = SearchRequest.from_params(request.query_params).with_(
        text=None, upload=None, colour=None, similar=image_file, page=1, k=12)
    painting = await service.painting(image_file)
    try:
        outcome = await service.search(req)
        similar, empty_because = results_json(outcome.rows, req), outcome.empty_because
    except PgalleryError as exc:   # no embedding for the active model, no model: say so
        similar, empty_because = [], one_line(exc)
    choices = await service.choices()
    fields = [(label, painting.get(key)) for key, label in PAINTING_FIELDS if key in painting]
    context = _page_context(
        request, req=req.with_(similar=None), painting=painting, fields=fields,
        similar=similar, more_url=req.with_(k=20).url(), choices=choices,
        model=await _model_name(service),
        json_url=f"/api/paintings/{path_of(image_file)}",
        empty_because=empty_because)
    return templates.TemplateResponse(request, "painting.html", context)


# --- the JSON API ----------------------------------------------------------------------------

def _search_json(request: Request, req: SearchRequest, outcome) -> dict:
    first = (req.page - 1) * req.k + 1
    return {"results": results_json(outcome.rows, req, first),
            "query": req.echo(), "mode": outcome.mode, "model": outcome.model,
            "notices": outcome.notices, "empty_because": outcome.empty_because,
            "page_url": req.url(), "api_url": req.url("/api/search"),
            "next_url": req.url("/api/search", page=req.page + 1) if outcome.more else None}


@operation("GET", "Search by text, by a painting (similar), by an upload, or browse by "
           "filters", query=QUERY_PARAMS, ok=ref("SearchResponse"),
           errors=(404, 409, 422, 502))
@operation("POST", "Search by a new image: multipart with the file field `image` (or "
           "`image_url`)", form=upload_form(FORM_PARAMS), ok=ref("SearchResponse"),
           errors=(409, 413, 415, 422, 502))
async def api_search(request: Request) -> Response:
    service: SearchService = request.app.state.service
    if request.method == "POST":
        params, data, name, image_url = await _read_form(request)
        if data is None and not image_url:
            raise ArgError("POST /api/search needs a file field 'image' (or 'image_url'); "
                           "GET /api/search searches by text or painting")
        req = SearchRequest.from_params({k: v for k, v in params.items()
                                         if k not in ("similar", "upload")})
        digest = await _add_upload(request, data, name, image_url)
        req = req.with_(upload=digest)
    else:
        req = SearchRequest.from_params(request.query_params)
    outcome = await service.search(req)
    return JSONResponse(_search_json(request, req, outcome))


@operation("GET", "One painting's metadata and links", path=(IMAGE_FILE,),
           ok=ref("Painting"), errors=(404,))
async def api_painting(request: Request) -> Response:
    service: SearchService = request.app.state.service
    image_file = _path_param(request)
    painting = await service.painting(image_file)
    painting = {API_NAMES.get(k, k): v for k, v in painting.items()}
    painting.update(thumbnail_url=f"/thumbnails/{path_of(image_file)}",
                    image_url=f"/images/{path_of(image_file)}",
                    painting_url=f"/paintings/{path_of(image_file)}",
                    similar_url=SearchRequest(similar=image_file).url("/api/search"))
    return JSONResponse(painting)


# The map's viewport parameters (pgallery.map.viewport checks them), beside the filters
MAP_PARAMS: tuple[Param, ...] = (
    Param("bbox", str, "The view: x0,y0,x1,y1 of the unit-square map, y up, x0 <= x1 and "
          "y0 <= y1 (default the whole map).", max_length=MAX_TEXT),
    Param("limit", int, "At most this many points: an even sample of the view when it "
          "holds more.", low=1, high=LIMIT_MAX, default=LIMIT_DEFAULT),
    Param("model", str, "The model whose map to show (default the active one).",
          max_length=MAX_TEXT, pattern=TEXT_PATTERN),
    *WEB_FILTERS)
MAP_POINTS = {"type": "object", "required": ["points", "bbox", "limit", "complete"],
              "properties": {
                  "points": {"type": "array", "items": {
                      "type": "object",
                      "required": ["image_file", "title", "x", "y", "thumbnail_url",
                                   "painting_url"],
                      "properties": {"image_file": {"type": "string"},
                                     "title": {"type": ["string", "null"]},
                                     "x": {"type": "number"}, "y": {"type": "number"},
                                     "thumbnail_url": {"type": "string"},
                                     "painting_url": {"type": "string"}}}},
                  "bbox": {"type": "array", "items": {"type": "number"}},
                  "limit": {"type": "integer"}, "complete": {"type": "boolean"}}}


@operation("GET", "The collection as a zoomable map of thumbnails", query=WEB_FILTERS,
           media=HTML, tag="pages", errors=(422,))
async def explore_page(request: Request) -> Response:
    service: SearchService = request.app.state.service
    req = SearchRequest.from_params(request.query_params)
    context = _page_context(request, req=req, choices=await service.choices(),
                            model=await _model_name(service),
                            json_url=req.url("/api/map"))
    return templates.TemplateResponse(request, "explore.html", context)


@operation("GET", "At most `limit` paintings of the map inside `bbox` (the map's JSON "
           "twin)", query=MAP_PARAMS, ok=MAP_POINTS, errors=(404, 422))
async def api_map(request: Request) -> Response:

    params = request.query_params
    box = viewport.parse_bbox(params.get("bbox"))
    limit = viewport.parse_limit(params.get("limit"))
    req = SearchRequest.from_params({k: v for k, v in params.items() if k in FILTER_FIELDS})
    model = clean_text("model", params.get("model"))
    rows = await request.app.state.service.map_points(
        viewport.arguments(box, limit, req.filters, model))
    suffix = "?" + urlencode(req.filter_params()) if req.filter_params() else ""
    points = []
    for r in rows:                       # the hot path of a pan: each file quoted once
        path = path_of(r["image_file"])
        points.append({"image_file": r["image_file"], "title": r["title"], "x": r["x"],
                       "y": r["y"], "thumbnail_url": f"/thumbnails/{path}",
                       "painting_url": f"/paintings/{path}{suffix}"})
    return JSONResponse({"points": points, "bbox": [box.x0, box.y0, box.x1, box.y1],
                         "limit": limit, "complete": len(points) < limit})


@operation("GET", "The collection's types and timeframes (the values of its choice filters)",
           ok={"type": "object", "additionalProperties": {"type": "array",
                                                         "items": {"type": "string"}}})
async def api_filters(request: Request) -> Response:
    choices = await request.app.state.service.choices()
    return JSONResponse(choices, headers={"Cache-Control": "max-age=60"})


SUGGEST_FIELD = Param("field", str, "Which filter: " + ", ".join(SUGGEST_FIELDS) + ".",
                      pattern="^(" + "|".join(SUGGEST_FIELDS) + ")$")
SUGGEST_Q = Param("q", str, "The text the values contain (case-insensitive).",
                  max_length=MAX_TEXT, pattern=TEXT_PATTERN)


@operation("GET", "Values of a filter containing q, those starting with it first",
           query=(SUGGEST_FIELD, SUGGEST_Q), errors=(422,), ok={
               "type": "object", "required": ["field", "q", "values"],
               "properties": {"field": {"type": "string"}, "q": {"type": "string"},
                              "values": {"type": "array", "items": {"type": "string"}}}})
async def api_suggest(request: Request) -> Response:
    field = request.query_params.get("field", "")
    if field not in SUGGEST_FIELDS:
        raise ArgError(f"field must be one of {', '.join(SUGGEST_FIELDS)}")
    q = clean_text("q", request.query_params.get("q")) or ""
    values = await request.app.state.service.suggest(field, q)
    return JSONResponse({"field": field, "q": q, "values": values})


# --- pictures --------------------------------------------------------------------------------

def _path_param(request: Request) -> str:
    image_file = request.path_params["image_file"]
    try:
        cleaned = clean_text("image_file", image_file)
    except ArgError:
        cleaned = None
    if not cleaned or cleaned != image_file:
        raise PaintingNotFound(f"no painting has image_file {image_file[:200]!r}")
    return image_file


def _picture(side: int):
    @operation("GET", f"A painting's picture, re-encoded as JPEG ({side} px at most)",
               path=(IMAGE_FILE,), media=JPEG, tag="pictures", errors=(404,),
               headers=("ETag", "Cache-Control"))
    async def route(request: Request) -> Response:
        image_file = _path_param(request)
        service: SearchService = request.app.state.service
        location = await service.image_location(image_file)
        found = await run_in_threadpool(request.app.state.thumbnails.get, location, side)
        if found is None:
            raise PaintingNotFound(f"the image of {image_file[:200]!r} is not on this "
                                   "machine or cannot be read")
        path, etag = found
        headers = {"ETag": f'"{etag}"', "Cache-Control": IMAGE_CACHE}
        if request.headers.get("if-none-match") == f'"{etag}"':
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type="image/jpeg", headers=headers)
    return route


@operation("GET", "The preview of an uploaded query image", path=(DIGEST,), media=JPEG,
           tag="pictures", errors=(404,))
async def upload_preview(request: Request) -> Response:
    digest = request.path_params["digest"]
    upload = request.app.state.uploads.peek(digest) if UPLOAD_HASH.fullmatch(digest) else None
    if upload is None or upload.preview is None:
        return error_response(request, 404, "no such upload on this server")
    return Response(upload.preview, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600",
                             "ETag": f'"{digest[:32]}"'})


async def base_css(request: Request) -> Response:
    return Response(BASE_CSS, media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})


# --- health, for a load balancer ------------------------------------------------------------

READY_TIMEOUT = 3.0      # seconds /readyz waits for its search (a balancer waits ~5)


@operation("GET", "The process answers (no database involved)", ok=ref("Health"),
           tag="health")
async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@operation("GET", "The database answers a search (503 when it does not)", ok=ref("Health"),
           tag="health", errors=(503,))
async def readyz(request: Request) -> Response:
    service: SearchService = request.app.state.service
    db = request.app.state.db
    try:   # one page of one painting, through the pool and the reader role, like any search
        await asyncio.wait_for(service.search(SearchRequest(k=1)), READY_TIMEOUT)
        # and where reads go: the URL's targets, and the server a pooled connection is on
        reads = {"targets": db.read_targets,
                 **await asyncio.wait_for(db.read_target(), READY_TIMEOUT)}
    except (asyncio.TimeoutError, psycopg.Error, PgalleryError, OSError) as exc:
        log.warning("not ready: %s", type(exc).__name__)
        return JSONResponse({"error": "the database is not answering a search"},
                            status_code=503, headers={"Retry-After": "5",
                                                      "Cache-Control": "no-store"})
    answer = {"status": "ready", "reads": reads, "writes": db.write_target}
    config: WebConfig = request.app.state.config
    if config.tokens and not BearerTokens(None, config.tokens).accepts(
            request.headers.get("authorization", "").encode()):
        answer = {"status": "ready"}   # where the servers are is for token holders only
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


# --- the API's description ---------------------------------------------------------------

@operation("GET", "This document: the OpenAPI 3.1 description of the API", ok={
    "type": "object", "required": ["openapi", "paths"]}, tag="meta")
async def openapi_json(request: Request) -> Response:
    state = request.app.state
    if getattr(state, "openapi", None) is None:    # built once, from the routes' declarations
        state.openapi = openapi_document(request.app.routes, state.config)
    return JSONResponse(state.openapi, headers={"Cache-Control": "max-age=60"})


@operation("GET", "The API's page: the OpenAPI document, rendered", media=HTML, tag="meta")
async def api_docs(request: Request) -> Response:
    return FileResponse(HERE / "static" / "api-docs.html", media_type="text/html")


# --- uploads ---------------------------------------------------------------------------------

async def _read_form(request: Request):
    """(text fields, image bytes or None, file name, image_url) from a multipart/urlencoded
    form, refusing a body over the limit before it is read in full."""
    config: WebConfig = request.app.state.config
    limit = config.max_upload_bytes + FORM_OVERHEAD
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise UploadTooLarge(f"the upload is over the {config.max_upload_bytes // 1048576} MB "
                             "limit")
    received = 0
    receive = request.receive

    async def capped_receive():
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise UploadTooLarge(f"the upload is over the "
                                     f"{config.max_upload_bytes // 1048576} MB limit")
        return message

    capped = Request(request.scope, capped_receive)
    params: dict[str, str] = {}
    data, name = None, "image"
    # Starlette spools a large file part to an unnamed temporary file (deleted when the
    # form is closed, at the end of this block); nothing else is written.
    async with capped.form(max_files=1, max_fields=40, max_part_size=64 * 1024) as form:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "image":
                    raise ArgError(f"unexpected file field {key!r}; send the image as 'image'")
                content = await value.read(config.max_upload_bytes + 1)
                if content or value.filename:
                    data, name = content, value.filename or "image"
            elif key in FORM_FIELDS:
                params[key] = value
    image_url = clean_text("image_url", params.pop("image_url", None))
    if data is not None and image_url:
        raise ArgError("send either an image file or an image URL, not both")
    return params, data, name, image_url


async def _add_upload(request: Request, data: bytes | None, name: str,
                      image_url: str | None) -> str:
    """Fetch (an image URL), check and embed an upload in a worker thread: its digest (the
    upload store reads it through the image intake, with the web's address policy)."""
    state = request.app.state
    model = await state.service.require_model()
    source = image_url or data
    if image_url:
        name = image_url.rsplit("/", 1)[-1] or "image"

    def add() -> str:
        upload = state.uploads.add(source, name=name, model=model.name,
                                   embed=state.service.embed_image(model))
        return upload.digest
    return await run_in_threadpool(add)


# --- errors ----------------------------------------------------------------------------------

async def on_pgallery_error(request: Request, exc: PgalleryError) -> Response:
    return error_response(request, status_for(exc), one_line(exc))


async def on_database_error(request: Request, exc: psycopg.Error) -> Response:
    mapped = from_database_error(exc)
    if isinstance(mapped, PgalleryError):
        return error_response(request, status_for(mapped), one_line(mapped))
    if isinstance(exc, psycopg.OperationalError):
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(request, 503, "the database is not answering; try again")
    log.exception("database error")
    return error_response(request, 500, "internal error (see the server's log)")


async def on_http_error(request: Request, exc: HTTPException) -> Response:
    messages = {404: "no such page", 405: "method not allowed"}
    return error_response(request, exc.status_code,
                          messages.get(exc.status_code, str(exc.detail)))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error")
    return error_response(request, 500, "internal error (see the server's log)")


# --- the app ---------------------------------------------------------------------------------

def create_app(database_url: str, config: WebConfig | None = None,
               settings: Settings | None = None) -> Starlette:
    """The ASGI app over ``database_url``. Connections open when the server starts."""
    config = config or WebConfig()
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: Starlette):
        db = Database(database_url, size=config.pool_size, read_url=config.read_url)
        await db.open()
        app.state.loop = asyncio.get_running_loop()   # the pool's loop (tests use it)
        uploads = UploadStore(config)
        app.state.config = config
        app.state.db = db
        app.state.uploads = uploads
        app.state.thumbnails = ThumbnailCache(config.cache_dir / "thumbnails")
        app.state.service = SearchService(db, settings, uploads)
        try:
            yield
        finally:
            app.state.service.close()
            uploads.close()
            await db.close()

    routes = [
        Route("/", home),
        Route("/search", search_form, methods=["POST"]),
        Route("/paintings/{image_file:path}", painting_page),
        Route("/api/search", api_search, methods=["GET", "POST"]),
        Route("/api/paintings/{image_file:path}", api_painting),
        Route("/explore", explore_page),
        Route("/api/map", api_map),
        Route("/api/filters", api_filters),
        Route("/api/suggest", api_suggest),
        Route("/api/openapi.json", openapi_json),
        Route("/api/docs", api_docs),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/thumbnails/{image_file:path}", _picture(THUMB_SIDE)),
        Route("/images/{image_file:path}", _picture(LARGE_SIDE)),
        Route("/uploads/{digest}.jpg", upload_preview),
        Route("/static/base.css", base_css),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        PgalleryError: on_pgallery_error, psycopg.Error: on_database_error,
        HTTPException: on_http_error, Exception: on_unexpected})
    # outermost last: the log sees every answer, refusals carry the security headers
    if config.tokens:
        app.add_middleware(BearerTokens, tokens=config.tokens, private=config.private)
    app.add_middleware(Limits, max_concurrent=config.max_concurrent,
                       rate_limit=config.rate_limit, request_timeout=config.request_timeout,
                       max_url=config.max_url_bytes)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST"], max_age=600,
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(SecurityHeaders)
    if config.access_log:
        app.add_middleware(AccessLog, json_lines=config.access_log == "json")
    return app


__all__ = ["create_app", "DatabaseError"]
