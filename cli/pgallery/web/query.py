"""A search as the URL holds it: parsed, checked and turned back into links.

    request = SearchRequest.from_params({"text": "stormy sea", "school": "dutch", "k": "20"})
    request.url(page=2)      # "/?text=stormy+sea&school=dutch&page=2"

Every parameter of the page and of /api/search is here, with its limits; a bad value raises
ArgError (HTTP 422) with a line that names the parameter. Nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from pgallery.errors import ArgError
from pgallery.palette import parse_colours
from pgallery.vocabulary import FILTERS, K, PAGE, Param, SearchFilters

K_DEFAULT = 20
K_MAX = 200
MAX_RANK = 1000          # k x page: "load more" stops here
MAX_TEXT = 1000          # characters in any text parameter
UPLOAD_HASH = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# What clean_text lets through, as a pattern the OpenAPI document can state: no control
# characters (tab and newline are allowed; they are stripped at the ends)
TEXT_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"


def _web(param: Param) -> Param:
    """A vocabulary parameter as the web takes it: text bounded like every text parameter."""
    if param.type is not str:
        return param
    return replace(param, max_length=param.max_length or MAX_TEXT,
                   pattern=param.pattern or TEXT_PATTERN)


# The query parameters of the page and of /api/search, declared once: from_params checks
# them and web/openapi.py describes them (so a filter added to the vocabulary is both).
TEXT = _web(Param("text", str, "Words to search for (a prompt); with an upload, combined "
                  "with the image."))
SIMILAR = _web(Param("similar", str, "A painting's image_file: more like this painting. "
                     "Not with text or upload."))
UPLOAD = Param("upload", str, "The hash of an image uploaded with POST /api/search "
               "(its answer's query.upload).", pattern="^" + UPLOAD_HASH.pattern + "$")
COLOUR = _web(Param("colour", str, "Colours to search by: hex colours separated by commas, "
                    "each optionally with a weight (1e3a8a,d4af37:0.7). Not with text, "
                    "similar or upload."))
WEB_FILTERS = tuple(_web(p) for p in FILTERS if p.web)
WEB_K = replace(K, high=K_MAX, default=K_DEFAULT)
WEB_PAGE = replace(PAGE, high=MAX_RANK, default=1, help=f"Page n of the ranking: results "
                   f"(n-1)*k+1 .. n*k, with k x page at most {MAX_RANK}.")
QUERY_PARAMS: tuple[Param, ...] = (TEXT, SIMILAR, UPLOAD, COLOUR, *WEB_FILTERS, WEB_K,
                                    WEB_PAGE)

# URL parameter -> SearchFilters field, for every filter of the vocabulary
FILTER_FIELDS = {p.api: p.sql for p in WEB_FILTERS}
PARAMS = tuple(p.api for p in QUERY_PARAMS)
_COLOUR = re.compile(r"#?([0-9a-fA-F]{6})(:[0-9]*\.?[0-9]+)?")


def _colour_param(value: str | None) -> str | None:
    """colour=1e3a8a,d4af37:0.7 (a '#' before each is allowed): the same, canonical
    (lower case, no '#'), or ArgError naming what is wrong."""
    value = clean_text("colour", value)
    if value is None:
        return None
    items = [item for item in re.split(r"[,\s]+", value) if item]
    canonical = []
    for item in items:
        match = _COLOUR.fullmatch(item)
        if not match:
            raise ArgError(f"colour must be hex colours separated by commas, like "
                           f"1e3a8a,d4af37 (optionally 1e3a8a:0.7); got {item[:40]!r}")
        canonical.append(match[1].lower() + (match[2] or ""))
    parse_colours(canonical)              # the weights and the count, as the core checks
    return ",".join(canonical)


def clean_text(name: str, value: str | None) -> str | None:
    """A text parameter stripped; None when empty. Control characters (NUL included) and
    over-long values are refused, never passed on."""
    if value is None:
        return None
    if _CONTROL.search(value):
        raise ArgError(f"{name} contains a control character")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise ArgError(f"{name} is longer than {MAX_TEXT} characters")
    return value or None


def _integer(name: str, value: str | None, low: int, high: int) -> int | None:
    value = clean_text(name, value)
    if value is None:
        return None
    if not re.fullmatch(r"[+-]?\d{1,12}", value):
        raise ArgError(f"{name} must be a whole number, got {value[:40]!r}")
    number = int(value)
    if not low <= number <= high:
        raise ArgError(f"{name} must be between {low} and {high}, got {number}")
    return number


def _value(param: Param, value: str | None):
    """A parameter's URL value as its vocabulary type, within its limits."""
    if param.type is int:
        return _integer(param.api, value, int(param.low), int(param.high))
    if param.type is str and param.max_length is not None and value is not None \
            and len(value) > param.max_length:
        raise ArgError(f"{param.api} is longer than {param.max_length} characters")
    value = clean_text(param.api, value)
    if value is None:
        return None
    if param.type is str:
        if param.pattern and not re.fullmatch(param.pattern, value):
            raise ArgError(f"{param.api} must match {param.pattern}, got {value[:40]!r}")
        return value
    if param.type is bool:
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ArgError(f"{param.api} must be true or false, got {value[:40]!r}")
        return value.lower() in ("true", "1", "yes")
    try:
        number = float(value)
    except ValueError:
        raise ArgError(f"{param.api} must be a number, got {value[:40]!r}") from None
    if number != number or (param.low is not None and number < param.low) or \
            (param.high is not None and number > param.high):
        raise ArgError(f"{param.api} must be between {param.low} and {param.high}, "
                       f"got {value[:40]}")
    return number


@dataclass(frozen=True)
class SearchRequest:
    """One search: what to look for (text, a painting, an upload, or nothing: browse),
    the filters, and which page of k results."""

    text: str | None = None
    similar: str | None = None      # a painting's image_file: more like this
    upload: str | None = None       # sha256 of an uploaded image this server keeps
    colour: str | None = None       # "1e3a8a,d4af37:0.7": search by these colours
    filters: SearchFilters = field(default_factory=SearchFilters)
    k: int = K_DEFAULT
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "SearchRequest":
        text = _value(TEXT, params.get("text"))
        similar = _value(SIMILAR, params.get("similar"))
        upload = clean_text("upload", params.get("upload"))
        if upload is not None and not UPLOAD_HASH.fullmatch(upload):
            raise ArgError("upload must be the 64-hex-digit hash /api/search answered with")
        if similar and (text or upload):
            raise ArgError("similar (more like this painting) cannot be combined with text "
                           "or upload; use one of them")
        colour = _colour_param(params.get("colour"))
        if colour and (text or similar or upload):
            raise ArgError("colour cannot be combined with text, similar or upload; use one "
                           "of them")
        k = _value(WEB_K, params.get("k")) or K_DEFAULT
        page = _value(WEB_PAGE, params.get("page")) or 1
        if k * page > MAX_RANK:
            raise ArgError(f"k x page must be at most {MAX_RANK} (k={k}, page={page})")
        values = {}
        for p in WEB_FILTERS:
            values[p.sql] = _value(p, params.get(p.api))
        if (values["year_from"] is not None and values["year_to"] is not None
                and values["year_from"] > values["year_to"]):
            raise ArgError(f"year_from ({values['year_from']}) is after year_to "
                           f"({values['year_to']})")
        return cls(text=text, similar=similar, upload=upload, colour=colour,
                   filters=SearchFilters(**values), k=k, page=page)

    @property
    def mode(self) -> str:
        """upload, image (more like this), text, colour, or browse (filters only)."""
        if self.upload:
            return "upload"
        if self.colour:
            return "colour"
        if self.similar:
            return "image"
        if self.text:
            return "text"
        return "browse"

    def colours(self) -> list[str] | None:
        """The colours as the core takes them: ['#1e3a8a', '#d4af37:0.7'], or None."""
        return ["#" + c for c in self.colour.split(",")] if self.colour else None

    def filter_params(self) -> dict[str, str]:
        out = {}
        for param, name in FILTER_FIELDS.items():
            value = getattr(self.filters, name)
            if value is not None:
                out[param] = str(value)
        return out

    def params(self) -> dict[str, str]:
        """The URL parameters that give this search (defaults left out), in a fixed order."""
        out = {}
        for name in ("text", "similar", "upload", "colour"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        out.update(self.filter_params())
        if self.k != K_DEFAULT:
            out["k"] = str(self.k)
        if self.page != 1:
            out["page"] = str(self.page)
        return out

    def echo(self) -> dict:
        """The query as JSON echoes it."""
        return {"text": self.text, "similar": self.similar, "upload": self.upload,
                "colour": self.colours(),
                **{param: getattr(self.filters, name) for param, name in FILTER_FIELDS.items()},
                "k": self.k, "page": self.page}

    def without_filter(self, param: str) -> "SearchRequest":
        """The same search without one filter (URL parameter name), from page 1."""
        return replace(self, filters=replace(self.filters, **{FILTER_FIELDS[param]: None}),
                       page=1)

    def with_(self, **changes) -> "SearchRequest":
        return replace(self, **changes)

    def url(self, path: str = "/", **changes) -> str:
        params = self.with_(**changes).params() if changes else self.params()
        return path + ("?" + urlencode(params) if params else "")
