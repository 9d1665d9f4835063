"""Embedding providers, chosen by name.

    azure  Azure AI Vision multimodal embeddings (images and text), over HTTP
    local  classical visual descriptors: offline, images only, no model weights
    clip   a CLIP model from a local directory (optional extra: pip install -e .[clip])
"""

from __future__ import annotations

from pgallery.config import Settings
from pgallery.errors import ConfigError
from pgallery.providers.base import EmbeddingProvider, ImageResult, ImageSource, pad_to_column

PROVIDERS = ("azure", "local", "clip")


def get_provider(name: str | None = None, settings: Settings | None = None,
                 **options) -> EmbeddingProvider:
    """Build the provider called ``name`` (default: azure if configured, else local)."""
    settings = settings or Settings.load()
    name = name or settings.default_provider
    if name == "azure":
        from pgallery.providers.azure import AzureVisionProvider

        return AzureVisionProvider.from_settings(settings, **options)
    if name == "local":
        from pgallery.providers.local import LocalDescriptorProvider

        return LocalDescriptorProvider(**options)
    if name == "clip":
        from pgallery.providers.clip import ClipProvider

        return ClipProvider.from_settings(settings, **options)
    raise ConfigError(f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}")


__all__ = ["EmbeddingProvider", "ImageResult", "ImageSource", "get_provider", "pad_to_column",
           "PROVIDERS"]
