"""The `pgallery` command line: parse, call one core function, print.

Each concern has its own module here; this one assembles them into one Typer app and turns
pgallery's typed errors into one-line messages with exit codes instead of tracebacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import psycopg
import typer
from typer.core import TyperGroup

from pgallery import __version__
from pgallery.commands import help_style  # noqa: F401  (no <bool>, no {braces} in help)
from pgallery.config import Settings
from pgallery.errors import DatabaseError, PgalleryError, from_database_error
from pgallery.rendering.tables import err_console
from rich.markup import escape


def fail(error: PgalleryError) -> typer.Exit:
    """Print 'Error: message' on stderr; the Exit to raise carries the error's exit code."""
    err_console.print(f"[bold red]Error:[/] {escape(str(error))}", highlight=False,
                      soft_wrap=True)    # one line, however long: the terminal wraps it
    return typer.Exit(error.exit_code)


class PgalleryGroup(TyperGroup):
    """Root command group: turns the errors users can cause, anywhere below it, into a
    one-line message and an exit code (never a traceback)."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except PgalleryError as exc:
            raise fail(exc) from None
        except psycopg.OperationalError as exc:
            mapped = from_database_error(exc)     # a Citus worker that is down, say
            if isinstance(mapped, PgalleryError):
                raise fail(mapped) from None
            raise fail(DatabaseError(f"database error: {exc}".strip())) from None
        except psycopg.Error as exc:
            mapped = from_database_error(exc)
            if isinstance(mapped, PgalleryError):
                raise fail(mapped) from None
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted: everything committed so far is kept")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=PgalleryGroup,
    help=(
        "pgallery: SQL-first image similarity search for painting collections.\n\n"
        "Typical session: `pgallery migrate`, `pgallery load ...`, then "
        "`pgallery search painting IMAGE_FILE` (or SELECT * FROM search_by_image(...) in "
        "`pgallery db psql`). Without DATABASE_URL everything runs on an embedded "
        "PostgreSQL under ./.pgallery."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        typer.echo(f"pgallery {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[Optional[str], typer.Option(
        "--database-url", envvar="DATABASE_URL", show_envvar=True,
        help="PostgreSQL with pgvector to use. Unset: the embedded server.")] = None,
    home: Annotated[Optional[Path], typer.Option(
        "--home", envvar="PGALLERY_HOME", show_envvar=True,
        help="Where the embedded server keeps its data. [default: ./.pgallery]")] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version.")] = False,
):
    ctx.obj = Settings.load(database_url=database_url, home=home)


from pgallery.commands import (alembic_passthrough, db, demo, duplicates,  # noqa: E402
                               index, load, map, models, palettes, reembed, search,
                               serve, show)

app.add_typer(db.app, name="db")
app.command("migrate")(db.migrate)
app.command("alembic", context_settings=alembic_passthrough.CONTEXT,
            no_args_is_help=True)(alembic_passthrough.alembic)
app.command("load")(load.load)
app.command("reembed")(reembed.reembed)
app.command("show")(show.show)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("duplicates")(duplicates.duplicates)
app.add_typer(search.app, name="search")
app.add_typer(index.app, name="index")
app.add_typer(models.app, name="models")
app.add_typer(palettes.app, name="palettes")
app.add_typer(map.app, name="map")


def main() -> None:
    app(prog_name="pgallery")
