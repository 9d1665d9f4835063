"""`pgallery search ...`: each command parses its query, calls the core, prints.

The search itself (the model's provider, the prompt cache, the fallbacks, the one SQL call,
why an empty result is empty) is pgallery.flow's, the same for the web and for Python.
"""

from __future__ import annotations

import inspect
import json as jsonlib
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from pgallery.commands.common import SearchOptions, gallery, search_options
from pgallery.errors import ArgError
from pgallery.flow import SearchParams, combine  # noqa: F401 (combine: its old home)
from pgallery.search_state import as_vector
from pgallery.providers import PROVIDERS
from pgallery.rendering.output import emit_results

app = typer.Typer(help="Search the collection: by one of its paintings, by text, by a new "
                       "image, by a vector or by colour.", no_args_is_help=True)

Provider = Annotated[Optional[str], typer.Option(
    help=f"Embedding provider: {', '.join(PROVIDERS)}. "
         "[default: the one that made the model's vectors; else azure if "
         "VISION_ENDPOINT/VISION_KEY are set, else local]")]

# Old command names, kept working for scripts but no longer shown: `similar` searched by a
# painting (search_by_image) and `image` by a new image, which misled.
OLD_NAMES = {"similar": "painting", "image": "new-image"}


def _params(search: SearchOptions, **query) -> SearchParams:
    return SearchParams(filters=search.filters, k=search.k, model=search.model,
                        recall=search.recall, result=search.result, **query)


def _search(ctx: typer.Context, params: SearchParams, query: dict,
            search: SearchOptions) -> None:
    """Run one search through the core and print it (table or JSON, and --html)."""
    with gallery(ctx) as core:
        outcome = core.run(params)
        query = {**query, "model": query.get("model") or outcome.model}
        title = core.painting_title(query["image_file"]) if query.get("image_file") else None
        locations = {}
        if search.html is not None:
            locations = core.image_locations(
                [r["image_file"] for r in outcome.rows]
                + ([query["image_file"]] if query.get("image_file") else []))
    if outcome.notices:
        query["keyword_only"] = " ".join(outcome.notices)
    emit_results(outcome.rows, query=query, options=search, painting_title=title,
                 locations=locations, empty=outcome.empty)


@search_options
def painting(
    ctx: typer.Context,
    image_file: Annotated[str, typer.Argument(
        metavar="IMAGE_FILE", help="A loaded painting's image_file (see `pgallery show`).")],
    search: SearchOptions,
):
    """More like this painting of the collection (its stored embedding; no embedding call).

    Example: `pgallery search painting 00015-shipwreck-on-a-rocky-coast.jpg --k 5 --type landscape`
    """
    _search(ctx, _params(search, similar=image_file),
            {"mode": "painting", "image_file": image_file}, search)


def _read_vector(spec: str) -> np.ndarray:
    """A vector given inline ('[0.1, ...]'), in a file (JSON list), or on stdin ('-')."""
    if spec == "-":
        text = sys.stdin.read()
    elif spec.lstrip().startswith("["):
        text = spec
    else:
        path = Path(spec)
        if not os.path.isfile(path):  # False, not OSError, for a 10 KB argument
            raise ArgError(f"{spec:.200}: not a file, '-' or a [..] list")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ArgError(f"{spec:.200}: cannot read the vector file ({exc})") from None
    try:
        values = jsonlib.loads(text)
    except ValueError:
        raise ArgError("the vector must be a JSON list of numbers") from None
    return as_vector(values)


@search_options
def vector(
    ctx: typer.Context,
    vector_spec: Annotated[str, typer.Argument(
        metavar="VECTOR", help="A JSON list of floats: inline, a file, or - for stdin.")],
    search: SearchOptions,
):
    """Nearest paintings to a vector you already have (search_by_vector).

    Example: `pgallery search vector query.json --k 5 --school dutch`
    """
    _search(ctx, _params(search, vector=_read_vector(vector_spec)), {"mode": "vector"},
            search)


@search_options
def text(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", help="What to look for, in words.")],
    search: SearchOptions,
    hybrid: Annotated[bool, typer.Option(
        "--hybrid", help="Fuse with keyword search over titles and descriptions "
                         "(search_hybrid).")] = False,
    provider: Provider = None,
):
    """Text-to-image search. The prompt is embedded once and cached in the database, so
    `SELECT * FROM search_by_text('...')` answers it from psql afterwards.

    Example: `pgallery search text "a stormy sea at night" --k 5`
    """
    if not prompt.strip():
        raise ArgError("the prompt is empty")
    # Without --hybrid, a model that reads no text is an error that says what to do (the
    # keyword ranking is what --hybrid asks for, and says so).
    params = _params(search, text=prompt, hybrid=hybrid, fallback=hybrid, provider=provider)
    _search(ctx, params, {"mode": "hybrid" if hybrid else "text", "prompt": prompt}, search)


@search_options
def new_image(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(
        metavar="PATH_OR_URL", help="An image not in the collection: a local file or an "
                                    "http(s) URL.")],
    search: SearchOptions,
    with_text: Annotated[Optional[str], typer.Option(
        "--text", help="Combine with a text prompt (normalised average of both vectors).")] = None,
    provider: Provider = None,
):
    """Paintings that look like a new image (embedded now, then search_by_vector).

    Example: `pgallery search new-image ~/photos/sunflowers.jpg --k 8`
    """
    if not source.startswith(("http://", "https://")):
        if os.path.isdir(source):
            raise ArgError(f"{source:.200}: is a directory; give one image file (or an "
                           "http(s) URL)")
        if not os.path.isfile(source):
            raise ArgError(f"{source:.200}: no such file (give a path or an http(s) URL)")
    params = _params(search, image=source, text=with_text, fallback=False, provider=provider)
    _search(ctx, params, {"mode": "new-image", "image_path": source, "prompt": with_text},
            search)


@search_options
def colour(
    ctx: typer.Context,
    colours: Annotated[list[str], typer.Argument(
        metavar="COLOUR...", help="1 to 5 colours as '#rrggbb', each optionally with a "
                                  "relative weight: '#1e3a8a:3' '#d4af37:1'.")],
    search: SearchOptions,
):
    """Paintings whose dominant colours are these, in these shares (search_by_colour).

    Every painting's palette (five colours, computed from its pixels when it was loaded,
    or by `pgallery palettes backfill`) is compared in CIE Lab: a painting scores 1 when
    it holds each colour, or one near it, in at least the share asked.

    Example: `pgallery search colour '#1e3a8a' '#d4af37' --k 5 --school italian`
    """
    from pgallery.palette import parse_colours

    parse_colours(colours)              # a bad colour says so before the database opens
    _search(ctx, _params(search, colour=list(colours)),
            {"mode": "colour", "prompt": " ".join(colours)}, search)


@app.command("query")
@search_options
def composed_query(
    ctx: typer.Context,
    expression: Annotated[str, typer.Argument(
        metavar="EXPR", help='Terms joined by + and -: "a prompt", @image_file, a path or '
                             'URL, [a, vector]; N: weighs a term (2:"stormy sea").')],
    search: SearchOptions,
    provider: Provider = None,
):
    """A composed query: the weighted sum of its terms' normalised vectors (search_combined).

    Stored paintings named with @ are left out of the results. New images and prompts are
    embedded by the model's provider (prompts are cached, as `search text` does).

    Example: `pgallery search query '2:"stormy sea" + @00015-shipwreck.jpg - "people"'`
    """
    params = _params(search, query=expression, provider=provider)
    _search(ctx, params, {"mode": "composed query", "prompt": expression}, search)


app.command("painting")(painting)
app.command("text")(text)
app.command("new-image")(new_image)
app.command("vector")(vector)
app.command("colour")(colour)
for _old, _new in OLD_NAMES.items():
    _command = {"painting": painting, "new-image": new_image}[_new]
    app.command(_old, hidden=True, help=f"(The old name of `pgallery search {_new}`.) "
                                        + inspect.getdoc(_command))(_command)
