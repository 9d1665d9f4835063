"""What keeps one client from starving the rest: plain ASGI middleware around the app.

    Limits(app, max_concurrent=32, rate_limit=10.0, request_timeout=30)

* ``max_concurrent``: requests being answered at once. One past it is answered at once
  with 503 and ``Retry-After: 1`` (it is not queued: a queue only hides overload from the
  load balancer, which should send the request elsewhere).
* ``rate_limit``: requests a second per client address (a token bucket holding one
  second's worth, so a page and its thumbnails may come together); past it, 429 with
  ``Retry-After`` the seconds until the next request is allowed. The client is the
  address uvicorn gives the request (the proxy's X-Forwarded-For only when
  ``--proxy-headers`` trusts that proxy).
* ``request_timeout``: seconds a request's body may take to arrive (a client that
  trickles an upload holds a slot); past it, 408.
* ``max_url``: a path and query over this many bytes is 414 before any work.

The health checks (/healthz, /readyz) and the static files pass every limit: a load
balancer must see a busy server as alive. Refusals are the API's one-line JSON errors.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict

import orjson

from pgallery.web.errors import RequestTimeout

log = logging.getLogger("pgallery.web")
EXEMPT = ("/healthz", "/readyz", "/static/")
MAX_CLIENTS = 10_000       # rate-limit buckets kept (least recently seen dropped first)


async def refuse(send, status: int, message: str, headers: dict[str, str] | None = None):
    """Answer a request with ``{"error": message}`` from a middleware."""
    body = orjson.dumps({"error": message})
    raw = [(b"content-type", b"application/json"),
           (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class TokenBuckets:
    """One bucket per client: ``rate`` tokens a second, at most ``rate`` (at least 1) held."""

    def __init__(self, rate: float, clock=time.monotonic):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait(self, client: str) -> float:
        """0 if ``client`` may make a request now (and it is counted); else the seconds
        until it may."""
        now = self.clock()
        tokens, then = self.buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.rate)
        if tokens >= 1:
            self.buckets[client] = (tokens - 1, now)
            wait = 0.0
        else:
            self.buckets[client] = (tokens, now)
            wait = (1 - tokens) / self.rate
        while len(self.buckets) > MAX_CLIENTS:
            self.buckets.popitem(last=False)
        return wait


class Limits:
    def __init__(self, app, *, max_concurrent: int | None = None,
                 rate_limit: float | None = None, request_timeout: float | None = None,
                 max_url: int = 8192):
        self.app = app
        self.max_concurrent = max_concurrent
        self.buckets = TokenBuckets(rate_limit) if rate_limit else None
        self.request_timeout = request_timeout
        self.max_url = max_url
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT):
            return await self.app(scope, receive, send)
        if len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") \
                > self.max_url:
            return await refuse(send, 414, f"the URL is over {self.max_url} bytes")
        if self.buckets is not None:
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = self.buckets.wait(client)
            if wait:
                return await refuse(send, 429, "too many requests from this address; "
                                    "slow down", {"Retry-After": str(math.ceil(wait))})
        if self.max_concurrent is not None and self.in_flight >= self.max_concurrent:
            return await refuse(send, 503, "the server is busy; try again in a moment",
                                {"Retry-After": "1"})
        self.in_flight += 1
        try:
            await self.app(scope, self._timed(receive), send)
        except asyncio.CancelledError:
            # uvicorn cancels what still runs when the graceful shutdown's time is up: the
            # bound doing its work, said in one line rather than as a traceback
            log.warning("cut at shutdown: %s %s", scope["method"], scope["path"][:200])
        finally:
            self.in_flight -= 1

    def _timed(self, receive):
        """``receive`` that fails a body not in within request_timeout seconds (408)."""
        if not self.request_timeout:
            return receive
        deadline = time.monotonic() + self.request_timeout
        body_done = False

        async def timed_receive():
            nonlocal body_done
            if body_done:           # after the body: only a disconnect, whenever it comes
                return await receive()
            left = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.001))
            except asyncio.TimeoutError:
                raise RequestTimeout(f"the request did not arrive within "
                                     f"{self.request_timeout:g} s") from None
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message
        return timed_receive
