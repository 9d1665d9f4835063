"""`pgallery alembic ...`: Alembic's own command line on the migrations the package carries.

An installed pgallery has no alembic.ini beside it: this command builds the configuration
(pgallery.migrations.alembic_config) and hands its arguments to Alembic unchanged.
"""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from pgallery import migrations
from pgallery.commands.common import settings

# everything from Alembic's command on is Alembic's, its options and --help included
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True,
           "allow_interspersed_args": False}


def alembic(ctx: typer.Context,
            args: Annotated[Optional[List[str]], typer.Argument(
                metavar="ALEMBIC_ARGS",
                help="An Alembic command and its arguments, e.g. upgrade head")] = None):
    """Run Alembic itself on pgallery's migrations and database, for an installed pgallery.

    Alembic's commands: current, history, heads, show, upgrade, downgrade, stamp, check;
    `pgallery alembic upgrade --help` shows one command's options. The database is
    pgallery's (DATABASE_URL, --database-url, or the embedded server), and a database at
    a revision `pgallery migrate` refuses is refused with the same message.

    Example: `pgallery alembic upgrade head`, `pgallery alembic downgrade -1`
    """
    from alembic.config import CommandLine

    command_line = CommandLine(prog="pgallery alembic")
    options = command_line.parser.parse_args(args or [])
    if not hasattr(options, "cmd"):
        command_line.parser.error("too few arguments")
    config = migrations.alembic_config(cmd_opts=options)
    config.attributes["settings"] = settings(ctx)
    command_line.run_cmd(config, options)
