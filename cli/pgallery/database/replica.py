"""Hot standbys of the embedded server: streaming replication, each on a port of its own.

    $PGALLERY_HOME/replica/          the standby named "replica" (the default name)
    $PGALLERY_HOME/replica-NAME/     any other standby, e.g. replica-b/
      data/           a physical copy made by the bundled pg_basebackup -R (standby.signal)
      postgres.log    the standby's log
      password        the superuser's password (the copy has the primary's roles)
      port            the standby's TCP port (127.0.0.1 only)

The primary already allows it (wal_level=replica, max_wal_senders, a `host replication`
pg_hba line: see embedded.py). The copy streams WAL through a physical replication slot,
so the primary keeps the WAL the standby has not replayed yet even while the standby is
stopped; `destroy` drops the slot again. Each standby has its own slot (pgallery_replica
for the default one, pgallery_replica_NAME for the others), which is also the
application_name it streams under, so the primary's pg_stat_replication tells them apart.
A standby serves every search function read-only (they are STABLE and write nothing);
loads go to the primary.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass

import psycopg

from pgallery.database.embedded import (SUPERUSER, EmbeddedServer, _free_port, bin_dir)
from pgallery.database.multihost import multi_host_url
from pgallery.errors import ArgError, ConfigError, DatabaseError

DEFAULT_NAME = "replica"
SLOT = "pgallery_replica"          # the default standby's slot
NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,39}")   # a slot name is [a-z0-9_], at most 63


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ArgError(f"a standby's name is lower-case letters, digits and _ (at most 40), "
                       f"got {name!r}")
    return name


@dataclass
class ReplicaStatus:
    created: bool
    running: bool
    port: int | None
    in_recovery: bool | None       # True while it is a standby
    replay_lag_bytes: int | None   # WAL the primary has written that the standby has not replayed
    replay_lag_seconds: float | None
    streaming: bool | None         # the primary sees a walsender in state 'streaming'


class Replica(EmbeddedServer):
    """The standby `name` of `primary`, under primary.home / "replica" (the default name)
    or primary.home / "replica-NAME"; methods are idempotent."""

    def __init__(self, primary: EmbeddedServer, name: str = DEFAULT_NAME):
        self.name = check_name(name)
        super().__init__(primary.home / directory_name(name))
        self.primary = primary
        self.slot = SLOT if name == DEFAULT_NAME else f"{SLOT}_{name}"

    # -- lifecycle -------------------------------------------------------------------------
    def init(self) -> bool:
        """Copy the primary with pg_basebackup -R (once). True if the copy was made now."""
        if (self.data_dir / "PG_VERSION").is_file():
            return False
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise DatabaseError(f"{self.data_dir} exists but is not a finished copy; run "
                                f"`pgallery db replica destroy{self._option}` and create it "
                                "again")
        self.primary.ensure_running()
        self.home.mkdir(parents=True, exist_ok=True)
        pwfile = self.home / "password"
        pwfile.write_text(self.primary.password + "\n")
        pwfile.chmod(0o600)
        (self.home / "port").write_text(str(_free_port()))
        self._prepare_data_dir()
        self._drop_slot_if_idle()
        conninfo = (f"host=127.0.0.1 port={self.primary.port} user={SUPERUSER} "
                    f"password={self.primary.password} application_name={self.slot}")
        self._run([
            str(bin_dir() / "pg_basebackup"), "-d", conninfo, "-D", str(self.data_dir),
            "-X", "stream", "-R", "-C", "-S", self.slot, "--checkpoint=fast",
            "--no-password",
        ], env=self.primary.env())
        # the copy carries the primary's port: the standby listens on its own
        with open(self.data_dir / "postgresql.auto.conf", "a") as fh:
            fh.write(f"# written by pgallery (database/replica.py)\nport = {self.port}\n")
        self._start_locked()
        return True

    @property
    def _option(self) -> str:
        """How a command names this standby (nothing for the default one)."""
        return "" if self.name == DEFAULT_NAME else f" --name {self.name}"

    def _prepare_data_dir(self) -> None:
        if self._as_root():
            self._prepare_root()  # creates data/ owned by the unprivileged server user
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir.chmod(0o700)

    @staticmethod
    def _as_root() -> bool:
        from pgallery.database.embedded import _running_as_root

        return _running_as_root()

    def create(self) -> str:
        """Make the standby (if missing), start it, and return its URL."""
        return self.ensure_running()

    def destroy(self) -> None:
        """Stop the standby, delete its files, and drop its slot on the primary."""
        try:
            self.stop("fast")
        except DatabaseError:
            self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)
        if self.primary.status().running:
            self._drop_slot_if_idle()

    def _drop_slot_if_idle(self) -> None:
        with self._primary_connection() as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                         " WHERE slot_name = %s AND NOT active", (self.slot,))

    # -- state -----------------------------------------------------------------------------
    def _primary_connection(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.primary.url(), autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot reach the primary: {exc}".strip()) from None

    def replica_status(self) -> ReplicaStatus:
        st = self.status()
        result = ReplicaStatus(created=st.initialized, running=st.running, port=st.port,
                               in_recovery=None, replay_lag_bytes=None,
                               replay_lag_seconds=None, streaming=None)
        if st.running:
            with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
                result.in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        if st.initialized and self.primary.status().running:
            with self._primary_connection() as conn:
                row = conn.execute(
                    "SELECT r.state = 'streaming',"
                    " pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint,"
                    " extract(epoch FROM r.replay_lag)::float8"
                    " FROM pg_stat_replication r WHERE r.application_name = %s",
                    (self.slot,)).fetchone()
            if row is not None:
                result.streaming, result.replay_lag_bytes, lag = row
                result.replay_lag_seconds = lag or 0.0
            else:
                result.streaming = False
        return result

    def wait_for_replay(self, timeout: float = 60.0) -> float:
        """Block until the standby has replayed everything the primary has written so far;
        return the seconds it took."""
        if not self.status().running:
            raise DatabaseError(f"the standby {self.name} is not running: "
                                f"`pgallery db replica start{self._option}`")
        start = time.monotonic()
        with self._primary_connection() as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            while True:
                done = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                    (target,)).fetchone()[0]
                if done:
                    return time.monotonic() - start
                if time.monotonic() - start > timeout:
                    raise DatabaseError(f"the standby {self.name} has not replayed up to "
                                        f"{target} after "
                                        f"{timeout:.0f} s; see {self.log_file}")
                time.sleep(0.05)


def directory_name(name: str) -> str:
    return DEFAULT_NAME if name == DEFAULT_NAME else f"{DEFAULT_NAME}-{name}"


def replicas(primary: EmbeddedServer) -> list[Replica]:
    """Every standby of `primary` that has been created (its port chosen), by name."""
    found = []
    for path in sorted(primary.home.glob(f"{DEFAULT_NAME}*")):
        if path.name == DEFAULT_NAME:
            name = DEFAULT_NAME
        elif path.name.startswith(f"{DEFAULT_NAME}-"):
            name = path.name[len(DEFAULT_NAME) + 1:]
        else:
            continue
        if NAME.fullmatch(name) and (path / "port").is_file():
            found.append(Replica(primary, name))
    return found


def all_standbys_url(primary: EmbeddedServer) -> str:
    """One libpq URL over every standby, load-balanced, standbys only: what
    `pgallery serve --read-url` takes (database/multihost.py)."""
    standbys = [r for r in replicas(primary) if r.status().initialized]
    if not standbys:
        raise ConfigError("no replica yet: run `pgallery db replica create`")
    return multi_host_url([r.url() for r in standbys], load_balance_hosts="random",
                          target_session_attrs="standby")
