"""`pgallery load`: put a collection into the database.

Four inputs, one per run: a SemArt CSV with its images (`--csv`, `--images`), a plain folder
of images (`--folder`), the images that failed before (`--retry-failed`), or a file of
precomputed embeddings (`--embeddings`). Images are embedded by a provider; a re-run
embeds only what is new or changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from pgallery.commands.common import gallery
from pgallery.errors import ArgError
from pgallery.gallery import EMBEDDINGS_BATCH as DEFAULT_EMBEDDINGS_BATCH
from pgallery.loading.pipeline import DEFAULT_BATCH_SIZE, ImageLoadSummary
from pgallery.providers import PROVIDERS
from pgallery.rendering.progress import LoadProgress
from pgallery.rendering.tables import console, err_console, print_load_summary

DEFAULT_EMBEDDINGS_MODEL = "azure-vision/2023-04-15"
WARNINGS_SHOWN = 20

ProviderName = Annotated[Optional[str], typer.Option(
    "--provider", help=f"Embedding provider: {', '.join(PROVIDERS)}. [default: azure when "
    "VISION_ENDPOINT and VISION_KEY are set, else local]")]
BatchSize = Annotated[Optional[int], typer.Option(
    min=1, max=100000, help=f"Rows per transaction. [default: {DEFAULT_BATCH_SIZE} for "
    f"images, {DEFAULT_EMBEDDINGS_BATCH} for --embeddings]")]


def default_images_dir(csv: Path) -> Path:
    """SemArt's layout: the CSV next to an Images/ directory."""
    for name in ("Images", "images"):
        if (csv.parent / name).is_dir():
            return csv.parent / name
    raise ArgError(f"say where the images of {csv} are: --images DIR")


def note_if_empty(summary, source) -> None:
    """A file or folder with nothing in it loads nothing: say so, not just 'seen 0'."""
    if not summary.seen and source is not None:
        err_console.print(f"note: no rows in {escape(str(source))}: nothing to load "
                          "(a header, or a folder without images, only)", highlight=False)


def print_image_summary(summary: ImageLoadSummary) -> None:
    """The load summary, the warnings, and how to retry failures."""
    print_load_summary(summary)
    console.print(f"images sent to {summary.model}: {summary.requested}, failed: "
                  f"{summary.failed}", highlight=False)
    for warning in summary.warnings[:WARNINGS_SHOWN]:
        err_console.print(f"[yellow]warning:[/] duplicate {escape(warning)}", highlight=False)
    if len(summary.warnings) > WARNINGS_SHOWN:
        err_console.print(f"... and {len(summary.warnings) - WARNINGS_SHOWN} more warnings")
    if summary.failed:
        err_console.print(f"{summary.failed} image(s) could not be embedded; fix them, then "
                          "`pgallery load --retry-failed`", highlight=False)


def run_image_load(ctx: typer.Context, description: str, load) -> ImageLoadSummary:
    """Run ``load(core, progress)``: the core opens the provider and the database, lists
    the images, embeds and loads them under this progress bar."""
    with gallery(ctx) as core:
        return load(core, LoadProgress(description))


def load(
    ctx: typer.Context,
    csv: Annotated[Optional[Path], typer.Option(
        "--csv", dir_okay=False,
        help="A SemArt metadata file (tab-separated: IMAGE_FILE, DESCRIPTION, AUTHOR, "
             "TITLE, ...; UTF-8 or cp1252).")] = None,
    images: Annotated[Optional[Path], typer.Option(
        "--images", file_okay=False,
        help="Where the images named by --csv are. [default: Images/ next to the CSV]")] = None,
    folder: Annotated[Optional[Path], typer.Option(
        "--folder", file_okay=False,
        help="A folder of images (recursive): titles from file names, author and date "
             "from EXIF.")] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Embed again the images that failed before (for the "
                               "provider's model).")] = False,
    embeddings: Annotated[Optional[Path], typer.Option(
        "--embeddings", exists=False, dir_okay=False,
        help="A file of precomputed embeddings (columns image_file ... vector): "
             "tab-separated, or Parquet with a list of numbers per vector (faster).")] = None,
    provider: ProviderName = None,
    model: Annotated[Optional[str], typer.Option(
        help="The model the vectors of --embeddings come from. [default: "
             "azure-vision/2023-04-15]")] = None,
    batch_size: BatchSize = None,
):
    """Load paintings and their embeddings; re-running embeds only new or changed images.

    Example: `pgallery load --csv SemArt/semart_train.csv --images SemArt/Images`

    Also: `pgallery load --folder ~/Pictures/paintings`, `pgallery load --retry-failed`,
    `pgallery load --embeddings semart_embeddings.tsv` (or a .parquet file: faster)
    """
    modes = [name for name, given in (("--csv", csv), ("--folder", folder),
                                      ("--retry-failed", retry_failed),
                                      ("--embeddings", embeddings)) if given]
    if not modes:
        raise ArgError("say what to load: --csv FILE [--images DIR], --folder DIR, "
                       "--retry-failed or --embeddings FILE")
    if len(modes) > 1:
        raise ArgError(f"load one thing at a time: {' and '.join(modes)} were both given")
    if images is not None and csv is None:
        raise ArgError("--images goes with --csv (the directory of the CSV's images)")
    if embeddings is not None:
        if provider is not None:
            raise ArgError("--provider is for images; --embeddings are already vectors "
                           "(name their model with --model)")
        with gallery(ctx) as core:
            summary = core.load_embeddings(embeddings, model=model or DEFAULT_EMBEDDINGS_MODEL,
                                           batch_size=batch_size or DEFAULT_EMBEDDINGS_BATCH,
                                           progress=LoadProgress("loading embeddings"))
        print_load_summary(summary)
        note_if_empty(summary, embeddings)
        if summary.rejected and not summary.loaded:
            raise typer.Exit(1)
        return
    if model is not None:
        raise ArgError("--model is for --embeddings; an image load stores the provider's "
                       "model (choose it with --provider)")

    if csv is not None:
        images_dir = images if images is not None else default_images_dir(csv)
        if not images_dir.is_dir():
            raise ArgError(f"{images_dir}: no such directory")
        summary = run_image_load(ctx, f"embedding {csv.name}", lambda core, progress:
                                 core.load_semart(csv, images_dir, provider=provider,
                                                  progress=progress, batch_size=batch_size))
    elif folder is not None:
        summary = run_image_load(ctx, f"embedding {folder.name or folder}",
                                 lambda core, progress: core.load_folder(
                                     folder, provider=provider, progress=progress,
                                     batch_size=batch_size))
    else:
        summary = run_image_load(ctx, "retrying failed images", lambda core, progress:
                                 core.retry_failed(provider=provider, progress=progress,
                                                   batch_size=batch_size))
        if not summary.seen:
            console.print(f"no failed images to retry for {summary.model}", highlight=False)
            return
    print_image_summary(summary)
    note_if_empty(summary, csv or folder)
    if summary.rejected and summary.loaded <= 0 and not summary.unchanged:
        raise typer.Exit(1)
