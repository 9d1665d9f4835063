"""`pgallery alembic ...`: Alembic's own command line on the migrations the package carries.

An installed pgallery has no alembic.ini beside it: this command builds the configuration
(pgallery.migrations.alembic_config) and hands every argument to Alembic unchanged.
"""

from __future__ import annotations

import typer

from pgallery import migrations
from pgallery.commands.common import settings

# every argument, --help included, goes to Alembic (the command is added without its own
# help option)
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def alembic(ctx: typer.Context):
    """Run Alembic on pgallery's migrations: `pgallery alembic upgrade head`, `current`,
    `history`, `downgrade -1` (`pgallery alembic --help` lists them all).

    The database is pgallery's (DATABASE_URL, --database-url, or the embedded server), as
    for `pgallery migrate`, and the revision check is the same.
    """
    from alembic.config import CommandLine

    command_line = CommandLine(prog="pgallery alembic")
    options = command_line.parser.parse_args(ctx.args)
    if not hasattr(options, "cmd"):
        command_line.parser.error("too few arguments")
    config = migrations.alembic_config(cmd_opts=options)
    config.attributes["settings"] = settings(ctx)
    command_line.run_cmd(config, options)
