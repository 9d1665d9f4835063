"""The database's default hnsw.ef_search follows the collection's size (migration 0011):
recommended_ef_search() picks it, tune_search_defaults() sets it for new sessions, but only
while the default is the one pgallery set, and loads call it."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from pgallery import migrations
from pgallery.commands import app
from pgallery.database import connect
from pgallery.loading.embeddings_file import load_embeddings_file
from pgallery.search import EF_SEARCH_FLOOR
from pg_roles import login_member

runner = CliRunner()


def setting(url: str, name: str = "hnsw.ef_search") -> str | None:
    """What a new session gets (pgvector loaded first, so its settings exist)."""
    with psycopg.connect(url) as conn:
        conn.execute("SELECT '[1]'::vector")
        return conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()[0]


def tune(url: str, vectors: int | None = None) -> tuple[int | None, list[str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        value = conn.execute("SELECT tune_search_defaults(%s)", (vectors,)).fetchone()[0]
        return value, notices


def set_database(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(statement.replace("DB", f'"{name}"'))


@pytest.mark.parametrize("vectors,ef_search", [
    (0, EF_SEARCH_FLOOR), (10_000, EF_SEARCH_FLOOR), (100_000, EF_SEARCH_FLOOR),
    (400_000, EF_SEARCH_FLOOR), (500_000, 110),
    (1_000_000, 150), (2_000_000, 200), (10_000_000, 380), (10**12, 1000),
])
def test_the_recommendation_is_100_up_to_a_few_hundred_thousand_and_150_at_1m(
        db_url, vectors, ef_search):
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT recommended_ef_search(%s)", (vectors,)
                            ).fetchone()[0] == ef_search


def test_a_fresh_database_records_migration_0002s_default_as_pgallerys(make_database):
    url = make_database()
    floor = str(EF_SEARCH_FLOOR)   # the Python constant is the database's floor
    assert setting(url) == floor
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT database_setting('pgallery.tuned_ef_search'),"
                            " database_setting('hnsw.ef_search')").fetchone() == (floor, floor)


def test_tuning_for_a_million_vectors_gives_new_sessions_150_and_back(make_database):
    url = make_database()
    assert tune(url, 1_000_000) == (150, [])
    assert setting(url) == "150"
    with psycopg.connect(url) as conn:   # the search functions read the same setting
        assert conn.execute("SELECT ef_search_setting(NULL)").fetchone()[0] == 150
    assert tune(url)[0] == EF_SEARCH_FLOOR         # the few vectors stored now
    assert setting(url) == str(EF_SEARCH_FLOOR)


def test_a_default_set_by_hand_is_kept_with_a_notice(make_database):
    url = make_database()
    set_database(url, "ALTER DATABASE DB SET hnsw.ef_search = 120")
    value, notices = tune(url, 1_000_000)
    assert value == 120 and setting(url) == "120"
    assert notices == ["hnsw.ef_search is 120 for this database, not set by pgallery: "
                       "kept (150 would suit 1000000 vectors)"]


def test_the_writer_may_tune_and_the_reader_may_not(make_database):
    url = make_database()
    with login_member(url, "pgallery_writer") as writer:
        assert tune(writer, 1_000_000)[0] == 150     # runs as the owner (SECURITY DEFINER)
    assert setting(url) == "150"
    with login_member(url, "pgallery_reader") as reader:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            tune(reader, 10)
    assert setting(url) == "150"


def test_a_load_reports_the_default_it_changed(make_database, tmp_path):
    url = make_database()
    # as if an earlier, larger collection had been tuned to 90 by pgallery
    set_database(url, "ALTER DATABASE DB SET hnsw.ef_search = 90")
    set_database(url, "ALTER DATABASE DB SET pgallery.tuned_ef_search = 90")
    rng = np.random.default_rng(1)
    path = tmp_path / "e.tsv"
    path.write_text("image_file\tvector\n" + "".join(
        f"d{i}.jpg\t[{', '.join(f'{x:.5f}' for x in rng.standard_normal(8))}]\n"
        for i in range(5)))
    with connect(url) as conn:
        summary = load_embeddings_file(conn, path, model="test/defaults")
    assert summary.ef_search_default == EF_SEARCH_FLOOR
    assert setting(url) == str(EF_SEARCH_FLOOR)
    with connect(url) as conn:   # loading again changes nothing, and says nothing
        assert load_embeddings_file(conn, path, model="test/defaults").ef_search_default is None


def test_the_cli_load_summary_shows_a_changed_default(make_database, tmp_path, monkeypatch):
    url = make_database()
    set_database(url, "ALTER DATABASE DB SET hnsw.ef_search = 90")
    set_database(url, "ALTER DATABASE DB SET pgallery.tuned_ef_search = 90")
    path = tmp_path / "e.tsv"
    path.write_text("image_file\tvector\na.jpg\t[1, 2, 3]\n")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/cli-d"])
    assert result.exit_code == 0, result.output
    assert f"hnsw.ef_search = {EF_SEARCH_FLOOR} for new sessions" in result.output


@pytest.mark.parametrize("hand_set", [False, True], ids=["tuned", "hand-set"])
def test_the_downgrade_removes_pgallerys_default_but_not_one_set_by_hand(make_database,
                                                                          hand_set):
    url = make_database()
    if hand_set:
        set_database(url, "ALTER DATABASE DB SET hnsw.ef_search = 120")
    else:
        tune(url, 1_000_000)
    migrations.downgrade(url, "base")
    assert setting(url) == ("120" if hand_set else "40")   # 40: pgvector's own default
    assert setting(url, "pgallery.tuned_ef_search") is None
    migrations.upgrade(url)
    assert setting(url) == ("120" if hand_set else str(EF_SEARCH_FLOOR))


def test_two_loads_tuning_at_once_both_succeed(make_database):
    import threading
    import time

    url = make_database()
    second: list = []
    with psycopg.connect(url) as first:          # tunes, and holds its transaction open
        assert first.execute("SELECT tune_search_defaults(1000000)").fetchone()[0] == 150

        def tune_meanwhile():
            try:
                second.append(tune(url, 2_000_000)[0])
            except Exception as exc:  # noqa: BLE001 -- asserted below
                second.append(exc)

        thread = threading.Thread(target=tune_meanwhile)
        thread.start()
        time.sleep(1.0)                          # the second is waiting for the first
        assert second == []
    # (the first commits here) the second then reads 150 as pgallery's own and moves it on;
    # updating the same catalog row at once would fail with "tuple concurrently updated"
    thread.join(timeout=30)
    assert second == [200] and setting(url) == "200"
