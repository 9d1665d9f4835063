"""What of the Citus support runs without Citus (CI has none; tests/test_citus.py runs the
rest against a real cluster when PGALLERY_CITUS_PG_BIN is set)."""

from __future__ import annotations

import psycopg
from typer.testing import CliRunner

from pgallery import migrations
from pgallery.commands import app
from pgallery.database.embedded import bin_dir
from pgallery.errors import NodeUnavailable, from_database_error


def test_citus_losing_a_worker_becomes_one_line_naming_it():
    error = psycopg.OperationalError(
        "connection to the remote node postgres@10.0.0.7:5432 failed with the following "
        "error: Connection refused\n\tIs the server running on that host and accepting "
        "TCP/IP connections?")
    mapped = from_database_error(error)
    assert isinstance(mapped, NodeUnavailable)
    assert str(mapped).startswith("the Citus worker 10.0.0.7:5432 is not reachable "
                                  "(Connection refused): nothing was changed")
    assert "\n" not in str(mapped)


def test_cluster_create_refuses_a_postgresql_without_citus(tmp_path):
    runner = CliRunner()
    home = tmp_path / "home"
    without = runner.invoke(app, ["--home", str(home), "db", "cluster", "create"])
    assert without.exit_code == 2
    assert "--pg-bin DIR" in without.output
    wheel = runner.invoke(app, ["--home", str(home), "db", "cluster", "create",
                                "--pg-bin", str(bin_dir())])
    assert wheel.exit_code == 2
    assert "has no Citus" in wheel.output and "citus.so is missing" in wheel.output
    assert not (home / "cluster").exists()


def test_on_a_single_server_migrate_lays_nothing_out(db_url):
    assert migrations.distribute_on_citus(db_url) == []
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT distributed_table('painting_embedding')").fetchone()[0] \
            is False
        triggers = {r[0] for r in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'painting_embedding'::regclass"
            " AND NOT tgisinternal")}
    assert triggers == {"painting_embedding_half_insert", "painting_embedding_half_update"}
