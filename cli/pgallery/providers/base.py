"""The one small interface every embedding provider implements.

A provider turns images and texts into vectors of one model. The loader and the search
commands only see this interface; each provider lives in its own module (azure.py,
local.py, clip.py) and is chosen by name through :func:`pgallery.providers.get_provider`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pgallery.errors import EmbeddingFailed, TextNotSupported
from pgallery.intake import CheckedImage

COLUMN_DIMENSION = 1024  # painting_embedding.embedding is vector(1024)

# An image to embed: a local file, an http(s) URL the provider fetches (or forwards), or an
# image the intake has read and checked already (pgallery.intake.CheckedImage).
ImageSource = str | Path | CheckedImage


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one image of a batch: a vector, or the failure that stopped it."""

    source: ImageSource
    vector: np.ndarray | None = None
    error: EmbeddingFailed | None = None

    @property
    def ok(self) -> bool:
        return self.vector is not None


class EmbeddingProvider(ABC):
    """Embeds images (and, if it can, texts) with one model.

    ``model`` is the name stored with every vector (``azure-vision/2023-04-15``); vectors of
    different models are never compared. ``dimension`` is the model's own dimension (at
    most 1024; the database zero-pads shorter vectors, which is exact for cosine distance).
    """

    name: str                 # provider key: "azure", "local", "clip"
    model: str                # model tag stored in the database
    dimension: int            # the model's true dimension
    supports_text: bool = False

    @abstractmethod
    def embed_image(self, source: ImageSource) -> np.ndarray:
        """One image's vector (float32, shape (dimension,)). Raises EmbeddingFailed."""

    def embed_text(self, text: str) -> np.ndarray:
        """One text's vector. Providers without text raise TextNotSupported."""
        raise TextNotSupported(
            f"the {self.name!r} provider embeds images only; text search needs a model that "
            "reads text: `pgallery reembed --provider clip` (CLIP ViT-B/32, fetched once; "
            "pip install -e .[clip]) or the 'azure' provider (VISION_ENDPOINT/VISION_KEY), "
            "then `pgallery models use` it"
        )

    def embed_images(
        self,
        sources: Iterable[ImageSource],
        on_result: Callable[[ImageResult], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Embed many images, yielding one ImageResult each, in any order.

        The default is sequential; network providers override it to run concurrently
        within their rate limit. A failure of one image is reported, never raised;
        errors that make every further call pointless (bad key, model mismatch) raise.
        """
        for source in sources:
            try:
                result = ImageResult(source, vector=self.embed_image(source))
            except EmbeddingFailed as exc:
                result = ImageResult(source, error=exc)
            if on_result:
                on_result(result)
            yield result

    def close(self) -> None:
        """Release sessions, pools, models."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pad_to_column(vector: np.ndarray) -> np.ndarray:
    """Zero-pad a vector to the column's 1024 dimensions (exact for cosine, L2, inner product)."""
    vector = np.asarray(vector, dtype=np.float32).ravel()
    if vector.shape[0] > COLUMN_DIMENSION:
        from pgallery.errors import MismatchedDimension

        raise MismatchedDimension(
            f"vector has {vector.shape[0]} dimensions; the column holds at most {COLUMN_DIMENSION}"
        )
    if vector.shape[0] == COLUMN_DIMENSION:
        return vector
    return np.concatenate([vector, np.zeros(COLUMN_DIMENSION - vector.shape[0], np.float32)])
