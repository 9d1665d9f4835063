"""Fetch an image by http(s) URL: the one fetcher, its address policy a parameter.

    data = fetch(url, policy=AddressPolicy.PUBLIC_ONLY, max_bytes=20 << 20, timeout=10)

Only http(s). The host is resolved once and every address it resolves to is checked
against the policy: ``PUBLIC_ONLY`` (for what strangers send: the web app) refuses
loopback, private, link-local (such as the cloud metadata service), multicast, reserved,
unspecified and documentation/shared addresses, IPv4-mapped forms included; ``ANY`` (the
CLI, whose user may serve images from this machine or the LAN) refuses none. The
connection then goes to one of the checked addresses itself: the URL's host name is never
looked up a second time, so a DNS answer that changes between the check and the connect
(DNS rebinding) cannot send the request anywhere the policy refused. The request still
carries the URL's own Host header, and for https the TLS handshake names the host (SNI)
and the certificate is verified against it, as if the name had been connected to.

Under ``PUBLIC_ONLY`` redirects are refused; under ``ANY`` up to ``MAX_REDIRECTS`` are
followed, each target resolved and connected to the same way. At most ``max_bytes`` are
read, within ``timeout`` seconds in all. Failures are typed (pgallery.errors):
BadImageUrl for a URL that may not be fetched (not http(s), refused address, redirect,
certificate), ImageTooLarge over ``max_bytes``, ImageDownloadFailed for the rest
(``retryable`` for 429, 5xx, network errors and timeouts). Each message starts with the
URL, as every image error starts with the image's name.
"""

from __future__ import annotations

import enum
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import quote, urljoin, urlsplit

from pgallery.errors import BadImageUrl, ImageDownloadFailed, ImageTooLarge

Resolver = Callable[[str, int], list[str]]
MAX_REDIRECTS = 5
LABEL_CHARS = 200                # of a URL, in messages
URL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # kept as they are in a request's path (as requests does)


class AddressPolicy(enum.Enum):
    """Which network addresses an image URL may lead to."""

    ANY = "any"                  # every address: this machine and the LAN included (CLI)
    PUBLIC_ONLY = "public-only"  # public internet addresses only, no redirects (web)

    def allows(self, address: str) -> bool:
        return self is AddressPolicy.ANY or is_public(address)

    @property
    def follows_redirects(self) -> bool:
        return self is AddressPolicy.ANY


def is_url(source: object) -> bool:
    """An http(s) URL (fetched by the intake, or forwarded by a provider that can)."""
    return isinstance(source, str) and source[:8].lower().startswith(("http://", "https://"))


def label_of(url: str) -> str:
    """The URL as it starts a message (long ones cut)."""
    return url if len(url) <= LABEL_CHARS else url[:LABEL_CHARS] + "..."


def resolve(host: str, port: int) -> list[str]:
    """The addresses a host name (or literal address) resolves to, each once, in order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public(address: str) -> bool:
    """True for an address on the public internet; False for this machine, the LAN,
    link-local, multicast, reserved, unspecified and documentation/shared ranges."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])   # fe80::1%eth0: the scope aside
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped                                 # ::ffff:127.0.0.1 is loopback
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified
                                 or ip.is_loopback or ip.is_link_local or ip.is_private)


def checked_addresses(label: str, host: str, port: int, policy: AddressPolicy,
                      resolver: Resolver = resolve) -> list[str]:
    """Resolve ``host`` once; its addresses if the policy allows every one."""
    addresses = resolver(host, port)
    if not addresses:
        raise ImageDownloadFailed(f"{label}: cannot resolve the host {host[:100]!r}",
                                  retryable=True)
    for address in addresses:
        try:
            allowed = policy.allows(address)
        except ValueError:
            raise BadImageUrl(f"{label}: the host resolved to {address[:60]!r}, which is not "
                              "an address") from None
        if not allowed:
            raise BadImageUrl(f"{label}: the image URL points at a private or local address; "
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


class _Redirect(Exception):
    def __init__(self, location: str):
        self.location = location


def fetch(url: str, *, policy: AddressPolicy, max_bytes: int, timeout: float,
          resolver: Resolver = resolve, tls: ssl.SSLContext | None = None) -> bytes:
    """The bytes at ``url`` (see the module's doc for every check). ``resolver`` and
    ``tls`` (the CA store to verify against) are there for tests."""
    label = label_of(url)
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        try:
            return _fetch_once(url, label, policy, max_bytes, deadline, resolver, tls)
        except _Redirect as redirect:
            if not policy.follows_redirects:
                raise BadImageUrl(f"{label}: the image URL redirects; give the image's own "
                                  "address") from None
            url = urljoin(url, redirect.location)
    raise ImageDownloadFailed(f"{label}: more than {MAX_REDIRECTS} redirects")


def _fetch_once(url: str, label: str, policy: AddressPolicy, max_bytes: int,
                deadline: float, resolver: Resolver, tls: ssl.SSLContext | None) -> bytes:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadImageUrl(f"{label}: the image URL must be an http:// or https:// address")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadImageUrl(f"{label}: the image URL has a bad port") from None
    host = parts.hostname
    addresses = checked_addresses(label, host, port, policy, resolver)
    path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                 safe=URL_SAFE)          # spaces, non-ASCII and control characters encoded
    timeout = max(0.1, deadline - time.monotonic())
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
                raise BadImageUrl(f"{label}: cannot fetch the image ({type(exc).__name__}: "
                                  "the server's certificate is not valid for its host)"
                                  ) from None
            except OSError as exc:
                last_error = type(exc).__name__
                continue                       # another checked address may answer
            return _read(conn, label, path, max_bytes, deadline)
        except (OSError, http.client.HTTPException) as exc:
            raise ImageDownloadFailed(f"{label}: download failed ({type(exc).__name__})",
                                      retryable=True) from None

        finally:
            conn.close()
    raise ImageDownloadFailed(f"{label}: download failed ({last_error})", retryable=True)


def _read(conn: http.client.HTTPConnection, label: str, path: str, max_bytes: int,
          deadline: float) -> bytes:
    conn.putrequest("GET", path)           # Host: the URL's host (and port, if not default)
    conn.putheader("User-Agent", "pgallery")
    conn.endheaders()
    response = conn.getresponse()
    if 300 <= response.status < 400 and response.getheader("Location"):
        raise _Redirect(response.getheader("Location"))
    if response.status != 200:
        raise ImageDownloadFailed(
            f"{label}: download failed with HTTP {response.status}",
            retryable=response.status == 429 or response.status >= 500)
    too_large = f"{label}: the image is over the {max_bytes / 1048576:g} MB limit"
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise ImageTooLarge(too_large)
    data = bytearray()
    while chunk := response.read(65536):
        data += chunk
        if len(data) > max_bytes:
            raise ImageTooLarge(too_large)
        if time.monotonic() > deadline:
            raise ImageDownloadFailed(f"{label}: the download took too long",
                                      retryable=True)
    return bytes(data)
