"""Interrupted loads resume without losing, duplicating or re-requesting committed work; and
`pgallery reembed` adds a second model's vectors next to the first.

`pgallery load` runs as a real subprocess against the fake Azure server (throttled on the
client side so the load takes a few seconds), and is killed with SIGKILL, interrupted with
SIGINT, or has its database connection terminated mid-way; the re-run is checked against
the server's per-image request counters.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from fake_azure import FakeAzure
from gallery_files import embedded_files, make_image, make_semart, rows, scalar
from pgallery.commands import app

runner = CliRunner()
AZURE_MODEL = "azure-vision/2023-04-15"
LOCAL_MODEL = "local-descriptors/v1"
COUNT = 24


@pytest.fixture
def azure():
    with FakeAzure() as server:
        yield server


@pytest.fixture
def db(make_database, monkeypatch, tmp_path, azure):
    url = make_database()
    monkeypatch.setenv("DATABASE_URL", url)
    for name, value in azure.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VISION_RATE_LIMIT", "200")
    monkeypatch.delenv("PGALLERY_PROVIDER", raising=False)
    monkeypatch.chdir(tmp_path)
    return url


def start_load(db, azure, tmp_path, *args, rate: float = 8) -> subprocess.Popen:
    """`pgallery load ...` as a separate process, at ``rate`` images per second."""
    env = {**os.environ, **azure.env(), "DATABASE_URL": db, "VISION_RATE_LIMIT": str(rate),
           "COLUMNS": "100"}
    return subprocess.Popen([sys.executable, "-m", "pgallery", "load", *map(str, args)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_until(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def finish_and_check(db, azure, csv, images, paths, committed: list[str]) -> None:
    """Re-run the load: only the images not committed before are requested, each once."""
    azure.reset_counters()
    result = runner.invoke(app, ["load", "--csv", str(csv), "--images", str(images)])
    assert result.exit_code == 0, result.output
    done = set(committed)
    assert {p.name: azure.requests_for(p) for p in paths} == {
        p.name: 0 if p.name in done else 1 for p in paths}
    assert embedded_files(db, AZURE_MODEL) == sorted(p.name for p in paths)
    assert scalar(db, "SELECT count(*) FROM painting") == len(paths)


def test_sigkill_mid_load_keeps_committed_batches_and_the_rerun_requests_only_the_rest(
        db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, COUNT)
    proc = start_load(db, azure, tmp_path, "--csv", csv, "--images", images,
                      "--batch-size", 2)
    try:
        wait_until(lambda: len(embedded_files(db, AZURE_MODEL)) >= 6 or proc.poll() is not None,
                   what="six committed images")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the load finished before it could be killed"
    committed = embedded_files(db, AZURE_MODEL)
    assert 6 <= len(committed) < COUNT
    # no half-written batch: every painting row committed so far has its vector
    assert scalar(db, "SELECT count(*) FROM painting") == len(committed)
    assert all(azure.successes_for(images / name) == 1 for name in committed)
    finish_and_check(db, azure, csv, images, paths, committed)


def test_ctrl_c_commits_the_vectors_already_received_and_exits_130(db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, COUNT)
    # one big batch: only the interrupt handler can have committed anything
    proc = start_load(db, azure, tmp_path, "--csv", csv, "--images", images,
                      "--batch-size", 1000)
    try:
        wait_until(lambda: sum(azure.successes_for(p) for p in paths) >= 8
                   or proc.poll() is not None, what="eight embedded images")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    committed = embedded_files(db, AZURE_MODEL)
    answered = {p.name for p in paths if azure.successes_for(p)}
    # eight were answered; all but those still on their way back (4 threads) are committed
    assert len(committed) >= 8 - 4
    # lost: at most the requests in flight (the provider's 4 threads) and the one result
    # being taken when the signal arrived
    assert set(committed) <= answered and len(answered - set(committed)) <= 5
    finish_and_check(db, azure, csv, images, paths, committed)


def test_losing_the_database_mid_load_is_a_clean_error_and_the_rerun_finishes(
        db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, COUNT)
    proc = start_load(db, azure, tmp_path, "--csv", csv, "--images", images,
                      "--batch-size", 2)
    try:
        wait_until(lambda: len(embedded_files(db, AZURE_MODEL)) >= 4 or proc.poll() is not None,
                   what="four committed images")
        dbname = scalar(db, "SELECT current_database()")
        rows(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                 " WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, stderr
    assert "database error" in stderr and "Traceback" not in stderr
    committed = embedded_files(db, AZURE_MODEL)
    assert 4 <= len(committed) < COUNT
    assert scalar(db, "SELECT count(*) FROM painting") == len(committed)
    finish_and_check(db, azure, csv, images, paths, committed)


# --- reembed ---------------------------------------------------------------------------

def model_rows(url, model):
    return rows(url, "SELECT p.image_file, e.embedding::text, e.embedded_at FROM painting p"
                     " JOIN painting_embedding e USING (painting_id) WHERE e.model = %s"
                     " ORDER BY 1", (model,))


def test_reembed_adds_a_second_model_leaves_the_first_untouched_and_models_use_switches(
        db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, 5)
    assert runner.invoke(app, ["load", "--csv", str(csv), "--images", str(images)]
                         ).exit_code == 0
    before = model_rows(db, AZURE_MODEL)

    result = runner.invoke(app, ["reembed", "--model-provider", "local"])
    assert result.exit_code == 0, result.output
    assert f"pgallery models use {LOCAL_MODEL}" in result.output
    assert embedded_files(db, LOCAL_MODEL) == sorted(p.name for p in paths)
    assert model_rows(db, AZURE_MODEL) == before
    assert rows(db, "SELECT name FROM embedding_model WHERE is_active") == [(AZURE_MODEL,)]
    assert scalar(db, "SELECT count(*) FROM painting") == 5

    # resumable: a second run embeds nothing
    local_before = model_rows(db, LOCAL_MODEL)
    result = runner.invoke(app, ["reembed", "--provider", "local"])
    assert result.exit_code == 0, result.output
    assert model_rows(db, LOCAL_MODEL) == local_before

    result = runner.invoke(app, ["models", "use", LOCAL_MODEL])
    assert result.exit_code == 0, result.output
    assert rows(db, "SELECT name FROM embedding_model WHERE is_active") == [(LOCAL_MODEL,)]


def test_reembed_activate_switches_only_when_every_painting_has_a_vector(db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, 3)
    assert runner.invoke(app, ["load", "--csv", str(csv), "--images", str(images)]
                         ).exit_code == 0
    paths[0].unlink()
    result = runner.invoke(app, ["reembed", "--provider", "local", "--activate"])
    assert result.exit_code == 1
    assert "not activated" in result.output and "ImageNotFound" in result.output
    assert rows(db, "SELECT name FROM embedding_model WHERE is_active") == [(AZURE_MODEL,)]

    # the image is found again under --images; the retry activates the new model
    moved = tmp_path / "moved"
    moved.mkdir()
    (images / paths[1].name).rename(moved / paths[1].name)
    make_image(moved / paths[0].name, seed=0)
    (images / paths[2].name).rename(moved / paths[2].name)
    result = runner.invoke(app, ["reembed", "--provider", "local", "--images", str(moved),
                                 "--activate"])
    assert result.exit_code == 0, result.output
    assert rows(db, "SELECT name FROM embedding_model WHERE is_active") == [(LOCAL_MODEL,)]
    assert len(embedded_files(db, LOCAL_MODEL)) == 3
    assert scalar(db, "SELECT count(*) FROM embedding_failure") == 0


def test_reembed_without_a_provider_is_a_clear_error(cli_env):
    result = runner.invoke(app, ["reembed"])
    assert result.exit_code == 2
    assert "--provider" in result.output
