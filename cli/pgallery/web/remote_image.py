"""Fetch an image the user gave by URL, as carefully as an upload is read.

Only http(s); the host must resolve to public addresses (not this machine, the LAN or
link-local metadata services) unless ``allow_private`` is set; no redirects are followed
(a redirect could lead to such an address); at most ``max_bytes`` are read, within
``timeout`` seconds. The bytes then go through the same checks as an upload.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import requests

from pgallery.web.errors import BadImageUrl, UploadTooLarge


def _check_host(host: str, port: int, allow_private: bool) -> None:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise BadImageUrl(f"cannot resolve the image URL's host {host[:100]!r}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not allow_private and not address.is_global:
            raise BadImageUrl("the image URL points at a private or local address; "
                              "give a public URL, or upload the file")


def fetch_image(url: str, *, max_bytes: int, timeout: float, allow_private: bool) -> bytes:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadImageUrl("the image URL must be an http:// or https:// address")
    _check_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                allow_private)
    try:
        with requests.get(url, stream=True, timeout=timeout, allow_redirects=False,
                          headers={"User-Agent": "pgallery"}) as response:
            if response.is_redirect:
                raise BadImageUrl("the image URL redirects; give the image's own address")
            if response.status_code != 200:
                raise BadImageUrl(f"the image URL answered HTTP {response.status_code}")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise UploadTooLarge(f"the image is over the {max_bytes // 1048576} MB limit")
            data = bytearray()
            for chunk in response.iter_content(65536):
                data += chunk
                if len(data) > max_bytes:
                    raise UploadTooLarge(f"the image is over the {max_bytes // 1048576} MB "
                                         "limit")
            return bytes(data)
    except requests.RequestException as exc:
        raise BadImageUrl(f"cannot fetch the image URL ({type(exc).__name__})") from None
