"""`pgallery serve`: the search page and its JSON API, on this machine's loopback by default.

The server uses the same database resolution as every command (the embedded PostgreSQL, or
DATABASE_URL), needs the schema at head, and searches as pgallery_reader (web/database.py).

With ``--workers N`` (N > 1) this process resolves the database once (starting the
embedded PostgreSQL if it is the one used), binds the socket, and runs N uvicorn worker
processes that share it and are handed the resolved URL: no worker starts a database of
its own. Each worker has its own connection pool; uploads are shared between them through
a private directory this process makes and removes (web/uploads.py), and the thumbnail
cache is written atomically, so two workers making the same thumbnail is harmless.

With ``--read-url URL`` (hot standbys, a libpq multi-host URL) the searches go there and
the prompt cache to the primary (web/database.py); both are checked here before the
socket is bound, so a standby given as the primary, or no standby up, is one line.

On a network (README.md, "Putting it on a network"): /healthz and /readyz for a load
balancer; --max-concurrent and --rate-limit (web/limits.py); header, request and
keep-alive timeouts and URL/header size bounds (web/protocol.py); an access log of one
line a request, as text or JSON lines (web/access_log.py); --token-file (web/tokens.py);
--cors-origin; --proxy-headers behind a reverse proxy that terminates TLS.
"""

from __future__ import annotations

import enum
import functools
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import webbrowser
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from pgallery import migrations
from pgallery.commands.common import settings
from pgallery.database import resolve_url
from pgallery.database.multihost import check as check_read_scale, reader_conninfo
from pgallery.errors import ArgError, ConfigError
from pgallery.rendering.tables import console, err_console
from pgallery.web.config import MB, WebConfig

class LogFormat(str, enum.Enum):
    text = "text"
    json = "json"


RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*s(?:ec(?:ond)?)?\s*", re.IGNORECASE)


def parse_rate(text: str | None) -> float | None:
    """'10/s' -> 10.0 (requests a second); None stays None."""
    if text is None:
        return None
    match = RATE.fullmatch(text)
    if not match or float(match[1]) <= 0:
        raise ArgError(f"--rate-limit must look like 10/s (requests a second), got {text!r}")
    return float(match[1])


def log_config(log_format: str) -> dict:
    """uvicorn's logging, all on stderr: its own lines, pgallery.web's, and the access log
    (ours, web/access_log.py; uvicorn's is off), as text or each as a JSON line."""
    if log_format == "json":
        server = access = {"()": "pgallery.web.access_log.JsonLines"}
    else:
        server = {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"}
        access = {"format": "%(asctime)s %(message)s", "datefmt": "%Y-%m-%dT%H:%M:%S%z"}
    def handler(formatter: str) -> dict:
        return {"class": "logging.StreamHandler", "formatter": formatter,
                "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"server": server, "access": access},
        "handlers": {"server": handler("server"), "access": handler("access")},
        "loggers": {
            "uvicorn": {"handlers": ["server"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "pgallery.web": {"handlers": ["server"], "level": "INFO", "propagate": False},
            "pgallery.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a busy port is a one-line error (and port 0
    picks a free one, whose number we then print)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ArgError(f"cannot resolve --host {host!r}") from None
    family, _, _, _, address = infos[0]
    # IPPROTO_TCP said out loud: asyncio sets TCP_NODELAY only on sockets whose proto is
    # TCP, and without it every keep-alive answer waited ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                          "choose another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(
        help="Address to listen on. 127.0.0.1 keeps it to this machine; 0.0.0.0 opens it "
             "to your network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535,
                                      help="Port (0: any free port).")] = 8000,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")
                            ] = False,
    max_upload_mb: Annotated[int, typer.Option(
        min=1, max=200, envvar="PGALLERY_MAX_UPLOAD_MB",
        help="Largest image upload, in MB.")] = 20,
    max_megapixels: Annotated[int, typer.Option(
        min=1, max=178, help="Largest upload in megapixels (decompression bombs).")] = 40,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log",
        help="Log one line per request on stderr: client, method, path and query, status, "
             "bytes, milliseconds (never a body or a header, so never a token).")] = True,
    log_format: Annotated[LogFormat, typer.Option(
        help="text, or json: every log line (access and server) a JSON object, for a log "
             "shipper.")] = LogFormat.text,
    workers: Annotated[int, typer.Option(
        min=1, max=64,
        help="Worker processes answering requests, each with its own database connections. "
             "The database is resolved (the embedded one started) once, by this process. "
             "More workers help only where cores are free: on 2 shared cores, 2 were within "
             "a few percent of 1 (bench/README.md).")] = 1,
    read_url: Annotated[Optional[str], typer.Option(
        envvar="PGALLERY_READ_URL", metavar="URL", rich_help_panel="Read scale",
        help="Send searches to these servers (hot standbys), a libpq URL with one or more "
             "hosts: postgresql://user:pw@host1:5433,host2:5434/pgallery. Each pooled "
             "connection picks a host at random (load_balance_hosts=random), standbys first "
             "(target_session_attrs=prefer-standby), unless the URL says otherwise; the "
             "prompt cache is still written to the primary (DATABASE_URL or the embedded "
             "server). `pgallery db replica url --all` prints one for the local standbys.")
                         ] = None,
    pool_size: Annotated[int, typer.Option(
        min=1, max=100,
        help="Database connections for searches, per worker: requests beyond it wait "
             "their turn.")] = 8,
    max_concurrent: Annotated[int, typer.Option(
        min=0, max=100_000, rich_help_panel="On a network",
        help="Requests answered at once (per worker); one more is answered 503 with "
             "Retry-After at once, not queued. 0: no limit.")] = 0,
    rate_limit: Annotated[Optional[str], typer.Option(
        metavar="N/s", rich_help_panel="On a network",
        help="Requests a second per client address (a page and its thumbnails count "
             "each); past it 429 with Retry-After. Example: --rate-limit 20/s.")] = None,
    request_timeout: Annotated[float, typer.Option(
        min=1, max=3600, rich_help_panel="On a network",
        help="Seconds a request's body (an upload) may take to arrive; then 408.")] = 60,
    header_timeout: Annotated[float, typer.Option(
        min=1, max=600, rich_help_panel="On a network",
        help="Seconds from connecting to the end of a request's headers; a connection "
             "that sends nothing, or trickles, is closed.")] = 10,
    keep_alive_timeout: Annotated[int, typer.Option(
        min=1, max=600, rich_help_panel="On a network",
        help="Seconds an idle keep-alive connection stays open.")] = 5,
    shutdown_timeout: Annotated[int, typer.Option(
        min=0, max=600, rich_help_panel="On a network",
        help="On Ctrl-C / SIGTERM: seconds to let requests in flight finish before they "
             "are cut.")] = 10,
    token_file: Annotated[Optional[Path], typer.Option(
        rich_help_panel="On a network",
        help="A file of bearer tokens, one a line: uploads and the JSON API then need "
             "'Authorization: Bearer TOKEN' (401 otherwise); pages stay readable.")] = None,
    private: Annotated[bool, typer.Option(
        "--private", rich_help_panel="On a network",
        help="With --token-file: the pages and pictures need a token too.")] = False,
    cors_origin: Annotated[Optional[list[str]], typer.Option(
        metavar="URL", rich_help_panel="On a network",
        help="A site whose pages may call the API (https://museum.example); repeat for "
             "more.")] = None,
    proxy_headers: Annotated[bool, typer.Option(
        "--proxy-headers", rich_help_panel="On a network",
        help="Behind a reverse proxy: take the client's address and scheme from "
             "X-Forwarded-For / X-Forwarded-Proto, only from --forwarded-allow-ips.")
                         ] = False,
    forwarded_allow_ips: Annotated[str, typer.Option(
        rich_help_panel="On a network",
        help="Proxies trusted with --proxy-headers: comma-separated addresses or "
             "networks.")] = "127.0.0.1",
):
    """Serve the search page (and its JSON API) in a browser: prompts, images, filters,
    more like this. Ctrl-C stops it.

    Example: `pgallery serve --open`, then http://127.0.0.1:8000/

    On a network, behind a proxy that terminates TLS:
    `pgallery serve --host 0.0.0.0 --token-file tokens.txt --max-concurrent 64
    --rate-limit 20/s --proxy-headers --log-format json`

    Searches on two hot standbys, the prompt cache on the primary:
    `pgallery serve --read-url "$(pgallery db replica url --all)"`
    """
    import uvicorn

    from pgallery.web import create_app

    from pgallery.web.protocol import PROTOCOL, bound
    from pgallery.web.tokens import read_token_file

    log_format = LogFormat(log_format).value
    rate = parse_rate(rate_limit)
    if private and token_file is None:
        raise ArgError("--private needs --token-file (who may read the pages?)")
    tokens = read_token_file(token_file) if token_file is not None else ()
    s = settings(ctx)
    if read_url is not None:
        if not read_url.strip():
            raise ArgError("--read-url is empty; give a libpq URL of the standbys")
        reader_conninfo(read_url)       # malformed, or a libpq too old: one line, now
    url = resolve_url(s)
    migrations.require_current(url)
    if read_url:
        check_read_scale(url, read_url)  # the primary writable, a standby up: one line
    config = WebConfig(home=s.home, max_upload_bytes=max_upload_mb * MB,
                       max_pixels=max_megapixels * 1_000_000, pool_size=pool_size,
                       max_concurrent=max_concurrent or None, rate_limit=rate,
                       request_timeout=request_timeout, tokens=tokens, private=private,
                       cors_origins=tuple(cors_origin or ()),
                       access_log=log_format if access_log else None,
                       read_url=read_url or None)
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if bound_host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
        err_console.print(f"listening on every address ({bound_host}): anyone on your "
                          "network can search this collection")
    address = f"http://{shown}:{bound_port}/"
    options = dict(log_level="info", access_log=False, server_header=False,
                   log_config=log_config(log_format), http=PROTOCOL,
                   timeout_keep_alive=keep_alive_timeout, proxy_headers=proxy_headers,
                   forwarded_allow_ips=forwarded_allow_ips,
                   timeout_graceful_shutdown=shutdown_timeout, lifespan="on")
    bounds = dict(header_timeout=header_timeout, max_url=config.max_url_bytes)

    def announce():
        console.print(f"pgallery serving on [bold]{address}[/]  (Ctrl-C stops it)"
                      + (f" with {workers} worker processes" if workers > 1 else ""),
                      highlight=False)
        if open_browser and not webbrowser.open(address):
            err_console.print("no browser found; open the address yourself")

    if workers > 1:
        started = _run_workers(url, config, s, sock, workers, options, bounds, announce)
    else:
        server_config = bound(uvicorn.Config(create_app(url, config, s), **options), **bounds)
        started = _run_one(uvicorn.Server(server_config), sock, announce)
    if not started:
        raise typer.Exit(1)
    console.print("stopped")


class _Terminated(Exception):
    """SIGTERM, re-raised by uvicorn once it has shut down gracefully."""


def _on_sigterm(signum, frame):
    raise _Terminated


def _run_one(server, sock: socket.socket, announce) -> bool:
    """Serve in this process until Ctrl-C / SIGTERM; whether it started."""
    def wait_then_announce():
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            announce()

    threading.Thread(target=wait_then_announce, daemon=True).start()
    # uvicorn handles both signals itself (a graceful stop, bounded by --shutdown-timeout),
    # then raises the one it caught again with the handler it found: for SIGTERM that was
    # the default, which killed the process (-15) before it could say "stopped"
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Terminated):
        pass  # uvicorn shut down cleanly, then re-raised the signal it caught: that is a stop
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        sock.close()
    return server.started


def _run_workers(url: str, config: WebConfig, s, sock: socket.socket, workers: int,
                 options: dict, bounds: dict, announce) -> bool:
    """Serve with ``workers`` processes (uvicorn's supervisor) until SIGINT / SIGTERM.

    The workers are spawned with the app's factory and its arguments (the resolved URL,
    the limits, the settings), so none of them resolves or starts a database."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from pgallery.web import create_app
    from pgallery.web.protocol import bound

    shared = Path(tempfile.mkdtemp(prefix="pgallery-uploads-shared-"))
    os.chmod(shared, 0o700)
    config = replace(config, shared_uploads=shared)
    ready = threading.Event()

    class Supervisor(Multiprocess):
        def init_processes(self) -> None:
            super().init_processes()
            if all(p.wait_until_ready(120, self.should_exit) for p in self.processes):
                ready.set()
                announce()
            else:
                err_console.print("a worker did not start (see the lines above); stopping")
                self.should_exit.set()

    supervisor = Supervisor(bound(uvicorn.Config(functools.partial(create_app, url, config, s),
                                                 factory=True, workers=workers, **options),
                                  **bounds),
                            sockets=[sock])
    try:
        supervisor.run()
    finally:
        sock.close()
        shutil.rmtree(shared, ignore_errors=True)
    return ready.is_set()
