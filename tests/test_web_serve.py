"""The `pgallery serve` command as a user runs it: a subprocess that prints its URL, answers
over HTTP, and stops cleanly on Ctrl-C (SIGINT); a busy port or an unmigrated database is
a one-line error."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
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
        base = _wait_for_url(process)
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
    for option in ("--host", "--port", "--open", "--max-upload-mb", "--workers", "--pool-size",
                   "--max-concurrent", "--rate-limit", "--request-timeout", "--header-timeout",
                   "--keep-alive-timeout", "--shutdown-timeout", "--log-format",
                   "--token-file", "--private", "--cors-origin", "--proxy-headers",
                   "--forwarded-allow-ips"):
        assert option in result.stdout
    assert "Worker processes" in result.stdout and "once" in result.stdout


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry))
    return found


def _wait_for_url(process) -> str:
    deadline = time.monotonic() + 120
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "serving on" in line or process.poll() is not None:
            break
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert found, line + (process.stderr.read() if process.poll() is not None else "")
    return found.group(0)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_two_workers_serve_share_uploads_and_stop_cleanly(make_database, tmp_path, stop):
    """--workers 2: two worker processes answer; the database is resolved once, by the
    parent (given here on the command line only, so a worker resolving it again would
    start an embedded server under PGALLERY_HOME instead); an upload's permalink works
    from either worker; SIGINT and SIGTERM stop all of them with no traceback."""
    url = make_database(prefix="workers")
    gallery = load_sample_gallery(url, tmp_path / "gallery", count=12)
    env = _env(url, tmp_path / "home")
    env.pop("DATABASE_URL")
    process = subprocess.Popen(
        [sys.executable, "-m", "pgallery", "--database-url", url, "serve", "--port", "0",
         "--workers", "2", "--no-access-log"], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = _wait_for_url(process)
        children = _children(process.pid)
        workers = [p for p in children if "spawn_main" in open(f"/proc/{p}/cmdline").read()]
        assert len(workers) == 2, [open(f"/proc/{p}/cmdline").read() for p in children]
        image = sorted((gallery / "images").iterdir())[0]
        upload = requests.post(base + "api/search", timeout=60,
                               files={"image": (image.name, image.read_bytes())})
        assert upload.status_code == 200, upload.text
        permalink = upload.json()["api_url"]
        answers = []
        for _ in range(12):   # each on a new connection: the kernel hands them to either
            with requests.Session() as fresh:
                r = fresh.get(base + permalink.lstrip("/"), timeout=30)
                answers.append((r.status_code, r.json()["results"][0]["image_file"]))
        assert answers == [(200, image.name)] * 12
        assert not (tmp_path / "home" / "data").exists()   # no worker started a database
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "stopped" in out and "Traceback" not in out + err
    for pid in workers:   # joined by the parent before it exits
        assert not os.path.exists(f"/proc/{pid}")
    deadline = time.monotonic() + 10   # multiprocessing's resource tracker follows it
    while any(os.path.exists(f"/proc/{p}") for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in children if os.path.exists(f"/proc/{p}")]


TOKEN = "museum-intranet-token-0123456789"


def _serve(url: str, tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    process = _start(["--port", "0", *args], _env(url, tmp_path / "home"), tmp_path)
    return process, _wait_for_url(process)


def _stop(process: subprocess.Popen, stop=signal.SIGINT) -> tuple[str, str]:
    try:
        process.send_signal(stop)
        return process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_json_access_lines_hold_no_secret_and_trust_only_the_named_proxy(make_database,
                                                                         tmp_path):
    url = make_database(prefix="servelog")
    load_sample_gallery(url, tmp_path / "gallery", count=8)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(TOKEN + "\n")
    process, base = _serve(url, tmp_path, "--log-format", "json", "--token-file", str(tokens),
                           "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1")
    auth = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "203.0.113.7"}
    searched = requests.get(base + "api/search?text=sea%0Aforged", headers=auth, timeout=30)
    upload = requests.post(base + "api/search", headers=auth, timeout=30,
                           files={"image": ("a.jpg", b"SECRET-BODY-BYTES", "image/jpeg")})
    refused = requests.get(base + "api/search", timeout=30)
    out, err = _stop(process)
    assert (searched.status_code, upload.status_code, refused.status_code) == (200, 415, 401)
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line JSON
    access = [line for line in lines if "method" in line]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("GET", "/api/search", 200), ("POST", "/api/search", 415), ("GET", "/api/search", 401)]
    assert access[0]["query"] == "text=sea%0Aforged"           # as sent: no newline
    assert [a["client"] for a in access] == ["203.0.113.7", "203.0.113.7", "127.0.0.1"]
    assert all(a["bytes"] > 0 and a["ms"] >= 0 and a["time"].endswith("Z") for a in access)
    assert any(line.get("logger", "").startswith("uvicorn") for line in lines)
    assert TOKEN not in out + err and "SECRET-BODY" not in out + err


def test_an_untrusted_proxys_forwarded_address_is_ignored(make_database, tmp_path):
    url = make_database(prefix="serveproxy")
    process, base = _serve(url, tmp_path, "--proxy-headers", "--forwarded-allow-ips",
                           "10.9.9.9")
    requests.get(base + "healthz", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=30)
    out, err = _stop(process)
    line = [x for x in err.splitlines() if "/healthz" in x]
    assert len(line) == 1 and '127.0.0.1 "GET /healthz HTTP/1.1" 200' in line[0]
    assert "203.0.113.7" not in err


def test_shutdown_finishes_a_request_in_flight_and_cuts_a_stuck_one_in_time(make_database,
                                                                            tmp_path):
    url = make_database(prefix="serveshut")
    process, base = _serve(url, tmp_path, "--shutdown-timeout", "3", "--no-access-log")
    host, port = base.split("//")[1].strip("/").split(":")
    head = (b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=B\r\nContent-Length: 60\r\n\r\n")
    finishing = socket.create_connection((host, int(port)), timeout=30)
    stuck = socket.create_connection((host, int(port)), timeout=30)
    try:
        for sock in (finishing, stuck):
            sock.sendall(head)
        time.sleep(0.5)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        finishing.sendall(b"--B\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nx"
                          b"\r\n--B--\r\n".ljust(60, b" "))
        answer = finishing.recv(4096)
        out, err = process.communicate(timeout=60)
        took = time.monotonic() - began
    finally:
        finishing.close()
        stuck.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert answer.startswith(b"HTTP/1.1 422")   # answered during the grace period
    assert took < 3 + 5, took                    # the stuck one did not hold the exit
    assert process.returncode == 0 and "Traceback" not in out + err, err


@pytest.mark.parametrize("args,words", [
    (["--rate-limit", "fast"], "--rate-limit must look like 10/s"),
    (["--rate-limit", "0/s"], "--rate-limit must look like 10/s"),
    (["--private"], "--private needs --token-file"),
    (["--token-file", "no-such-file.txt"], "cannot read --token-file"),
])
def test_network_options_given_wrong_are_one_line_errors(db_url, tmp_path, args, words):
    result = subprocess.run([sys.executable, "-m", "pgallery", "serve", "--port", "0", *args],
                            env=_env(db_url, tmp_path), cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
