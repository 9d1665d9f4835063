"""The README, run: `pgallery demo`, then every command the README shows, in order.

A newcomer follows the README top to bottom, so this test does too, in a fresh directory with
the embedded PostgreSQL (no DATABASE_URL), exactly as `make demo` leaves it:

- ```bash blocks preceded by ``<!-- readme-test: run -->`` run with ``bash -e``; ``run azure``
  ones with VISION_ENDPOINT/VISION_KEY pointing at the fake Azure server (real HTTP);
  ``run clip`` ones with a tiny CLIP, built offline, in a Hugging Face cache of their own as
  the default model (openai/clip-vit-base-patch32) and the Hub's address on a closed port.
- ``run serve`` blocks run while `pgallery serve` runs in the workspace (on a free port,
  which replaces the README's 127.0.0.1:8000), and must answer JSON results.
- ```python blocks preceded by ``<!-- readme-test: python -->`` run with the venv's Python
  in the workspace, and print what their comments say: a ``print(...)  # text`` line's
  text (with ``...`` standing for anything) must be in the output.
- ```sql blocks preceded by ``<!-- readme-test: sql -->`` run through `pgallery db psql` with
  ON_ERROR_STOP, and every query must return rows.
- Every other code block must be one this file explains (installing, Docker, the benchmarks),
  so a command added to the README without a test fails here.

The files the README's commands name (SemArt/, my-pictures/, semart_embeddings.tsv,
photo.jpg) are made from the demo's sample gallery before the blocks run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from browser import find_chromium, page_report

pytestmark = pytest.mark.slow   # a demo, then every block: minutes (`-m "not slow"` skips it)
from fake_azure import FakeAzure, Fault, vector_for_bytes

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV = Path(sys.prefix)
TIMEOUT = 600

# Code blocks the test does not run, by their first line, and why.
NOT_RUN = {
    "make demo": "installs, then runs `pgallery demo` (run here); CI runs `make test` itself",
    "VISION_ENDPOINT=": "the contents of a .env file; the azure blocks use the same variables",
    "docker compose up -d": "no Docker engine here; test_docker_url_matches_compose checks it",
    "make test": "this suite",
    "pip install build": "builds and installs the wheel; tests/test_packaging.py does both",
    "ERROR:  the prompt": "an error message; test_the_prompt_error_is_the_one_shown checks it",
    "sql/": "a directory listing; test_the_layout_listed_exists checks it",
    "# /etc/caddy/Caddyfile": "a reverse proxy's configuration (no Caddy here); "
                              "tests/test_web_serve.py checks --proxy-headers trusts only "
                              "the named proxy",
    "pgallery db cluster create": "needs a PostgreSQL with Citus (PGALLERY_CITUS_PG_BIN); "
                                  "tests/test_citus.py runs these commands",
    "pgallery db replica create": "standbys, and a server reading from them, for the "
                                  "length of a test: tests/test_read_scale.py runs these "
                                  "commands and `pgallery serve --read-url`",
    "pgallery serve": "runs until Ctrl-C; the `run serve` blocks run against it (web_server "
                      "fixture), tests/test_web_serve.py runs the command itself",
}


def readme_blocks() -> list[tuple[str, str, str]]:
    """(marker, language, code) for every fenced block; marker '' when unmarked."""
    text = README.read_text(encoding="utf-8")
    pattern = re.compile(r"(?:<!-- readme-test: ([a-z ]+) -->\n)?```(\w*)\n(.*?)```", re.S)
    return [(m.group(1) or "", m.group(2), m.group(3)) for m in pattern.finditer(text)]


RUNNABLE = [(marker, code) for marker, _, code in readme_blocks() if marker]


def _block_id(index_and_block) -> str:
    index, (marker, code) = index_and_block
    return f"{index:02d}-{marker.replace(' ', '-')}-{code.split()[0] if code.split() else ''}"


def _strip_comment(line: str) -> str:
    return line.split("  #")[0].strip()


# ---- the workspace: a fresh directory after `pgallery demo` --------------------------------

def _clean_env(workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VISION_", "PGALLERY_", "HF_", "TRANSFORMERS_"))
           and k != "DATABASE_URL"}
    env.update(PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}", COLUMNS="120",
               HOME=str(workspace / "home"))
    return env


def _run(args, cwd: Path, env: dict[str, str], input: str | None = None):
    result = subprocess.run(args, cwd=cwd, env=env, input=input, capture_output=True,
                            text=True, timeout=TIMEOUT)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return result, output


@pytest.fixture(scope="module")
def azure():
    with FakeAzure() as server:
        yield server


@pytest.fixture(scope="module")
def workspace(azure):
    """A directory as a newcomer has it after `make demo`, plus the files the README names.

    Outside pytest's base temp: the embedded server in it runs as the `pgallery` user,
    which must traverse every parent, and any pytest session starting meanwhile (a second
    run on the same machine) sets /tmp/pytest-of-<user> back to 0700, cutting the running
    server off its own data directory."""
    root = Path(tempfile.mkdtemp(prefix="pgallery-readme-"))
    (root / "home").mkdir()
    (root / ".venv").symlink_to(VENV)  # so `. .venv/bin/activate` works as in a clone
    env = _clean_env(root)
    first, first_output = _run(["pgallery", "demo"], root, env)
    second, second_output = _run(["pgallery", "demo"], root, env)
    state = {"root": root, "env": env, "demo": (first, first_output, second, second_output)}

    sample = root / ".pgallery" / "demo" / "sample-gallery"
    # SemArt/: the first 40 rows of the sample in SemArt's own layout and file names
    lines = (sample / "semart.csv").read_text(encoding="utf-8").splitlines()
    rows = lines[1:41]
    (root / "SemArt" / "Images").mkdir(parents=True)
    (root / "SemArt" / "semart_train.csv").write_text("\n".join([lines[0], *rows]) + "\n",
                                                      encoding="cp1252")
    names = [row.split("\t")[0] for row in rows]
    for name in names:
        shutil.copy(sample / "images" / name, root / "SemArt" / "Images" / name)
    # one image the API rejects once, so `load --retry-failed` has something to redo
    state["rejected_once"] = root / "SemArt" / "Images" / names[7]
    azure.fail(Fault.error(400, "InvalidRequest", "InvalidImageFormat"),
               image=state["rejected_once"], times=1)
    # my-pictures/: a folder of images with plain names
    (root / "my-pictures" / "travels").mkdir(parents=True)
    for number, picture in zip((250, 251, 252), ("harbour at dusk.jpg",
                                                 "travels/alpine lake.jpg", "still life.jpg")):
        source = next((sample / "images").glob(f"{number:05d}-*"))
        shutil.copy(source, root / "my-pictures" / picture)
    # semart_embeddings.tsv: the reference pipeline's output for the same 40 paintings
    with open(root / "semart_embeddings.tsv", "w", encoding="utf-8") as out:
        out.write("image_file\tdescription\tauthor\ttitle\ttechnique\ttype\ttimeframe\tvector\n")
        for row in rows:
            f = row.split("\t")  # IMAGE_FILE DESCRIPTION AUTHOR TITLE TECHNIQUE DATE TYPE ...
            vector = vector_for_bytes((sample / "images" / f[0]).read_bytes())
            out.write("\t".join([f[0], f[1], f[2], f[3], f[4], f[6], f[8],
                                 json.dumps([round(float(x), 7) for x in vector])]) + "\n")
    shutil.copy(sample / "images" / names[3], root / "photo.jpg")
    state["names"] = names
    yield state
    _run(["pgallery", "db", "stop"], root, env)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def clip_cache(tmp_path_factory):
    """A Hugging Face cache holding a tiny CLIP as the default model, and a Hub address on
    a closed port: `--provider clip` finds its model without any download."""
    try:
        from tiny_clip import build_tiny_clip, install_in_hf_cache
    except ImportError as exc:
        pytest.skip(f"the clip extra is not installed ({exc.name} missing): "
                    "pip install torch==2.13.0 && pip install -e .[clip]")
    root = tmp_path_factory.mktemp("models")
    cache = root / "hub"
    install_in_hf_cache(build_tiny_clip(root / "tiny-clip"), cache,
                        "openai/clip-vit-base-patch32")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    return {"HF_HUB_CACHE": str(cache), "HF_ENDPOINT": f"http://127.0.0.1:{port}"}


def _psql(workspace, sql: str, database_url: str | None = None):
    where = ["--database-url", database_url] if database_url else []
    return _run(["pgallery", *where, "db", "psql", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                workspace["root"], workspace["env"], input=sql)


# ---- the demo ------------------------------------------------------------------------------

def test_the_demo_embeds_a_sample_gallery_searches_it_and_writes_pages(workspace):
    first, output, _, _ = workspace["demo"]
    assert first.returncode == 0, output
    assert "300 embedded, 0 unchanged, 0 rejected" in output
    assert "more like this" in output and "where painting_type = landscape" in output
    assert "psql: SELECT * FROM search_hybrid(" in output
    pages = re.findall(r"HTML page: (\S+\.html)", output)
    assert len(pages) == 3 and all(Path(page).is_file() for page in pages)
    assert "Next: pgallery serve" in output      # the second thing a newcomer runs
    seconds = float(re.search(r"done in ([\d.]+) s", output).group(1))
    print(f"first demo run: {seconds:.1f} s")


def test_a_second_demo_run_reuses_everything(workspace):
    *_, second, output = workspace["demo"]
    assert second.returncode == 0, output
    assert "0 embedded, 300 unchanged, 0 rejected" in output
    seconds = float(re.search(r"done in ([\d.]+) s", output).group(1))
    print(f"second demo run: {seconds:.1f} s")


def test_the_demo_pages_show_every_thumbnail_in_a_real_browser(workspace):
    if not find_chromium():
        pytest.skip("Chromium is not installed (bash .ci/install-chromium.sh installs it)")
    _, output, _, _ = workspace["demo"]
    for page in re.findall(r"HTML page: (\S+\.html)", output):
        report = page_report(page)
        assert len(report.images) >= 8 and not report.broken, (page, report)


# ---- the README's blocks, in order ---------------------------------------------------------

@pytest.fixture(scope="module")
def web_server(workspace):
    """`pgallery serve --port 0` in the workspace, as the README starts it; its address."""
    process = subprocess.Popen(["pgallery", "serve", "--port", "0", "--no-access-log"],
                               cwd=workspace["root"], env=workspace["env"], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = ""
    for line in process.stdout:
        if "serving on" in line:
            break
    found = re.search(r"127\.0\.0\.1:\d+", line)
    assert found, line + process.stderr.read()
    yield found.group(0)
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.parametrize("block", list(enumerate(RUNNABLE)), ids=_block_id)
def test_readme_block(block, workspace, azure, request):
    _, (marker, code) = block
    env = dict(workspace["env"])
    if "serve" in marker:
        code = code.replace("127.0.0.1:8000", request.getfixturevalue("web_server"))
        result, output = _run(["bash", "-e", "-c", code], workspace["root"], env)
        assert result.returncode == 0, output
        assert output.count('"image_file"') >= 3 and '"error"' not in output, output
        return
    if "azure" in marker:
        env.update(azure.env())
    if "clip" in marker:
        env.update(request.getfixturevalue("clip_cache"))
    if marker.startswith("python"):
        result, output = _run([sys.executable, "-c", code], workspace["root"], env)
        assert result.returncode == 0, f"README block failed:\n{code}\n{output}"
        promised = re.findall(r"^\s*print\(.*\)\s+# (.+)$", code, re.M)
        assert promised, "a python block shows what it prints"
        for promise in promised:
            assert _matches(promise, output), (promise, output)
        return
    if marker.startswith("sql"):
        result, output = _psql(workspace, code)
        assert result.returncode == 0, output
        assert "(0 rows)" not in output, output
        queries = len(re.findall(r"^SELECT", code, re.M))
        assert len(re.findall(r"^\(\d+ rows?\)$", output, re.M)) == queries, output
        return
    result, output = _run(["bash", "-e", "-c", code], workspace["root"], env)
    assert result.returncode == 0, f"README block failed:\n{code}\n{output}"


def test_every_code_block_is_run_or_explained():
    for marker, language, code in readme_blocks():
        if marker:
            continue
        first = code.strip().splitlines()[0]
        assert any(first.startswith(prefix) for prefix in NOT_RUN), (
            f"README block starting {first!r} is neither marked readme-test nor explained in "
            "NOT_RUN")


def test_the_blocks_left_their_mark(workspace, azure):
    """What the blocks did, checked in the database they ran against."""
    counts = _psql(workspace, "\\pset format unaligned\\pset tuples_only on\n"
                   "SELECT m.name || '=' || count(e.*) FROM embedding_model m"
                   " LEFT JOIN painting_embedding e ON e.model = m.name GROUP BY m.name;\n"
                   "SELECT 'active=' || name FROM embedding_model WHERE is_active;\n"
                   "SELECT 'failures=' || count(*) FROM embedding_failure;\n"
                   "SELECT 'folder=' || count(*) FROM painting WHERE title ILIKE 'alpine lake';\n"
                   "SELECT 'prompts=' || count(*) FROM prompt_embedding;\n")[1]
    facts = dict(line.split("=", 1) for line in counts.split() if "=" in line)
    # the demo's 300, the folder's 3 (local); SemArt's 40 (azure); everything (clip)
    assert int(facts["local-descriptors/v1"]) == 303
    assert int(facts["azure-vision/2023-04-15"]) == 40
    assert int(facts["clip/openai/clip-vit-base-patch32"]) == 303
    assert facts["active"] == "azure-vision/2023-04-15"
    assert facts["failures"] == "0"  # the rejected image was redone by --retry-failed
    assert facts["folder"] == "1"
    assert int(facts["prompts"]) >= 2   # the two `search text` prompts, cached for psql
    assert azure.requests_for(workspace["rejected_once"]) == 2
    # pages go where the README says, not into the directory a newcomer runs it from
    assert not list(workspace["root"].glob("*.html"))


def test_the_prompt_error_is_the_one_shown(workspace):
    text = README.read_text(encoding="utf-8")
    shown = re.search(r"```\n(ERROR: .*?)```", text, re.S).group(1)
    _, output = _psql(workspace, "SELECT * FROM search_by_text('a stormy sea');")
    for line in shown.strip().splitlines():
        assert " ".join(line.split()) in " ".join(output.split()), output


TROUBLE_TRIGGERS = {
    # README message -> how to make it happen here
    "the database is not migrated": ("cli", ["--database-url", "{empty}", "search", "painting",
                                             "x.jpg"]),
    "no active embedding model": ("sql-migrated-empty", "SELECT * FROM search_by_vector("
                                  "array_fill(0.5, ARRAY[1024])::vector);"),
    "the prompt ... has not been embedded": ("sql", "SELECT * FROM search_by_text('unseen');"),
    "the 'local' provider embeds images only": ("cli", ["search", "text", "a boat",
                                                        "--provider", "local", "--model",
                                                        "local-descriptors/v1"]),
    "the active model is ... but the ... provider embeds with ...": (
        "cli", ["search", "new-image", "photo.jpg", "--provider", "local"]),
    "query vector has N dimensions; model ... has 1024": (
        "sql", "SELECT * FROM search_by_vector('[1,2,3]');"),
}


def _matches(pattern: str, output: str) -> bool:
    flat = " ".join(output.replace("`", "").split())
    parts = [re.escape(p.strip()) for p in re.split(r"\.\.\.|\bN\b", pattern)]
    return re.search(".*?".join(parts), flat) is not None


def test_the_troubleshooting_messages_are_the_ones_users_get(workspace):
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Troubleshooting"):text.index("## Development")]
    messages = [m.replace("`", "") for m in re.findall(r"^\| `(.+?)` \|", table, re.M)]
    env, root = workspace["env"], workspace["root"]
    url = _run(["pgallery", "db", "url"], root, env)[1].strip()
    for name in ("readme_empty", "readme_migrated"):
        _psql(workspace, f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name};")
    empty = url.rsplit("/", 1)[0] + "/readme_empty"
    migrated = url.rsplit("/", 1)[0] + "/readme_migrated"
    assert _run(["pgallery", "--database-url", migrated, "migrate"], root, env)[0].returncode == 0
    checked = 0
    for message, (how, what) in TROUBLE_TRIGGERS.items():
        readme_message = next((m for m in messages if m.startswith(message.split("...")[0]
                                                                     .strip())), None)
        assert readme_message, f"{message!r} is no longer in the README's troubleshooting"
        if how == "cli":
            args = [a.replace("{empty}", empty) for a in what]
            result, output = _run(["pgallery", *args], root, env)
            assert result.returncode != 0
        elif how == "sql":
            output = _psql(workspace, what)[1]
        else:
            output = _psql(workspace, what, migrated)[1]
        assert _matches(readme_message, output), (readme_message, output)
        checked += 1
    assert checked == len(TROUBLE_TRIGGERS)


def test_docker_url_matches_compose():
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    settings = dict(re.findall(r"POSTGRES_(USER|PASSWORD|DB): (\S+)", compose))
    port = re.search(r'"127\.0\.0\.1:(\d+):5432"', compose).group(1)
    expected = (f"postgresql://{settings['USER']}:{settings['PASSWORD']}@localhost:{port}/"
                f"{settings['DB']}")
    assert f"DATABASE_URL={expected}" in README.read_text(encoding="utf-8")


def test_the_layout_listed_exists():
    listing = next(code for _, _, code in readme_blocks() if code.startswith("sql/"))
    for line in listing.splitlines():
        if line.startswith("    "):      # a description's second line, under its first
            continue
        path = line.split()[0]
        parent = "cli/pgallery/" if line.startswith("  ") else ""
        assert (ROOT / parent / path).is_dir(), path


def test_the_embeddings_file_holds_what_the_readme_says(workspace):
    header = (workspace["root"] / "semart_embeddings.tsv").read_text().splitlines()[0]
    text = README.read_text(encoding="utf-8")
    columns = re.search(r"a tab-separated file with `([^`]+)`", text).group(1)
    assert header.split("\t") == [c.strip() for c in columns.split(",")]
    vector = json.loads((workspace["root"] / "semart_embeddings.tsv").read_text()
                        .splitlines()[1].split("\t")[-1])
    assert len(vector) == 1024 and all(np.isfinite(vector))
