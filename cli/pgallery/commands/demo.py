"""`pgallery demo`: the first five minutes in one command.

Starts the embedded PostgreSQL, migrates it, generates a sample gallery in SemArt's layout,
embeds it with the offline `local` provider, builds the indexes, runs a few searches and
writes them as HTML pages. A second run reuses everything that exists and is fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from pgallery import migrations
from pgallery import search as core
from pgallery.commands.common import settings
from pgallery.flow import SearchParams
from pgallery.gallery import Gallery
from pgallery.database import connect, resolve_url
from pgallery.database.connection import redact
from pgallery.loading.after_load import after_load
from pgallery.loading.pipeline import load_images
from pgallery.loading.semart import read_semart_csv
from pgallery.providers import REGISTRY, get_provider, provider_info
from pgallery.errors import ArgError
from pgallery.rendering.output import describe_search
from pgallery.rendering.progress import LoadProgress
from pgallery.rendering.tables import console, results_table
from pgallery.search import SearchFilters


def _step(number: int, text: str) -> None:
    console.rule(f"[bold]{number}/6[/] {escape(text)}", align="left")


def _pick_query_painting(conn, model: str) -> str:
    """A painting that has a near-duplicate version in the sample, else the first one."""
    row = conn.execute(
        "SELECT p.image_file FROM painting p JOIN painting_embedding e USING (painting_id)"
        " WHERE e.model = %s ORDER BY (p.title ILIKE '%%version%%' OR p.title ILIKE"
        " '%%study%%') DESC, p.image_file LIMIT 1", (model,)).fetchone()
    conn.rollback()
    return row[0]


TEXT_PROMPT = "a stormy sea at night"
HYBRID_PROMPT = "stormy sea lighthouse"
TEXT_SEARCH_HINT = ("text search: `pgallery demo --provider clip` (a CLIP model, fetched once "
                    "from the Hugging Face Hub) or Azure AI Vision (VISION_ENDPOINT/VISION_KEY)")


def demo(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(
        min=20, max=5000, help="How many sample paintings to generate.")] = 300,
    out: Annotated[Optional[Path], typer.Option(
        file_okay=False, help="Where the sample gallery and the HTML pages go. "
                              "[default: $PGALLERY_HOME/demo]")] = None,
    provider_name: Annotated[str, typer.Option(
        "--provider", help="Embed with `local` (offline, images only) or `clip` (images and "
                           "text: adds a text search; the model is PGALLERY_CLIP_MODEL or "
                           "CLIP ViT-B/32, fetched once into the Hugging Face cache).")
    ] = next(p.name for p in REGISTRY.values() if p.offline),
    open_page: Annotated[bool, typer.Option("--open", help="Open the results page.")] = False,
):
    """Set everything up and show what pgallery does, on a generated sample gallery.

    Example: `pgallery demo` (then open the printed HTML page, or try
    `pgallery db psql -c "SELECT title, author, similarity FROM search_by_image('...')"`);
    `pgallery demo --provider clip` adds text search
    """
    from pgallery.demo import generate
    from pgallery.rendering.html import write_results_page

    info = provider_info(provider_name)
    if info is None or info.credentials:
        usable = [p.name for p in REGISTRY.values() if not p.credentials]
        raise ArgError(f"the demo embeds with {' or '.join(f'`{n}`' for n in usable)}, "
                       f"not {provider_name!r}")
    started = time.monotonic()
    s = settings(ctx)
    out = (out or s.home / "demo").absolute()

    _step(1, "database")
    url = resolve_url(s)
    console.print("embedded PostgreSQL under " + str(s.home.absolute()) if not s.database_url
                  else f"DATABASE_URL: {redact(url)}")
    migrations.upgrade(url)
    console.print(f"schema at {migrations.current_revision(url)}")

    _step(2, "sample gallery")
    gallery = out / "sample-gallery"
    generate(gallery, count=count, seed=0)
    csv = gallery / "semart.csv"
    console.print(f"{count} procedural paintings in SemArt's layout: {csv} + {gallery / 'images'}")

    provider = get_provider(provider_name, s)
    try:
        _step(3, f"embedding with the {'offline ' if info.offline else ''}"
                 f"`{provider_name}` provider")
        with connect(url) as conn:
            listing = read_semart_csv(csv, gallery / "images")
            with LoadProgress("embedding") as progress:
                # the after-load steps run once, at step 4, with the IVFFlat build
                summary = load_images(conn, provider, listing, progress=progress,
                                      finish=False)
        model = provider.model
        console.print(f"model {model}: {summary.merged.embeddings} embedded, "
                      f"{summary.unchanged} unchanged, {len(summary.rejected)} rejected")

        with connect(url, autocommit=True) as conn:
            _step(4, "indexes")
            after_load(conn, build_ivfflat=True)     # as `pgallery index build` does
            for name, method, size in conn.execute(
                    "SELECT c.relname, am.amname, pg_size_pretty(pg_relation_size(c.oid))"
                    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " JOIN pg_am am ON am.oid = c.relam"
                    " WHERE i.indrelid = 'painting_embedding'::regclass"
                    " AND am.amname IN ('hnsw', 'ivfflat') ORDER BY 1"):
                console.print(f"{name}: {method}, {size}")

            _step(5, "searches")
            query_file = _pick_query_painting(conn, model)
            title = conn.execute("SELECT title FROM painting WHERE image_file = %s",
                                 (query_file,)).fetchone()[0]
            core_gallery = Gallery(url, settings=s, check_schema=False)
            active = core_gallery.model()
            model_arg = "" if active and active.name == model else f", model => '{model}'"
            searches = [
                ("more-like-this", "painting", query_file, SearchFilters(),
                 f"SELECT * FROM search_by_image('{query_file}', k => 8{model_arg});"),
                ("filtered", "painting", query_file, SearchFilters(painting_type="landscape"),
                 f"SELECT * FROM search_by_image('{query_file}', k => 8, "
                 f"painting_type => 'landscape'{model_arg});"),
            ]
            if provider.supports_text:   # embed the prompts once: SQL answers them from now on
                for prompt in (TEXT_PROMPT, HYBRID_PROMPT):
                    core.cache_prompt(conn, prompt, provider.embed_text(prompt), model)
                searches.append(("text", "text", TEXT_PROMPT, SearchFilters(),
                                 f"SELECT * FROM search_by_text('{TEXT_PROMPT}', k => 8"
                                 f"{model_arg});"))
            searches.append(("hybrid", "hybrid", HYBRID_PROMPT, SearchFilters(),
                             f"SELECT * FROM search_hybrid('{HYBRID_PROMPT}', k => 8"
                             f"{model_arg});"))
            notices: list[str] = []
            pages = []
            for name, kind, query, filters, sql in searches:
                by = ({"similar": query} if kind == "painting" else
                      {"text": query, "hybrid": kind == "hybrid"})
                outcome = core_gallery.run(SearchParams(k=8, filters=filters, model=model,
                                                        **by))
                rows, notices = outcome.rows, notices + outcome.notices
                q = {"mode": kind, "k": 8, "filters": filters.active(), "model": model}
                q.update({"image_file": query} if kind == "painting" else {"prompt": query})
                heading = describe_search(q, title)
                console.print(results_table(rows, title=heading))
                console.print(f"[dim]psql: {sql}[/]", highlight=False)
                locations = core_gallery.image_locations([r["image_file"] for r in rows]
                                                         + [query_file])
                page = write_results_page(out / f"{name}.html", rows, query=q,
                                          title=f"pgallery demo: {heading}",
                                          image_resolver=locations.get)
                pages.append(page)
            core_gallery.close()
            if notices:
                console.print(f"[dim]The `{provider_name}` provider embeds images only, so the "
                              "hybrid search ranked by keywords alone.[/]")
    finally:
        provider.close()

    _step(6, "results")
    for page in pages:
        console.print(f"HTML page: {page}")
    console.print(f"done in {time.monotonic() - started:.1f} s. Next: open {pages[0]}, or "
                  f"`pgallery search painting {query_file} --html {out / 'similar.html'}`, or "
                  "`pgallery db psql`.", highlight=False)
    if not provider.supports_text:
        console.print(TEXT_SEARCH_HINT, highlight=False)
    console.print("Next: [bold]pgallery serve[/] to search this gallery in your browser "
                  "(http://127.0.0.1:8000/): prompts, your own images, filters, more like "
                  "this.", highlight=False)
    if open_page:
        import webbrowser

        webbrowser.open(pages[0].as_uri())
