"""A real HTTP server that speaks the Azure AI Vision multimodal-embeddings contract.

It implements ``../shared/azure-vision-contract.md`` on 127.0.0.1 (a free port) in a
background thread, so tests exercise the real client over real HTTP, with faults injected
on demand. Nothing is mocked: requests, sockets, keep-alive, timeouts and dropped
connections are all real.

Quick start::

    from fake_azure import FakeAzure, Fault, vector_for_bytes

    with FakeAzure() as azure:            # or: FakeAzure(key=..., model_version=...)
        provider = AzureVisionProvider(endpoint=azure.endpoint, key=azure.key)
        vector = provider.embed_image(path)
        assert np.array_equal(vector, vector_for_bytes(path.read_bytes()))
        assert azure.requests_for(path) == 1

    # as a pytest fixture
    @pytest.fixture
    def azure():
        with FakeAzure() as server:
            yield server

    # for CLI tests: monkeypatch the environment
    for name, value in azure.env().items():
        monkeypatch.setenv(name, value)

What it answers (like Azure):

* ``POST /computervision/retrieval:vectorizeImage`` with ``application/octet-stream`` image
  bytes, or ``application/json`` ``{"url": ...}`` (the server fetches the URL itself; use
  :meth:`FakeAzure.url_for` to serve a local file from the fake);
  ``POST /computervision/retrieval:vectorizeText`` with ``{"text": ...}`` (1 to 70 words).
* 200 ``{"modelVersion": ..., "vector": [1024 floats]}``. Vectors are deterministic: an
  image's vector is :func:`vector_for_bytes` of its bytes (seeded from their sha256, so
  identical images give identical vectors), a text's is :func:`vector_for_text`. Pass
  ``image_vectorizer=`` / ``text_vectorizer=`` (callables returning 1024 floats) to plug
  in vectors with real similarity structure.
* 404 for another path or an api-version other than ``2024-02-01`` (kebab-case
  ``model-version``) and ``2023-02-01-preview`` (camelCase ``modelVersion``, which also
  takes ``latest``); 400 when the model version is empty, missing or unknown.
* 401 with the contract's error body and ``x-ms-error-code`` when the
  ``Ocp-Apim-Subscription-Key`` header is not ``key``.
* 400 ``InvalidRequest`` with inner code ``InvalidImageFormat`` (not a decodable image, or
  an unsupported format), ``InvalidImageSize`` (0 or > 20,971,520 bytes, or sides not in
  (10, 16000)), ``InvalidImageUrl`` (URL not fetchable) or ``InvalidTextLength``.

Fault injection (all thread-safe, configurable at any time):

* ``FakeAzure(rate_limit=10)`` or ``azure.set_rate_limit(10, retry_after=...)``: a token
  bucket of ``rate`` requests/s with bursts of up to ``rate`` (``burst=`` to change), that
  answers 429 when empty. ``retry_after``: ``None`` (no header), ``"seconds"`` (default:
  ``Retry-After`` rounded up to whole seconds), ``"ms"`` (``retry-after-ms``) or a fixed
  number of seconds. Rejected requests do not use up the quota.
* ``azure.fail(fault, image=..., times=1)``: the next ``times`` requests for that image
  (a file path or its bytes: matched by content; a URL; or ``text=...`` for a prompt) get
  the fault; later ones succeed.
* ``azure.fail(fault, requests=[3, 4])``: the 3rd and 4th vectorize requests (1-based, all
  requests counted) get the fault. ``azure.fail(fault)`` with neither: every request.
* Faults, built with the :class:`Fault` constructors: ``Fault.status(503)`` (any status,
  optional ``retry_after`` header), ``Fault.error(400, "InvalidRequest", inner=...,
  message=...)``, ``Fault.slow(seconds)`` (answer late: beyond the client timeout),
  ``Fault.malformed_json()``, ``Fault.wrong_dimension(512)``, ``Fault.bad_values()`` (NaN
  in the vector), ``Fault.model_version("2022-04-11")``, ``Fault.drop()`` (close the
  connection without answering).
* ``FakeAzure(latency=0.15)``: every accepted request takes that long to answer (Azure
  takes 0.1 to 0.5 s; the default 0 keeps tests fast).
* ``azure.clear_faults()`` removes scripted faults and the rate limit.

Counters and the request log:

* ``azure.requests_for(image)`` / ``azure.successes_for(image)``: how many requests (all /
  answered 200) carried that image (path, bytes or URL) or ``text=``.
* ``azure.total_requests``, ``azure.status_counts`` (``Counter`` of status codes, e.g.
  ``[429]``), ``azure.log`` (a list of :class:`Request`: number, endpoint, key of the
  input, status, content type, query, time).
* ``azure.reset_counters()``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np

DIMENSION = 1024
DEFAULT_KEY = "fake-azure-key-0123456789abcdef"
DEFAULT_MODEL_VERSION = "2023-04-15"
KNOWN_MODEL_VERSIONS = ("2023-04-15", "2022-04-11")
API_VERSIONS = {"2024-02-01": "model-version", "2023-02-01-preview": "modelVersion"}
MAX_BYTES = 20_971_520
IMAGE_PATH = "/computervision/retrieval:vectorizeImage"
TEXT_PATH = "/computervision/retrieval:vectorizeText"
FILES_PATH = "/files/"
SUPPORTED_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP", "ICO", "TIFF", "MPO"}
UNAUTHORIZED_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource.")


def _seeded_vector(seed_material: bytes) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(seed_material).digest()[:8], "big")
    return np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)


def vector_for_bytes(data: bytes) -> np.ndarray:
    """The fake's vector for an image's bytes (float32, 1024): same bytes, same vector."""
    return _seeded_vector(b"image:" + data)


def vector_for_text(text: str) -> np.ndarray:
    """The fake's vector for a text prompt (float32, 1024)."""
    return _seeded_vector(b"text:" + text.encode("utf-8"))


def input_key(image: Any = None, *, text: str | None = None) -> str:
    """How the fake identifies an input: ``sha256:<hex>`` of an image's bytes (from a path
    or bytes), ``url:<url>`` for a URL, ``text:<text>`` for a prompt."""
    if text is not None:
        return f"text:{text}"
    if isinstance(image, bytes):
        return "sha256:" + hashlib.sha256(image).hexdigest()
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return f"url:{image}"
    if isinstance(image, (str, Path)):
        return "sha256:" + hashlib.sha256(Path(image).read_bytes()).hexdigest()
    raise TypeError(f"cannot identify an image from {type(image).__name__}")


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; build with the class-method constructors."""

    kind: str
    http_status: int = 200
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    dimension: int = DIMENSION
    model_version: str | None = None

    @classmethod
    def status(cls, status: int, retry_after: str | float | None = None) -> "Fault":
        """Answer ``status`` with an Azure-style error body (Retry-After if given)."""
        headers = () if retry_after is None else (("Retry-After", str(retry_after)),)
        body = {"error": {"code": str(status), "message": f"Injected status {status}."}}
        return cls("status", http_status=status, body=body, headers=headers)

    @classmethod
    def error(cls, status: int, code: str, inner: str | None = None,
              message: str = "Injected error.") -> "Fault":
        """Answer ``status`` with ``{"error": {"code", "message", "innererror"}}``."""
        error: dict[str, Any] = {"code": code, "message": message}
        if inner:
            error["innererror"] = {"code": inner, "message": message}
        return cls("status", http_status=status, body={"error": error},
                   headers=(("x-ms-error-code", inner or code),))

    @classmethod
    def slow(cls, seconds: float) -> "Fault":
        """Wait ``seconds`` before answering normally (a client with a shorter timeout
        gives up first)."""
        return cls("slow", delay=seconds)

    @classmethod
    def malformed_json(cls) -> "Fault":
        """200 with a body cut off in the middle of the JSON."""
        return cls("malformed_json")

    @classmethod
    def wrong_dimension(cls, dimension: int = 512) -> "Fault":
        """200 with a vector of another length."""
        return cls("wrong_dimension", dimension=dimension)

    @classmethod
    def bad_values(cls) -> "Fault":
        """200 with NaN inside the vector (sent as the bare token NaN, as Python does)."""
        return cls("bad_values")

    @classmethod
    def model_version(cls, version: str = "2022-04-11") -> "Fault":
        """200 from another model than the one requested."""
        return cls("model_version", model_version=version)

    @classmethod
    def drop(cls) -> "Fault":
        """Read the request, then close the connection without a response."""
        return cls("drop")


@dataclass
class Request:
    """One request to a vectorize endpoint, as the fake saw it."""

    number: int
    endpoint: str            # "image" or "text"
    key: str | None          # input_key() of the input, if the body was readable
    status: int
    content_type: str
    query: dict[str, str]
    time: float = field(default_factory=time.monotonic)


@dataclass
class _Script:
    fault: Fault
    key: str | None = None           # input to match (None: any)
    numbers: frozenset[int] | None = None  # request numbers to match (None: any)
    remaining: int | None = None     # times left (None: unlimited)


class _TokenBucket:
    def __init__(self, rate: float, burst: float, retry_after: str | float | None):
        self.rate, self.burst, self.retry_after = rate, burst, retry_after
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self) -> float | None:
        """None if a request may pass now; else the seconds until a token is free."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate


class FakeAzure:
    """The fake Azure AI Vision endpoint; a context manager (starts and stops the server)."""

    def __init__(self, key: str = DEFAULT_KEY, model_version: str = DEFAULT_MODEL_VERSION,
                 rate_limit: float | None = None, retry_after: str | float | None = "seconds",
                 burst: float | None = None, latency: float = 0.0,
                 image_vectorizer: Callable[[bytes], Any] | None = None,
                 text_vectorizer: Callable[[str], Any] | None = None):
        self.key = key
        self.model_version = model_version
        self.latency = latency
        self.image_vectorizer = image_vectorizer or vector_for_bytes
        self.text_vectorizer = text_vectorizer or vector_for_text
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._scripts: list[_Script] = []
        self._bucket: _TokenBucket | None = None
        self._files: dict[str, bytes] = {}
        self.log: list[Request] = []
        self._arrivals = 0
        self.status_counts: Counter[int] = Counter()
        self._requests: Counter[str] = Counter()
        self._successes: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if rate_limit:
            self.set_rate_limit(rate_limit, retry_after=retry_after, burst=burst)

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> "FakeAzure":
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-azure",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeAzure":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake is not running (use it as a context manager)"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """The resource endpoint to configure (``VISION_ENDPOINT``), with a trailing slash."""
        return f"http://127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        """Environment variables that point pgallery at this fake."""
        return {"VISION_ENDPOINT": self.endpoint, "VISION_KEY": self.key,
                "VISION_MODEL_VERSION": self.model_version}

    def url_for(self, path: str | Path, name: str | None = None) -> str:
        """Serve a local file from the fake; returns its http URL (for URL image tests)."""
        name = name or Path(path).name
        with self._lock:
            self._files[name] = Path(path).read_bytes()
        return f"http://127.0.0.1:{self.port}{FILES_PATH}{name}"

    # ---- configuration ---------------------------------------------------------------
    def set_rate_limit(self, rate: float | None, retry_after: str | float | None = "seconds",
                       burst: float | None = None) -> None:
        """Answer 429 above ``rate`` requests/s (None: no limit). See module docstring."""
        with self._lock:
            self._bucket = None if not rate else _TokenBucket(
                float(rate), float(burst or max(1.0, rate)), retry_after)

    def fail(self, fault: Fault, image: Any = None, *, text: str | None = None,
             requests: list[int] | None = None, times: int | None = 1) -> None:
        """Inject ``fault`` for an image / text (next ``times`` requests; None: always),
        for request numbers, or (neither) for every request."""
        key = input_key(image, text=text) if (image is not None or text is not None) else None
        numbers = frozenset(requests) if requests is not None else None
        if key is None and numbers is None:
            times = None
        with self._lock:
            self._scripts.append(_Script(fault, key, numbers,
                                         None if numbers is not None and key is None else times))

    def clear_faults(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._bucket = None

    # ---- counters --------------------------------------------------------------------
    @property
    def total_requests(self) -> int:
        """Vectorize requests received so far (including those still being answered)."""
        with self._lock:
            return self._arrivals

    def requests_for(self, image: Any = None, *, text: str | None = None) -> int:
        with self._lock:
            return self._requests[input_key(image, text=text)]

    def successes_for(self, image: Any = None, *, text: str | None = None) -> int:
        with self._lock:
            return self._successes[input_key(image, text=text)]

    def reset_counters(self) -> None:
        with self._lock:
            self.log.clear()
            self._arrivals = 0
            self.status_counts.clear()
            self._requests.clear()
            self._successes.clear()

    # ---- used by the handler ---------------------------------------------------------
    def _arrive(self) -> int:
        with self._lock:
            self._arrivals += 1
            return self._arrivals

    def _count(self, key: str) -> None:
        with self._lock:
            self._requests[key] += 1

    def _record(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)
            self.status_counts[request.status] += 1
            if request.key and request.status == 200:
                self._successes[request.key] += 1

    def _take_fault(self, number: int, key: str | None) -> Fault | None:
        with self._lock:
            for script in self._scripts:
                if script.remaining is not None and script.remaining <= 0:
                    continue
                if script.numbers is not None and number not in script.numbers:
                    continue
                if script.key is not None and script.key != key:
                    continue
                if script.remaining is not None:
                    script.remaining -= 1
                return script.fault
        return None

    def _throttle(self) -> tuple[str, str] | None | bool:
        """False: pass. Else the (header, value) to send with a 429, or None for none."""
        with self._lock:
            bucket = self._bucket
            if bucket is None:
                return False
            wait = bucket.take()
            if wait is None:
                return False
            mode = bucket.retry_after
        if mode is None:
            return None
        if mode == "ms":
            return ("retry-after-ms", str(max(1, math.ceil(wait * 1000))))
        if mode == "seconds":
            return ("Retry-After", str(max(1, math.ceil(wait))))
        return ("Retry-After", str(mode))

    def _fetch(self, url: str) -> bytes:
        parts = urlsplit(url)
        if parts.hostname == "127.0.0.1" and parts.port == self.port \
                and parts.path.startswith(FILES_PATH):
            with self._lock:
                data = self._files.get(parts.path[len(FILES_PATH):])
            if data is None:
                raise OSError("not found")
            return data
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (test server)
            return response.read(MAX_BYTES + 1)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeAzure

    def handle_error(self, request, client_address):
        # Clients that time out or vanish are part of the tests: no tracebacks on stderr.
        pass


class _Reject(Exception):
    def __init__(self, status: int, code: str, message: str, inner: str | None = None,
                 headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner
        self.headers = headers

    def body(self) -> dict:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner, "message": self.message}
        return {"error": error}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Azure
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 (signature of the base class)
        pass

    def do_GET(self):
        fake = self.server.fake
        path = urlsplit(self.path).path
        if path.startswith(FILES_PATH):
            with fake._lock:
                data = fake._files.get(path[len(FILES_PATH):])
            if data is not None:
                self._send(200, data, "application/octet-stream")
                return
        self._send_json(404, {"error": {"code": "404", "message": "Resource not found"}})

    def do_POST(self):
        fake = self.server.fake
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        endpoint = {IMAGE_PATH: "image", TEXT_PATH: "text"}.get(parts.path)
        record = Request(fake._arrive(), endpoint or parts.path, None, 0, content_type, query)
        try:
            if endpoint is None:
                raise _Reject(404, "404", "Resource not found")
            record.key, payload = self._parse_input(endpoint, body, content_type)
            fake._count(record.key)
            status, data, headers = self._answer(fake, endpoint, query, record, payload)
        except _Reject as reject:
            status, data, headers = reject.status, reject.body(), (
                ("x-ms-error-code", reject.inner or reject.code), *reject.headers)
        except _Dropped:
            record.status = -1
            fake._record(record)
            self.close_connection = True
            return
        record.status = status
        fake._record(record)
        if isinstance(data, bytes):
            self._send(status, data, "application/json", headers)
        else:
            self._send_json(status, data, headers)

    # ---- the contract ----------------------------------------------------------------
    @staticmethod
    def _parse_input(endpoint: str, body: bytes, content_type: str) -> tuple[str | None, Any]:
        """The input's key and payload: raw bytes, {"url": ...} or {"text": ...}."""
        if endpoint == "image" and content_type == "application/octet-stream":
            return input_key(body), body
        if content_type != "application/json":
            raise _Reject(415 if endpoint == "image" else 400, "InvalidRequest",
                          f"Unsupported content type {content_type!r}.", "UnsupportedMediaType")
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            raise _Reject(400, "InvalidRequest", "The request body is not valid JSON.",
                          "InvalidArgument") from None
        field_name = "url" if endpoint == "image" else "text"
        value = payload.get(field_name) if isinstance(payload, dict) else None
        if not isinstance(value, str):
            raise _Reject(400, "InvalidRequest", f"The '{field_name}' field is required.",
                          "InvalidArgument")
        key = input_key(value) if endpoint == "image" else input_key(text=value)
        return key, payload

    def _answer(self, fake: FakeAzure, endpoint: str, query: dict[str, str], record: Request,
                payload: Any):
        api_version = query.get("api-version")
        if api_version not in API_VERSIONS:
            raise _Reject(404, "404", "Resource not found")
        if self.headers.get("Ocp-Apim-Subscription-Key") != fake.key:
            raise _Reject(401, "401", UNAUTHORIZED_MESSAGE)
        throttled = fake._throttle()
        if throttled is not False:
            raise _Reject(429, "429", "Rate limit is exceeded. Try again later.",
                          headers=(throttled,) if throttled else ())
        model_version = query.get(API_VERSIONS[api_version])
        if not model_version:
            raise _Reject(400, "InvalidRequest",
                          f"The '{API_VERSIONS[api_version]}' parameter is required and "
                          "must not be empty.", "InvalidModelVersion")
        if model_version == "latest" and api_version.endswith("-preview"):
            model_version = DEFAULT_MODEL_VERSION
        if model_version not in KNOWN_MODEL_VERSIONS:
            raise _Reject(400, "InvalidRequest", f"Model version {model_version} not found.",
                          "ModelVersionNotFound")

        fault = fake._take_fault(record.number, record.key)
        if fault is not None:
            if fault.kind == "status":
                return fault.http_status, fault.body, fault.headers
            if fault.kind == "drop":
                raise _Dropped
            if fault.kind == "slow":
                fake._stopping.wait(fault.delay)

        if fake.latency > 0:
            fake._stopping.wait(fake.latency)
        vector = self._vectorize(fake, endpoint, payload)
        version = model_version
        if fault is not None and fault.kind == "model_version":
            version = fault.model_version
        if fault is not None and fault.kind == "wrong_dimension":
            vector = np.resize(vector, fault.dimension)
        values = [float(x) for x in vector]
        if fault is not None and fault.kind == "bad_values":
            values[7] = float("nan")
        text = json.dumps({"modelVersion": version, "vector": values})
        if fault is not None and fault.kind == "malformed_json":
            return 200, text[: len(text) // 2].encode(), ()
        return 200, text.encode(), ()

    @staticmethod
    def _vectorize(fake: FakeAzure, endpoint: str, payload: Any) -> np.ndarray:
        if endpoint == "text":
            text = payload["text"]
            words = len(text.split())
            if not 1 <= words <= 70:
                raise _Reject(400, "InvalidRequest",
                              f"The text has {words} words; it must have 1 to 70.",
                              "InvalidTextLength")
            return np.asarray(fake.text_vectorizer(text), dtype=np.float32)
        if isinstance(payload, dict):
            try:
                data = fake._fetch(payload["url"])
            except Exception:
                raise _Reject(400, "InvalidRequest", "The image URL could not be downloaded.",
                              "InvalidImageUrl") from None
        else:
            data = payload
        _check_image(data)
        return np.asarray(fake.image_vectorizer(data), dtype=np.float32)

    # ---- plumbing --------------------------------------------------------------------
    def _send_json(self, status: int, body: Any, headers=()) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, content_type: str, headers=()) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout): nothing to answer to
            self.close_connection = True


class _Dropped(Exception):
    pass


def _check_image(data: bytes) -> None:
    """Azure's input checks: size in bytes, a decodable image, sides within (10, 16000)."""
    from PIL import Image

    if not data or len(data) > MAX_BYTES:
        raise _Reject(400, "InvalidRequest",
                      f"The image size is {len(data)} bytes; it must be more than 0 and at "
                      f"most {MAX_BYTES} bytes.", "InvalidImageSize")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception:
        raise _Reject(400, "InvalidRequest", "The image format is not supported or the "
                      "image is corrupt.", "InvalidImageFormat") from None
    if image.format not in SUPPORTED_FORMATS:
        raise _Reject(400, "InvalidRequest", f"Image format {image.format} is not supported.",
                      "InvalidImageFormat")
    width, height = image.size
    if not (10 < width < 16000 and 10 < height < 16000):
        raise _Reject(400, "InvalidRequest",
                      f"The image is {width}x{height}; each side must be more than 10 and "
                      "less than 16000 pixels.", "InvalidImageSize")
