"""The access log: one line a request on stderr, as text or as JSON lines (a log shipper's).

    127.0.0.1 "GET /api/search?text=sea HTTP/1.1" 200 5120 3.1ms
    {"time": "2026-12-04T18:50:01.123Z", "client": "127.0.0.1", "method": "GET", ...}

A line holds the client's address, the method, the path and query exactly as sent (still
percent-encoded, so a line never holds a control character a request smuggled in), the
status, the bytes of the answer's body and the time taken. Never a request body, never a
header (so never the bearer token or a cookie).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import orjson

MAX_TARGET = 2048       # characters of path and query a line keeps

log = logging.getLogger("pgallery.access")


def _printable(raw: bytes) -> str:
    return "".join(c if " " < c < "\x7f" else f"%{ord(c):02X}"
                   for c in raw.decode("latin-1"))[:MAX_TARGET]


class AccessLog:
    def __init__(self, app, *, json_lines: bool = False, logger: logging.Logger = log):
        self.app = app
        self.json_lines = json_lines
        self.log = logger

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began = time.perf_counter()
        status, size = 0, 0

        async def counting_send(message):
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.log.info(self.line(scope, status or 500, size,
                                    (time.perf_counter() - began) * 1000))

    def line(self, scope, status: int, size: int, ms: float) -> str:
        client = (scope.get("client") or ("-", 0))[0]
        path = _printable(scope.get("raw_path") or scope["path"].encode())
        query = _printable(scope.get("query_string") or b"")
        if self.json_lines:
            now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            return orjson.dumps({
                "time": now.replace("+00:00", "Z"), "client": client,
                "method": scope["method"], "path": path, "query": query,
                "http": scope.get("http_version", "1.1"), "status": status, "bytes": size,
                "ms": round(ms, 2)}).decode()
        target = path + ("?" + query if query else "")
        return (f'{client} "{scope["method"]} {target} HTTP/{scope.get("http_version", "1.1")}"'
                f" {status} {size} {ms:.1f}ms")


class JsonLines(logging.Formatter):
    """The server's other log lines (uvicorn's, pgallery.web's) as JSON, for --log-format
    json; the access log's own lines are JSON already and pass through."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == log.name:
            return message
        when = datetime.fromtimestamp(record.created, timezone.utc)
        out = {"time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "level": record.levelname.lower(), "logger": record.name,
               "message": message}
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return orjson.dumps(out).decode()
