"""uvicorn's HTTP protocol with the bounds it lacks: how long a request's headers may take
to arrive, and how large its URL and headers may be.

uvicorn times out a keep-alive connection between requests, but not a connection that
never sends a request, nor a request whose headers trickle in a byte at a time
(slowloris): each would hold a socket for ever. Nor does its httptools parser bound the
URL or the headers. This subclass adds:

* ``header_timeout``: from the connection (or the first byte of the next request) to the
  end of the headers; past it the connection is closed (with 408 if a request began);
* ``max_url`` bytes of request target (414) and ``max_headers`` bytes of headers (431),
  answered before the request reaches the app, and the connection closed.

    config = uvicorn.Config(app, http=PROTOCOL)
    bound(config, header_timeout=10, max_url=8192, max_headers=32768)

The bounds travel on the uvicorn Config (so worker processes, which are handed a pickled
Config and import the protocol by name, get them too).
"""

from __future__ import annotations

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REASONS = {408: b"Request Timeout", 414: b"URI Too Long",
           431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a request already answered."""


PROTOCOL = "pgallery.web.protocol:BoundedHttpToolsProtocol"   # uvicorn.Config(http=...)


def bound(config, header_timeout: float = 10.0, max_url: int = 8192,
          max_headers: int = 32 * 1024):
    """Set the protocol's bounds on a uvicorn Config (whose ``http`` is PROTOCOL)."""
    config.pgallery_bounds = (header_timeout, max_url, max_headers)
    return config


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _header_timer = None
    _header_bytes = 0
    _refused = False
    _began = False

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self._bounds = getattr(config, "pgallery_bounds", None) or (10.0, 8192, 32768)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._bounds[0], self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._began:
            self._refuse(408, b"the request headers did not arrive in time")
        else:
            self.transport.close()

    def _refuse(self, status: int, message: bytes) -> None:
        self._refused = True
        self._disarm()
        body = b'{"error": "' + message + b'"}'
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, REASONS[status], len(body), body))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, but that a callback which answered (_Refused) is no 400
        if self._refused:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Refused):
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._began = True
        self._arm()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self._bounds[1]:
            self._refuse(414, b"the URL is too long")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self._bounds[2]:
            self._refuse(431, b"the request headers are too large")
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._began = False
        super().on_headers_complete()


__all__ = ["PROTOCOL", "BoundedHttpToolsProtocol", "bound"]
