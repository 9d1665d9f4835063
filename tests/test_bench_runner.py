"""bench/run.py: every benchmark is registered with one entry point of one shape, and a run
writes its figures in the shared envelope (date, machine, versions, command, parameters).

The smoke run is the two quickest benchmarks at a tiny size against this session's test
server (DATABASE_URL makes bench/ create its databases there), with their generated data
in a temporary folder.
"""

from __future__ import annotations

import ast
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pgallery

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RUN = BENCH / "run.py"


def registered() -> tuple[str, ...]:
    """BENCHMARKS as run.py declares it (read from the source, without importing bench/)."""
    for node in ast.parse(RUN.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "BENCHMARKS":
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("run.py declares no BENCHMARKS")


def runner(*args, env=None, cwd=REPO) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "cli"), environment.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True,
                          env=environment, cwd=cwd, timeout=600)


def test_every_benchmark_module_is_registered_with_one_entry_point():
    modules = {p.stem for p in (BENCH / "benchmarks").glob("*.py") if p.stem != "__init__"}
    assert set(registered()) == modules
    for name in registered():
        tree = ast.parse((BENCH / "benchmarks" / f"{name}.py").read_text())
        assert ast.get_docstring(tree), f"{name}: no docstring (its first line is the question)"
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert [a.arg for a in functions["run"].args.args] == ["ctx"], name
        defaults = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                        and getattr(n.targets[0], "id", "") == "DEFAULTS")
        assert "size" in [k.value for k in defaults.keys], f"{name}: DEFAULTS has no size"


def test_list_shows_every_benchmark_with_its_question_and_parameters():
    listing = runner("--list")
    assert listing.returncode == 0, listing.stderr
    for name in registered():
        line = next(l for l in listing.stdout.splitlines() if l.split()[:1] == [name])
        assert len(line.split(None, 1)[1]) > 20, line          # the question
    assert "size=" in listing.stdout


def test_an_unknown_benchmark_or_parameter_is_a_one_line_error():
    unknown = runner("no_such_benchmark")
    assert unknown.returncode != 0
    assert unknown.stderr.strip().splitlines() == [
        "unknown benchmark 'no_such_benchmark'; python bench/run.py --list shows them"]
    bad = runner("exact", "--set", "nonsense=1")
    assert bad.returncode != 0
    assert bad.stderr.strip() == ("--set 'nonsense=1': no such parameter; expected one of "
                                  "queries, rounds, size")
    typed = runner("exact", "--set", "queries=many")
    assert typed.returncode != 0
    assert typed.stderr.strip() == "--set 'queries=many': queries must be an integer"


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
VERSION = re.compile(r"^\d+(\.\d+)+")


def check_envelope(document: dict, name: str, size: int, started: dt.datetime) -> None:
    assert document["format"] == "pgallery-bench/1"
    assert document["benchmark"] == name
    assert len(document["question"]) > 20
    assert ISO_UTC.match(document["date"]), document["date"]
    when = dt.datetime.strptime(document["date"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc)
    assert started - dt.timedelta(seconds=1) <= when <= dt.datetime.now(dt.timezone.utc)
    assert 0 < document["seconds"] < 600
    machine = document["machine"]
    assert machine["cpus"] == os.cpu_count()
    assert isinstance(machine["memory_bytes"], int) and machine["memory_bytes"] > 2**28
    assert isinstance(machine["cpu_model"], str) and machine["cpu_model"]
    assert len(machine["load_average"]) == 3
    assert all(isinstance(x, float) and x >= 0 for x in machine["load_average"])
    versions = document["versions"]
    assert versions["pgallery"] == pgallery.__version__
    if (REPO / ".git").exists():             # run from a checkout: its commit
        assert re.match(r"^[0-9a-f]{7,}(\+changes)?$", versions["pgallery_commit"])
    assert versions["python"] == platform.python_version()
    assert versions["numpy"] == np.__version__
    assert VERSION.match(versions["postgresql"]) and VERSION.match(versions["pgvector"])
    assert document["server"]["shared_buffers"]
    command = document["command"].split()
    assert command[:2] == ["python", "bench/run.py"] and name in command
    assert document["parameters"]["size"] == size
    assert document["parameters"]["quick"] is True


@pytest.mark.slow
def test_a_quick_run_writes_the_envelope_and_real_figures(pg_server, tmp_path):
    started = dt.datetime.now(dt.timezone.utc)
    size = 600
    run = runner("search", "exact", "--size", str(size), "--quick",
                 "--set", "search.queries=12", "--set", "ef=10,40", "--set", "runs=1",
                 "--set", "qps_seconds=0.2",
                 "--results", str(tmp_path / "results"),
                 env={"DATABASE_URL": pg_server.url("postgres"),
                      "PGALLERY_BENCH_WORK": str(tmp_path / "work")})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    written = sorted(p.name for p in (tmp_path / "results").iterdir())
    plotted = [f"search_{size}.png"] if importlib.util.find_spec("matplotlib") else []
    assert written == sorted([f"exact_{size}.json", f"search_{size}.json", *plotted])
    if not plotted:                                 # the bench extra is not installed
        assert "no plot drawn" in run.stdout

    search = json.loads((tmp_path / "results" / f"search_{size}.json").read_text())
    check_envelope(search, "search", size, started)
    assert search["parameters"]["queries"] == 12
    assert "matplotlib" in search["versions"]
    sweep = search["figures"]["sweep"]
    assert {r["ef_search"] for r in sweep} == {10, 40}
    assert {r["method"] for r in sweep} >= {"raw", "search_by_vector", "search_by_image"}
    for row in sweep:
        assert 0 < row["p5_ms"] <= row["p50_ms"] <= row["p95_ms"]
        assert row["rows"] == 10
        if row["method"] != "search_hybrid":
            assert 0 <= row["lost_share"] <= 1
            assert row["recall_p5"] <= row["recall@10"] <= 1
    by_vector = next(r for r in sweep if r["method"] == "search_by_vector"
                     and r["ef_search"] == 40)
    assert by_vector["recall@10"] >= 0.9            # 600 rows: the graph finds them

    exact = json.loads((tmp_path / "results" / f"exact_{size}.json").read_text())
    check_envelope(exact, "exact", size, started)
    figures = exact["figures"]
    assert figures["exact"]["queries"] == 20        # quick: 10 random + 10 stored
    assert figures["exact"]["equal_to_reference"] == 20
    assert 0 < figures["exact"]["p50_ms"] <= figures["exact"]["p95_ms"]


def test_a_benchmark_that_cannot_run_here_says_why_and_writes_nothing(pg_server, tmp_path):
    # the citus benchmark needs a PostgreSQL with Citus; without one it is skipped, and a
    # result from an earlier run (here: none) is left as it was
    run = runner("citus", "--size", "600", "--results", str(tmp_path / "results"),
                 env={"DATABASE_URL": pg_server.url("postgres"),
                      "PGALLERY_BENCH_WORK": str(tmp_path / "work"),
                      "PGALLERY_CITUS_PG_BIN": ""})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "citus: skipped: PGALLERY_CITUS_PG_BIN is not set" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    assert not list((tmp_path / "results").glob("*"))
