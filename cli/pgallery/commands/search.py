"""`pgallery search ...`: each command gathers its query, calls one SQL function, prints."""

from __future__ import annotations

import json as jsonlib
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from pgallery import search as core
from pgallery.commands.common import (Author, EfSearch, Exact, Json, K, Model, PaintingType,
                                      Probes, School, Technique, Timeframe, YearFrom, YearTo,
                                      database, make_filters, make_recall, settings)
from pgallery.errors import ArgError, ModelMismatch
from pgallery.providers import PROVIDERS, get_provider
from pgallery.rendering.output import emit_results

app = typer.Typer(help="Search the collection: by painting, text, new image or raw vector.",
                  no_args_is_help=True)

Html = Annotated[Optional[Path], typer.Option(
    "--html", dir_okay=False, help="Also write a self-contained HTML page of the results.")]
Open = Annotated[bool, typer.Option("--open", help="Open the HTML page in a browser.")]
Provider = Annotated[Optional[str], typer.Option(
    help=f"Embedding provider: {', '.join(PROVIDERS)}. "
         "[default: the one that made the model's vectors; else azure if "
         "VISION_ENDPOINT/VISION_KEY are set, else local]")]


@app.command()
def similar(
    ctx: typer.Context,
    image_file: Annotated[str, typer.Argument(help="A loaded painting's image_file.")],
    k: K = 10, author: Author = None, technique: Technique = None, school: School = None,
    painting_type: PaintingType = None, timeframe: Timeframe = None,
    year_from: YearFrom = None, year_to: YearTo = None, model: Model = None,
    ef_search: EfSearch = None, probes: Probes = None, exact: Exact = False,
    json: Json = False, html: Html = None, open_page: Open = False,
):
    """More like this painting (its stored embedding; no embedding call at all).

    Example: `pgallery search similar 19873-1portrai.jpg --k 5 --type portrait`
    """
    filters = make_filters(author, technique, school, painting_type, timeframe, year_from,
                           year_to)
    with database(ctx) as conn:
        rows = core.search_by_image(conn, image_file, k=k, filters=filters, model=model,
                                    recall=make_recall(ef_search, probes, exact))
        emit_results(conn, rows, query={"mode": "image", "image_file": image_file, "k": k,
                                        "filters": filters.active()},
                     json=json, html=html, open_page=open_page)


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


@app.command()
def vector(
    ctx: typer.Context,
    vector_spec: Annotated[str, typer.Argument(
        metavar="VECTOR", help="A JSON list of floats: inline, a file, or - for stdin.")],
    k: K = 10, author: Author = None, technique: Technique = None, school: School = None,
    painting_type: PaintingType = None, timeframe: Timeframe = None,
    year_from: YearFrom = None, year_to: YearTo = None, model: Model = None,
    ef_search: EfSearch = None, probes: Probes = None, exact: Exact = False,
    json: Json = False, html: Html = None, open_page: Open = False,
):
    """Nearest paintings to a vector you already have (search_by_vector).

    Example: `pgallery search vector query.json --k 5 --school dutch`
    """
    query = _read_vector(vector_spec)
    filters = make_filters(author, technique, school, painting_type, timeframe, year_from,
                           year_to)
    with database(ctx) as conn:
        rows = core.search_by_vector(conn, query, k=k, filters=filters, model=model,
                                     recall=make_recall(ef_search, probes, exact))
        emit_results(conn, rows, query={"mode": "vector", "k": k, "filters": filters.active()},
                     json=json, html=html, open_page=open_page)


def _provider_for_active_model(ctx, conn, provider_name, model):
    """The provider whose model the search will use; refuses to compare across models.

    Without --provider, the provider that made the target model's vectors (recorded when
    they were loaded) is used, so `search image` works whichever model is active."""
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


@app.command()
def text(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to look for, in words.")],
    hybrid: Annotated[bool, typer.Option(
        "--hybrid", help="Fuse with keyword search over titles and descriptions "
                         "(search_hybrid).")] = False,
    provider: Provider = None,
    k: K = 10, author: Author = None, technique: Technique = None, school: School = None,
    painting_type: PaintingType = None, timeframe: Timeframe = None,
    year_from: YearFrom = None, year_to: YearTo = None, model: Model = None,
    ef_search: EfSearch = None, probes: Probes = None, exact: Exact = False,
    json: Json = False, html: Html = None, open_page: Open = False,
):
    """Text-to-image search. The prompt is embedded once and cached in the database, so
    `SELECT * FROM search_by_text('...')` answers it from psql afterwards.

    Example: `pgallery search text "a stormy sea at night" --k 5`
    """
    if not prompt.strip():
        raise ArgError("the prompt is empty")
    filters = make_filters(author, technique, school, painting_type, timeframe, year_from,
                           year_to)
    with database(ctx) as conn:
        target = model or (core.active_model(conn) or {}).get("name")
        if target is None or not core.prompt_is_cached(conn, prompt, target):
            embedder = None
            try:
                embedder = _provider_for_active_model(ctx, conn, provider, model)
                if embedder.supports_text or not hybrid:
                    core.cache_prompt(conn, prompt, embedder.embed_text(prompt), model)
            finally:
                if embedder is not None:
                    embedder.close()
        kind = "hybrid" if hybrid else "text"
        rows = core.run_search(conn, kind, prompt, k=k, filters=filters, model=model,
                               recall=make_recall(ef_search, probes, exact))
        emit_results(conn, rows, query={"mode": kind, "prompt": prompt, "k": k,
                                        "filters": filters.active()},
                     json=json, html=html, open_page=open_page)


@app.command()
def image(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(
        metavar="PATH_OR_URL", help="A new image: a local file or an http(s) URL.")],
    with_text: Annotated[Optional[str], typer.Option(
        "--text", help="Combine with a text prompt (normalised average of both vectors).")] = None,
    provider: Provider = None,
    k: K = 10, author: Author = None, technique: Technique = None, school: School = None,
    painting_type: PaintingType = None, timeframe: Timeframe = None,
    year_from: YearFrom = None, year_to: YearTo = None, model: Model = None,
    ef_search: EfSearch = None, probes: Probes = None, exact: Exact = False,
    json: Json = False, html: Html = None, open_page: Open = False,
):
    """Paintings that look like a new image (embedded now, then search_by_vector).

    Example: `pgallery search image ~/photos/sunflowers.jpg --k 8`
    """
    if not source.startswith(("http://", "https://")) and not os.path.isfile(source):
        raise ArgError(f"{source:.200}: no such file (give a path or an http(s) URL)")
    filters = make_filters(author, technique, school, painting_type, timeframe, year_from,
                           year_to)
    with database(ctx) as conn:
        embedder = _provider_for_active_model(ctx, conn, provider, model)
        try:
            query = embedder.embed_image(source)
            if with_text:
                query = combine(query, embedder.embed_text(with_text))
        finally:
            embedder.close()
        rows = core.search_by_vector(conn, query, k=k, filters=filters,
                                     model=model or embedder.model,
                                     recall=make_recall(ef_search, probes, exact))
        emit_results(conn, rows, query={"mode": "file", "image_path": source, "prompt": with_text, "k": k,
                                        "filters": filters.active()},
                     json=json, html=html, open_page=open_page)


def combine(image_vector: np.ndarray, text_vector: np.ndarray) -> np.ndarray:
    """The normalised average of two normalised vectors (a text-steered image query)."""
    a = np.asarray(image_vector, dtype=np.float32)
    b = np.asarray(text_vector, dtype=np.float32)
    a = a / (np.linalg.norm(a) or 1.0)
    b = b / (np.linalg.norm(b) or 1.0)
    mean = (a + b) / 2
    return mean / (np.linalg.norm(mean) or 1.0)


@app.command("query")
def composed_query(
    ctx: typer.Context,
    expression: Annotated[str, typer.Argument(
        metavar="EXPR", help='Terms joined by + and -: "a prompt", @image_file, a path or '
                             'URL, [a, vector]; N: weighs a term (2:"stormy sea").')],
    provider: Provider = None,
    k: K = 10, author: Author = None, technique: Technique = None, school: School = None,
    painting_type: PaintingType = None, timeframe: Timeframe = None,
    year_from: YearFrom = None, year_to: YearTo = None, model: Model = None,
    ef_search: EfSearch = None, probes: Probes = None, exact: Exact = False,
    json: Json = False, html: Html = None, open_page: Open = False,
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
    filters = make_filters(author, technique, school, painting_type, timeframe, year_from,
                           year_to)
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
            k=k, filters=filters, model=model, recall=make_recall(ef_search, probes, exact))
        emit_results(conn, rows, query={"mode": "composed query", "prompt": expression, "k": k,
                                        "filters": filters.active()},
                     json=json, html=html, open_page=open_page)
