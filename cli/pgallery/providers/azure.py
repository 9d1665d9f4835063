"""The ``azure`` provider: Azure AI Vision multimodal embeddings over HTTP.

Follows ``azure-vision-contract.md``: one input per call to ``retrieval:vectorizeImage`` /
``retrieval:vectorizeText``; 1024-d vectors tagged ``azure-vision/<model version>``.

How a run behaves:

* one ``requests.Session`` (keep-alive; its pool sized to ``concurrency``) shared by a
  bounded thread pool; a :class:`~pgallery.providers.ratelimit.RateLimiter` shared by all
  threads spaces requests at ``rate_limit`` per second (default 10);
* local files and checked images (:class:`~pgallery.intake.CheckedImage`, e.g. a web
  upload) are checked and fixed by :func:`pgallery.images.prepare_image` and sent as
  ``application/octet-stream``; ``http(s)://`` sources are sent as ``{"url": ...}``;
* 429, 5xx, connection errors, timeouts and unparseable 200 bodies (a cut-off response is
  a transport glitch) are retried up to ``max_retries`` times with exponential backoff and
  full jitter, honouring ``Retry-After`` / ``retry-after-ms``; a 429 also pauses and slows
  the shared limiter. When retries run out the image fails with ``retryable=True``;
* other 4xx fail that image with the API's code (inner code first) and message, and are
  not retried; neither is a 200 whose JSON parses but holds no valid 1024-d finite vector
  (``InvalidResponse``: asking again would give the same answer);
* 401 / 404 (bad key, wrong endpoint or api-version) stop the run with ConfigError; an
  answer from another model version stops it with ModelMismatch (models are never mixed);
  three images in a row that could not reach the server stop it with ProviderError.

The key is sent only in the ``Ocp-Apim-Subscription-Key`` header: it is not in the repr,
and any text taken from a response is scrubbed of it before it reaches a message or log.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import numpy as np
import requests
from requests.adapters import HTTPAdapter

from pgallery.config import DEFAULT_API_VERSION, DEFAULT_MODEL_VERSION, DEFAULT_RATE_LIMIT
from pgallery.errors import (ArgError, ConfigError, EmbeddingFailed, ModelMismatch,
                             PgalleryError, ProviderError, UnreadableImage)
from pgallery.images import prepare_image
from pgallery.intake import is_url
from pgallery.providers.base import EmbeddingProvider, ImageResult, ImageSource
from pgallery.providers.ratelimit import RateLimiter

log = logging.getLogger(__name__)

DIMENSION = 1024
PREVIEW_API_VERSION = "2023-02-01-preview"  # the one api-version with camelCase modelVersion
MAX_TEXT_WORDS = 70
UNREACHABLE_LIMIT = 3  # consecutive images that never reached the server stop the run
MAX_RETRY_AFTER = 120.0  # never sleep longer than this on one Retry-After


class _Cancelled(Exception):
    """The run was stopped (fatal error elsewhere, or the caller stopped iterating)."""


class _Transient(Exception):
    """A failure worth retrying; carries the EmbeddingFailed code and the server's delay."""

    def __init__(self, code: str, message: str, retry_after: float | None = None,
                 unreachable: bool = False):
        super().__init__(message)
        self.code, self.message = code, message
        self.retry_after, self.unreachable = retry_after, unreachable


class AzureVisionProvider(EmbeddingProvider):
    """Azure AI Vision ``vectorizeImage`` / ``vectorizeText`` (1024-d, images and text)."""

    name = "azure"
    dimension = DIMENSION
    supports_text = True

    def __init__(self, endpoint: str, key: str, *, api_version: str = DEFAULT_API_VERSION,
                 model_version: str = DEFAULT_MODEL_VERSION,
                 rate_limit: float = DEFAULT_RATE_LIMIT, concurrency: int = 4,
                 max_retries: int = 5, timeout: float = 30.0, backoff_base: float = 0.5,
                 backoff_max: float = 30.0):
        if not endpoint or not key:
            raise ConfigError(
                "the azure provider needs VISION_ENDPOINT and VISION_KEY: set both in the "
                "environment or in a .env file (see .env.example)")
        if not endpoint.startswith(("https://", "http://")):
            raise ConfigError(f"VISION_ENDPOINT must be an https:// URL such as "
                              f"https://NAME.cognitiveservices.azure.com/, got {endpoint!r}")
        if not model_version or model_version == "latest":
            raise ConfigError(
                "VISION_MODEL_VERSION must name a dated model (2023-04-15 or 2022-04-11), "
                f"not {model_version!r}: vectors are stored per model and never mixed")
        for option, value, low in (("rate_limit", rate_limit, 0), ("timeout", timeout, 0)):
            if not (isinstance(value, (int, float)) and value > low):
                raise ConfigError(f"{option} must be a number > {low}, got {value!r}")
        if int(concurrency) < 1 or int(max_retries) < 0:
            raise ConfigError("concurrency must be >= 1 and max_retries >= 0")
        self.endpoint = endpoint.rstrip("/")
        self._key = key
        self.api_version = api_version
        self.model_version = model_version
        self.model = f"azure-vision/{model_version}"
        self.concurrency = int(concurrency)
        self.max_retries = int(max_retries)
        self.timeout = float(timeout)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.limiter = RateLimiter(rate_limit)
        version_param = "modelVersion" if api_version == PREVIEW_API_VERSION else "model-version"
        query = urlencode({"api-version": api_version, version_param: model_version})
        self._urls = {kind: f"{self.endpoint}/computervision/retrieval:{verb}?{query}"
                      for kind, verb in (("image", "vectorizeImage"), ("text", "vectorizeText"))}
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.concurrency,
                              max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["Ocp-Apim-Subscription-Key"] = key
        self._lock = threading.Lock()
        self._unreachable_in_a_row = 0

    @classmethod
    def from_settings(cls, settings, **options) -> "AzureVisionProvider":
        """Build from :class:`~pgallery.config.Settings`; keyword options win."""
        if not settings.vision_endpoint or not settings.vision_key:
            missing = [name for name, value in (("VISION_ENDPOINT", settings.vision_endpoint),
                                                ("VISION_KEY", settings.vision_key)) if not value]
            raise ConfigError(
                f"the azure provider needs {' and '.join(missing)}: set "
                "VISION_ENDPOINT and VISION_KEY in the environment or in a .env file in the "
                "current directory (or choose another provider with --provider local)")
        values = {"endpoint": settings.vision_endpoint, "key": settings.vision_key,
                  "api_version": settings.api_version, "model_version": settings.model_version,
                  "rate_limit": settings.rate_limit}
        values.update({name: value for name, value in options.items() if value is not None})
        return cls(**values)

    def __repr__(self) -> str:
        return (f"AzureVisionProvider(endpoint={self.endpoint!r}, model={self.model!r}, "
                f"api_version={self.api_version!r}, rate_limit={self.limiter.rate}, "
                f"concurrency={self.concurrency})")

    def close(self) -> None:
        self._session.close()

    # ---- the interface ---------------------------------------------------------------
    def embed_image(self, source: ImageSource) -> np.ndarray:
        return self._embed_source(source, None)

    def embed_text(self, text: str) -> np.ndarray:
        if not isinstance(text, str) or not text.strip():
            raise ArgError("the text prompt is empty; give 1 to 70 words")
        words = len(text.split())
        if words > MAX_TEXT_WORDS:
            raise ArgError(f"the text prompt has {words} words; Azure AI Vision embeds "
                           f"1 to {MAX_TEXT_WORDS} words, so shorten it")
        return self._vectorize("text", f"text {_clip(text)!r}",
                               data=json.dumps({"text": text}).encode(),
                               content_type="application/json")

    def embed_images(self, sources: Iterable[ImageSource],
                     on_result: Callable[[ImageResult], None] | None = None,
                     ) -> Iterator[ImageResult]:
        """Embed concurrently (``concurrency`` threads, ``rate_limit`` requests/s); yield
        each ImageResult as it completes (and pass it to ``on_result``).

        A fatal error (ConfigError, ModelMismatch, ProviderError) stops the run: images
        not yet sent are not sent, results already received are still yielded, then the
        error is raised.
        """
        cancel = threading.Event()
        queue = iter(sources)
        pending: dict[Future, ImageSource] = {}
        fatal: PgalleryError | None = None
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="azure-vision")
        try:
            self._submit(pool, queue, pending, cancel)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    source = pending.pop(future)
                    try:
                        vector = future.result()
                    except _Cancelled:
                        continue
                    except EmbeddingFailed as exc:
                        result = ImageResult(source, error=exc)
                    except PgalleryError as exc:
                        if fatal is None:
                            fatal = exc
                            cancel.set()
                        continue
                    else:
                        result = ImageResult(source, vector=vector)
                    if on_result is not None:
                        on_result(result)
                    yield result
                if fatal is None:
                    self._submit(pool, queue, pending, cancel)
            if fatal is not None:
                raise fatal
        finally:
            cancel.set()
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True)

    def _submit(self, pool, queue, pending, cancel) -> None:
        """Keep a few more tasks queued than threads, reading ``sources`` lazily."""
        while len(pending) < 2 * self.concurrency:
            try:
                source = next(queue)
            except StopIteration:
                return
            pending[pool.submit(self._embed_source, source, cancel)] = source

    # ---- one input -------------------------------------------------------------------
    def _embed_source(self, source: ImageSource, cancel: threading.Event | None) -> np.ndarray:
        if cancel is not None and cancel.is_set():
            raise _Cancelled
        if is_url(source):
            return self._vectorize("image", source, cancel=cancel,
                                   data=json.dumps({"url": source}).encode(),
                                   content_type="application/json")
        try:
            prepared = prepare_image(source)
        except EmbeddingFailed:
            raise
        except Exception as exc:  # an unexpected Pillow failure is still one bad image
            raise UnreadableImage(f"{source}: cannot read the image ({exc})") from None
        if prepared.changed:
            log.info("%s: %s before upload", source, "; ".join(prepared.changes))
        return self._vectorize("image", str(source), cancel=cancel, data=prepared.data,
                               content_type="application/octet-stream")

    def _vectorize(self, kind: str, label: str, *, data: bytes, content_type: str,
                   cancel: threading.Event | None = None) -> np.ndarray:
        """POST one input with rate limiting and retries; the validated vector."""
        last: _Transient | None = None
        for attempt in range(self.max_retries + 1):
            if not self.limiter.acquire(cancel):
                raise _Cancelled
            try:
                vector = self._post_once(kind, label, data, content_type)
            except EmbeddingFailed:
                self._note_reached(True)  # the server answered: it is reachable
                raise
            except _Transient as exc:
                last = exc
                if attempt == self.max_retries:
                    break
                delay = self._backoff(attempt) if exc.retry_after is None else exc.retry_after
                if exc.code == "RateLimited":
                    self.limiter.throttle(delay)  # everyone waits: no stampede
                    delay = 0.0  # acquire() now waits out the pause
                log.debug("%s: %s; retry %d/%d in %.2fs", label, exc.message, attempt + 1,
                          self.max_retries, delay)
                if cancel is not None and cancel.wait(delay):
                    raise _Cancelled from None
                if cancel is None and delay > 0:
                    time.sleep(delay)
                continue
            self._note_reached(True)
            return vector
        assert last is not None
        self._note_reached(not last.unreachable)
        tries = self.max_retries + 1
        raise EmbeddingFailed(f"{label}: {last.message} (gave up after {tries} "
                              f"attempt{'s' if tries > 1 else ''})",
                              code=last.code, retryable=True)

    def _post_once(self, kind: str, label: str, data: bytes, content_type: str) -> np.ndarray:
        try:
            response = self._session.post(self._urls[kind], data=data, timeout=self.timeout,
                                          headers={"Content-Type": content_type})
        except requests.Timeout:
            raise _Transient("Timeout", f"no answer within {self.timeout:g}s") from None
        except requests.RequestException as exc:
            raise _Transient("ConnectionError", f"cannot reach {self.endpoint} "
                             f"({type(exc).__name__})", unreachable=True) from None
        with response:
            status = response.status_code
            if status == 200:
                return self._parse_vector(label, response)
            code, message = self._error_of(response)
            if status == 429:
                raise _Transient("RateLimited", f"rate limited (429): {message}",
                                 _retry_after(response))
            if status >= 500:
                raise _Transient(code if code != str(status) else f"HTTP{status}",
                                 f"server error {status}: {message}", _retry_after(response))
            if status == 401:
                raise ConfigError(
                    f"Azure AI Vision refused the key (401 Unauthorized: {message}). Check "
                    f"that VISION_KEY is a key of the resource at VISION_ENDPOINT "
                    f"({self.endpoint}) in the environment or .env")
            if status == 404:
                raise ConfigError(
                    f"Azure AI Vision answered 404 Not Found for {self.endpoint}"
                    f"/computervision/retrieval:*: check that VISION_ENDPOINT is the "
                    f"resource endpoint (https://NAME.cognitiveservices.azure.com/) and that "
                    f"api-version {self.api_version} exists (use {DEFAULT_API_VERSION})")
            raise EmbeddingFailed(f"{label}: rejected by Azure AI Vision ({status} {code}): "
                                  f"{message}", code=code)

    def _parse_vector(self, label: str, response: requests.Response) -> np.ndarray:
        try:
            payload = json.loads(response.content)
        except ValueError:
            raise _Transient("MalformedResponse",
                             "the 200 response is not valid JSON (cut off?)") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("vector"), list):
            raise EmbeddingFailed(f"{label}: the response has no 'vector' list",
                                  code="InvalidResponse")
        answered = payload.get("modelVersion")
        if answered is not None and answered != self.model_version:
            raise ModelMismatch(
                f"Azure AI Vision answered with model {self._scrub(str(answered))!r} but "
                f"{self.model_version!r} is configured; vectors of different models are "
                "never mixed. Set VISION_MODEL_VERSION to the model you mean to use")
        values = payload["vector"]
        if len(values) != DIMENSION:
            raise EmbeddingFailed(f"{label}: the response vector has {len(values)} "
                                  f"dimensions, expected {DIMENSION}", code="InvalidResponse")
        try:
            vector = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise EmbeddingFailed(f"{label}: the response vector holds non-numbers",
                                  code="InvalidResponse") from None
        if vector.ndim != 1 or not np.all(np.isfinite(vector)) or not np.any(vector):
            raise EmbeddingFailed(f"{label}: the response vector holds NaN, infinity or only "
                                  "zeros", code="InvalidResponse")
        return vector.astype(np.float32)

    def _error_of(self, response: requests.Response) -> tuple[str, str]:
        """(code, message) of an error response: the inner code first, then the outer."""
        code = message = None
        try:
            error = response.json().get("error") or {}
            inner = error.get("innererror") or {}
            code = inner.get("code") or error.get("code")
            message = inner.get("message") or error.get("message")
        except (ValueError, AttributeError):
            pass
        code = code or response.headers.get("x-ms-error-code") or f"HTTP{response.status_code}"
        message = message or response.reason or f"HTTP {response.status_code}"
        return self._scrub(str(code))[:100], self._scrub(str(message))[:500]

    def _scrub(self, text: str) -> str:
        """Server-supplied text with the key (should a server echo it) blanked out."""
        return text.replace(self._key, "***") if self._key else text

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        return random.uniform(0.0, min(self.backoff_max, self.backoff_base * 2 ** attempt))

    def _note_reached(self, reached: bool) -> None:
        with self._lock:
            self._unreachable_in_a_row = 0 if reached else self._unreachable_in_a_row + 1
            stop = self._unreachable_in_a_row >= UNREACHABLE_LIMIT
        if stop:
            raise ProviderError(
                f"cannot reach Azure AI Vision at {self.endpoint} ({UNREACHABLE_LIMIT} images "
                "in a row failed to connect after retries): check VISION_ENDPOINT and the "
                "network")


def _retry_after(response: requests.Response) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return min(MAX_RETRY_AFTER, max(0.0, float(millis) / 1000.0))
        except ValueError:
            pass
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if math.isnan(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
