"""The azure provider against the fake Azure server, over real HTTP on 127.0.0.1.

Backoff bases and timeouts are tiny so retries cost milliseconds, not seconds.
"""

from __future__ import annotations

import logging
import socket
import time

import numpy as np
import pytest
from PIL import Image

from fake_azure import FakeAzure, Fault, vector_for_bytes, vector_for_text
from pgallery.config import Settings
from pgallery.errors import ArgError, ConfigError, ModelMismatch, ProviderError
from pgallery.providers import get_provider
from pgallery.providers.azure import AzureVisionProvider

FAST = {"rate_limit": 500, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 2.0}


@pytest.fixture
def azure():
    with FakeAzure() as server:
        yield server


@pytest.fixture
def make_provider(azure):
    providers = []

    def make(**options) -> AzureVisionProvider:
        values = {"endpoint": azure.endpoint, "key": azure.key, **FAST, **options}
        provider = AzureVisionProvider(**values)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.close()


@pytest.fixture
def images(tmp_path):
    """Factory: n distinct small JPEGs on disk."""

    def make(n: int, prefix: str = "img") -> list:
        paths = []
        for i in range(n):
            rng = np.random.default_rng(i)
            path = tmp_path / f"{prefix}{i:03d}.jpg"
            Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(path)
            paths.append(path)
        return paths

    return make


# ---- happy paths -----------------------------------------------------------------------

def test_a_local_image_is_sent_as_bytes_and_its_vector_returned_exactly(
        azure, make_provider, images):
    [path] = images(1)
    vector = make_provider().embed_image(path)
    assert vector.dtype == np.float32 and vector.shape == (1024,)
    assert np.array_equal(vector, vector_for_bytes(path.read_bytes()))
    [request] = azure.log
    assert request.content_type == "application/octet-stream"
    assert request.query == {"api-version": "2024-02-01", "model-version": "2023-04-15"}


def test_an_http_url_is_sent_as_json_for_the_server_to_fetch(azure, make_provider, images):
    [path] = images(1)
    url = azure.url_for(path)
    vector = make_provider().embed_image(url)
    assert np.array_equal(vector, vector_for_bytes(path.read_bytes()))
    assert azure.log[0].content_type == "application/json"
    assert azure.successes_for(url) == 1


def test_a_text_is_sent_as_json_and_its_vector_returned(azure, make_provider):
    vector = make_provider().embed_text("a stormy sea at dusk")
    assert np.array_equal(vector, vector_for_text("a stormy sea at dusk"))
    assert azure.successes_for(text="a stormy sea at dusk") == 1


@pytest.mark.parametrize("text,expected", [("", "empty"), ("   ", "empty"),
                                           ("word " * 71, "71 words")])
def test_a_text_outside_1_to_70_words_is_refused_before_any_request(
        azure, make_provider, text, expected):
    with pytest.raises(ArgError, match=expected):
        make_provider().embed_text(text)
    assert azure.total_requests == 0


def test_a_70_word_text_is_accepted(make_provider):
    assert make_provider().embed_text("word " * 70).shape == (1024,)


def test_the_preview_api_version_takes_a_camel_case_model_version(azure, make_provider):
    make_provider(api_version="2023-02-01-preview").embed_text("hello")
    assert azure.log[0].query == {"api-version": "2023-02-01-preview",
                                  "modelVersion": "2023-04-15"}


def test_the_provider_describes_its_model(make_provider):
    provider = make_provider(model_version="2022-04-11")
    assert (provider.name, provider.model, provider.dimension, provider.supports_text) == (
        "azure", "azure-vision/2022-04-11", 1024, True)


def test_embed_images_yields_every_image_once_and_reports_each_to_on_result(
        azure, make_provider, images):
    paths = images(20)
    seen = []
    results = list(make_provider(concurrency=4).embed_images(paths, on_result=seen.append))
    assert sorted(r.source for r in results) == sorted(paths)
    assert seen == results
    for result in results:
        assert result.ok and np.array_equal(result.vector,
                                            vector_for_bytes(result.source.read_bytes()))
        assert azure.requests_for(result.source) == 1


def test_embed_images_reads_sources_lazily_and_stops_when_the_caller_stops(
        azure, make_provider, images):
    paths = images(40)
    generator = make_provider(concurrency=2).embed_images(iter(paths))
    next(generator)
    generator.close()
    assert azure.total_requests < len(paths) // 2


# ---- configuration errors stop the run ------------------------------------------------

def test_missing_endpoint_or_key_is_a_config_error_naming_both_variables():
    for settings in (Settings(vision_endpoint=None, vision_key="k"),
                     Settings(vision_endpoint="https://x.example/", vision_key=None)):
        with pytest.raises(ConfigError) as failure:
            AzureVisionProvider.from_settings(settings)
        assert "VISION_ENDPOINT" in str(failure.value) and "VISION_KEY" in str(failure.value)
        assert ".env" in str(failure.value)


def test_from_settings_takes_the_settings_and_options_override_them(azure):
    settings = Settings(vision_endpoint=azure.endpoint, vision_key=azure.key,
                        api_version="2023-02-01-preview", model_version="2022-04-11",
                        rate_limit=3.0)
    with get_provider("azure", settings, concurrency=2, rate_limit=7) as provider:
        assert (provider.model, provider.api_version, provider.concurrency,
                provider.limiter.rate) == ("azure-vision/2022-04-11", "2023-02-01-preview", 2, 7)


def test_an_undated_model_version_is_refused(azure):
    with pytest.raises(ConfigError, match="dated model"):
        AzureVisionProvider(azure.endpoint, azure.key, model_version="latest")


def test_a_wrong_key_stops_the_whole_run_with_a_config_error(azure, images):
    paths = images(30)
    provider = AzureVisionProvider(azure.endpoint, "not-the-key", **FAST)
    with pytest.raises(ConfigError, match="401") as failure:
        list(provider.embed_images(paths))
    assert "VISION_KEY" in str(failure.value)
    assert azure.status_counts[401] < len(paths) // 2  # it stopped, did not try them all


@pytest.mark.parametrize("options", [{"api_version": "2024-02-01-preview"},
                                     {"endpoint_suffix": "wrong/path/"}])
def test_a_wrong_endpoint_or_api_version_is_a_config_error(azure, images, options):
    endpoint = azure.endpoint + options.pop("endpoint_suffix", "")
    provider = AzureVisionProvider(endpoint, azure.key, **FAST, **options)
    with pytest.raises(ConfigError, match="404"):
        list(provider.embed_images(images(5)))


def test_an_unreachable_endpoint_stops_the_run_with_a_provider_error(images):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = AzureVisionProvider(f"http://127.0.0.1:{port}/", "k", **FAST, max_retries=1)
    with pytest.raises(ProviderError, match="cannot reach"):
        list(provider.embed_images(images(20)))


# ---- per-image failures are recorded, not raised --------------------------------------

def test_a_4xx_rejection_is_recorded_with_the_inner_code_and_not_retried(
        azure, make_provider, images, tmp_path):
    good, rejected = images(2)
    azure.fail(Fault.error(400, "InvalidRequest", inner="InvalidImageSize",
                           message="Image size is too large."), image=rejected, times=None)
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("not pixels")
    text_url = azure.url_for(not_an_image)
    missing_url = azure.endpoint + "files/nowhere.jpg"
    results = {str(r.source): r for r in
               make_provider().embed_images([good, rejected, text_url, missing_url])}
    assert results[str(good)].ok
    failure = results[str(rejected)].error
    assert (failure.code, failure.retryable) == ("InvalidImageSize", False)
    assert "Image size is too large." in str(failure)
    assert results[text_url].error.code == "InvalidImageFormat"
    assert results[missing_url].error.code == "InvalidImageUrl"
    assert azure.requests_for(rejected) == azure.requests_for(text_url) == 1


def test_an_image_that_cannot_be_sent_fails_locally_without_a_request(
        azure, make_provider, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    [result] = make_provider().embed_images([empty])
    assert result.error.code == "EmptyImage"
    assert azure.total_requests == 0


def test_an_oversized_image_is_downscaled_so_the_server_accepts_it(
        azure, make_provider, tmp_path):
    path = tmp_path / "panorama.png"
    Image.new("RGB", (16_200, 120), (90, 30, 10)).save(path)
    [result] = make_provider().embed_images([path])
    assert result.ok, result.error
    assert azure.status_counts == {200: 1}


# ---- transient failures are retried ----------------------------------------------------

@pytest.mark.parametrize("fault", [Fault.status(503), Fault.status(500), Fault.drop(),
                                   Fault.slow(1.0), Fault.malformed_json()],
                         ids=["503", "500", "dropped connection", "timeout", "malformed json"])
def test_a_transient_failure_is_retried_and_then_succeeds(azure, make_provider, images, fault):
    paths = images(3)
    azure.fail(fault, image=paths[1], times=2)
    results = list(make_provider(timeout=0.3).embed_images(paths))
    assert all(r.ok for r in results)
    assert azure.requests_for(paths[1]) == 3
    assert azure.requests_for(paths[0]) == azure.requests_for(paths[2]) == 1


@pytest.mark.parametrize("fault,code", [(Fault.status(503), "HTTP503"),
                                        (Fault.slow(1.0), "Timeout"),
                                        (Fault.malformed_json(), "MalformedResponse")])
def test_a_failure_that_outlasts_the_retries_fails_the_image_as_retryable(
        azure, make_provider, images, fault, code):
    [path] = images(1)
    azure.fail(fault, image=path, times=None)
    [result] = make_provider(max_retries=2, timeout=0.3).embed_images([path])
    assert (result.error.code, result.error.retryable) == (code, True)
    assert "3 attempts" in str(result.error)
    assert azure.requests_for(path) == 3


def test_a_429_with_retry_after_seconds_is_honoured(azure, make_provider, images):
    [path] = images(1)
    azure.fail(Fault.status(429, retry_after=1), image=path)
    started = time.monotonic()
    vector = make_provider().embed_image(path)
    assert time.monotonic() - started >= 0.95  # waited as told, not the 10 ms backoff
    assert vector.shape == (1024,) and azure.requests_for(path) == 2


def test_a_429_with_retry_after_ms_is_honoured(azure, make_provider, images):
    [path] = images(1)
    azure.set_rate_limit(1, retry_after="ms")  # one token, then about 1 s to the next
    provider = make_provider()
    provider.embed_image(images(2, prefix="warm")[0])  # uses the token
    started = time.monotonic()
    provider.embed_image(path)
    assert 0.5 < time.monotonic() - started < 3
    assert azure.status_counts[429] >= 1


@pytest.mark.parametrize("retry_after", [None, "ms"])
def test_a_server_rate_limit_is_survived_with_every_image_embedded_once(
        azure, make_provider, images, retry_after):
    azure.set_rate_limit(40, retry_after=retry_after, burst=2)
    paths = images(16)
    provider = make_provider(rate_limit=400, max_retries=10, backoff_base=0.02,
                             backoff_max=0.2)
    results = list(provider.embed_images(paths))
    assert all(r.ok for r in results)
    assert azure.status_counts[429] >= 1  # the limit was really hit ...
    assert all(azure.successes_for(p) == 1 for p in paths)  # ... and nothing was lost
    assert provider.limiter.throttles == azure.status_counts[429]


# ---- answers that cannot be trusted ----------------------------------------------------

@pytest.mark.parametrize("fault", [Fault.wrong_dimension(512), Fault.bad_values()],
                         ids=["512 dimensions", "NaN"])
def test_a_vector_that_is_not_1024_finite_floats_fails_the_image_without_retry(
        azure, make_provider, images, fault):
    good, bad = images(2)
    azure.fail(fault, image=bad, times=None)
    results = {r.source: r for r in make_provider().embed_images([good, bad])}
    assert results[good].ok
    assert (results[bad].error.code, results[bad].error.retryable) == ("InvalidResponse", False)
    assert azure.requests_for(bad) == 1


def test_an_answer_from_another_model_version_stops_the_run(azure, make_provider, images):
    paths = images(30)
    azure.fail(Fault.model_version("2022-04-11"), image=paths[2], times=None)
    yielded = []
    with pytest.raises(ModelMismatch, match="2022-04-11"):
        for result in make_provider(concurrency=2).embed_images(paths):
            yielded.append(result)
    assert paths[2] not in [r.source for r in yielded]
    assert all(r.ok for r in yielded)
    assert azure.total_requests < len(paths)


# ---- the key never leaks ---------------------------------------------------------------

SECRET = "sk-LEAKCHECK-5f0c9a2b7e"


def _error_paths(azure, images, tmp_path):
    """Every way a call can fail, each a (provider options, action) pair."""
    paths = images(3)
    unreachable = socket.socket()
    unreachable.bind(("127.0.0.1", 0))
    dead_endpoint = f"http://127.0.0.1:{unreachable.getsockname()[1]}/"
    unreachable.close()
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    return [
        ("401", {"endpoint": azure.endpoint}, lambda p: list(p.embed_images(paths))),
        ("404", {"endpoint": azure.endpoint + "nope/"}, lambda p: p.embed_image(paths[0])),
        ("unreachable", {"endpoint": dead_endpoint}, lambda p: list(p.embed_images(paths))),
        ("empty text", {}, lambda p: p.embed_text("")),
        ("empty image", {}, lambda p: p.embed_image(empty)),
    ]


SERVER_FAULTS = [
    ("400 echoing the key", Fault.error(400, "InvalidRequest", inner="BadKey",
                                        message=f"key {SECRET} is not welcome")),
    ("503", Fault.status(503)), ("429", Fault.status(429, retry_after=0)),
    ("timeout", Fault.slow(1.0)), ("drop", Fault.drop()),
    ("malformed", Fault.malformed_json()), ("dimension", Fault.wrong_dimension()),
    ("model", Fault.model_version()),
]


def test_the_key_never_appears_in_errors_logs_or_repr(azure, images, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    texts = []
    # A fake that accepts only SECRET, so the faults below reach the client ...
    with FakeAzure(key=SECRET) as honest:
        paths = images(2, prefix="k")
        for label, fault in SERVER_FAULTS:
            honest.fail(fault, image=paths[0], times=None)
            provider = AzureVisionProvider(honest.endpoint, SECRET,
                                           **{**FAST, "timeout": 0.3}, max_retries=1)
            texts.append(repr(provider))
            try:
                provider.embed_image(paths[0])
            except Exception as exc:  # noqa: BLE001 (collecting every error path)
                texts += [label, str(exc), repr(exc), str(getattr(exc, "__cause__", ""))]
            else:
                pytest.fail(f"{label}: expected an error")
            honest.clear_faults()
    # ... and the configuration errors, where the fake does not know SECRET.
    for label, options, action in _error_paths(azure, images, tmp_path):
        provider = AzureVisionProvider(key=SECRET, max_retries=1,
                                       **{**FAST, "endpoint": azure.endpoint, **options})
        with pytest.raises(Exception) as failure:  # noqa: PT011 (each path raises its own)
            action(provider)
        texts += [label, str(failure.value), repr(failure.value)]
    with pytest.raises(ConfigError) as failure:
        AzureVisionProvider(endpoint="ftp://x", key=SECRET)
    texts.append(str(failure.value))
    captured = capsys.readouterr()
    everything = "\n".join(texts) + caplog.text + captured.out + captured.err
    assert "401" in everything and "cannot reach" in everything  # the paths really ran
    assert SECRET not in everything
    assert "***" in everything  # the echoed key was scrubbed, not just absent
