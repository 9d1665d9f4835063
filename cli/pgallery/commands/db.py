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
        items += _citus_items(url)
    console.print(key_value_table(items))


def _citus_items(url: str) -> list[tuple[str, object]]:
    """On a Citus coordinator: its workers, with their shards, and each table's kind."""
    from pgallery import citus_layout
    from pgallery.database import connect
    from pgallery.database.cluster import cluster_nodes

    with connect(url, autocommit=True, register=False) as conn:
        if not citus_layout.is_coordinator(conn):
            return []
        tables = citus_layout.describe(conn)
    nodes = cluster_nodes(url)
    items: list[tuple[str, object]] = [
        ("cluster", f"Citus coordinator with {len(nodes)} worker(s)")]
    for port, host, shards, size in nodes:
        items.append((f"worker {host}:{port}", f"{shards} shards, {size / 2**20:.1f} MB"))
    for name, kind, shards, column in tables:
        items.append((f"table {name}", kind + (f" by {column}, {shards} shards"
                                               if kind == "distributed" else "")))
    return items


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


# -- `pgallery db replica ...`: hot standbys of the embedded server -------------------------

replica_app = typer.Typer(
    help="Read-only hot standbys of the embedded server (streaming replication, each on a "
         "port of its own): create, start, stop, status, url, wait, destroy. "
         "`pgallery serve --read-url \"$(pgallery db replica url --all)\"` sends the "
         "searches to them.",
    no_args_is_help=True)
app.add_typer(replica_app, name="replica")

NameOption = Annotated[str, typer.Option(
    "--name", help="Which standby: lower-case letters, digits, _ (several may exist).")]


def _replica(ctx: typer.Context, name: str = "replica"):
    from pgallery.database.replica import Replica

    return Replica(_embedded_only(ctx), name)


def _created(ctx: typer.Context, name: str):
    replica = _replica(ctx, name)
    if not replica.status().initialized:
        option = "" if name == "replica" else f" --name {name}"
        raise ConfigError(f"no standby {name!r} yet: run `pgallery db replica create{option}`")
    return replica


@replica_app.command("create")
def replica_create(ctx: typer.Context, name: NameOption = "replica"):
    """Copy the running server with the bundled pg_basebackup and start it as a standby.

    It streams every change from the primary and answers every search read-only. Each
    standby has its own name, directory, port and replication slot.
    Example: `pgallery db replica create && pgallery db replica create --name b`
    """
    replica = _replica(ctx, name)
    existed = replica.status().initialized
    replica.create()
    console.print(f"standby {name} {'already existed' if existed else 'created'}: running on "
                  f"127.0.0.1:{replica.port} (data in {replica.data_dir})")


@replica_app.command("start")
def replica_start(ctx: typer.Context, name: NameOption = "replica"):
    """Start a standby (it catches up from the primary's replication slot).

    Example: `pgallery db replica start --name b`
    """
    replica = _created(ctx, name)
    replica.start()
    console.print(f"standby {name} running on 127.0.0.1:{replica.port}")


@replica_app.command("stop")
def replica_stop(ctx: typer.Context, name: NameOption = "replica"):
    """Stop a standby (its data and slot are kept; the primary keeps its WAL for it).

    Example: `pgallery db replica stop --name b`
    """
    console.print("stopped" if _replica(ctx, name).stop() else "not running")


@replica_app.command("status")
def replica_status(ctx: typer.Context):
    """Every standby: whether it runs and streams, and how far it lags behind the primary.

    Example: `pgallery db replica status`
    """
    from pgallery.database.replica import replicas

    from pgallery.rendering.tables import rows_table

    found = replicas(_embedded_only(ctx))
    if not found:
        raise ConfigError("no replica yet: run `pgallery db replica create`")
    rows = []
    for replica in found:
        st = replica.replica_status()
        rows.append({"name": replica.name, "port": st.port, "running": st.running,
                     "standby": st.in_recovery, "streaming": st.streaming,
                     "replay lag (bytes)": st.replay_lag_bytes,
                     "replay lag (s)": (None if st.replay_lag_seconds is None
                                        else round(st.replay_lag_seconds, 3))})
    console.print(rows_table(rows, list(rows[0])))


@replica_app.command("url")
def replica_url(ctx: typer.Context,
                name: Annotated[str, typer.Argument(help="Which standby.")] = "replica",
                all_: Annotated[bool, typer.Option(
                    "--all", help="One multi-host URL over every standby, load-balanced "
                                  "(libpq 16+), for `pgallery serve --read-url`.")] = False):
    """Print a standby's URL, or with --all one URL over every standby.

    Examples: `psql "$(pgallery db replica url b)"` and
    `pgallery serve --read-url "$(pgallery db replica url --all)"`
    """
    if all_:
        from pgallery.database.replica import all_standbys_url

        typer.echo(all_standbys_url(_embedded_only(ctx)))
        return
    typer.echo(_created(ctx, name).url())


@replica_app.command("wait")
def replica_wait(ctx: typer.Context,
                 name: Annotated[Optional[str], typer.Option(
                     "--name", help="Only this standby; default: every running one.")] = None,
                 timeout: Annotated[float, typer.Option(
                     min=0.1, help="Give up after this many seconds.")] = 60.0):
    """Wait until the standbys have replayed everything committed on the primary so far.

    Example: `pgallery load --csv ... && pgallery db replica wait`
    """
    from pgallery.database.replica import replicas

    if name is not None:
        chosen = [_created(ctx, name)]
    else:
        chosen = [r for r in replicas(_embedded_only(ctx)) if r.status().running]
        if not chosen:
            raise ConfigError("no standby is running: `pgallery db replica start`")
    for replica in chosen:
        seconds = replica.wait_for_replay(timeout)
        console.print(f"standby {replica.name} caught up ({seconds:.2f} s)")


@replica_app.command("destroy")
def replica_destroy(ctx: typer.Context, name: NameOption = "replica"):
    """Stop a standby, delete its files and drop its replication slot on the primary.

    Example: `pgallery db replica destroy --name b`
    """
    _replica(ctx, name).destroy()
    console.print(f"standby {name} removed")


# -- `pgallery db cluster ...`: a local Citus cluster -----------------------------------------

cluster_app = typer.Typer(
    help="A local Citus cluster (a coordinator and N workers) for development and tests: "
         "create, start, stop, status, url, destroy. Needs a PostgreSQL with Citus and "
         "pgvector (docs/scale-out.md).",
    no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")


def _cluster(ctx: typer.Context):
    from pgallery.database.cluster import LocalCluster

    return LocalCluster(settings(ctx).home)


@cluster_app.command("create")
def cluster_create(
    ctx: typer.Context,
    workers: Annotated[int, typer.Option(min=1, max=16, help="How many workers.")] = 2,
    pg_bin: Annotated[Optional[str], typer.Option(
        "--pg-bin", envvar="PGALLERY_CITUS_PG_BIN",
        help="The bin directory of a PostgreSQL with Citus and pgvector installed.")] = None,
):
    """Start a coordinator and N workers under $PGALLERY_HOME/cluster, joined as one Citus
    cluster; then `pgallery migrate` on it distributes the collection.

    Example: `pgallery db cluster create --workers 2 --pg-bin /opt/citus-pg/bin &&
    DATABASE_URL="$(pgallery db cluster url)" pgallery migrate`
    """
    cluster = _cluster(ctx)
    existed = cluster.created
    if not existed and not pg_bin:
        raise ConfigError("name the PostgreSQL with Citus: --pg-bin DIR (or "
                          "PGALLERY_CITUS_PG_BIN)")
    cluster.create(workers, pg_bin or "")
    _print_cluster(cluster, "already existed" if existed else "created")


@cluster_app.command("start")
def cluster_start(ctx: typer.Context):
    """Start every node of the cluster (a worker on a new port is re-registered).

    Example: `pgallery db cluster start`
    """
    cluster = _cluster(ctx)
    cluster.start()
    _print_cluster(cluster, "running")


@cluster_app.command("stop")
def cluster_stop(ctx: typer.Context,
                 node: Annotated[Optional[str], typer.Argument(
                     help="Only this node (worker-1, ...); default: all.")] = None):
    """Stop the cluster's nodes (data is kept), or one of them.

    Example: `pgallery db cluster stop` or `pgallery db cluster stop worker-2`
    """
    stopped = _cluster(ctx).stop(node)
    console.print("stopped " + ", ".join(stopped) if stopped else "not running")


@cluster_app.command("status")
def cluster_status(ctx: typer.Context):
    """Each node: running, port, registered with the coordinator, shards and their size.

    Example: `pgallery db cluster status`
    """
    cluster = _cluster(ctx)
    st = cluster.status()
    if not st.created:
        raise ConfigError("no cluster yet: run `pgallery db cluster create --workers 2 "
                          "--pg-bin DIR`")
    items: list[tuple[str, object]] = [("cluster", cluster.root), ("pg-bin", st.pg_bin)]
    for node in st.nodes:
        state = "running" if node.running else "stopped"
        extra = ("" if node.shards is None
                 else f", {node.shards} shards, {node.rows_bytes / 2**20:.1f} MB")
        if node.registered is False:
            extra += ", not registered with the coordinator"
        items.append((node.name, f"{state} on 127.0.0.1:{node.port}{extra}"))
    console.print(key_value_table(items))


@cluster_app.command("url")
def cluster_url(ctx: typer.Context):
    """Print the coordinator's URL (searches, loads and migrations all go there).

    Example: `DATABASE_URL="$(pgallery db cluster url)" pgallery db status`
    """
    typer.echo(_cluster(ctx).url())


@cluster_app.command("destroy")
def cluster_destroy(ctx: typer.Context):
    """Stop every node and delete the cluster's files.

    Example: `pgallery db cluster destroy`
    """
    _cluster(ctx).destroy()
    console.print("cluster removed")


def _print_cluster(cluster, what: str) -> None:
    workers = cluster.workers
    console.print(f"cluster {what}: coordinator on 127.0.0.1:{cluster.coordinator.port}, "
                  f"{len(workers)} worker(s) on "
                  + ", ".join(f"127.0.0.1:{w.port}" for w in workers))
