"""The errors only the web layer raises, and the HTTP status of every pgallery error.

A request that goes wrong answers ``{"error": "one line"}`` (or the page with that line)
with the status :func:`status_for` gives; nothing a client sends makes a 500.
"""

from __future__ import annotations

from pgallery.errors import (ArgError, DatabaseError, EmbeddingFailed, ModelMismatch,
                             PaintingNotFound, PgalleryError, PermissionDenied,
                             PromptNotEmbedded, ProviderError, TextNotSupported, UnknownModel,
                             ConfigError)


class UploadTooLarge(ArgError):
    """An uploaded or fetched image is over the byte or pixel limit."""


class NotAnImage(ArgError):
    """The bytes sent are not an image Pillow can read in an accepted format."""


class UnknownUpload(PgalleryError):
    """An upload hash this server has not seen (or no longer remembers)."""


class BadImageUrl(ArgError):
    """An image URL that may not or cannot be fetched."""


# Most specific first: the first class an error is an instance of gives its status.
STATUS = (
    (UploadTooLarge, 413),
    (NotAnImage, 415),
    (BadImageUrl, 422),
    (UnknownUpload, 404),
    (PaintingNotFound, 404),
    (TextNotSupported, 422),
    (ArgError, 422),
    (PromptNotEmbedded, 409),
    (UnknownModel, 409),
    (ModelMismatch, 409),
    (EmbeddingFailed, 422),
    (ProviderError, 502),
    (ConfigError, 503),
    (PermissionDenied, 503),
    (DatabaseError, 503),
)


def status_for(error: PgalleryError) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 400


def one_line(error: Exception) -> str:
    """The error's message on one line (hints joined with ' - '), at most 500 characters."""
    text = " - ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text[:500] or type(error).__name__
