"""`pgallery serve`: the search page and its JSON API, on this machine's loopback by default.

The server uses the same database resolution as every command (the embedded PostgreSQL, or
DATABASE_URL), needs the schema at head, and searches as pgallery_reader (web/database.py).
"""

from __future__ import annotations

import logging
import socket
import threading
import webbrowser
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
                       max_pixels=max_megapixels * 1_000_000)
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if bound_host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
        err_console.print(f"listening on every address ({bound_host}): anyone on your "
                          "network can search this collection")
    address = f"http://{shown}:{bound_port}/"
    app = create_app(url, config, s)
    server = uvicorn.Server(uvicorn.Config(
        app, log_level="info", access_log=access_log, server_header=False,
        proxy_headers=False, timeout_graceful_shutdown=5, lifespan="on"))
    logging.getLogger("pgallery.web").setLevel(logging.INFO)

    def announce():
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            console.print(f"pgallery serving on [bold]{address}[/]  (Ctrl-C stops it)",
                          highlight=False)
            if open_browser and not webbrowser.open(address):
                err_console.print("no browser found; open the address yourself")

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn shut down cleanly, then re-raised the Ctrl-C it caught: that is a stop
    finally:
        sock.close()
    if not server.started:
        raise typer.Exit(1)
    console.print("stopped")
