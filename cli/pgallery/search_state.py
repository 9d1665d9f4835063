"""What the search flow (flow.py) remembers between searches, and the blocking work it
hands to its driver: a model row and what its provider can do, the providers built, the
prompts known to be cached, recent prompt vectors; embedding a new image, combining an
image with a text. Nothing here talks to the database.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from pgallery.config import Settings
from pgallery.errors import ArgError, ModelMismatch
from pgallery.intake import AddressPolicy, CheckedImage, is_url, read_image
from pgallery.providers import ProviderInfo, build_provider, provider_info

MODEL_TTL = 5.0


@dataclass(frozen=True)
class ModelInfo:
    """A row of embedding_model, with what its provider can do."""

    name: str
    provider: str | None = None       # who made its vectors (as recorded at load)
    dimension: int | None = None
    active: bool = False
    known: bool = True                # False: named by the caller, not in the database

    @property
    def info(self) -> ProviderInfo | None:
        return provider_info(self.provider)

    @property
    def supports_text(self) -> bool:
        info = self.info
        return bool(info and info.supports_text)


class SearchState:
    """What the flow remembers between searches; one per Gallery or web server. Safe to
    share between threads (the web's worker threads embed while the loop searches)."""

    def __init__(self, settings: Settings | None = None, model_ttl: float = MODEL_TTL):
        self.settings = settings or Settings.load()
        self.model_ttl = model_ttl
        self._lock = threading.Lock()
        self._models: dict[str | None, tuple[float, ModelInfo | None]] = {}
        self._providers: dict[tuple[str, str | None], object] = {}
        self._provider_lock = threading.Lock()
        self._cached_prompts: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._text_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def cached_model(self, name):
        with self._lock:
            hit = self._models.get(name)
        if hit and time.monotonic() - hit[0] < self.model_ttl:
            return hit[1]
        return False

    def remember_model(self, name, found) -> None:
        with self._lock:
            if len(self._models) > 64:     # named models: a few, but never unbounded
                self._models.clear()
            self._models[name] = (time.monotonic(), found)

    def forget_models(self) -> None:
        with self._lock:
            self._models.clear()

    def provider(self, model: ModelInfo, name: str | None = None):
        """The provider that embeds for ``model`` (one per model, kept): the one recorded
        with its vectors, else ``name`` or the settings' default; ModelMismatch if that
        provider's model is another one. Blocking (a provider may load weights)."""
        key = (model.name, name)
        with self._provider_lock:
            provider = self._providers.get(key)
            if provider is None:
                chosen = name or (model.provider if model.info else None)
                provider = build_provider(chosen, self.settings)
                if provider.model != model.name:
                    provider.close()
                    raise ModelMismatch(
                        f"the active model is {model.name!r} but the {provider.name!r} "
                        f"provider embeds with {provider.model!r}; vectors of different "
                        "models are never compared: embed with the model's own provider "
                        f"(--provider), or make {provider.model!r} the active model "
                        f"(`pgallery models use {provider.model}`)")
                self._providers[key] = provider
            return provider

    def text_vector(self, provider, text: str) -> np.ndarray:
        key = (provider.model, text)
        with self._lock:
            if key in self._text_vectors:
                self._text_vectors.move_to_end(key)
                return self._text_vectors[key]
        vector = np.asarray(provider.embed_text(text), dtype=np.float32)
        with self._lock:
            self._text_vectors[key] = vector
            while len(self._text_vectors) > 512:
                self._text_vectors.popitem(last=False)
        return vector

    def prompt_cached(self, model: str, text: str) -> bool:
        with self._lock:
            return (model, text) in self._cached_prompts

    def remember_prompt(self, model: str, text: str) -> None:
        with self._lock:   # bounded: a hostile web client sends many prompts
            self._cached_prompts[(model, text)] = None
            while len(self._cached_prompts) > 4096:
                self._cached_prompts.popitem(last=False)

    def close(self) -> None:
        with self._provider_lock:
            for provider in self._providers.values():
                provider.close()
            self._providers.clear()


def embed_new_image(provider, source, policy: AddressPolicy = AddressPolicy.ANY) -> np.ndarray:
    """The one place a new image (a path, an http(s) URL, bytes or a CheckedImage) is
    embedded for a search. Under ``policy`` PUBLIC_ONLY (the web) and for bytes the image
    is read through the intake here, so the address rule holds whatever the provider does;
    a path or a URL under ANY goes to the provider as it is, which reads it through the
    same intake (or, for Azure, forwards the URL)."""
    if isinstance(source, (bytes, bytearray, memoryview, CheckedImage)) \
            or policy is not AddressPolicy.ANY:
        return provider.embed_image(read_image(source, policy=policy,
                                               allow_paths=policy is AddressPolicy.ANY))
    text = str(source)
    if not is_url(text):
        if os.path.isdir(text):
            raise ArgError(f"{text:.200}: is a directory; give one image file (or an "
                           "http(s) URL)")
        if not os.path.isfile(text):
            raise ArgError(f"{text:.200}: no such file (give a path or an http(s) URL)")
    return provider.embed_image(source)


def as_vector(value) -> np.ndarray:
    """A query vector as float32 (a list, an array, a pgvector Vector), or ArgError."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    try:
        vector = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise ArgError("the vector must be a flat, non-empty list of numbers") from None
    if vector.ndim != 1 or vector.size == 0:
        raise ArgError("the vector must be a flat, non-empty list of numbers")
    return vector


def combine(image_vector: np.ndarray, text_vector: np.ndarray) -> np.ndarray:
    """The normalised average of two normalised vectors (a text-steered image query)."""
    a = np.asarray(image_vector, dtype=np.float32)
    b = np.asarray(text_vector, dtype=np.float32)
    a = a / (np.linalg.norm(a) or 1.0)
    b = b / (np.linalg.norm(b) or 1.0)
    mean = (a + b) / 2
    return mean / (np.linalg.norm(mean) or 1.0)
