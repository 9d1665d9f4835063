"""`pgallery serve` on a network: health and readiness with the database stopped and
started, the concurrency and rate limits, timeouts and size bounds, idle connections,
bearer tokens, CORS. Real sockets against a real uvicorn; the limits are the server's
own (web/limits.py, web/protocol.py, web/tokens.py)."""

from __future__ import annotations

import select
import shutil
import socket
import statistics
import tempfile
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from pgallery import migrations
from pgallery.database.embedded import EmbeddedServer
from pgallery.errors import ConfigError
from pgallery.web import WebConfig
from pgallery.web.limits import TokenBuckets
from pgallery.web.tokens import BearerTokens, read_token_file
from web_server import load_sample_gallery, running_server

TOKEN = "museum-intranet-token-0123456789"


@pytest.fixture(scope="module")
def gallery(make_database, tmp_path_factory):
    url = make_database(prefix="network")
    load_sample_gallery(url, tmp_path_factory.mktemp("network-gallery"), count=12)
    return url


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    return parts.hostname, parts.port


def connect(base: str) -> socket.socket:
    return socket.create_connection(address(base), timeout=10)


def answer_of(sock: socket.socket, wait: float = 10) -> bytes:
    """What the server sent on ``sock`` until it closed or ``wait`` seconds passed."""
    sock.settimeout(wait)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and _complete(data):
                break
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0


def slow_upload_head(length: int = 200) -> bytes:
    """The head of an upload whose body the client has not sent yet (a slow request)."""
    return (b"POST /api/search HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=B\r\n"
            b"Content-Length: %d\r\n\r\n" % length)


# --- health and readiness ------------------------------------------------------------------

@pytest.fixture
def own_database(tmp_path_factory):
    """A PostgreSQL server of this test's own, which it stops and starts."""
    root = Path(tempfile.mkdtemp(prefix="pgallery-ready-"))
    root.chmod(0o755)
    server = EmbeddedServer(root / "pg")
    server.ensure_running()
    migrations.upgrade(server.url())
    load_sample_gallery(server.url(), tmp_path_factory.mktemp("ready-gallery"), count=5)
    yield server
    server.destroy()
    shutil.rmtree(root, ignore_errors=True)


def until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.mark.slow
def test_readyz_follows_the_database_and_healthz_only_the_process(own_database, home):
    with running_server(own_database.url(), WebConfig(home=home)) as (base, app):
        def get(path):
            return requests.get(base + path, timeout=30)

        assert get("/healthz").json() == {"status": "ok"}
        assert get("/readyz").status_code == 200 and get("/readyz").json()["status"] == "ready"

        own_database.stop("fast")
        refused, = until(lambda: (r := get("/readyz")).status_code == 503 and [r], 30,
                         "/readyz says 503 with the database stopped")
        assert refused.headers["Retry-After"] == "5"
        documented = requests.get(base + "/api/openapi.json", timeout=30).json()
        assert "503" in documented["paths"]["/readyz"]["get"]["responses"]
        assert set(refused.json()) == {"error"} and "database" in refused.json()["error"]
        assert get("/healthz").status_code == 200        # the process still answers
        assert get("/api/search").status_code == 503      # and says why searches fail

        own_database.ensure_running()
        until(lambda: get("/readyz").status_code == 200, 60,
              "/readyz is 200 again once the database is back")
        assert get("/api/search").status_code == 200


# --- the concurrency limit ----------------------------------------------------------------

def test_one_request_past_max_concurrent_gets_the_only_503(gallery, home):
    limit = 3
    with running_server(gallery, WebConfig(home=home, max_concurrent=limit)) as (base, _):
        sockets = [connect(base) for _ in range(limit + 1)]
        try:
            for sock in sockets:              # N+1 slow requests, all in flight at once
                sock.sendall(slow_upload_head())
            time.sleep(1.0)
            ready, _, _ = select.select(sockets, [], [], 2)
            answered = {sock: answer_of(sock, 2) for sock in ready}
            assert [status_of(a) for a in answered.values()] == [503]
            refused = next(iter(answered.values()))
            assert b"retry-after: 1" in refused.lower() and b'"error"' in refused
            # the health check passes the limit while it is full
            assert requests.get(base + "/healthz", timeout=10).status_code == 200
            for sock in sockets:
                if sock not in answered:      # the others finish: answered, not refused
                    sock.sendall(b"x" * 200)
                    assert status_of(answer_of(sock)) not in (0, 503)
        finally:
            for sock in sockets:
                sock.close()
        # and with the slots free again, a request is answered
        assert requests.get(base + "/api/search", timeout=30).status_code == 200


# --- the rate limit -----------------------------------------------------------------------

def test_a_client_past_its_rate_is_told_when_to_come_back(gallery, home):
    with running_server(gallery, WebConfig(home=home, rate_limit=2)) as (base, _):
        got = [requests.get(base + "/api/filters", timeout=30) for _ in range(3)]
        assert [r.status_code for r in got[:2]] == [200, 200]
        assert got[2].status_code == 429
        wait = int(got[2].headers["Retry-After"])
        assert 1 <= wait <= 1 and "slow down" in got[2].json()["error"]
        assert requests.get(base + "/healthz", timeout=10).status_code == 200  # exempt
        time.sleep(wait)
        assert requests.get(base + "/api/filters", timeout=30).status_code == 200


def test_token_buckets_refill_at_the_rate_and_keep_clients_apart():
    now = [0.0]
    buckets = TokenBuckets(4, clock=lambda: now[0])
    assert [buckets.wait("a") for _ in range(4)] == [0, 0, 0, 0]   # one second's burst
    assert buckets.wait("a") == pytest.approx(0.25)
    assert buckets.wait("b") == 0                                  # another client
    now[0] += 0.5
    assert [buckets.wait("a") for _ in range(2)] == [0, 0]
    assert buckets.wait("a") > 0


# --- timeouts, idle connections, size bounds ---------------------------------------------

BOUNDS = dict(header_timeout=2.0, max_url=8192, max_headers=16 * 1024)


def _timed_search(base: str) -> float:
    began = time.perf_counter()
    assert requests.get(base + "/api/search", params={"text": "sea"},
                        timeout=30).status_code == 200
    return time.perf_counter() - began


@pytest.mark.slow
def test_300_idle_and_half_open_connections_do_not_delay_a_real_client(gallery, home):
    with running_server(gallery, WebConfig(home=home), bounds=BOUNDS) as (base, _):
        before = statistics.median(_timed_search(base) for _ in range(7))
        idle = [connect(base) for _ in range(200)]             # connect, send nothing
        half = [connect(base) for _ in range(100)]             # begin a request, stall
        try:
            for sock in half:
                sock.sendall(b"GET /api/search?text=sea HTTP/1.1\r\nHost: x\r\n")
            during = statistics.median(_timed_search(base) for _ in range(7))
            assert during < before * 3 + 0.25, (before, during)
            # past the header timeout the server lets them all go: the idle ones closed,
            # the stalled ones told 408
            time.sleep(BOUNDS["header_timeout"] + 1)
            assert all(answer_of(sock, 5) == b"" for sock in idle[:20])
            assert {status_of(answer_of(sock, 5)) for sock in half[:20]} == {408}
        finally:
            for sock in idle + half:
                sock.close()
        assert _timed_search(base) < 5


def test_a_body_that_does_not_arrive_in_time_is_408(gallery, home):
    with running_server(gallery, WebConfig(home=home, request_timeout=1)) as (base, _):
        with closing(connect(base)) as sock:
            sock.sendall(slow_upload_head() + b"--B\r\n")
            data = answer_of(sock, 10)
        assert status_of(data) == 408 and b"did not arrive within 1 s" in data


def test_over_long_urls_and_headers_are_refused_before_the_app(gallery, home):
    with running_server(gallery, WebConfig(home=home), bounds=BOUNDS) as (base, app):
        with closing(connect(base)) as sock:
            sock.sendall(b"GET /api/search?text=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(answer_of(sock)) == 414
        with closing(connect(base)) as sock:
            sock.sendall(b"GET /api/search HTTP/1.1\r\nHost: x\r\n"
                         + b"".join(b"X-Pad-%d: %s\r\n" % (n, b"p" * 1000) for n in range(20))
                         + b"\r\n")
            assert status_of(answer_of(sock)) == 431
        # a URL just within the bound reaches the app, which names the parameter
        within = requests.get(base + "/api/search", params={"text": "a" * 1001}, timeout=30)
        assert within.status_code == 422 and "text" in within.json()["error"]
    # without the protocol (any ASGI server), the app's own check says 414
    with running_server(gallery, WebConfig(home=home, max_url_bytes=2000)) as (base, _):
        long = requests.get(base + "/api/search", params={"text": "a" * 2100}, timeout=30)
        assert long.status_code == 414 and set(long.json()) == {"error"}


# --- tokens -------------------------------------------------------------------------------

@pytest.fixture
def token_server(gallery, home):
    with running_server(gallery, WebConfig(home=home, tokens=(TOKEN,))) as (base, _):
        yield base


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_with_tokens_the_api_and_uploads_need_one_and_pages_do_not(token_server):
    base = token_server
    refused = requests.get(base + "/api/search", timeout=30)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith(
        "Bearer") and "Authorization: Bearer" in refused.json()["error"]
    for wrong in ("", "Bearer", "Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x",
                  "Basic " + TOKEN, TOKEN):
        answer = requests.get(base + "/api/search", headers={"Authorization": wrong},
                              timeout=30)
        assert answer.status_code == 401, wrong
    assert requests.get(base + "/api/search", headers=bearer(TOKEN),
                        timeout=30).status_code == 200
    upload = requests.post(base + "/search", files={"image": ("a.png", b"x")}, timeout=30)
    assert upload.status_code == 401                    # the page's form uploads too
    for open_path in ("/", "/healthz", "/readyz", "/api/openapi.json", "/api/docs",
                      "/static/web.css"):
        assert requests.get(base + open_path, timeout=30).status_code == 200, open_path
    document = requests.get(base + "/api/openapi.json", timeout=30).json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/api/search"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/"]["get"]


def test_private_pages_need_a_token_too(gallery, home):
    config = WebConfig(home=home, tokens=(TOKEN, "a-second-token-for-the-shop"), private=True)
    with running_server(gallery, config) as (base, _):
        assert requests.get(base + "/", timeout=30).status_code == 401
        assert requests.get(base + "/", headers=bearer("a-second-token-for-the-shop"),
                            timeout=30).status_code == 200
        assert requests.get(base + "/healthz", timeout=30).status_code == 200
        assert requests.get(base + "/static/web.css", timeout=30).status_code == 200


def test_tokens_are_compared_whole_against_every_token():
    guard = BearerTokens(None, (TOKEN, "another-token-of-the-file"))
    assert guard.accepts(b"Bearer " + TOKEN.encode())
    assert guard.accepts(b"bearer another-token-of-the-file")
    assert not guard.accepts(b"Bearer " + TOKEN[:10].encode())
    assert not guard.accepts(b"Bearer ")
    assert not guard.accepts(None)


def test_the_token_file_is_read_line_by_line_and_checked(tmp_path):
    good = tmp_path / "tokens.txt"
    good.write_text(f"# the intranet\n{TOKEN}\n\n  another-token-of-the-file  \n")
    assert read_token_file(good) == (TOKEN, "another-token-of-the-file")
    for text, words in (("", "no token"), ("# only a comment\n", "no token"),
                        ("short\n", "shorter than 16")):
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=words):
            read_token_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        read_token_file(tmp_path / "missing.txt")


# --- CORS ---------------------------------------------------------------------------------

def test_a_named_site_may_call_the_api_and_no_other(gallery, home):
    site = "https://museum.example"
    with running_server(gallery, WebConfig(home=home, cors_origins=(site,))) as (base, _):
        preflight = requests.options(base + "/api/search", timeout=30, headers={
            "Origin": site, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == site
        ok = requests.get(base + "/api/search", headers={"Origin": site}, timeout=30)
        assert ok.headers["Access-Control-Allow-Origin"] == site
        other = requests.get(base + "/api/search", timeout=30,
                             headers={"Origin": "https://elsewhere.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
