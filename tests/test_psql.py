"""The SQL functions are the public API: call them exactly as a user would, through the
bundled psql binary."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from pgallery.database import connect
from pgallery.database.embedded import bin_dir
from pgallery.loading.records import PaintingRecord
from pgallery.loading.writer import register_model, write_batch


@pytest.fixture(scope="module")
def psql_db(make_database):
    url = make_database(prefix="psql")
    rng = np.random.default_rng(4)
    records = [
        PaintingRecord(image_file=f"psql-{i}.jpg", title=f"Sunflowers {i}",
                       author="GOGH, Vincent van" if i % 2 else "MONET, Claude",
                       painting_type="still-life", school="Dutch" if i % 2 else "French",
                       date=str(1880 + i), description="yellow sunflowers in a vase",
                       embedding=rng.standard_normal(1024).astype(np.float32))
        for i in range(30)
    ]
    with connect(url) as conn:
        register_model(conn, "test/psql", 1024)
        write_batch(conn, "test/psql", records)
    return url


def psql(url: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir() / "psql"), "-X", "-A", "-t", "-F", "|", url,
                           "-v", "ON_ERROR_STOP=1", "-c", command],
                          capture_output=True, text=True, timeout=60)


def test_search_by_image_from_psql(psql_db):
    out = psql(psql_db, "SELECT image_file, author FROM search_by_image('psql-3.jpg', k => 4,"
                        " author => 'gogh')")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 4
    assert all("GOGH" in line and not line.startswith("psql-3.jpg|") for line in lines)


def test_search_by_vector_from_psql_with_a_vector_literal(psql_db):
    literal = "[" + ",".join(["0.5"] * 1024) + "]"
    out = psql(psql_db, f"SELECT count(*) FROM search_by_vector('{literal}', k => 7,"
                        " year_from => 1890)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "7"


def test_hybrid_search_from_psql(psql_db):
    out = psql(psql_db, "SELECT count(*) FROM search_hybrid('sunflowers', k => 5)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5"


def test_errors_in_psql_are_messages_with_hints(psql_db):
    out = psql(psql_db, "SELECT * FROM search_by_text('a prompt nobody embedded')")
    assert out.returncode != 0
    assert "has not been embedded" in out.stderr
    assert "pgallery search text" in out.stderr
