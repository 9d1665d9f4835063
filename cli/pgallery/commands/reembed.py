"""`pgallery reembed`: embed the whole collection with another provider's model.

The new model's vectors are written next to the current ones; searches keep using the
active model until you switch (`pgallery models use NEW`, or `--activate` here). Resumable
like `pgallery load`: a re-run embeds only the paintings that have no vector of the new
model for their current image bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pgallery.commands.common import database, settings
from pgallery.commands.load import print_image_summary
from pgallery.errors import ArgError
from pgallery.loading.pipeline import (DEFAULT_BATCH_SIZE, collection_images, count_missing,
                                       load_images)
from pgallery.providers import PROVIDERS, get_provider
from pgallery.rendering.progress import LoadProgress
from pgallery.rendering.tables import console, err_console


def reembed(
    ctx: typer.Context,
    provider: Annotated[Optional[str], typer.Option(
        "--provider", help=f"The provider of the new model: {', '.join(PROVIDERS)}.")] = None,
    model_provider: Annotated[Optional[str], typer.Option(
        "--model-provider", hidden=True, help="Old spelling of --provider.")] = None,
    images: Annotated[Optional[Path], typer.Option(
        "--images", file_okay=False,
        help="Where to find images whose recorded location is missing (by image_file).")] = None,
    activate: Annotated[bool, typer.Option(
        "--activate", help="Make the new model the active one once every painting has a "
                           "vector of it.")] = False,
    batch_size: Annotated[int, typer.Option(
        min=1, max=100000, help="Vectors per transaction.")] = DEFAULT_BATCH_SIZE,
):
    """Embed every painting with another provider's model, next to the current vectors.

    Example: `pgallery reembed --provider clip`, then `pgallery models use
    clip/openai/clip-vit-base-patch32`
    """
    provider = provider or model_provider
    if provider is None:
        raise ArgError(f"say which provider's model to add: --provider {'|'.join(PROVIDERS)}")
    if images is not None and not images.is_dir():
        raise ArgError(f"{images}: no such directory")
    with get_provider(provider, settings(ctx)) as embedder:
        with database(ctx) as conn:
            listing = collection_images(conn, images)
            if not listing.items and not listing.rejected:
                raise ArgError("the collection is empty: load it first (`pgallery load ...`)")
            with LoadProgress(f"re-embedding with {embedder.model}") as progress:
                summary = load_images(conn, embedder, listing, progress=progress,
                                      batch_size=batch_size)
            missing = count_missing(conn, embedder.model)
            print_image_summary(summary)
            if activate:
                if missing:
                    err_console.print(
                        f"not activated: {missing} painting(s) have no {embedder.model} vector "
                        f"yet; fix them and re-run, or switch anyway with `pgallery models use "
                        f"{embedder.model}`", highlight=False)
                    raise typer.Exit(1)
                with conn.transaction():
                    conn.execute("SELECT use_model(%s)", (embedder.model,))
                console.print(f"active model: {embedder.model}", highlight=False)
                return
    if missing:
        console.print(f"{missing} painting(s) still lack a {embedder.model} vector; re-run to "
                      "finish", highlight=False)
    console.print(f"switch searches to it with: pgallery models use {embedder.model}",
                  highlight=False)
