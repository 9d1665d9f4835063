"""A local Citus cluster for development and tests: a coordinator and N workers.

    $PGALLERY_HOME/cluster/
      pg-bin          the PostgreSQL bin directory the nodes run (one with Citus and pgvector)
      password        the superuser's password, the same on every node (mode 0600)
      coordinator/    an embedded server (database/embedded.py's layout: data/, port, ...)
      worker-1/ ...

Each node is an EmbeddedServer started from `pg-bin` with `shared_preload_libraries =
citus`; the coordinator knows the workers (citus_add_node) and connects to them as the
superuser with the password in pg_dist_authinfo (every node's copy: workers connect to
one another too, for reference tables and metadata). Searches, loads and migrations go to
the coordinator's URL (`pgallery db cluster url`); `pgallery migrate` there distributes the
collection (migrations.py, citus_layout.py).

Citus is not in the registries pgallery installs from: build it against a PostgreSQL
(docs/scale-out.md says how) and name that installation's bin directory with --pg-bin.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pgallery.database.embedded import DATABASE, SUPERUSER, EmbeddedServer
from pgallery.errors import ConfigError, DatabaseError

# What a node runs with beyond SERVER_SETTINGS: Citus loaded first; smaller memory, since
# several servers share the machine; prepared transactions for Citus's two-phase commit
# of writes that touch several workers.
NODE_SETTINGS = {
    "shared_preload_libraries": "'citus,pg_stat_statements'",
    "shared_buffers": "'256MB'",
    "maintenance_work_mem": "'512MB'",
    "max_prepared_transactions": "100",
    "max_connections": "200",
}


@dataclass
class NodeStatus:
    name: str
    port: int | None
    running: bool
    registered: bool | None = None      # in the coordinator's pg_dist_node (workers)
    shards: int | None = None           # shard placements on the node
    rows_bytes: int | None = None       # their size on disk


@dataclass
class ClusterStatus:
    created: bool
    pg_bin: Path | None
    nodes: list[NodeStatus] = field(default_factory=list)


def check_citus_installation(pg_bin: Path) -> None:
    """Refuse, in one line, a bin directory that cannot run a Citus node with pgvector."""
    pg_config = pg_bin / "pg_config"
    if not (pg_bin / "postgres").is_file() or not pg_config.is_file():
        raise ConfigError(f"{pg_bin} is not a PostgreSQL bin directory (no postgres or "
                          "pg_config in it)")
    libdir = Path(subprocess.run([str(pg_config), "--pkglibdir"], capture_output=True,
                                 text=True, check=True).stdout.strip())
    sharedir = Path(subprocess.run([str(pg_config), "--sharedir"], capture_output=True,
                                   text=True, check=True).stdout.strip())
    if not (libdir / "citus.so").is_file():
        raise ConfigError(f"the PostgreSQL in {pg_bin} has no Citus ({libdir}/citus.so is "
                          "missing): install Citus into it (docs/scale-out.md)")
    if not (sharedir / "extension" / "vector.control").is_file():
        raise ConfigError(f"the PostgreSQL in {pg_bin} has no pgvector "
                          f"({sharedir}/extension/vector.control is missing)")


class LocalCluster:
    """The cluster under ``home / "cluster"``; every method is safe to call repeatedly."""

    def __init__(self, home: Path | str):
        self.root = Path(home).absolute() / "cluster"

    # -- files -----------------------------------------------------------------------------
    @property
    def pg_bin(self) -> Path | None:
        f = self.root / "pg-bin"
        return Path(f.read_text().strip()) if f.is_file() else None

    @property
    def password(self) -> str:
        return (self.root / "password").read_text().strip()

    def _node(self, name: str) -> EmbeddedServer:
        return EmbeddedServer(self.root / name, pg_bin=self.pg_bin, settings=NODE_SETTINGS,
                              password=self.password)

    @property
    def coordinator(self) -> EmbeddedServer:
        return self._node("coordinator")

    @property
    def workers(self) -> list[EmbeddedServer]:
        names = sorted((p.name for p in self.root.glob("worker-*") if p.is_dir()),
                       key=lambda n: int(n.split("-")[1]))
        return [self._node(name) for name in names]

    def url(self) -> str:
        if not self.created:
            raise ConfigError("no cluster yet: run `pgallery db cluster create --workers 2 "
                              "--pg-bin DIR`")
        return self.coordinator.url()

    @property
    def created(self) -> bool:
        return (self.root / "coordinator" / "data" / "PG_VERSION").is_file()

    # -- lifecycle -------------------------------------------------------------------------
    def create(self, workers: int, pg_bin: Path | str) -> str:
        """Initialise, start and join a coordinator and `workers` workers; return the
        coordinator's URL. On an existing cluster: start it (the worker count stays)."""
        if self.created:
            return self.start()
        if workers < 1:
            raise ConfigError("a cluster needs at least one worker (--workers 1 or more)")
        pg_bin = Path(pg_bin).absolute()
        check_citus_installation(pg_bin)
        if self.root.exists() and any(self.root.iterdir()):
            raise DatabaseError(f"{self.root} holds an unfinished cluster: run `pgallery db "
                                "cluster destroy` and create it again")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)   # the nodes may run as the unprivileged `pgallery` user
        (self.root / "pg-bin").write_text(f"{pg_bin}\n")
        pw = self.root / "password"
        pw.write_text(secrets.token_urlsafe(24) + "\n")
        pw.chmod(0o600)
        nodes = [self._node("coordinator")] + [self._node(f"worker-{i}")
                                               for i in range(1, workers + 1)]
        for node in nodes:
            node.ensure_running()
            with self._connect(node) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
                # nodeid 0: for connections to every node, as this role
                conn.execute("INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo)"
                             " VALUES (0, %s, %s) ON CONFLICT DO NOTHING",
                             (SUPERUSER, f"password={self.password}"))
        with self._connect(nodes[0]) as conn:
            conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)",
                         (nodes[0].port,))
            for worker in nodes[1:]:
                conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (worker.port,))
        return nodes[0].url()

    def start(self) -> str:
        """Start every node; a worker that came back on another port is re-registered."""
        if not self.created:
            raise ConfigError("no cluster yet: run `pgallery db cluster create --workers 2 "
                              "--pg-bin DIR`")
        ports = {w.home.name: w.port for w in self.workers}
        for node in [*self.workers, self.coordinator]:
            node.ensure_running()
        moved = [(ports[w.home.name], w.port) for w in self.workers
                 if w.port != ports[w.home.name]]
        with self._connect(self.coordinator) as conn:
            for old, new in moved:
                conn.execute("SELECT citus_update_node(nodeid, '127.0.0.1', %s)"
                             " FROM pg_dist_node WHERE nodeport = %s", (new, old))
        return self.coordinator.url()

    def stop(self, only: str | None = None) -> list[str]:
        """Stop every node (or the one named: 'worker-2'); return the names stopped."""
        nodes = [*self.workers, self.coordinator]
        if only is not None:
            nodes = [n for n in nodes if n.home.name == only]
            if not nodes:
                raise ConfigError(f"no node {only!r} in the cluster (coordinator, worker-1, "
                                  "...)")
        return [n.home.name for n in nodes if n.stop()]

    def destroy(self) -> None:
        for node in [*self.workers, self.coordinator] if self.root.is_dir() else []:
            try:
                node.stop("immediate")
            except DatabaseError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    # -- state -----------------------------------------------------------------------------
    def _connect(self, node: EmbeddedServer) -> psycopg.Connection:
        try:
            return psycopg.connect(node.url(DATABASE), autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot reach {node.home.name}: {exc}".strip()) from None

    def status(self) -> ClusterStatus:
        result = ClusterStatus(created=self.created, pg_bin=self.pg_bin)
        if not self.created:
            return result
        coordinator = self.coordinator
        nodes = [coordinator, *self.workers]
        for node in nodes:
            st = node.status()
            result.nodes.append(NodeStatus(node.home.name, st.port, st.running))
        if not result.nodes[0].running:
            return result
        placements = {row[0]: row[1:] for row in cluster_nodes(coordinator.url())}
        for status in result.nodes[1:]:
            row = placements.get(status.port)
            status.registered = row is not None
            if row is not None:
                status.shards, status.rows_bytes = row[1], row[2]
        return result


def cluster_nodes(url: str) -> list[tuple[int, str, int, int]]:
    """(port, host, shard placements, their bytes) of every worker of the Citus
    coordinator at `url`, from its metadata (pg_dist_node, citus_shards)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return conn.execute(
            "SELECT n.nodeport, n.nodename, count(s.shardid)::int,"
            "       coalesce(sum(s.shard_size), 0)::bigint"
            " FROM pg_dist_node n LEFT JOIN citus_shards s"
            "   ON s.nodename = n.nodename AND s.nodeport = n.nodeport"
            " WHERE n.noderole = 'primary' AND n.groupid <> 0"
            " GROUP BY 1, 2 ORDER BY 1").fetchall()
