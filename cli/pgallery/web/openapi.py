"""The OpenAPI 3.1 document of `pgallery serve`, built from the declarations the routes use.

    document(app.routes)       # the dict /api/openapi.json answers

Nothing here is written beside the code it describes. A route says what it takes and what
it answers with :func:`operation` (a decorator on its endpoint); its query parameters are
the ``Param`` declarations its validation reads (web/query.py's QUERY_PARAMS, built from
the vocabulary, with their ranges and patterns); a result object's fields are the
vocabulary's result columns (rendering/result_json.py); an error is web/errors.py's
``{"error": "one line"}`` with the statuses of its table. So a filter added to the
vocabulary appears in the document with no edit here, and so does a route: one without an
:func:`operation` is listed with its path parameters, its docstring and a generic answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgallery import __version__
from pgallery.rendering.result_json import RESULT_FIELDS
from pgallery.vocabulary import Param
from pgallery.web.query import MAX_TEXT, QUERY_PARAMS, TEXT_PATTERN

JSON = "application/json"
HTML = "text/html"
JPEG = "image/jpeg"

STATUS_TEXT = {
    200: "OK", 303: "See the search's own URL", 304: "Not modified (the ETag matched)",
    400: "The body is not a valid form", 401: "A bearer token is needed", 404: "Not found",
    408: "The request did not arrive in time",
    405: "Method not allowed", 409: "The collection's model cannot answer this (no model, "
    "another model's vectors, a prompt not embedded)", 413: "The upload is too large",
    414: "The URL is too long", 415: "Not an image of an accepted format",
    422: "A parameter is out of range or malformed (the error names it)",
    429: "Too many requests from this client (see Retry-After)",
    431: "Request headers too large",
    502: "The embedding provider failed", 503: "Busy, or the database is not answering "
    "(see Retry-After)",
}
# What any request may be answered with, whatever the route: a URL or headers over the
# limits (web/protocol.py), a server at its limits (web/limits.py)
COMMON_ERRORS = (414, 431, 503)

_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def param_schema(param: Param) -> dict:
    """The JSON Schema of one declared parameter: its type, range, length and pattern."""
    schema: dict = {"type": _TYPES[param.type]}
    if param.type in (int, float):
        if param.low is not None:
            schema["minimum"] = int(param.low) if param.type is int else param.low
        if param.high is not None:
            schema["maximum"] = int(param.high) if param.type is int else param.high
    if param.type is str:
        if param.max_length is not None:
            schema["maxLength"] = param.max_length
        if param.pattern:
            schema["pattern"] = param.pattern
    if param.default is not None:
        schema["default"] = param.default
    return schema


# A painting's image_file in a path: any text the collection could hold
IMAGE_FILE = Param("image_file", str, "A painting's image_file (its file name, as loaded).",
                   max_length=MAX_TEXT, pattern=TEXT_PATTERN)
DIGEST = Param("digest", str, "An upload's hash (query.upload of the search that made it).")


def _nullable(type_: type) -> dict:
    return {"type": [_TYPES[type_], "null"]}


RESULT = {
    "type": "object",
    "description": "One result: the same object `pgallery search ... --json` prints, "
                   "plus the links of the web server.",
    "properties": {
        **{name: ({"type": "integer", "minimum": 1} if name == "rank" else
                  {"type": "string"} if name == "image_file" else _nullable(type_))
           for name, type_ in RESULT_FIELDS},
        **{link: {"type": "string"} for link in
           ("thumbnail_url", "image_url", "painting_url", "api_url")},
    },
    "additionalProperties": False,
}
RESULT["required"] = list(RESULT["properties"])

QUERY_ECHO = {
    "type": "object", "description": "The search as the server understood it.",
    "properties": {p.api: {"type": [_TYPES[p.type], "null"]} if p.default is None
                   else {"type": _TYPES[p.type]} for p in QUERY_PARAMS},
    "required": [p.api for p in QUERY_PARAMS], "additionalProperties": False,
}

SEARCH = {
    "type": "object",
    "properties": {
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
        "query": {"$ref": "#/components/schemas/Query"},
        "mode": {"enum": ["image", "text", "hybrid", "upload", "colour", "browse"],
                 "description": "How it was searched: more like a painting, by text, by "
                                "keywords (a model without text), by an upload, by "
                                "colours, or by filters alone."},
        "model": {"type": ["string", "null"]},
        "notices": {"type": "array", "items": {"type": "string"}},
        "empty_because": {"type": ["string", "null"],
                          "description": "For an empty page: which filter left nothing."},
        "page_url": {"type": "string"}, "api_url": {"type": "string"},
        "next_url": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}
SEARCH["required"] = list(SEARCH["properties"])

PAINTING = {
    "type": "object", "description": "One painting's metadata and links.",
    "properties": {"painting_id": {"type": "integer"}, "image_file": {"type": "string"},
                   "thumbnail_url": {"type": "string"}, "image_url": {"type": "string"},
                   "painting_url": {"type": "string"}, "similar_url": {"type": "string"},
                   "palette": {"type": "array", "description": "Its dominant colours, "
                               "largest share first ([] before they are computed).",
                               "items": {"type": "object", "required": ["hex", "share"],
                                         "properties": {
                                             "hex": {"type": "string",
                                                     "pattern": "^#[0-9a-f]{6}$"},
                                             "share": {"type": "number"}}}}},
    "required": ["painting_id", "image_file", "thumbnail_url", "image_url", "painting_url",
                 "similar_url", "palette"],
    "additionalProperties": {"type": ["string", "null"]},
}

ERROR = {"type": "object", "properties": {"error": {"type": "string", "maxLength": 500}},
         "required": ["error"], "additionalProperties": False,
         "description": "Any refusal or failure: one line that says what was wrong."}

HEALTH = {"type": "object", "properties": {
    "status": {"type": "string"},
    "reads": {"type": "object", "description": "/readyz: where searches go", "properties": {
        "targets": {"type": "array", "items": {"type": "string"},
                    "description": "host:port of each server the read URL names"},
        "answered_by": {"type": "string", "description": "host:port of a pooled reader"},
        "standby": {"type": "boolean", "description": "whether that server is a standby"}}},
    "writes": {"type": "string", "description": "/readyz: host:port of the primary, "
                                                "where prompts are cached"}},
    "required": ["status"]}

COMPONENTS = {"Result": RESULT, "Query": QUERY_ECHO, "SearchResponse": SEARCH,
              "Painting": PAINTING, "Error": ERROR, "Health": HEALTH}


@dataclass(frozen=True)
class Operation:
    """What one method of a route takes and answers (see :func:`operation`)."""

    summary: str
    query: tuple[Param, ...] = ()           # query parameters, as the route validates them
    path: tuple[Param, ...] = ()            # path parameters (default: plain text)
    ok: dict | None = None                  # the 200 answer's JSON Schema (for media JSON)
    media: str = JSON                       # the 200 answer's content type
    status: int = 200                       # the success status
    errors: tuple[int, ...] = ()            # the error statuses it may answer
    form: dict | None = None                # a multipart/form-data body's JSON Schema
    tag: str = "api"
    headers: tuple[str, ...] = ()           # response headers of the success answer
    description: str = ""


def operation(method: str, summary: str, **fields):
    """Declare what ``method`` of the decorated endpoint takes and answers::

        @operation("GET", "Search", query=QUERY_PARAMS, ok=SEARCH_REF, errors=(404, 422))
        async def api_search(request): ...
    """
    def mark(endpoint):
        declared = dict(getattr(endpoint, "openapi", {}))
        declared[method.upper()] = Operation(summary, **fields)
        endpoint.openapi = declared
        return endpoint
    return mark


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


_CONVERTOR = re.compile(r"{(\w+)(?::\w+)?}")


def _parameter(param: Param, where: str) -> dict:
    return {"name": param.api, "in": where, "required": where == "path",
            "schema": param_schema(param), "description": param.help}


def _responses(op: Operation, json_errors: bool, errors: set[int]) -> dict:
    ok: dict = {"description": STATUS_TEXT.get(op.status, "OK")}
    if op.media == JSON:
        ok["content"] = {JSON: {"schema": {"type": "object"} if op.ok is None else op.ok}}
    elif op.media:
        ok["content"] = {op.media: {"schema": {"type": "string"}}}
    if op.headers:
        ok["headers"] = {name: {"schema": {"type": "string"}} for name in op.headers}
    out = {str(op.status): ok}
    if op.media == JPEG and op.status == 200:
        out["304"] = {"description": STATUS_TEXT[304]}
    for status in sorted(set(op.errors) | errors):
        # a page's errors are pages, but the middleware's refusals (limits, tokens) JSON
        content = {JSON: {"schema": ref("Error")}}
        if not json_errors:
            content[HTML] = {"schema": {"type": "string"}}
        response = {"description": STATUS_TEXT.get(status, "Error"), "content": content}
        if status in (429, 503):
            response["headers"] = {"Retry-After": {"schema": {"type": "string"},
                                                   "description": "Seconds to wait."}}
        out[str(status)] = response
    return out


def _undeclared(endpoint, path: str) -> Operation:
    """A route without @operation: its docstring's first line, any JSON body under /api/,
    and any error status a pgallery route answers (until someone declares it)."""
    doc = (endpoint.__doc__ or "").strip().splitlines()
    return Operation(doc[0] if doc else endpoint.__name__.replace("_", " "),
                     media=JSON if path.startswith("/api/") else "", ok={},
                     errors=(400, 404, 409, 413, 415, 422, 502))


def document(routes, config=None, servers: list[dict] | None = None) -> dict:
    """The OpenAPI 3.1 document of ``routes`` (a Starlette app's routes; mounts of static
    files are left out: they are the page's own CSS and JavaScript), served with
    ``config`` (a WebConfig: which limits and tokens add which answers)."""
    from pgallery.web.limits import EXEMPT
    from pgallery.web.tokens import needs_token

    tokens = bool(config and config.tokens)
    paths: dict[str, dict] = {}
    for route in routes:
        methods = getattr(route, "methods", None)
        if not methods or route.path.startswith("/static/"):
            continue
        path = _CONVERTOR.sub(r"{\1}", route.path)
        names = _CONVERTOR.findall(route.path)
        declared = getattr(route.endpoint, "openapi", {})
        item = paths.setdefault(path, {})
        for method in sorted(methods - {"HEAD"}):
            op = declared.get(method) or _undeclared(route.endpoint, path)
            by_name = {p.api: p for p in op.path}
            params = [_parameter(by_name.get(name) or Param(name, str, name), "path")
                      for name in names]
            params += [_parameter(p, "query") for p in op.query]
            json_errors = op.media in (JSON, JPEG) or path.startswith("/api/")
            errors = set() if path.startswith(EXEMPT) else set(COMMON_ERRORS)
            if config and config.rate_limit and errors:
                errors.add(429)
            if op.form is not None:      # a body that is not a form at all (Starlette's)
                errors.add(400)
                if config and config.request_timeout:
                    errors.add(408)
            secured = tokens and needs_token(method, path, config.private)
            if secured:
                errors.add(401)
            entry = {"summary": op.summary, "operationId": _operation_id(method, path),
                     "tags": [op.tag], "responses": _responses(op, json_errors, errors)}
            if secured:
                entry["security"] = [{"bearer": []}]
            if op.description:
                entry["description"] = op.description
            if params:
                entry["parameters"] = params
            if op.form is not None:
                entry["requestBody"] = {"required": True, "content": {
                    "multipart/form-data": {"schema": op.form},
                    "application/x-www-form-urlencoded": {"schema": op.form}}}
            item[method.lower()] = entry
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "pgallery", "version": __version__,
                 "description": "Image similarity search over a painting collection: the "
                                "JSON API of `pgallery serve` (and its pages)."},
        "paths": paths,
        "components": {"schemas": COMPONENTS},
    }
    if tokens:
        doc["components"]["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "A token of the server's --token-file."}}
    if servers:
        doc["servers"] = servers
    return doc


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_") or "home"
    return f"{method.lower()}_{words}"


def upload_form(text_params: tuple[Param, ...]) -> dict:
    """The multipart body of an upload: the image (or its URL) and the search's fields."""
    return {"type": "object", "properties": {
        "image": {"type": "string", "contentMediaType": "application/octet-stream",
                  "description": "The image file (JPEG, PNG, WebP, ...)."},
        "image_url": {"type": "string", "maxLength": MAX_TEXT,
                      "description": "Or an image's http(s) URL, fetched by the server."},
        **{p.api: param_schema(p) for p in text_params}}}
