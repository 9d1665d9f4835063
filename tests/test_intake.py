"""The image intake: bytes, a file or an http(s) URL in, one CheckedImage or one typed error
out, under the caller's address policy. Real files, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import zlib
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from pgallery import errors
from pgallery.images import prepare_image
from pgallery.intake import AddressPolicy, CheckedImage, read_image
from pgallery.providers.local import LocalDescriptorProvider


def _jpeg(size=(120, 90)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height 1-bit pixels and carries almost none: what a
    decompression bomb looks like to a reader that trusts the header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def served(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path: (base URL, paths it was asked)."""
    asked: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            super().do_GET()

        def guess_type(self, path):          # every file claims to be a JPEG
            return "image/jpeg"

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()
    server.server_close()


# -- one image, three ways in ------------------------------------------------------------------

def test_bytes_a_file_and_a_url_give_the_same_checked_image(tmp_path, served):
    data = _jpeg()
    (tmp_path / "a.jpg").write_bytes(data)
    base, _ = served
    images = [read_image(data), read_image(tmp_path / "a.jpg"),
              read_image(str(tmp_path / "a.jpg")), read_image(f"{base}/a.jpg")]
    for image in images:
        assert isinstance(image, CheckedImage)
        assert (image.data, image.format, image.width, image.height) == (data, "JPEG", 120, 90)
        assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert [image.name for image in images] == [
        f"{len(data)}-byte image", str(tmp_path / "a.jpg"), str(tmp_path / "a.jpg"),
        f"{base}/a.jpg"]
    assert read_image(images[0]) is images[0]             # checked once, passed along


def test_a_checked_image_is_what_every_provider_accepts_as_a_file(tmp_path):
    path = tmp_path / "a.png"
    Image.effect_noise((64, 48), 40).convert("RGB").save(path)
    checked = read_image(path.read_bytes(), name="upload.png")
    local = LocalDescriptorProvider()
    assert np.array_equal(local.embed_image(checked), local.embed_image(path))
    assert prepare_image(checked).data == prepare_image(path).data == path.read_bytes()
    results = list(local.embed_images([checked, tmp_path / "missing.png"]))
    assert results[0].ok and results[0].source is checked
    assert results[1].error.code == "ImageNotFound"


# -- the address policy -------------------------------------------------------------------------

def test_any_reads_from_a_server_on_this_machine(tmp_path, served):
    (tmp_path / "a.jpg").write_bytes(_jpeg())
    base, asked = served
    assert read_image(f"{base}/a.jpg", policy=AddressPolicy.ANY).size == (120, 90)
    assert read_image(f"HTTP{base[4:]}/a.jpg").size == (120, 90)     # the scheme in capitals
    assert asked == ["/a.jpg", "/a.jpg"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.0.0.1",
                                  "192.168.1.20", "169.254.169.254", "[::ffff:127.0.0.1]"])
def test_public_only_refuses_this_machine_and_private_addresses(tmp_path, served, host):
    (tmp_path / "a.jpg").write_bytes(_jpeg())
    base, asked = served
    port = base.rsplit(":", 1)[1]
    with pytest.raises(errors.BadImageUrl, match="private or local"):
        read_image(f"http://{host}:{port}/a.jpg", policy=AddressPolicy.PUBLIC_ONLY)
    assert asked == []                                # refused before connecting


def test_what_strangers_send_is_never_read_as_a_local_file(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(_jpeg())
    for source in (str(path), path):
        with pytest.raises(errors.BadImageUrl, match="local files are not read"):
            read_image(source, policy=AddressPolicy.PUBLIC_ONLY, allow_paths=False)
    for url in (f"file://{path}", "ftp://example.org/a.jpg"):
        with pytest.raises(errors.BadImageUrl, match="http:// or https://"):
            read_image(url)


# -- bad images, typed errors -------------------------------------------------------------------

@pytest.mark.parametrize("make,error", [
    (lambda p: p.write_bytes(b""), errors.EmptyImage),
    (lambda p: p.write_text("a text file named .jpg\n"), errors.UnreadableImage),
    (lambda p: p.write_bytes(_jpeg((400, 300))[:2000]), errors.TruncatedImage),
    (lambda p: p.write_bytes(_png_header_only(30_000, 30_000)), errors.ImageTooLarge),
    (lambda p: None, errors.ImageNotFound),
    (lambda p: p.mkdir(), errors.UnreadableImage),
])
def test_each_bad_file_gives_its_typed_error_named_after_the_file(tmp_path, make, error):
    path = tmp_path / "picture.jpg"
    make(path)
    with pytest.raises(error) as caught:
        read_image(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    assert caught.value.code == error.__name__
    if error is not errors.ImageNotFound:
        assert isinstance(caught.value, (errors.NotAnImage, errors.ImageTooLarge))


def test_a_lying_content_type_is_not_believed(tmp_path, served):
    (tmp_path / "a.jpg").write_text("<html>not a picture</html>")  # served as image/jpeg
    base, _ = served
    with pytest.raises(errors.UnreadableImage, match="not an image"):
        read_image(f"{base}/a.jpg")


def test_limits_are_checked_before_pixels_are_decoded(tmp_path):
    bomb = _png_header_only(4000, 4000)       # 16 megapixels claimed, 100 bytes sent
    with pytest.raises(errors.TruncatedImage):        # uncapped, decoding finds it short
        read_image(bomb)
    with pytest.raises(errors.ImageTooLarge, match="4000 x 4000 pixels; the limit is 4 "):
        read_image(bomb, max_pixels=4_000_000)
    data = _jpeg()
    with pytest.raises(errors.ImageTooLarge, match="the limit is"):
        read_image(data, max_bytes=len(data) - 1)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    with pytest.raises(errors.ImageTooLarge, match="the limit is"):
        read_image(path, max_bytes=1000)
    assert read_image(path, max_bytes=len(data)).data == data


def test_formats_can_be_restricted(tmp_path):
    icon = io.BytesIO()
    Image.new("RGB", (32, 32)).save(icon, "ICO")
    assert read_image(icon.getvalue()).format == "ICO"
    with pytest.raises(errors.UnreadableImage, match="ICO images are not accepted; send JPEG"):
        read_image(icon.getvalue(), formats=("JPEG", "PNG"))


def test_download_failures_are_typed_and_say_the_status(served):
    base, _ = served
    with pytest.raises(errors.ImageDownloadFailed, match="HTTP 404") as caught:
        read_image(f"{base}/nothing-here.jpg")
    assert not caught.value.retryable
    with pytest.raises(errors.ImageTooLarge, match="limit"):
        read_image(f"{base}/", max_bytes=10)        # the directory listing, over 10 bytes
