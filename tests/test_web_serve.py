"""The `pgallery serve` command as a user runs it: a subprocess that prints its URL, answers
over HTTP, and stops cleanly on Ctrl-C (SIGINT); a busy port or an unmigrated database is
a one-line error."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import requests

from web_server import load_sample_gallery

CLI = Path(__file__).resolve().parents[1] / "cli"


def _env(db_url: str, home: Path) -> dict:
    env = dict(os.environ, DATABASE_URL=db_url, PGALLERY_HOME=str(home),
               PYTHONPATH=str(CLI) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("VISION_ENDPOINT", None)
    env.pop("VISION_KEY", None)
    return env


def _start(args, env, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pgallery", "serve", *args], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_serve_prints_its_url_answers_and_stops_on_ctrl_c(make_database, tmp_path):
    url = make_database(prefix="serve")
    load_sample_gallery(url, tmp_path / "gallery", count=20)
    process = _start(["--port", "0"], _env(url, tmp_path / "home"), tmp_path)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if "serving on" in line or process.poll() is not None:
                break
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + process.stderr.read()
        base = found.group(0)
        page = requests.get(base, timeout=30)
        assert page.status_code == 200 and "pgallery" in page.text
        api = requests.get(base + "api/search", params={"text": "sea"}, timeout=30)
        assert api.status_code == 200 and api.json()["mode"] == "hybrid"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in out + err
    password = psycopg.conninfo.conninfo_to_dict(url)["password"]
    assert password not in out + err
    assert "GET /api/search?text=sea" in out + err   # the access log, which holds no secret


def test_a_busy_port_is_a_one_line_error(db_url, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "pgallery", "serve", "--port", str(port)],
                                env=_env(db_url, tmp_path), cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot listen on 127.0.0.1" in result.stderr and "Traceback" not in result.stderr


def test_an_unmigrated_database_is_refused_before_listening(make_database, tmp_path):
    url = make_database(migrate=False, prefix="serveraw")
    result = subprocess.run([sys.executable, "-m", "pgallery", "serve", "--port", "0"],
                            env=_env(url, tmp_path), cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and "migrate" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_help_names_its_options():
    result = subprocess.run([sys.executable, "-m", "pgallery", "serve", "--help"],
                            env=dict(os.environ, PYTHONPATH=str(CLI)), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--host", "--port", "--open", "--max-upload-mb"):
        assert option in result.stdout
