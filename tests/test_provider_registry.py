"""Providers register with their capabilities (pgallery/providers/__init__.py), and what
the registry says of a provider is what the provider, once built, does."""

from __future__ import annotations

import pytest

from pgallery.config import Settings
from pgallery.errors import ConfigError
from pgallery.search_state import ModelInfo
from pgallery.providers import PROVIDERS, REGISTRY, get_provider, provider_info


def _built(name: str):
    settings = Settings(vision_endpoint="http://127.0.0.1:9/", vision_key="k")
    return get_provider(name, settings)


@pytest.mark.parametrize("name", ["local", "azure"])
def test_a_registered_providers_capabilities_are_those_of_the_provider(name):
    info = REGISTRY[name]
    with _built(name) as provider:
        assert provider.name == info.name
        assert provider.supports_text == info.supports_text
        if info.dimension is not None:
            assert provider.dimension == info.dimension
        if info.model is not None:
            assert provider.model == info.model


def test_the_registry_lists_every_provider_and_refuses_an_unknown_one():
    assert PROVIDERS == tuple(REGISTRY) and {"azure", "local", "clip"} <= set(PROVIDERS)
    with pytest.raises(ConfigError, match="unknown provider 'nope'; choose one of azure"):
        get_provider("nope", Settings())
    assert provider_info("nope") is None and provider_info(None) is None


def test_a_model_row_reads_text_when_its_registered_provider_does():
    assert ModelInfo("azure-vision/2023-04-15", "azure").supports_text
    assert ModelInfo("clip/x", "clip").supports_text
    assert not ModelInfo("local-descriptors/v1", "local").supports_text
    assert not ModelInfo("from-a-file", None).supports_text   # unknown: ask the provider
