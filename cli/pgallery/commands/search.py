"""`pgallery search ...`: each command gathers its query, calls one SQL function, prints."""

from __future__ import annotations

import inspect
import json as jsonlib
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from pgallery import search as core
from pgallery.commands.common import SearchOptions, database, search_options, settings
from pgallery.errors import ArgError, ModelMismatch
from pgallery.providers import PROVIDERS, get_provider
from pgallery.rendering.output import emit_results

app = typer.Typer(help="Search the collection: by one of its paintings, by text, by a new "
                       "image or by a vector.", no_args_is_help=True)

Provider = Annotated[Optional[str], typer.Option(
    help=f"Embedding provider: {', '.join(PROVIDERS)}. "
         "[default: the one that made the model's vectors; else azure if "
         "VISION_ENDPOINT/VISION_KEY are set, else local]")]

# Old command names, kept working for scripts but no longer shown: `similar` searched by a
# painting (search_by_image) and `image` by a new image, which misled (issue 12).
OLD_NAMES = {"similar": "painting", "image": "new-image"}


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
    with database(ctx) as conn:
        rows = core.search_by_image(conn, image_file, k=search.k, filters=search.filters,
                                    model=search.model, recall=search.recall,
                                    result=search.result)
        emit_results(conn, rows, query={"mode": "painting", "image_file": image_file},
                     options=search)


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
        vector = np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError):
        raise ArgError("the vector must be a JSON list of numbers") from None
    if vector.ndim != 1 or vector.size == 0:
        raise ArgError("the vector must be a flat, non-empty list of numbers")
    return vector


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
    query = _read_vector(vector_spec)
    with database(ctx) as conn:
        rows = core.search_by_vector(conn, query, k=search.k, filters=search.filters,
                                     model=search.model, recall=search.recall,
                                    result=search.result)
        emit_results(conn, rows, query={"mode": "vector"}, options=search)


def _provider_for_active_model(ctx, conn, provider_name, model):
    """The provider whose model the search will use; refuses to compare across models.

    Without --provider, the provider that made the target model's vectors (recorded when
    they were loaded) is used, so `search new-image` works whichever model is active."""
    target_model = (core.model_named(conn, model) if model else core.active_model(conn)) or {}
    target = model or target_model.get("name")
    if provider_name is None and target_model.get("provider") in PROVIDERS:
        provider_name = target_model["provider"]
    provider = get_provider(provider_name, settings(ctx))
    if target and target != provider.model:
        provider.close()
        raise ModelMismatch(
            f"the active model is {target!r} but the {provider.name!r} provider embeds with "
            f"{provider.model!r}; vectors of different models are never compared. Use "
            f"--provider for the model's provider, or `pgallery models use {provider.model}`")
    return provider


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
    with database(ctx) as conn:
        target = search.model or (core.active_model(conn) or {}).get("name")
        keyword_only = None
        if target is None or not core.prompt_is_cached(conn, prompt, target):
            embedder = None
            try:
                embedder = _provider_for_active_model(ctx, conn, provider, search.model)
                if embedder.supports_text or not hybrid:
                    core.cache_prompt(conn, prompt, embedder.embed_text(prompt), search.model)
                else:
                    keyword_only = embedder
            finally:
                if embedder is not None:
                    embedder.close()
        kind = "hybrid" if hybrid else "text"
        rows = core.run_search(conn, kind, prompt, k=search.k, filters=search.filters,
                               model=search.model, recall=search.recall,
                               result=search.result)
        query = {"mode": kind, "prompt": prompt, "model": target}
        if keyword_only is not None:
            query["keyword_only"] = (f"ranked by keywords only: the {keyword_only.name!r} "
                                     f"provider ({target}) embeds images only, so the prompt "
                                     "has no vector to compare")
        emit_results(conn, rows, query=query, options=search)


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
    with database(ctx) as conn:
        embedder = _provider_for_active_model(ctx, conn, provider, search.model)
        try:
            query = embedder.embed_image(source)
            if with_text:
                query = combine(query, embedder.embed_text(with_text))
        finally:
            embedder.close()
        rows = core.search_by_vector(conn, query, k=search.k, filters=search.filters,
                                     model=search.model or embedder.model,
                                     recall=search.recall, result=search.result)
        emit_results(conn, rows, query={"mode": "new-image", "image_path": source,
                                        "prompt": with_text,
                                        "model": search.model or embedder.model},
                     options=search)


def combine(image_vector: np.ndarray, text_vector: np.ndarray) -> np.ndarray:
    """The normalised average of two normalised vectors (a text-steered image query)."""
    a = np.asarray(image_vector, dtype=np.float32)
    b = np.asarray(text_vector, dtype=np.float32)
    a = a / (np.linalg.norm(a) or 1.0)
    b = b / (np.linalg.norm(b) or 1.0)
    mean = (a + b) / 2
    return mean / (np.linalg.norm(mean) or 1.0)


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
    from pgallery.errors import EmbeddingFailed, ProviderError
    from pgallery.query_syntax import parse_query, pointed

    terms = parse_query(expression)
    for term in terms:
        if (term.kind == "image" and not term.value.startswith(("http://", "https://"))
                and not os.path.isfile(term.value)):
            raise ArgError(pointed(f"{term.value:.200}: no such file (a new image is a path "
                                   "or an http(s) URL; a stored painting is @image_file)",
                                   expression, term.start))
    model = search.model
    with database(ctx) as conn:
        target = model or (core.active_model(conn) or {}).get("name")
        prompts = [t for t in terms if t.kind == "prompt"]
        images = [t for t in terms if t.kind == "image"]
        missing = [t for t in prompts
                   if target is None or not core.prompt_is_cached(conn, t.value, target)]
        image_vectors = []
        if missing or images:
            embedder = _provider_for_active_model(ctx, conn, provider, model)
            try:
                for term in missing:
                    try:
                        core.cache_prompt(conn, term.value, embedder.embed_text(term.value),
                                          model)
                    except ProviderError as exc:
                        raise type(exc)(pointed(str(exc), expression, term.start)) from None
                for term in images:
                    try:
                        image_vectors.append(embedder.embed_image(term.value))
                    except EmbeddingFailed as exc:
                        raise EmbeddingFailed(pointed(str(exc), expression, term.start),
                                              exc.code) from None
            finally:
                embedder.close()
        vectors = iter(image_vectors)
        vector_terms = [(next(vectors) if t.kind == "image" else np.asarray(t.value), t.weight)
                        for t in terms if t.kind in ("image", "vector")]
        paintings = [t for t in terms if t.kind == "painting"]
        rows = core.search_combined(
            conn,
            paintings=[t.value for t in paintings], painting_weights=[t.weight for t in paintings],
            prompts=[t.value for t in prompts], prompt_weights=[t.weight for t in prompts],
            vectors=[v for v, _ in vector_terms], vector_weights=[w for _, w in vector_terms],
            k=search.k, filters=search.filters, model=model, recall=search.recall,
            result=search.result)
        emit_results(conn, rows, query={"mode": "composed query", "prompt": expression},
                     options=search)


app.command("painting")(painting)
app.command("text")(text)
app.command("new-image")(new_image)
app.command("vector")(vector)
for _old, _new in OLD_NAMES.items():
    _command = {"painting": painting, "new-image": new_image}[_new]
    app.command(_old, hidden=True, help=f"(The old name of `pgallery search {_new}`.) "
                                        + inspect.getdoc(_command))(_command)
