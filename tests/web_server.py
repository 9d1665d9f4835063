"""Test helper: a real `pgallery serve` app under uvicorn on a free loopback port, and a
small gallery loaded into a database for it.

    with running_server(db_url, WebConfig(home=tmp)) as base:      # "http://127.0.0.1:PORT"
        requests.get(base + "/api/search", params={"similar": "00003-...jpg"})

The server runs in a thread of the test process (so tests can read its upload store and
logs), over real sockets: every request is real HTTP through uvicorn.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import uvicorn

from pgallery.config import Settings
from pgallery.database import connect
from pgallery.loading.pipeline import load_images
from pgallery.loading.semart import read_semart_csv
from pgallery.demo import generate
from pgallery.web import WebConfig, create_app
from pgallery.web.protocol import PROTOCOL, bound


@contextmanager
def running_server(db_url: str, config: WebConfig, settings: Settings | None = None,
                   bounds: dict | None = None, **options):
    """``bounds`` (header_timeout, max_url, max_headers): serve with `pgallery serve`'s
    bounded HTTP protocol (web/protocol.py); ``options``: more uvicorn settings."""
    settings = settings or Settings(database_url=db_url)
    app = create_app(db_url, config, settings)
    if bounds is not None:
        options["http"] = PROTOCOL
    server_config = uvicorn.Config(app, log_level="warning", access_log=False,
                                   lifespan="on", server_header=False, **options)
    if bounds is not None:
        bound(server_config, **bounds)
    server = uvicorn.Server(server_config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # NODELAY
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def load_sample_gallery(db_url: str, directory: Path, count: int = 40, provider=None) -> Path:
    """The demo's procedural gallery (count paintings) embedded with ``provider`` (default
    the offline local one) into db_url; returns the gallery's directory."""
    from pgallery.providers import get_provider

    csv = generate(directory, count=count, seed=0)
    provider = provider or get_provider("local")
    with connect(db_url) as conn:
        load_images(conn, provider, read_semart_csv(csv, directory / "images"))
    return directory


def table_digest(db_url: str) -> str:
    """A digest of every row pgallery keeps, to prove a request changed nothing."""
    parts = []
    with psycopg.connect(db_url) as conn:
        for table, order in (("painting", "painting_id"),
                             ("painting_embedding", "painting_id, model"),
                             ("embedding_model", "name"),
                             ("prompt_embedding", "model, prompt"),
                             ("embedding_failure", "1")):
            rows = conn.execute(f"SELECT md5(string_agg(t::text, '|' ORDER BY {order})),"
                                f" count(*) FROM {table} t").fetchone()
            parts.append(f"{table}:{rows[0]}:{rows[1]}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
