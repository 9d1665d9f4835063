"""What a newcomer meets first (issue 16): messages, help, pages and the paths to text search.

The CLI is called in-process as a user would call it, against the shared test database;
files are real files, and nothing reaches the network.
"""

from __future__ import annotations

import json
import os
from html import unescape
import warnings

import psycopg
import pytest
from typer import main as typer_main
from typer.testing import CliRunner

from pgallery.commands import app
from pgallery.database import connect
from pgallery.loading.writer import parse_vector_text

runner = CliRunner()


# -- vectors -----------------------------------------------------------------------------

def test_a_number_beyond_float32_becomes_infinity_without_an_overflow_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # the cast used to warn once per such vector
        vector = parse_vector_text("[3.4028236e38, -1e39, 3.40282356e38, 0.5]")
    assert vector[0] == float("inf") and vector[1] == float("-inf")
    assert vector[2] == pytest.approx(3.4028235e38) and vector[3] == 0.5


# -- a gallery of the demo's own, embedded with the offline `local` provider ---------------

@pytest.fixture(scope="module")
def demo_db(make_database, tmp_path_factory):
    """`pgallery demo --count 20` into a database of its own; yields (url, out, output)."""
    url = make_database()
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", url)
        mp.chdir(out)
        for name in ("VISION_ENDPOINT", "VISION_KEY", "PGALLERY_PROVIDER", "PGALLERY_CLIP_MODEL"):
            mp.delenv(name, raising=False)
        result = runner.invoke(app, ["demo", "--count", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return url, out, result.output


@pytest.fixture
def demo_env(demo_db, monkeypatch, tmp_path):
    url, out, _ = demo_db
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    for name in ("VISION_ENDPOINT", "VISION_KEY", "PGALLERY_PROVIDER", "PGALLERY_CLIP_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return out


def _a_painting(url) -> tuple[str, str]:
    with connect(url) as conn:
        return conn.execute("SELECT image_file, title FROM painting ORDER BY image_file"
                            " LIMIT 1").fetchone()


def test_the_plain_demo_says_in_one_line_how_to_turn_text_search_on(demo_db):
    output = demo_db[2]
    lines = [line for line in output.splitlines() if "pgallery demo --provider clip" in line]
    assert len(lines) == 1 and "text search" in lines[0]
    assert "--html similar.html" not in output   # it no longer suggests a page in the cwd


def test_search_commands_share_one_definition_of_their_options():
    from pgallery.commands.common import SEARCH_OPTIONS

    shared = [p.name for p in SEARCH_OPTIONS]
    command = typer_main.get_command(app)
    for name in ("painting", "text", "new-image", "vector"):
        params = [p.name for p in command.commands["search"].commands[name].params]
        assert [p for p in params if p in shared] == shared, name


def test_the_search_commands_are_named_for_what_they_search_by_old_names_still_work(demo_env):
    listed = runner.invoke(app, ["search", "--help"], env={"COLUMNS": "200"}).output
    assert "painting" in listed and "new-image" in listed
    commands = [line.strip("│ ").split()[0] for line in listed.splitlines()
                if line.startswith("│ ") and line.strip("│ ")]
    assert {"painting", "new-image", "text", "vector"} <= set(commands)
    assert "similar" not in commands and "image" not in commands   # hidden aliases
    image_file, _ = _a_painting(os.environ["DATABASE_URL"])
    new = runner.invoke(app, ["search", "painting", image_file, "--k", "3", "--json"])
    old = runner.invoke(app, ["search", "similar", image_file, "--k", "3", "--json"])
    assert new.exit_code == old.exit_code == 0, new.output + old.output
    assert json.loads(new.output) == json.loads(old.output) and json.loads(new.output)
    picture = str(demo_env / "sample-gallery" / "images" / image_file)
    by_file = runner.invoke(app, ["search", "new-image", picture, "--k", "1", "--json"])
    assert by_file.exit_code == 0, by_file.output
    assert runner.invoke(app, ["search", "image", picture, "--k", "1"]).exit_code == 0


def test_tables_and_pages_name_the_query_the_filters_and_the_model(demo_env, tmp_path):
    image_file, title = _a_painting(os.environ["DATABASE_URL"])
    page = tmp_path / "p.html"
    result = runner.invoke(app, ["search", "painting", image_file, "--k", "2", "--school",
                                 "i", "--html", str(page)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    heading = f"more like this '{title}' where school = i, model local-descriptors/v1"
    assert heading in result.output
    html = page.read_text(encoding="utf-8")
    assert f"<title>pgallery: {heading}</title>" in unescape(html)  # &#39; or &#x27;
    assert "More like this" in html    # the mode's label, from the new mode name


# -- help ----------------------------------------------------------------------------------

def _all_commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _all_commands(sub, (*path, name))


def test_help_shows_no_bool_placeholders_braces_or_paintings_the_demo_lacks():
    for path, _ in _all_commands(typer_main.get_command(app)):
        output = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
        usage = next(line for line in output.splitlines() if "Usage:" in line)
        assert "<bool>" not in output, path
        assert "{" not in usage, (path, usage)
        assert "19873-1portrai.jpg" not in output, path
    reembed = runner.invoke(app, ["reembed", "--help"], env={"COLUMNS": "200"}).output
    assert "--provider" in reembed and "--model-provider" not in reembed


# -- errors a newcomer hit -------------------------------------------------------------------

def test_an_empty_embeddings_file_is_a_one_line_error(demo_env, tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    result = runner.invoke(app, ["load", "--embeddings", str(tmp_path / "empty.csv")])
    assert result.exit_code == 2, result.output
    assert "empty.csv: the file is empty" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_page_that_cannot_be_written_is_a_one_line_error_and_no_directory_appears(
        demo_env, tmp_path):
    image_file, _ = _a_painting(os.environ["DATABASE_URL"])
    for target, message in ((tmp_path / "no-such-dir" / "x.html", "no such directory"),
                            ("/proc/x.html", "cannot write"),
                            (tmp_path, "directory")):
        result = runner.invoke(app, ["search", "painting", image_file, "--html", str(target)])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "no-such-dir").exists()
    shown = runner.invoke(app, ["show", image_file, "--html", str(tmp_path / "a" / "b.html")])
    assert shown.exit_code == 2 and "no such directory" in shown.output
    assert not (tmp_path / "a").exists()


def test_searching_by_a_directory_says_it_is_a_directory(demo_env, tmp_path):
    result = runner.invoke(app, ["search", "new-image", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a directory" in result.output and "no such file" not in result.output


def test_a_header_only_file_prints_no_empty_progress_bar(demo_env, tmp_path):
    gallery = demo_env / "sample-gallery"
    header = (gallery / "semart.csv").read_text(encoding="utf-8").splitlines()[0]
    (tmp_path / "header.csv").write_text(header + "\n", encoding="utf-8")
    result = runner.invoke(app, ["load", "--csv", str(tmp_path / "header.csv"), "--images",
                                 str(gallery / "images"), "--provider", "local"])
    assert result.exit_code == 0, result.output
    assert "0/0" not in result.output and "eta" not in result.output
    assert "no rows" in result.output


def test_a_filter_that_matches_nothing_is_named(demo_env):
    image_file, _ = _a_painting(os.environ["DATABASE_URL"])
    result = runner.invoke(app, ["search", "painting", image_file, "--type", "lanscape",
                                 "--school", "i"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "0 result(s)" in result.output
    assert "--type 'lanscape' matches no painting of local-descriptors/v1" in result.output
    assert "--school 'i':" in result.output         # and how many the other one leaves


# -- text search on a model without text -----------------------------------------------------

def test_hybrid_on_an_image_only_model_says_keywords_only_and_has_no_similarity_column(
        demo_env, tmp_path):
    page = tmp_path / "h.html"
    _, title = _a_painting(os.environ["DATABASE_URL"])
    result = runner.invoke(app, ["search", "text", title, "--hybrid", "--k", "3",
                                 "--html", str(page)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "ranked by keywords only" in result.output
    assert "similarity" not in result.output and "score" in result.output
    html = page.read_text(encoding="utf-8")
    assert "ranked by keywords only" in html
    assert "reciprocal rank fusion" in html and html.count('class="sim score"') >= 1


def test_the_psql_hint_for_an_image_only_model_does_not_send_to_search_text(demo_db):
    url = demo_db[0]
    with connect(url) as conn:
        with pytest.raises(psycopg.Error) as error:
            conn.execute("SELECT * FROM search_by_text('never embedded')")
    hint = error.value.diag.message_hint
    assert "pgallery search text" not in hint
    assert "images only" in hint and "pgallery reembed --provider clip" in hint
