"""Read scale: `pgallery serve --read-url` searches on hot standbys, caches prompts on the
primary.

One primary (its own embedded server, migrated, a small collection under the model the
fake Azure serves, so that a prompt is embedded and cached) and two standbys made by
`pgallery db replica create`, shared by the module; one real `pgallery serve` process
reading through `pgallery db replica url --all`. What a user would check:

* every reader connection of the server is on a standby (pg_stat_activity of each server,
  by the server's application_name), spread over both; /readyz names the targets and
  a standby that answers;
* a new prompt is embedded once and cached on the primary, and searched at once even
  while both standbys have not replayed the write (their replay paused): the search of the
  request that cached it reads from the primary, and a standby that does not know a
  prompt yet sends its search to the primary;
* one standby stopped: searches go on, on the other; both stopped: a one-line 503
  naming them, /readyz 503; one back: searches work again.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests
from typer.testing import CliRunner

from fake_azure import FakeAzure
from pgallery import migrations
from pgallery.commands import app
from pgallery.database import connect
from pgallery.database.embedded import EmbeddedServer
from pgallery.database.multihost import reader_conninfo, targets, writer_conninfo
from pgallery.database.replica import Replica, replicas
from pgallery.loading.writer import register_model, write_batch
from synthetic import make_collection

# the tests that take `cluster` start servers of their own: marked database; the URL rules
# and the malformed URL are the unit tier's
database = pytest.mark.database

MODEL = "azure-vision/2023-04-15"   # the fake Azure's model: prompts are embedded for it
POOL = 16                           # reader connections: P(all on one standby) = 2**-15
CLI = Path(__file__).resolve().parents[1] / "cli"


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def azure():
    with FakeAzure() as server:
        yield server


@pytest.fixture(scope="module")
def cluster():
    """A migrated, loaded primary and two standbys, `replica` and `b`, of the CLI."""
    home = Path(tempfile.mkdtemp(prefix="pgallery-readscale-"))
    home.chmod(0o755)  # the server may run as the unprivileged `pgallery` user
    primary = EmbeddedServer(home / "pg")
    try:
        primary.ensure_running()
        migrations.upgrade(primary.url())
        with connect(primary.url()) as conn:
            register_model(conn, MODEL, 1024, "azure")
            write_batch(conn, MODEL, make_collection(120, seed=3, clusters=6,
                                                     prefix="rs").records)
        run("--home", str(primary.home), "db", "replica", "create")
        run("--home", str(primary.home), "db", "replica", "create", "--name", "b")
        yield primary, Replica(primary), Replica(primary, "b")
    finally:
        for standby in replicas(primary):
            standby.destroy()
        primary.destroy()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def served(cluster, azure, tmp_path_factory):
    """`pgallery serve --read-url "$(pgallery db replica url --all)"`: its base URL."""
    primary, a, b = cluster
    read_url = run("--home", str(primary.home), "db", "replica", "url", "--all").strip()
    work = tmp_path_factory.mktemp("serve")
    env = dict(os.environ, DATABASE_URL=primary.url(), PGALLERY_HOME=str(work / "home"),
               PYTHONPATH=str(CLI) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **azure.env())
    log = open(work / "stderr.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "pgallery", "serve", "--port", "0", "--read-url", read_url,
         "--pool-size", str(POOL)], env=env, cwd=work, stdout=subprocess.PIPE, stderr=log,
        text=True)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "serving on" not in line:
            line = process.stdout.readline()
            if process.poll() is not None:
                break
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        log.seek(0)
        assert found, line + log.read()
        yield found.group(0), log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.seek(0)
        err = log.read()
        log.close()
        assert "Traceback" not in err, err


def search(base: str, **params) -> requests.Response:
    return requests.get(base + "api/search", params={"k": 5, **params}, timeout=30)


def sessions(server: EmbeddedServer, application: str = "pgallery-serve") -> int:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name"
                            " = %s", (application,)).fetchone()[0]


def prompt_on(server: EmbeddedServer, prompt: str) -> bool:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM prompt_embedding WHERE prompt = %s",
                            (prompt,)).fetchone()[0] == 1


def until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


# --- the URLs --------------------------------------------------------------------------------

def test_the_read_url_is_load_balanced_over_standbys_and_the_writer_needs_the_primary():
    standbys = "postgresql://u:p@127.0.0.1:5433,127.0.0.1:5434/pgallery"
    info = psycopg.conninfo.conninfo_to_dict(reader_conninfo(standbys))
    assert (info["load_balance_hosts"], info["target_session_attrs"]) == (
        "random", "prefer-standby")
    assert targets(standbys) == ["127.0.0.1:5433", "127.0.0.1:5434"]
    # what the user says wins
    strict = psycopg.conninfo.conninfo_to_dict(
        reader_conninfo(standbys + "?target_session_attrs=standby"))
    assert strict["target_session_attrs"] == "standby"
    writer = psycopg.conninfo.conninfo_to_dict(writer_conninfo("postgresql://u@h:1/db"))
    assert writer["target_session_attrs"] == "read-write"
    assert psycopg.pq.version() >= 160000   # load_balance_hosts needs libpq 16


@database
def test_replica_commands_name_several_standbys_and_one_url_over_all(cluster):
    primary, a, b = cluster
    home = str(primary.home)
    status = run("--home", home, "db", "replica", "status")
    assert re.search(r"replica\s*│\s*%d" % a.port, status)
    assert re.search(r"\bb\s*│\s*%d" % b.port, status)
    assert run("--home", home, "db", "replica", "url", "b").strip() == b.url()
    everything = run("--home", home, "db", "replica", "url", "--all").strip()
    assert targets(everything) == [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
    assert a.slot != b.slot and a.port != b.port and a.data_dir != b.data_dir
    bad = CliRunner().invoke(app, ["--home", home, "db", "replica", "create", "--name",
                                   "No Way"])
    assert bad.exit_code == 2 and "lower-case" in bad.output and "Traceback" not in bad.output


def test_a_malformed_read_url_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "serve", "--port", "0"],
                                env={"PGALLERY_READ_URL": "host=a port=1 nonsense"})
    assert result.exit_code == 2
    assert "the read URL is not a libpq connection string" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit


@database
def test_serve_refuses_a_standby_as_the_primary_and_dead_read_targets_in_one_line(cluster):
    primary, a, b = cluster
    as_primary = CliRunner().invoke(app, ["--database-url", a.url(), "serve", "--port", "0",
                                          "--read-url", b.url()])
    assert as_primary.exit_code == 2, as_primary.output
    assert f"the primary (127.0.0.1:{a.port}) is not writable" in as_primary.output
    nobody = CliRunner().invoke(app, ["--database-url", primary.url(), "serve", "--port", "0",
                                      "--read-url", "postgresql://u:p@127.0.0.1:1,127.0.0.1:2/x"])
    assert nobody.exit_code == 4, nobody.output
    assert ("no read target answers (127.0.0.1:1, 127.0.0.1:2): Connection refused"
            in " ".join(nobody.output.split()))
    assert "Traceback" not in as_primary.output + nobody.output


# --- searches on the standbys ------------------------------------------------------------------

@database
def test_searches_are_answered_by_the_standbys_both_of_them(cluster, served):
    primary, a, b = cluster
    base, _ = served
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: search(base, similar=f"rs-{i:06d}.jpg"), range(24)))
    assert all(r.status_code == 200 for r in answers), answers[0].text
    assert all(len(r.json()["results"]) == 5 for r in answers)
    # every reader connection is on a standby (libpq picked one at random for each)
    on_a, on_b = sessions(a), sessions(b)
    assert (on_a + on_b, sessions(primary)) == (POOL, 0)
    assert on_a > 0 and on_b > 0
    ready = requests.get(base + "readyz", timeout=30).json()
    assert ready["reads"]["targets"] == [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
    assert ready["reads"]["answered_by"] in ready["reads"]["targets"]
    assert ready["reads"]["standby"] is True
    assert ready["writes"] == f"127.0.0.1:{primary.port}"


@database
def test_a_new_prompt_is_cached_on_the_primary_and_searched_while_standbys_lag(
        cluster, served, azure):
    primary, a, b = cluster
    base, _ = served
    prompt = "a harbour at dusk"

    def refused_on_a_standby(text: str) -> bool:
        """A standby's log has its PGA05 for this prompt (the server logs every error)."""
        return any(f"the prompt '{text}' has not been embedded" in s.log_file.read_text()
                   for s in (a, b))
    for standby in (a, b):   # the standbys receive the write, and do not apply it yet
        with psycopg.connect(standby.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
    try:
        first = search(base, text=prompt)
        assert first.status_code == 200, first.text
        assert first.json()["mode"] == "text" and len(first.json()["results"]) == 5
        assert prompt_on(primary, prompt)
        assert not prompt_on(a, prompt) and not prompt_on(b, prompt)
        # the request that cached it searched on the primary: no standby was asked
        assert not refused_on_a_standby(prompt)
        # remembered as cached: the standby's PGA05 sends the search to the primary
        again = search(base, text=prompt)
        assert again.status_code == 200, again.text
        assert again.json()["results"] == first.json()["results"]
        assert azure.requests_for(text=prompt) == 1
        assert refused_on_a_standby(prompt)
    finally:
        for standby in (a, b):
            with psycopg.connect(standby.url(), autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
    a.wait_for_replay()
    b.wait_for_replay()
    assert prompt_on(a, prompt) and prompt_on(b, prompt)
    assert search(base, text=prompt).json()["results"] == first.json()["results"]


# --- standbys going away and coming back -------------------------------------------------------

@database
def test_searches_go_on_with_one_standby_down_and_fail_clearly_with_both(cluster, served):
    primary, a, b = cluster
    base, _ = served
    try:
        a.stop("fast")
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: search(base, similar=f"rs-{i:06d}.jpg"),
                                    range(12)))
        assert [r.status_code for r in answers] == [200] * 12, answers[0].text
        assert requests.get(base + "readyz", timeout=30).json()["reads"]["answered_by"] == \
            f"127.0.0.1:{b.port}"

        b.stop("fast")
        down = search(base, similar="rs-000001.jpg")
        assert down.status_code == 503
        message = down.json()["error"]
        assert f"127.0.0.1:{a.port}" in message and f"127.0.0.1:{b.port}" in message
        assert "\n" not in message
        assert requests.get(base + "readyz", timeout=30).status_code == 503

        a.start()
        until(lambda: search(base, similar="rs-000002.jpg").status_code == 200, 20,
              "searches work again once a standby is back")
        assert requests.get(base + "readyz", timeout=30).json()["reads"]["answered_by"] == \
            f"127.0.0.1:{a.port}"
    finally:
        a.start()
        b.start()


@database
def test_with_the_primary_down_searches_go_on_on_the_standbys(cluster, served, azure):
    """Last in the file: the primary stays stopped (the fixture's teardown copes)."""
    primary, a, b = cluster
    base, _ = served
    cached = "a harbour at dusk"             # cached and replayed by the test above
    assert prompt_on(a, cached) and prompt_on(b, cached)
    primary.stop("fast")
    assert search(base, similar="rs-000003.jpg").status_code == 200
    assert search(base, text=cached).status_code == 200
    new = search(base, text="a mill in the snow")   # embedded, not cached: by its vector
    assert new.status_code == 200, new.text
    assert new.json()["mode"] == "text" and len(new.json()["results"]) == 5
    assert requests.get(base + "readyz", timeout=30).status_code == 200
