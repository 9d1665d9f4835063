"""The errors only the web layer raises, and the HTTP status of every pgallery error (the
image intake's NotAnImage and BadImageUrl are re-exported here for the web's callers).

A request that goes wrong answers ``{"error": "one line"}`` (or the page with that line)
with the status :func:`status_for` gives; nothing a client sends makes a 500.
"""

from __future__ import annotations

from pgallery.errors import (ArgError, BadImageUrl, DatabaseError, EmbeddingFailed,
                             ImageTooLarge, ModelMismatch, NotAnImage, PaintingNotFound,
                             PgalleryError, PermissionDenied, PromptNotEmbedded, ProviderError,
                             TextNotSupported, UnknownModel, ConfigError)


class UploadTooLarge(ArgError):
    """A request body over the upload limit (the image in it is checked by the intake,
    which says ImageTooLarge)."""


class RequestTimeout(PgalleryError):
    """A request whose body did not arrive within the server's request timeout."""


class Unauthorized(PgalleryError):
    """A request that needs a bearer token and has none this server accepts."""


class UnknownUpload(PgalleryError):
    """An upload hash this server has not seen (or no longer remembers)."""


# Most specific first: the first class an error is an instance of gives its status.
STATUS = (
    (RequestTimeout, 408),
    (Unauthorized, 401),
    (UploadTooLarge, 413),
    (ImageTooLarge, 413),
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


__all__ = ["BadImageUrl", "NotAnImage", "RequestTimeout", "Unauthorized", "UnknownUpload",
           "UploadTooLarge", "one_line",
           "status_for"]


def status_for(error: PgalleryError) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 400


def one_line(error: Exception) -> str:
    """The error's message on one line (hints joined with ' - '), at most 500 characters."""
    text = " - ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text[:500] or type(error).__name__
