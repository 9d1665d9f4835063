"""`pgallery serve`: the search page and its JSON API, on this machine's loopback by default.

The server uses the same database resolution as every command (the embedded PostgreSQL, or
DATABASE_URL), needs the schema at head, and searches as pgallery_reader (web/database.py).

With ``--workers N`` (N > 1) this process resolves the database once (starting the
embedded PostgreSQL if it is the one used), binds the socket, and runs N uvicorn worker
processes that share it and are handed the resolved URL: no worker starts a database of
its own. Each worker has its own connection pool; uploads are shared between them through
a private directory this process makes and removes (web/uploads.py), and the thumbnail
cache is written atomically, so two workers making the same thumbnail is harmless.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
import tempfile
import threading
import webbrowser
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from pgallery import migrations
from pgallery.commands.common import settings
from pgallery.database import resolve_url
from pgallery.errors import ArgError, ConfigError
from pgallery.rendering.tables import console, err_console
from pgallery.web.config import MB, WebConfig


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
        "--access-log/--no-access-log", help="Log one line per request.")] = True,
    workers: Annotated[int, typer.Option(
        min=1, max=64,
        help="Worker processes answering requests, each with its own database connections. "
             "The database is resolved (the embedded one started) once, by this process. "
             "More workers help only where cores are free: on 2 shared cores, 2 were within "
             "a few percent of 1 (bench/README.md).")] = 1,
    pool_size: Annotated[int, typer.Option(
        min=1, max=100,
        help="Database connections for searches, per worker: requests beyond it wait "
             "their turn.")] = 8,
):
    """Serve the search page (and its JSON API) in a browser: prompts, images, filters,
    more like this. Ctrl-C stops it.

    Example: `pgallery serve --open`, then http://127.0.0.1:8000/
    """
    import uvicorn

    from pgallery.web import create_app

    s = settings(ctx)
    url = resolve_url(s)
    migrations.require_current(url)
    config = WebConfig(home=s.home, max_upload_bytes=max_upload_mb * MB,
                       max_pixels=max_megapixels * 1_000_000, pool_size=pool_size)
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if bound_host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
        err_console.print(f"listening on every address ({bound_host}): anyone on your "
                          "network can search this collection")
    address = f"http://{shown}:{bound_port}/"
    options = dict(log_level="info", access_log=access_log, server_header=False,
                   proxy_headers=False, timeout_graceful_shutdown=5, lifespan="on")
    logging.getLogger("pgallery.web").setLevel(logging.INFO)

    def announce():
        console.print(f"pgallery serving on [bold]{address}[/]  (Ctrl-C stops it)"
                      + (f" with {workers} worker processes" if workers > 1 else ""),
                      highlight=False)
        if open_browser and not webbrowser.open(address):
            err_console.print("no browser found; open the address yourself")

    if workers > 1:
        started = _run_workers(url, config, s, sock, workers, options, announce)
    else:
        started = _run_one(uvicorn.Server(uvicorn.Config(create_app(url, config, s),
                                                         **options)), sock, announce)
    if not started:
        raise typer.Exit(1)
    console.print("stopped")


def _run_one(server, sock: socket.socket, announce) -> bool:
    """Serve in this process until Ctrl-C / SIGTERM; whether it started."""
    def wait_then_announce():
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            announce()

    threading.Thread(target=wait_then_announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn shut down cleanly, then re-raised the Ctrl-C it caught: that is a stop
    finally:
        sock.close()
    return server.started


def _run_workers(url: str, config: WebConfig, s, sock: socket.socket, workers: int,
                 options: dict, announce) -> bool:
    """Serve with ``workers`` processes (uvicorn's supervisor) until SIGINT / SIGTERM.

    The workers are spawned with the app's factory and its arguments (the resolved URL,
    the limits, the settings), so none of them resolves or starts a database."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from pgallery.web import create_app

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

    supervisor = Supervisor(uvicorn.Config(functools.partial(create_app, url, config, s),
                                           factory=True, workers=workers, **options),
                            sockets=[sock])
    try:
        supervisor.run()
    finally:
        sock.close()
        shutil.rmtree(shared, ignore_errors=True)
    return ready.is_set()
