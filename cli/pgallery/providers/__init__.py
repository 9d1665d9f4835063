"""Embedding providers, registered with what they can do.

    azure  Azure AI Vision multimodal embeddings (images and text), over HTTP
    local  classical visual descriptors: offline, images only, no model weights
    clip   a CLIP model from a local directory (optional extra: pip install -e .[clip])

Each provider is one :class:`ProviderInfo` in :data:`REGISTRY`: whether it reads text, its
vectors' dimension and model tag (None where the settings decide: the CLIP directory, the
Azure model version) and how it is built from the settings. Front ends ask the registry
("can the provider of this model row read text", "build the provider for this row"),
never test provider names; a new provider is one module and one ``register(...)`` here.
The modules are imported only when a provider is built (CLIP pulls in torch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pgallery.config import Settings
from pgallery.errors import ConfigError
from pgallery.providers.base import EmbeddingProvider, ImageResult, ImageSource, pad_to_column


@dataclass(frozen=True)
class ProviderInfo:
    """A provider's capabilities, known without building it."""

    name: str
    supports_text: bool
    summary: str
    build: Callable[..., EmbeddingProvider]   # build(settings, **options)
    dimension: int | None = None              # None: the model the settings name decides
    model: str | None = None                  # the model tag, when it is fixed
    offline: bool = False                     # needs no network and no downloaded weights
    credentials: bool = False                 # needs an account's key (no demo without)


REGISTRY: dict[str, ProviderInfo] = {}


def register(info: ProviderInfo) -> ProviderInfo:
    REGISTRY[info.name] = info
    return info


def _azure(settings: Settings, **options) -> EmbeddingProvider:
    from pgallery.providers.azure import AzureVisionProvider

    return AzureVisionProvider.from_settings(settings, **options)


def _local(settings: Settings, **options) -> EmbeddingProvider:
    from pgallery.providers.local import LocalDescriptorProvider

    return LocalDescriptorProvider(**options)


def _clip(settings: Settings, **options) -> EmbeddingProvider:
    from pgallery.providers.clip import ClipProvider

    return ClipProvider.from_settings(settings, **options)


register(ProviderInfo("azure", True, "Azure AI Vision multimodal embeddings (images and "
                      "text), over HTTP", _azure, dimension=1024, credentials=True))
register(ProviderInfo("local", False, "classical visual descriptors: offline, images only",
                      _local, dimension=1024, model="local-descriptors/v1", offline=True))
register(ProviderInfo("clip", True, "a CLIP model on the CPU (images and text)", _clip))

PROVIDERS = tuple(REGISTRY)


def provider_info(name: str | None) -> ProviderInfo | None:
    """The registered provider called ``name`` (a model row's ``provider``), or None."""
    return REGISTRY.get(name) if name else None


def get_provider(name: str | None = None, settings: Settings | None = None,
                 **options) -> EmbeddingProvider:
    """Build the provider called ``name`` (default: azure if configured, else local)."""
    settings = settings or Settings.load()
    name = name or settings.default_provider
    info = provider_info(name)
    if info is None:
        raise ConfigError(f"unknown provider {name!r}; choose one of {', '.join(REGISTRY)}")
    return info.build(settings, **options)


build_provider = get_provider


__all__ = ["EmbeddingProvider", "ImageResult", "ImageSource", "ProviderInfo", "REGISTRY",
           "build_provider", "get_provider", "pad_to_column", "provider_info", "register",
           "PROVIDERS"]
