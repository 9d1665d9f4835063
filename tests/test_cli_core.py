"""The CLI, called in-process as a user would: exit codes, messages, tables and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pgallery.commands import app

runner = CliRunner()

COMMANDS = [[], ["db"], ["db", "start"], ["db", "stop"], ["db", "status"], ["db", "url"],
            ["db", "psql"], ["migrate"], ["load"], ["search"], ["search", "painting"],
            ["search", "vector"], ["search", "text"], ["search", "new-image"],
            ["search", "similar"], ["search", "image"], ["reembed"], ["show"], ["demo"],
            ["search", "query"], ["duplicates"], ["index"],
            ["index", "build"], ["index", "list"], ["models"], ["models", "list"],
            ["models", "use"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "pgallery")
def test_every_command_has_help_with_an_example_or_a_summary(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    if len(command) == 2 or command in (["migrate"], ["load"]):
        assert "Example" in result.output


def write_embeddings(path, rows):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("image_file\tdescription\tauthor\ttitle\ttechnique\ttype\ttimeframe\tvector\n")
        for image_file, author, vector in rows:
            fh.write(f"{image_file}\tA painting\t{author}\tTitle of {image_file}\tOil\tportrait"
                     f"\t1601-1650\t{vector}\n")


def vec(v) -> str:
    return "[" + ", ".join(f"{x:.6f}" for x in v) + "]"


@pytest.fixture
def loaded(cli_env, tmp_path):
    rng = np.random.default_rng(8)
    vectors = rng.standard_normal((12, 1024)).astype(np.float32)
    rows = [(f"cli-{i}.jpg", "GOGH, Vincent van" if i < 6 else "RUBENS, Peter Paul",
             vec(vectors[i])) for i in range(12)]
    rows.append(("cli-bad.jpg", "Nobody", "[1, 2, 3]"))
    rows.append(("cli-nan.jpg", "Nobody", "[" + ", ".join(["nan"] * 1024) + "]"))
    path = tmp_path / "embeddings.tsv"
    write_embeddings(path, rows)
    return path, vectors


def test_load_embeddings_reports_bad_rows_and_loads_the_rest(loaded):
    path, _ = loaded
    result = runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/cli"])
    assert result.exit_code == 0, result.output
    assert "new paintings" in result.output
    assert "cli-bad.jpg" in result.output and "3 dimensions" in result.output
    assert "cli-nan.jpg" in result.output and "NaN" in result.output
    again = runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/cli"])
    assert again.exit_code == 0
    summary = runner.invoke(app, ["models", "list", "--json"])
    models = {m["name"]: m for m in json.loads(summary.output)}
    assert models["test/cli"]["vectors"] == 12          # loaded twice, stored once


def test_a_file_without_some_columns_keeps_what_the_database_knows(cli_env, tmp_path):
    # a SemArt-style file with date and school, then another model's vectors from a file
    # that has neither: the second load adds vectors, it does not erase metadata
    rng = np.random.default_rng(9)
    full = tmp_path / "full.tsv"
    full.write_text("IMAGE_FILE\tAUTHOR\tTITLE\tDATE\tSCHOOL\tTYPE\tVECTOR\n"
                    f"keep-1.jpg\tGOYA\tThe Parasol\t1777\tSpanish\tgenre\t"
                    f"{vec(rng.standard_normal(1024))}\n", encoding="utf-8")
    partial = tmp_path / "partial.tsv"
    write_embeddings(partial, [("keep-1.jpg", "GOYA, Francisco", vec(rng.standard_normal(1024)))])
    for path, model in ((full, "test/keep-a"), (partial, "test/keep-b")):
        result = runner.invoke(app, ["load", "--embeddings", str(path), "--model", model])
        assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["show", "keep-1.jpg", "--json"])
    painting = json.loads(shown.output)
    assert (painting["date"], painting["school"]) == ("1777", "Spanish")   # kept
    assert painting["author"] == "GOYA, Francisco"                        # updated
    assert painting["painting_type"] == "portrait"                         # updated


def test_search_similar_prints_json_for_scripts(loaded):
    path, _ = loaded
    runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/cli"])
    result = runner.invoke(app, ["search", "similar", "cli-0.jpg", "--k", "3",
                                 "--author", "gogh", "--model", "test/cli", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 3
    assert all("GOGH" in r["author"] and r["image_file"] != "cli-0.jpg" for r in rows)


def test_search_vector_reads_a_json_file(loaded, tmp_path):
    path, vectors = loaded
    runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/cli"])
    query = tmp_path / "q.json"
    query.write_text(json.dumps(vectors[4].tolist()))
    result = runner.invoke(app, ["search", "vector", str(query), "--k", "1", "--model",
                                 "test/cli", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["image_file"] == "cli-4.jpg"


@pytest.mark.parametrize("args, code, message", [
    (["search", "similar", "nope.jpg", "--model", "test/cli"], 3, "no painting with image_file"),
    (["search", "vector", "[1, 2]", "--model", "test/cli"], 2, "2 dimensions"),
    (["search", "vector", "[0, 0, 0]", "--model", "test/cli"], 2, "dimensions"),
    (["search", "vector", "not json", "--model", "test/cli"], 2, "not a file"),
    (["search", "similar", "cli-0.jpg", "--model", "no/such"], 3, "unknown embedding model"),
    (["search", "similar", "cli-0.jpg", "--model", "test/cli", "--year-from", "1700",
      "--year-to", "1600"], 2, "year_from"),
    (["load"], 2, "--embeddings"),
    (["load", "--embeddings", "missing.tsv"], 2, "no such file"),
    (["models", "use", "no/such"], 3, "unknown embedding model"),
])
def test_user_mistakes_get_a_message_and_an_exit_code_not_a_traceback(loaded, args, code,
                                                                      message):
    path, _ = loaded
    runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/cli"])
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_db_commands_refuse_to_manage_a_server_given_by_url(cli_env):
    result = runner.invoke(app, ["db", "start"])
    assert result.exit_code == 2
    assert "DATABASE_URL is set" in result.output


def test_db_url_prints_the_database_url(cli_env):
    result = runner.invoke(app, ["db", "url"])
    assert result.exit_code == 0
    assert result.output.strip() == cli_env


def test_index_build_creates_ivfflat_and_list_shows_both(loaded):
    path, _ = loaded
    runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/cli"])
    result = runner.invoke(app, ["index", "build"])
    assert result.exit_code == 0, result.output
    listing = runner.invoke(app, ["index", "list"])
    assert "painting_embedding_hnsw" in listing.output
    assert "painting_embedding_ivfflat" in listing.output
    runner.invoke(app, ["index", "drop-ivfflat"])


def test_an_unmigrated_database_says_to_migrate(make_database, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", make_database(migrate=False))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["search", "similar", "x.jpg"])
    assert result.exit_code == 4
    assert "pgallery migrate" in result.output
    migrate = runner.invoke(app, ["migrate"])
    assert migrate.exit_code == 0, migrate.output
    assert "schema at" in migrate.output
