"""Fetch an image the user gave by URL, as carefully as an upload is read.

Only http(s). The host is resolved once, every address it resolves to is checked (unless
``allow_private`` is set, none may be loopback, private, link-local such as the cloud
metadata service, multicast, reserved or unspecified, IPv4-mapped forms included), and
the connection goes to one of those checked addresses itself: the URL's host name is
never looked up a second time, so a DNS answer that changes between the check and the
connect (DNS rebinding) cannot send the request to this machine or the LAN. The request
still carries the URL's own Host header, and for https the TLS handshake names the host
(SNI) and the certificate is verified against it, as if the name had been connected to.

No redirects are followed (a redirect could lead to such an address); at most
``max_bytes`` are read, within ``timeout`` seconds. The bytes then go through the same
checks as an upload.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from pgallery.web.errors import BadImageUrl, UploadTooLarge

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """The addresses a host name (or literal address) resolves to, each once, in order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise BadImageUrl(f"cannot resolve the image URL's host {host[:100]!r}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public(address: str) -> bool:
    """True for an address on the public internet; False for this machine, the LAN,
    link-local, multicast, reserved, unspecified and documentation/shared ranges."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])   # fe80::1%eth0: the scope aside
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped                                 # ::ffff:127.0.0.1 is loopback
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified
                                 or ip.is_loopback or ip.is_link_local or ip.is_private)


def checked_addresses(host: str, port: int, allow_private: bool,
                      resolver: Resolver = resolve) -> list[str]:
    """Resolve ``host`` once; its addresses if every one may be fetched from."""
    addresses = resolver(host, port)
    if not addresses:
        raise BadImageUrl(f"cannot resolve the image URL's host {host[:100]!r}")
    for address in addresses:
        try:
            public = is_public(address)
        except ValueError:
            raise BadImageUrl(f"the image URL's host resolved to {address[:60]!r}, "
                              "which is not an address") from None
        if not allow_private and not public:
            raise BadImageUrl("the image URL points at a private or local address; "
                              "give a public URL, or upload the file")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to ``address`` whose Host header is still the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """The same over TLS: SNI and the certificate check use the URL's host, not the
    address connected to."""

    default_port = 443

    def __init__(self, host: str, port: int, address: str, timeout: float,
                 context: ssl.SSLContext):
        super().__init__(host, port, address, timeout)
        self.context = context

    def connect(self):
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


def fetch_image(url: str, *, max_bytes: int, timeout: float, allow_private: bool,
                resolver: Resolver = resolve, tls: ssl.SSLContext | None = None) -> bytes:
    """The bytes at ``url`` (see the module's doc for every check). ``resolver`` and
    ``tls`` (the CA store to verify against) are there for tests."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadImageUrl("the image URL must be an http:// or https:// address")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadImageUrl("the image URL has a bad port") from None
    host = parts.hostname
    addresses = checked_addresses(host, port, allow_private, resolver)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout
    last_error = "no address answered"
    for address in addresses:
        if parts.scheme == "https":
            conn = _PinnedHTTPSConnection(host, port, address, timeout,
                                          tls or ssl.create_default_context())
        else:
            conn = _PinnedHTTPConnection(host, port, address, timeout)
        try:
            try:
                conn.connect()
            except ssl.SSLError as exc:
                raise BadImageUrl(f"cannot fetch the image URL ({type(exc).__name__}: the "
                                  "server's certificate is not valid for its host)") from None
            except OSError as exc:
                last_error = type(exc).__name__
                continue                       # another checked address may answer
            return _read(conn, path, max_bytes, deadline)
        except (OSError, http.client.HTTPException) as exc:
            raise BadImageUrl(f"cannot fetch the image URL ({type(exc).__name__})") from None
        finally:
            conn.close()
    raise BadImageUrl(f"cannot fetch the image URL ({last_error})")


def _read(conn: http.client.HTTPConnection, path: str, max_bytes: int,
          deadline: float) -> bytes:
    conn.putrequest("GET", path)           # Host: the URL's host (and port, if not default)
    conn.putheader("User-Agent", "pgallery")
    conn.endheaders()
    response = conn.getresponse()
    if 300 <= response.status < 400:
        raise BadImageUrl("the image URL redirects; give the image's own address")
    if response.status != 200:
        raise BadImageUrl(f"the image URL answered HTTP {response.status}")
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise UploadTooLarge(f"the image is over the {max_bytes // 1048576} MB limit")
    data = bytearray()
    while chunk := response.read(65536):
        data += chunk
        if len(data) > max_bytes:
            raise UploadTooLarge(f"the image is over the {max_bytes // 1048576} MB limit")
        if time.monotonic() > deadline:
            raise BadImageUrl("fetching the image URL took too long")
    return bytes(data)
