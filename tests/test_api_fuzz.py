"""The API fuzzed from the outside: schemathesis (its own command, `st run`) reads the
server's OpenAPI document and sends generated requests, valid and invalid, to every
operation; no answer may be a 5xx, and every answer must conform to the document (a
documented status code, content type and body schema). Bounded: a few examples an
operation and one worker, so the run stays well under a minute."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings, strategies as st
from PIL import Image

from pgallery.web import WebConfig
from web_server import load_sample_gallery, running_server

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")


TOKEN = "fuzzing-token-0123456789abcdef"


@pytest.fixture(scope="module")
def gallery(make_database, tmp_path_factory):
    url = make_database(prefix="fuzz")
    load_sample_gallery(url, tmp_path_factory.mktemp("fuzz-gallery"), count=20)
    return url


def config(home: Path, **network) -> WebConfig:
    return WebConfig(home=home, max_upload_bytes=1024 * 1024, max_pixels=2_000_000, **network)


@pytest.fixture(scope="module")
def server(gallery, tmp_path_factory):
    with running_server(gallery, config(tmp_path_factory.mktemp("fuzz-home"))) as (base, _):
        yield base


def schemathesis_run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # `st run`, through this interpreter (wherever pip put the `st` script)
    return subprocess.run([sys.executable, "-m", "schemathesis.cli", "run", *args],
                          capture_output=True, text=True, timeout=240, cwd=cwd)


def fuzz(base: str, cwd: Path, *args: str, examples: int = 8, least: int = 300) -> str:
    """Run schemathesis against ``base``; its report (the test fails on any finding)."""
    result = schemathesis_run(base + "/api/openapi.json", "--checks", CHECKS,
                              "--max-examples", str(examples), "--workers", "1", "--seed", "24",
                              "--generation-database", "none", "--request-timeout", "30",
                              "--no-color", "--max-failures", "5",
                              "--suppress-health-check", "all", *args, cwd=cwd)
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    # every operation of the document was exercised, by hundreds of requests in all
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    cases = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert selected and tested and cases, report
    assert selected[1] == selected[2] == tested[1] and int(tested[1]) >= 12, report
    assert cases[1] == cases[2] and int(cases[1]) >= least, report
    return result.stdout


@pytest.mark.slow
def test_schemathesis_finds_no_5xx_and_every_answer_conforms(server, tmp_path):
    fuzz(server, tmp_path)


@pytest.mark.slow
def test_and_so_with_tokens_and_limits_on(gallery, tmp_path):
    network = config(tmp_path / "home", tokens=(TOKEN,), max_concurrent=8,
                     request_timeout=10, cors_origins=("https://museum.example",))
    with running_server(gallery, network) as (base, _):
        # fewer: what differs here is the middleware around the same operations
        fuzz(base, tmp_path, "--header", f"Authorization: Bearer {TOKEN}",
             "--phases", "coverage,fuzzing", examples=4, least=150)


# --- the multipart upload, under Hypothesis -------------------------------------------------

MAX_PIXELS = 2_000_000
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
CONTENT_TYPES = ("image/jpeg", "image/png", "text/plain", "application/octet-stream",
                 "image/svg+xml", "", "multipart/form-data", "image/jpeg; charset=\u00e9")


def encode(size: tuple[int, int], fmt: str, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


def bomb(side: int) -> bytes:
    """A PNG whose header says side x side pixels, in a few kB (a decompression bomb)."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    return out.getvalue()


BOMBS = {side: bomb(side) for side in (1500, 3000)}     # 2.25 and 9 megapixels


def decodes_within_limits(payload: bytes) -> bool:
    """What a careful reader makes of these bytes: a whole image of allowed size."""
    try:
        with Image.open(io.BytesIO(payload)) as image:
            if image.width * image.height > MAX_PIXELS:
                return False
            image.load()
            return True
    except Exception:
        return False


@st.composite
def payloads(draw) -> bytes:
    kind = draw(st.sampled_from(("image", "truncated", "noise", "bomb", "huge", "flipped")))
    size = (draw(st.integers(1, 64)), draw(st.integers(1, 64)))
    image = encode(size, draw(st.sampled_from(FORMATS)),
                   tuple(draw(st.integers(0, 255)) for _ in range(3)))
    if kind == "image":
        return image
    if kind == "truncated":
        return image[:draw(st.integers(0, len(image) - 1))]
    if kind == "noise":
        return draw(st.binary(max_size=4096))
    if kind == "bomb":
        return BOMBS[draw(st.sampled_from(sorted(BOMBS)))]
    if kind == "huge":   # over the 1 MB limit, with an image's first bytes
        return image[:16] + b"\x00" * (1024 * 1024 + draw(st.integers(1, 300_000)))
    at = draw(st.integers(0, len(image) - 1))     # one byte of a real image flipped
    return image[:at] + bytes([image[at] ^ 0xFF]) + image[at + 1:]


def multipart(payload: bytes, content_type: str, filename: str, close: bool) -> bytes:
    part = (b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"image\"; filename=\""
            + filename.encode() + b"\"\r\n")
    if content_type:
        part += b"Content-Type: " + content_type.encode() + b"\r\n"
    body = part + b"\r\n" + payload + b"\r\n"
    return body + (b"--BOUNDARY--\r\n" if close else b"")


@pytest.mark.slow
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(payload=payloads(), content_type=st.sampled_from(CONTENT_TYPES),
       filename=st.sampled_from(("a.jpg", "a.png", "a.svg", "a", "../../etc/passwd", "x.exe")),
       close=st.sampled_from((True, True, True, False)))   # False: the form is cut short
def test_any_upload_is_an_answer_never_a_crash(server, payload, content_type, filename, close):
    body = multipart(payload, content_type, filename, close)
    answer = requests.post(server + "/api/search", data=body, timeout=60,
                           headers={"Content-Type": "multipart/form-data; boundary=BOUNDARY"})
    event(f"answered {answer.status_code}")
    assert answer.status_code in (200, 400, 413, 415, 422), answer.text[:300]
    assert answer.headers["content-type"] == "application/json"
    body_json = answer.json()
    if answer.status_code == 200:
        # only a whole, decodable image within the limits is searched (whatever it claimed)
        assert close and decodes_within_limits(payload)
        assert body_json["mode"] == "upload" and body_json["query"]["upload"]
    else:
        assert set(body_json) == {"error"} and body_json["error"]
        if len(payload) > 1024 * 1024:
            assert answer.status_code == 413
        if payload in BOMBS.values():
            assert answer.status_code == 413 and "pixels" in body_json["error"]


def test_the_server_still_answers_after_the_uploads(server):
    assert requests.get(server + "/api/search", params={"text": "sea"},
                        timeout=30).status_code == 200
