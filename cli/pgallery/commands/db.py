"""`pgallery db ...` (the embedded server) and `pgallery migrate` (the schema)."""

from __future__ import annotations

import os
import subprocess
from typing import Annotated, List, Optional

import typer

from pgallery import migrations
from pgallery.commands.common import settings
from pgallery.database import embedded_server, resolve_url
from pgallery.database.connection import redact
from pgallery.database.embedded import bin_dir
from pgallery.errors import ConfigError
from pgallery.rendering.tables import console, key_value_table

app = typer.Typer(help="Manage the embedded PostgreSQL (start, stop, status, url, psql).",
                  no_args_is_help=True)


def _embedded_only(ctx: typer.Context):
    s = settings(ctx)
    if s.database_url:
        raise ConfigError(
            "DATABASE_URL is set: pgallery manages only its embedded server. "
            "Unset DATABASE_URL to use it.")
    return embedded_server(s)


@app.command()
def start(ctx: typer.Context):
    """Start the embedded server (creating it on first use). It keeps running until `db stop`.

    Example: `pgallery db start`
    """
    server = _embedded_only(ctx)
    server.ensure_running()
    console.print(f"embedded PostgreSQL running on 127.0.0.1:{server.port} "
                  f"(data in {server.data_dir})")


@app.command()
def stop(ctx: typer.Context):
    """Stop the embedded server (data is kept).

    Example: `pgallery db stop`
    """
    server = _embedded_only(ctx)
    console.print("stopped" if server.stop() else "not running")


@app.command()
def status(ctx: typer.Context):
    """Show where the database is and whether it is up and migrated.

    Example: `pgallery db status`
    """
    s = settings(ctx)
    items: list[tuple[str, object]] = []
    if s.database_url:
        items.append(("database", redact(s.database_url)))
        url = s.database_url
    else:
        server = embedded_server(s)
        st = server.status()
        items += [("database", "embedded"), ("data", st.data_dir),
                  ("initialised", st.initialized), ("running", st.running),
                  ("port", st.port), ("pid", st.pid)]
        url = server.url() if st.running else None
    if url:
        current = migrations.current_revision(url)
        head = migrations.head_revision()
        items.append(("schema", f"{current or 'not migrated'}"
                      + ("" if current == head else f" (head is {head}: run pgallery migrate)")))
    console.print(key_value_table(items))


@app.command()
def url(ctx: typer.Context):
    """Print the database URL (starting the embedded server if needed), for other tools.

    Example: `psql "$(pgallery db url)"`
    """
    typer.echo(resolve_url(settings(ctx)))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context,
         args: Annotated[Optional[List[str]], typer.Argument(
             help="Passed to psql, e.g. -c \"SELECT count(*) FROM painting\"")] = None):
    """Open the bundled psql on the database.

    Example: `pgallery db psql -c "SELECT title FROM search_by_image('x.jpg', k => 3)"`
    """
    target = resolve_url(settings(ctx))
    env = dict(os.environ)
    result = subprocess.run([str(bin_dir() / "psql"), "-X", target, *(args or [])], env=env)
    raise typer.Exit(result.returncode)


def migrate(
    ctx: typer.Context,
    to: Annotated[str, typer.Option(
        help="Target revision: 'head' (default), a revision id, or 'base' to remove "
             "everything pgallery created.")] = "head",
):
    """Create or update pgallery's schema and SQL functions (Alembic), from anywhere.

    Same as `alembic upgrade head` in the repository. Example: `pgallery migrate`
    """
    target = resolve_url(settings(ctx))
    current = migrations.current_revision(target)
    if to == "base" or (current and to != "head" and to < current):
        migrations.downgrade(target, to)
    else:
        migrations.upgrade(target, to)
    console.print(f"schema at {migrations.current_revision(target) or 'base'}")
