"""The little language of `pgallery search query`: terms joined by + and -, each weighted.

    from pgallery.query_syntax import parse_query
    parse_query('2:"stormy sea" + @00015-shipwreck.jpg + ./boat.jpg - "people"')
    # [Term('prompt', 'stormy sea', 2.0), Term('painting', '00015-shipwreck.jpg', 1.0),
    #  Term('image', './boat.jpg', 1.0), Term('prompt', 'people', -1.0)]

A term is one of
    "text" or 'text'    a prompt (embedded by the provider, cached in the database)
    @image_file         a stored painting, by its image_file (@"name with spaces.jpg" too)
    [0.1, -0.2, ...]    a raw vector (a JSON list)
    #rrggbb             a colour: the paintings whose palettes hold it rank higher (its
                        weight against the others' decides how much); never subtracted
    anything else       a new image: a file path or an http(s) URL, up to the next space
optionally preceded by a weight, ``N:`` (a plain non-negative number: 2, 0.5, 1e-1). Terms
are joined by ``+`` or ``-`` (a ``-`` subtracts the term: its weight becomes negative); the
first term may start with ``-``. Operators need no spaces around quoted terms, but a path or
@name runs to the next space, since file names often hold ``-`` and ``+``.

A malformed expression raises :class:`QuerySyntaxError`, whose message shows the expression
with a caret under the offending place.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from pgallery.errors import ArgError

KINDS = ("prompt", "painting", "image", "vector", "colour")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_WEIGHT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?:")
_BARE_END = re.compile(r"\s")


@dataclass(frozen=True)
class Term:
    kind: str            # one of KINDS
    value: object        # the prompt, image_file, path/URL, or list of floats
    weight: float        # signed: negative for a subtracted term
    start: int = 0       # where the term is in the expression (for error messages)
    end: int = 0


class QuerySyntaxError(ArgError):
    """The query expression is malformed; the message points at where."""

    def __init__(self, message: str, expression: str, position: int):
        self.expression = expression
        self.position = position
        super().__init__(pointed(message, expression, position))


def pointed(message: str, expression: str, position: int) -> str:
    """``message``, then the expression and a caret under ``position`` (one line each;
    newlines and tabs in the expression shown as spaces so the caret lines up)."""
    shown = re.sub(r"\s", " ", expression)
    if len(shown) > 160:  # keep the caret on screen: a window around the position
        start = max(0, min(position - 80, len(shown) - 160))
        shown, position = ("…" if start else "") + shown[start:start + 160], \
            position - start + (1 if start else 0)
    return f"{message}\n  {shown}\n  {' ' * position}^"


def parse_query(expression: str) -> list[Term]:
    """The terms of ``expression``, in order. Raises QuerySyntaxError."""
    text = expression
    terms: list[Term] = []
    i = _skip(text, 0)
    if i == len(text):
        raise QuerySyntaxError("the query is empty: give at least one term", text, i)
    sign = 1.0
    if text[i] in "+-":
        sign = -1.0 if text[i] == "-" else 1.0
        i = _skip(text, i + 1)
    while True:
        term, i = _term(text, i, sign)
        terms.append(term)
        i = _skip(text, i)
        if i == len(text):
            return terms
        if text[i] not in "+-":
            raise QuerySyntaxError("expected + or - between terms", text, i)
        sign = -1.0 if text[i] == "-" else 1.0
        i = _skip(text, i + 1)
        if i == len(text):
            raise QuerySyntaxError("a term must follow the operator", text, i)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _term(text: str, i: int, sign: float) -> tuple[Term, int]:
    start = i
    weight = 1.0
    match = _WEIGHT.match(text, i)
    if match:
        weight = float(match.group(0)[:-1])
        if not math.isfinite(weight):
            raise QuerySyntaxError("the weight is too large", text, i)
        i = match.end()
    elif i < len(text) and (text[i].isdigit() or text[i] == "."):
        # a number not followed by ':' where a weight would be: "2 "x"" or "2x:"
        end = i
        while end < len(text) and (text[end].isdigit() or text[end] in ".eE"):
            end += 1
        if end < len(text) and (text[end].isspace() or text[end] in "\"'@[") or end == len(text):
            raise QuerySyntaxError("a weight needs a colon: N:term", text, end)
    if i == len(text) or text[i].isspace() or text[i] in "+-" and i > start:
        raise QuerySyntaxError("a term is missing after the weight" if i > start
                               else "a term is missing here", text, i)
    char = text[i]
    if char in "\"'":
        value, end = _quoted(text, i)
        if not value.strip():
            raise QuerySyntaxError("the prompt is empty", text, i)
        return Term("prompt", value, sign * weight, start, end), end
    if char == "@":
        if i + 1 < len(text) and text[i + 1] in "\"'":
            value, end = _quoted(text, i + 1)
        else:
            end = _bare_end(text, i + 1)
            value = text[i + 1:end]
        if not value:
            raise QuerySyntaxError("@ needs a painting's image_file: @00015-shipwreck.jpg",
                                   text, i + 1)
        return Term("painting", value, sign * weight, start, end), end
    if char == "[":
        end = text.find("]", i)
        if end < 0:
            raise QuerySyntaxError("the vector's [ is never closed", text, i)
        end += 1
        try:
            values = json.loads(text[i:end])
        except ValueError:
            raise QuerySyntaxError("a vector term must be a JSON list of numbers", text, i) from None
        if (not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                  and math.isfinite(v) for v in values)):
            raise QuerySyntaxError("a vector term must be a non-empty list of finite numbers",
                                   text, i)
        return Term("vector", [float(v) for v in values], sign * weight, start, end), end
    if char in "+-:":
        raise QuerySyntaxError(f"unexpected {char!r}: a term is missing here", text, i)
    end = _bare_end(text, i)
    if _COLOUR.fullmatch(text, i, end):
        if sign < 0:
            raise QuerySyntaxError("a colour cannot be subtracted: give the colours wanted",
                                   text, start)
        return Term("colour", text[i:end].lower(), weight, start, end), end
    return Term("image", text[i:end], sign * weight, start, end), end


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The text between the quote at ``i`` and its closing twin (a backslash escapes the
    quote or a backslash), and the position after it."""
    quote = text[i]
    out = []
    j = i + 1
    while j < len(text):
        char = text[j]
        if char == "\\" and j + 1 < len(text) and text[j + 1] in (quote, "\\"):
            out.append(text[j + 1])
            j += 2
            continue
        if char == quote:
            return "".join(out), j + 1
        out.append(char)
        j += 1
    raise QuerySyntaxError(f"the quote {quote} is never closed", text, i)


def _bare_end(text: str, i: int) -> int:
    match = _BARE_END.search(text, i)
    return match.start() if match else len(text)
