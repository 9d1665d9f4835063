"""The intake's one URL fetcher: an image URL is fetched from the address that was checked,
not from a second lookup, under the caller's address policy. Real HTTP and HTTPS servers
on 127.0.0.1, a resolver seam that changes its answer (DNS rebinding), and the policy on
real addresses."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pgallery.errors import BadImageUrl, ImageDownloadFailed, ImageTooLarge
from pgallery.intake.fetch import AddressPolicy, fetch as fetch_image, is_public, resolve

BODY = b"\xff\xd8 not really a jpeg, but bytes to fetch"
PUBLIC = "93.184.216.34"          # a global address (the check lets it through)


class Recorder(BaseHTTPRequestHandler):
    """Answers GET with BODY (or what the path asks for); remembers every request."""

    def do_GET(self):
        self.server.seen.append({"host": self.headers.get("Host"), "path": self.path})
        if self.path == "/missing":
            self.send_error(404)
            return
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.partition("?to=")[2]
                             or "http://127.0.0.1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = BODY * 100 if self.path == "/big" else BODY
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    """An HTTP server on 127.0.0.1 (port, the requests it saw, its accepted connections)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen = []
    server.connections = 0
    serve = server.process_request

    def counted(request, client_address):
        server.connections += 1
        serve(request, client_address)
    server.process_request = counted
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


class Rebinding:
    """A resolver whose answer changes after the first lookup, as a rebinding DNS does."""

    def __init__(self, first: list[str], later: list[str]):
        self.first, self.later, self.calls = first, later, []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.first if len(self.calls) == 1 else self.later


def fetch(url, resolver, allow_private, **kw):
    policy = AddressPolicy.ANY if allow_private else AddressPolicy.PUBLIC_ONLY
    return fetch_image(url, max_bytes=kw.pop("max_bytes", 1 << 20), timeout=2,
                       policy=policy, resolver=resolver, **kw)


def test_the_checked_address_is_connected_with_the_urls_host_header(local_server):
    port = local_server.server_address[1]
    resolver = Rebinding(["127.0.0.1"], ["192.0.2.1"])   # later: an address nobody answers
    data = fetch(f"http://images.example:{port}/a.jpg?size=1", resolver, allow_private=True)
    assert data == BODY
    assert resolver.calls == ["images.example"]              # resolved once, not again
    assert local_server.seen == [{"host": f"images.example:{port}", "path": "/a.jpg?size=1"}]


def test_a_rebinding_answer_never_reaches_this_machine(local_server):
    """Checked as public, then answering 127.0.0.1: the fetch goes to the public address
    (which fails here) and this machine's server never sees a connection."""
    port = local_server.server_address[1]
    resolver = Rebinding([PUBLIC], ["127.0.0.1"])
    with pytest.raises(ImageDownloadFailed, match="download failed"):
        fetch(f"http://rebind.example:{port}/a.jpg", resolver, allow_private=False)
    assert resolver.calls == ["rebind.example"]
    assert local_server.connections == 0


def test_every_address_of_the_host_is_checked(local_server):
    port = local_server.server_address[1]
    for answer in ([PUBLIC, "127.0.0.1"], ["10.1.2.3", PUBLIC], ["::ffff:127.0.0.1"]):
        with pytest.raises(BadImageUrl, match="private or local"):
            fetch(f"http://mixed.example:{port}/a.jpg", Rebinding(answer, answer),
                  allow_private=False)
    assert local_server.connections == 0


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1",
    "255.255.255.255", "192.0.2.1", "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1",
    "ff02::1", "ff0e::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2001:db8::1",
])
def test_addresses_that_are_not_public_are_refused(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert is_public(address)


def test_public_only_refuses_redirects_and_every_policy_oversized_answers(local_server):
    """Under PUBLIC_ONLY a redirect is refused, not followed (checked with a policy that
    lets the first hop through: the seam's one way to reach 127.0.0.1 as 'public')."""
    port = local_server.server_address[1]
    local = Rebinding(["127.0.0.1"], ["127.0.0.1"])
    public_looking = _PublicHere()
    with pytest.raises(BadImageUrl, match="redirects"):
        fetch_image(f"http://images.example:{port}/redirect", policy=public_looking,
                    max_bytes=1 << 20, timeout=2, resolver=local)
    with pytest.raises(ImageTooLarge, match="limit"):
        fetch(f"http://images.example:{port}/big", local, allow_private=True,
              max_bytes=len(BODY) * 10)
    assert [s["path"] for s in local_server.seen] == ["/redirect", "/big"]  # not followed


class _PublicHere:
    """PUBLIC_ONLY's rules, except that 127.0.0.1 counts as public (for the redirect test)."""

    follows_redirects = AddressPolicy.PUBLIC_ONLY.follows_redirects

    def allows(self, address):
        return address == "127.0.0.1" or AddressPolicy.PUBLIC_ONLY.allows(address)


def test_any_follows_redirects_each_hop_resolved_once_and_a_loop_ends(local_server):
    port = local_server.server_address[1]
    resolver = Rebinding(["127.0.0.1"], ["127.0.0.1"])
    target = f"http://images.example:{port}/a.jpg"
    assert fetch(f"http://start.example:{port}/redirect?to={target}", resolver,
                 allow_private=True) == BODY
    assert resolver.calls == ["start.example", "images.example"]
    assert [s["host"] for s in local_server.seen] == [f"start.example:{port}",
                                                      f"images.example:{port}"]
    with pytest.raises(ImageDownloadFailed, match="more than 5 redirects"):
        fetch(f"http://images.example:{port}/loop", resolver, allow_private=True)
    assert [s["path"] for s in local_server.seen[2:]] == ["/loop"] * 6


def test_http_errors_and_unknown_hosts_are_download_failures(local_server):
    port = local_server.server_address[1]
    with pytest.raises(ImageDownloadFailed, match="HTTP 404") as missing:
        fetch(f"http://127.0.0.1:{port}/missing", resolve, allow_private=True)
    assert not missing.value.retryable and missing.value.code == "ImageDownloadFailed"
    with pytest.raises(ImageDownloadFailed, match="cannot resolve") as unknown:
        fetch("http://nowhere.invalid/a.jpg", lambda host, port: [], allow_private=True)
    assert unknown.value.retryable


def _certificate(directory, name: str):
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True)
    return key, cert


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_names_the_host_for_sni_and_the_certificate(local_server, tmp_path):
    """TLS to the checked address still says the URL's host (SNI) and verifies the
    certificate against that name: the right name passes, another name's is refused."""
    key, cert = _certificate(tmp_path, "images.test")
    other_key, other_cert = _certificate(tmp_path, "other.test")
    names = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    local_server.socket = context.wrap_socket(local_server.socket, server_side=True)
    port = local_server.server_address[1]
    resolver = Rebinding(["127.0.0.1"], ["192.0.2.1"])
    trust = ssl.create_default_context(cafile=str(cert))
    data = fetch(f"https://images.test:{port}/a.jpg", resolver, allow_private=True, tls=trust)
    assert data == BODY and resolver.calls == ["images.test"]
    assert names == ["images.test"]
    assert local_server.seen[-1]["host"] == f"images.test:{port}"
    # the same server, reached by a name its certificate does not carry
    wrong = ssl.create_default_context(cafile=str(cert))
    with pytest.raises(BadImageUrl, match="certificate"):
        fetch(f"https://other.test:{port}/a.jpg", Rebinding(["127.0.0.1"], []),
              allow_private=True, tls=wrong)
    trust_other = ssl.create_default_context(cafile=str(other_cert))
    with pytest.raises(BadImageUrl, match="certificate"):
        fetch(f"https://images.test:{port}/a.jpg", Rebinding(["127.0.0.1"], []),
              allow_private=True, tls=trust_other)


def test_spaces_non_ascii_and_control_characters_in_the_path_are_percent_encoded(
        local_server):
    port = local_server.server_address[1]
    local = Rebinding(["127.0.0.1"], ["127.0.0.1"])
    for path in ("/a b.jpg", "/caf\u00e9.jpg?q=1", "/a.jpg\r\nX-Injected: 1", "/a%20b.jpg"):
        assert fetch(f"http://images.example:{port}{path}", local, allow_private=True) == BODY
    assert [s["path"] for s in local_server.seen] == [
        "/a%20b.jpg", "/caf%C3%A9.jpg?q=1", "/a.jpgX-Injected:%201", "/a%20b.jpg"]
    # (CR and LF are dropped from a URL, as the WHATWG URL rules say: no header injection)
