"""Crash safety and concurrency of `pgallery load`, run as real subprocesses against the fake
Azure server and a real PostgreSQL:

* SIGKILL at several random points in a row (seeded, so reproducible), then a final run;
* the server itself stopped with `pg_ctl stop -m immediate` mid-load, restarted, re-run;
* the API dropping connections without answering;
* two loaders on overlapping inputs at the same time.

After every scenario the database holds exactly one painting row and one vector per good
image, and the per-image request counters of the fake Azure server show that a re-run asked
only for images whose vectors had not been committed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fake_azure import FakeAzure, Fault
from gallery_files import embedded_files, make_image, make_semart, scalar, semart_row, write_csv
from pgallery import migrations
from pgallery.database.embedded import EmbeddedServer

pytestmark = pytest.mark.database  # some tests start a server of their own

AZURE_MODEL = "azure-vision/2023-04-15"


@pytest.fixture
def azure():
    with FakeAzure() as server:
        yield server


def start_load(url: str, azure: FakeAzure, cwd: Path, *args, rate: float = 10
               ) -> subprocess.Popen:
    """`pgallery load ...` as its own process, at ``rate`` images per second."""
    env = {**os.environ, **azure.env(), "DATABASE_URL": url, "VISION_RATE_LIMIT": str(rate),
           "COLUMNS": "100"}
    return subprocess.Popen([sys.executable, "-m", "pgallery", "load", *map(str, args)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_until(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def assert_exactly_one_row_and_vector_each(url: str, names: list[str]) -> None:
    assert embedded_files(url, AZURE_MODEL) == sorted(names)
    assert scalar(url, "SELECT count(*) FROM painting") == len(names)
    assert scalar(url, "SELECT count(DISTINCT image_file) FROM painting") == len(names)


def assert_asked_only_for_uncommitted(azure: FakeAzure, paths: list[Path],
                                      committed_before: set[str]) -> None:
    asked_again = sorted(p.name for p in paths
                         if p.name in committed_before and azure.requests_for(p))
    assert asked_again == [], "committed images were requested again"


@pytest.mark.slow
def test_repeated_sigkill_at_random_points_loses_and_duplicates_nothing(
        make_database, azure, tmp_path):
    url = make_database(prefix="kill")
    # 80 images at 12 requests/s: four kills, each within 1.5 s of the first request,
    # cannot finish them all
    count = 80
    csv, images, paths = make_semart(tmp_path, count)
    rng = random.Random(20260422)
    kills = 0
    for attempt in range(4):
        committed = set(embedded_files(url, AZURE_MODEL))
        azure.reset_counters()
        proc = start_load(url, azure, tmp_path, "--csv", csv, "--images", images,
                          "--batch-size", rng.choice([1, 2, 3, 5]), rate=12)
        # kill at a random moment of its work: at its first request, mid-request,
        # mid-batch, mid-commit. Counted from the first request, not from the start: a
        # Python process starting on a busy machine can take seconds to reach it
        wait_until(lambda: azure.total_requests > 0 or proc.poll() is not None,
                   what="the load's first request")
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += proc.returncode == -signal.SIGKILL
        assert_asked_only_for_uncommitted(azure, paths, committed)
        now = embedded_files(url, AZURE_MODEL)
        assert len(now) == len(set(now)) == scalar(url, "SELECT count(*) FROM painting")
        assert set(now) >= committed
    assert kills >= 3, "the loads finished before they could be killed"
    assert 0 < len(embedded_files(url, AZURE_MODEL)) < count

    committed = set(embedded_files(url, AZURE_MODEL))
    azure.reset_counters()
    final = start_load(url, azure, tmp_path, "--csv", csv, "--images", images, rate=200)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    assert_asked_only_for_uncommitted(azure, paths, committed)
    assert all(azure.requests_for(p) == 1 for p in paths if p.name not in committed)
    assert_exactly_one_row_and_vector_each(url, [p.name for p in paths])


@pytest.fixture(scope="module")
def crash_server():
    """A server of this module's own (one initdb and migration for its tests): they stop
    it with -m immediate."""
    home = Path(tempfile.mkdtemp(prefix="pgallery-crash-"))
    home.chmod(0o755)  # the server may run as the unprivileged `pgallery` user
    server = EmbeddedServer(home / "pg")
    server.ensure_running()
    migrations.upgrade(server.url())
    yield server
    server.destroy()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def own_server(crash_server):
    """The module's server, running (whatever the test before it left)."""
    crash_server.ensure_running()
    return crash_server


@pytest.mark.slow
def test_server_crash_mid_load_then_restart_and_rerun_finishes_exactly(
        own_server, azure, tmp_path):
    url = own_server.url()
    count = 30
    csv, images, paths = make_semart(tmp_path, count)
    proc = start_load(url, azure, tmp_path, "--csv", csv, "--images", images,
                      "--batch-size", 2, rate=10)
    try:
        wait_until(lambda: len(embedded_files(url, AZURE_MODEL)) >= 6
                   or proc.poll() is not None, what="six committed images")
        own_server.stop("immediate")  # pg_ctl stop -m immediate: no shutdown checkpoint
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, stderr  # DatabaseError's exit code
    assert "Traceback" not in stderr and "database" in stderr.lower()

    url = own_server.ensure_running()  # crash recovery replays the WAL (port: see below)
    committed = set(embedded_files(url, AZURE_MODEL))
    assert 6 <= len(committed) < count
    assert scalar(url, "SELECT count(*) FROM painting") == len(committed)
    azure.reset_counters()
    rerun = start_load(url, azure, tmp_path, "--csv", csv, "--images", images, rate=200)
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert_asked_only_for_uncommitted(azure, paths, committed)
    assert_exactly_one_row_and_vector_each(url, [p.name for p in paths])


def test_a_restarted_server_keeps_its_port(own_server):
    before = own_server.port
    # A client that sees the server close first and then closes quietly (as a standby's
    # WAL receiver does) leaves the server's end of the connection in TIME_WAIT on the port
    client = socket.create_connection(("127.0.0.1", before), timeout=30)
    time.sleep(0.2)  # the postmaster has accepted it
    own_server.stop("immediate")
    assert client.recv(100) == b""  # the server closed
    client.close()
    own_server.ensure_running()
    assert own_server.port == before
    assert scalar(own_server.url(), "SELECT 1") == 1


def test_dropped_api_connections_are_retried_and_only_those_images_asked_twice(
        make_database, azure, tmp_path):
    url = make_database(prefix="drop")
    csv, images, paths = make_semart(tmp_path, 16)
    dropped = paths[::4]
    for path in dropped:
        azure.fail(Fault.drop(), image=path, times=1)
    proc = start_load(url, azure, tmp_path, "--csv", csv, "--images", images, rate=200)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert {p.name: azure.requests_for(p) for p in paths} == {
        p.name: 2 if p in dropped else 1 for p in paths}
    assert_exactly_one_row_and_vector_each(url, [p.name for p in paths])
    assert scalar(url, "SELECT count(*) FROM embedding_failure") == 0


@pytest.mark.slow
def test_two_loaders_on_overlapping_inputs_at_once_make_no_duplicates_and_no_deadlock(
        make_database, azure, tmp_path):
    url = make_database(prefix="twoload")
    images = tmp_path / "Images"
    paths = [make_image(images / f"{i:05d}-painting.jpg", i) for i in range(60)]
    # A has 0..39, B has 20..59 in reverse order: the overlap is written in opposite orders
    csv_a = write_csv(tmp_path / "a.csv", [semart_row(p.name, i) for i, p in
                                           enumerate(paths[:40])])
    csv_b = write_csv(tmp_path / "b.csv", [semart_row(p.name, i + 20) for i, p in
                                           reversed(list(enumerate(paths[20:])))])
    procs = [start_load(url, azure, tmp_path, "--csv", csv, "--images", images,
                        "--batch-size", 3, rate=40) for csv in (csv_a, csv_b)]
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (_, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr
        assert "deadlock" not in stderr.lower() and "Traceback" not in stderr
    assert_exactly_one_row_and_vector_each(url, [p.name for p in paths])
    # each image outside the overlap was asked once; inside it, at most once per loader
    assert all(azure.requests_for(p) == 1 for p in paths[:20] + paths[40:])
    assert all(1 <= azure.requests_for(p) <= 2 for p in paths[20:40])
