"""pgallery as a user installs it: the sdist and the wheel carry the SQL and the migrations,
the wheel installed in a fresh virtualenv works outside any checkout, and Alembic's own
command line (from the repository root, or `pgallery alembic` with the configuration the
package provides) makes the revision check `pgallery migrate` makes, with the same line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import site
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

import pgallery
from pgallery import migrations
from pgallery.commands import app
from test_web_serve import _wait_for_url

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cli" / "pgallery"


def _source_files(root: Path) -> list[str]:
    """Every file under `root` that a build must carry (no bytecode), relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


def test_every_package_under_cli_is_listed_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(PACKAGE.parent).parts)
               for p in PACKAGE.rglob("__init__.py")}
    assert on_disk <= set(config["packages"])
    assert config["package-dir"]["pgallery.sql"] == "sql"
    assert config["package-dir"]["pgallery.alembic"] == "alembic"


def test_the_package_finds_its_sql_and_migrations_through_importlib_resources():
    # in this checkout (an editable install) they are the repository's own directories
    assert migrations.SQL_DIR.samefile(REPO / "sql")
    assert migrations.ALEMBIC_DIR.samefile(REPO / "alembic")
    assert migrations.alembic_config().get_main_option("script_location") == str(
        migrations.ALEMBIC_DIR)


# -- Alembic's command line makes pgallery migrate's revision check -----------------------

def _at_revision(make_database, revision: str) -> str:
    url = make_database()
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = %s", (revision,))
    return url


@pytest.mark.parametrize("revision, advice", [
    ("0008", "folded into the 0012 baseline"),
    ("9999", "migrated by a newer pgallery"),
])
def test_alembic_from_the_repo_root_refuses_what_pgallery_migrate_refuses(
        make_database, tmp_path, revision, advice):
    url = _at_revision(make_database, revision)
    env = dict(os.environ, DATABASE_URL=url)
    migrate = CliRunner().invoke(app, ["migrate"], env={"DATABASE_URL": url})
    upgrade = _run([sys.executable, "-m", "alembic", "upgrade", "head"], env=env, cwd=REPO)
    downgrade = _run([sys.executable, "-m", "alembic", "downgrade", "base"], env=env, cwd=REPO)
    line = " ".join(migrate.stderr.split())   # rich wraps it at 80 columns off a terminal
    assert migrate.exit_code == 4 and line.startswith("Error: ") and advice in line
    for result in (upgrade, downgrade):
        assert (result.returncode, result.stderr.strip()) == (4, line)
    assert migrations.current_revision(url) == revision      # nothing was changed


def test_pgallery_alembic_runs_alembic_on_the_packaged_migrations(make_database, tmp_path):
    url = make_database(migrate=False)
    env = dict(os.environ, DATABASE_URL=url)
    pgallery_alembic = [sys.executable, "-m", "pgallery", "alembic"]
    upgrade = _run([*pgallery_alembic, "upgrade", "head"], env=env, cwd=tmp_path)  # no ini here
    assert upgrade.returncode == 0, upgrade.stderr
    assert f" -> {migrations.head_revision()}, " in upgrade.stderr   # Alembic's step log
    current = _run([*pgallery_alembic, "current"], env=env, cwd=tmp_path)
    assert current.stdout.strip() == f"{migrations.head_revision()} (head)"
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    refused = _run([*pgallery_alembic, "downgrade", "base"], env=env, cwd=tmp_path)
    assert refused.returncode == 4
    assert refused.stderr.startswith("Error: the database is at revision 9999")
    assert "Traceback" not in refused.stderr


# -- The wheel, built and installed as a user would -----------------------------------------

@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist, and the wheel built from that sdist (python -m build), in one folder.
    The build runs on a copy of the checkout without its build leftovers: setuptools would
    otherwise add the files an old egg-info lists to the sdist."""
    source = tmp_path_factory.mktemp("source") / "pgallery"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".*", "*.egg-info", "build", "dist", "__pycache__", "artefacts"))
    out = tmp_path_factory.mktemp("dist")
    result = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                   str(source)])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.mark.slow
def test_the_sdist_and_the_wheel_carry_the_sql_and_the_migrations(dist):
    sql, scripts = _source_files(REPO / "sql"), _source_files(REPO / "alembic")
    assert "idempotent/99_privileges.sql" in sql and "env.py" in scripts
    (sdist,) = dist.glob("pgallery-*.tar.gz")
    top = f"pgallery-{pgallery.__version__}/"
    with tarfile.open(sdist) as archive:
        in_sdist = {name.removeprefix(top) for name in archive.getnames()}
    assert {f"sql/{f}" for f in sql} | {f"alembic/{f}" for f in scripts} <= in_sdist
    assert "alembic.ini" in in_sdist and "tests/conftest.py" in in_sdist

    (wheel,) = dist.glob("pgallery-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
        metadata = archive.read(f"pgallery-{pgallery.__version__}.dist-info/METADATA").decode()
    expected = ({f"pgallery/{f}" for f in _source_files(PACKAGE)}      # code, templates, CSS
                | {f"pgallery/sql/{f}" for f in sql} | {f"pgallery/alembic/{f}" for f in scripts})
    assert sorted(expected - in_wheel) == []
    assert f"\nVersion: {pgallery.__version__}\n" in metadata


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed (no dependencies), then given this test
    environment's site-packages for them: reached through a .pth line, which adds the
    directory but runs none of its .pth files, so this checkout's editable pgallery is
    not among them."""
    venv = tmp_path_factory.mktemp("venv")
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    python = venv / "bin" / "python"
    (wheel,) = dist.glob("pgallery-*.whl")
    result = _run([sys.executable, "-m", "pip", "--python", str(python), "install",
                   "--no-deps", "--no-index", "--no-compile", "--quiet", str(wheel)])
    assert result.returncode == 0, result.stderr
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
                   ).stdout.strip()
    (Path(purelib) / "test_dependencies.pth").write_text("\n".join(site.getsitepackages()))
    return venv


@pytest.mark.slow
def test_the_installed_wheel_migrates_searches_and_serves_outside_the_checkout(
        installed, make_database, tmp_path):
    url = make_database(migrate=False, prefix="wheel")
    work = tmp_path / "work"                       # not the checkout: no sql/, no alembic.ini
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VISION_ENDPOINT",
                                                            "VISION_KEY")}
    env.update(DATABASE_URL=url, PGALLERY_HOME=str(tmp_path / "home"),
               PATH=f"{installed / 'bin'}{os.pathsep}{env.get('PATH', '')}")

    def pgallery_cli(*args):
        result = _run([str(installed / "bin" / "pgallery"), *args], env=env, cwd=work)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "Traceback" not in result.stdout + result.stderr
        return result.stdout

    # the pgallery that runs is the wheel's, and so are its SQL and its migrations
    probe = _run([str(installed / "bin" / "python"), "-c", (
        "import json, importlib.metadata as md, importlib.resources as r, pgallery,"
        " pgallery.migrations as m; print(json.dumps([pgallery.__file__, str(r.files("
        "'pgallery.sql')), str(m.ALEMBIC_DIR), md.version('pgallery')]))")], env=env, cwd=work)
    assert probe.returncode == 0, probe.stderr
    *paths, version = json.loads(probe.stdout)
    for path in paths:
        assert Path(path).resolve().is_relative_to(installed.resolve()), path
    assert version == pgallery.__version__
    assert pgallery_cli("--version").strip() == f"pgallery {pgallery.__version__}"

    assert f"schema at {migrations.head_revision()}" in pgallery_cli("migrate")
    assert pgallery_cli("alembic", "current").strip() == f"{migrations.head_revision()} (head)"
    pgallery_cli("demo", "--count", "20")
    with psycopg.connect(url) as conn:
        first = conn.execute("SELECT image_file FROM painting ORDER BY 1").fetchone()[0]
    results = json.loads(pgallery_cli("search", "painting", first, "--k", "3", "--json"))
    assert len(results) == 3 and first not in {r["image_file"] for r in results}

    server = subprocess.Popen([str(installed / "bin" / "pgallery"), "serve", "--port", "0"],
                              env=env, cwd=work, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        base = _wait_for_url(server)
        with urllib.request.urlopen(base, timeout=30) as page:
            assert page.status == 200
            assert f"pgallery {pgallery.__version__}" in page.read().decode()
        with urllib.request.urlopen(base + "api/search?similar=" + results[0]["image_file"]
                                    + "&k=2", timeout=30) as api:
            assert len(json.load(api)["results"]) == 2
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0 and "Traceback" not in out + err
