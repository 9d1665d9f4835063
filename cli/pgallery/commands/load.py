"""`pgallery load`: put a collection into the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pgallery.commands.common import database
from pgallery.errors import ArgError
from pgallery.loading.embeddings_file import load_embeddings_file
from pgallery.rendering.progress import LoadProgress
from pgallery.rendering.tables import console, print_load_summary

DEFAULT_EMBEDDINGS_MODEL = "azure-vision/2023-04-15"


def load(
    ctx: typer.Context,
    embeddings: Annotated[Optional[Path], typer.Option(
        "--embeddings", exists=False, dir_okay=False,
        help="A tab-separated file of precomputed embeddings (image_file ... vector).")] = None,
    model: Annotated[Optional[str], typer.Option(
        help="The model the vectors come from. [default: azure-vision/2023-04-15 for "
             "--embeddings]")] = None,
    batch_size: Annotated[int, typer.Option(
        min=1, max=100000, help="Rows per transaction.")] = 2000,
):
    """Load paintings and their embeddings; re-running updates, never duplicates.

    Example: `pgallery load --embeddings semart_embeddings.tsv`
    """
    if embeddings is None:
        raise ArgError("say what to load: --embeddings FILE")
    with database(ctx) as conn:
        with LoadProgress("loading embeddings") as progress:
            summary = load_embeddings_file(
                conn, embeddings, model=model or DEFAULT_EMBEDDINGS_MODEL,
                batch_size=batch_size, progress=progress)
    print_load_summary(summary)
    if summary.rejected and not summary.loaded:
        raise typer.Exit(1)
