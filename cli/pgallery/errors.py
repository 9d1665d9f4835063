"""Typed errors for the mistakes users make.

Every error pgallery raises on purpose derives from :class:`PgalleryError`; the CLI turns
them into a one-line message and an exit code instead of a traceback. The SQL functions
raise errors with pgallery's own SQLSTATEs (class ``PG``); :func:`from_database_error` maps
those back to these classes.
"""

from __future__ import annotations

import re


class PgalleryError(Exception):
    """Base class: an error whose message is meant for the user."""

    exit_code = 1


class ConfigError(PgalleryError):
    """A setting is missing or malformed (database URL, provider credentials, ...)."""

    exit_code = 2


class ArgError(PgalleryError):
    """An argument is out of range or malformed (k <= 0, an empty prompt, ...)."""

    exit_code = 2


class MismatchedDimension(ArgError):
    """A vector's dimension is not the one the model or column expects."""


class InvalidVector(ArgError):
    """A vector holds NaN or infinity, or is all zeros (no direction to compare)."""


class DegenerateQuery(InvalidVector):
    """A composed query's terms cancel out (a zero vector), or a weight is NaN or infinite."""


class FilterError(ArgError):
    """A metadata filter is malformed (year_from after year_to, ...)."""


class PaintingNotFound(PgalleryError):
    """No painting has the given image_file."""

    exit_code = 3


class UnknownModel(PgalleryError):
    """The embedding model is not registered in the database, or none is active."""

    exit_code = 3


class PromptNotEmbedded(PgalleryError):
    """A text prompt has no cached embedding for the active model."""

    exit_code = 3


class DatabaseError(PgalleryError):
    """The database could not be reached, started or migrated."""

    exit_code = 4


class NodeUnavailable(DatabaseError):
    """A node of a Citus cluster (a worker holding shards) cannot be reached: the
    statement failed as a whole, so nothing was changed and no page came back short."""


class SchemaNotReady(DatabaseError):
    """The database has not been migrated yet (run `pgallery migrate`)."""


class MigrationBlocked(DatabaseError):
    """A migration step would drop or change a routine or type of pgallery's that one of
    the user's own objects depends on (a view, a function, a default): the step stopped
    and its transaction was rolled back, so nothing changed."""


class PermissionDenied(DatabaseError):
    """The database role may not do this (e.g. pgallery_reader running a write command)."""


class ProviderError(PgalleryError):
    """The embedding provider failed in a way that stops the whole run."""

    exit_code = 5


class TextNotSupported(ProviderError):
    """The provider embeds images only; text search needs `azure` or `clip`."""


class ModelMismatch(ProviderError):
    """The provider answered with another model than the one configured."""


class EmbeddingFailed(ProviderError):
    """One input could not be embedded (bad image, rejected by the API, ...).

    ``code`` is a short machine-readable reason (the API's inner error code where there is
    one); loaders record it per image and carry on.
    """

    def __init__(self, message: str, code: str = "EmbeddingFailed", retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class ImageError(EmbeddingFailed):
    """An image that cannot be read, fetched or decoded: the same error, with its class name
    as ``code``, wherever the image comes from (pgallery/intake/ reads every one)."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message, code=type(self).__name__, retryable=retryable)


class ImageNotFound(ImageError):
    """The file does not exist."""


class NotAnImage(ImageError):
    """The bytes are no usable image: empty, not an image (or a format that is not read or
    not accepted), or damaged."""


class EmptyImage(NotAnImage):
    """The file (or the downloaded body, or the upload) has zero bytes."""


class UnreadableImage(NotAnImage):
    """Not an image (or a format Pillow cannot read, or one the caller does not accept), a
    directory, or a file that cannot be opened (permissions, a device error)."""


class TruncatedImage(NotAnImage):
    """The header is readable but the pixel data is cut short or corrupt."""


class ImageTooLarge(ImageError):
    """Over the reader's byte or pixel limit, or Pillow's decompression-bomb limit (about
    179 megapixels)."""


class ImageTooSmall(ImageError):
    """A side too small for the provider (Azure wants more than 10 px)."""


class ImageDownloadFailed(ImageError):
    """An http(s) image could not be fetched (``retryable`` for 429, 5xx and network
    errors)."""


class BadImageUrl(ImageDownloadFailed):
    """An image URL that may not be fetched: not http(s), an address the address policy
    refuses (this machine or the LAN, for what strangers send), a redirect where redirects
    are refused, or a certificate that does not match the host."""


# SQLSTATEs raised by the functions in sql/ (ERRCODE 'PGA..'); the SQL side lists them in the
# header of its helpers file (sql/idempotent/00_helpers.sql today), and tests/test_errors.py
# checks that every code the SQL raises is mapped here.
SQLSTATE_ERRORS: dict[str, type[PgalleryError]] = {
    "PGA01": MismatchedDimension,
    "PGA02": InvalidVector,
    "PGA03": PaintingNotFound,
    "PGA04": UnknownModel,
    "PGA05": PromptNotEmbedded,
    "PGA06": ArgError,
    "PGA07": FilterError,
    "PGA08": DegenerateQuery,
}


def from_database_error(exc: Exception) -> Exception:
    """Map a psycopg error raised by a pgallery SQL function to its typed error.

    Errors that are not pgallery's own (a broken connection, a bug) are returned unchanged.
    """
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None)
    node = _unreachable_node(str(getattr(diag, "message_primary", None) or exc))
    if node:
        return node
    if sqlstate == "42501":  # insufficient_privilege
        text = str(getattr(diag, "message_primary", None) or exc).strip()
        return PermissionDenied(
            f"{text}\n  hint: this database role may not do that; pgallery_reader only "
            "searches: load, reembed, switch models and build indexes as pgallery_writer "
            "or the owner")
    cls = SQLSTATE_ERRORS.get(sqlstate or "")
    if cls is None:
        # pgvector's own input checks ("NaN not allowed in vector", "expected 1024 dimensions")
        if sqlstate == "22000" or sqlstate == "22P02":
            text = str(getattr(diag, "message_primary", None) or exc)
            if "dimensions" in text:
                return MismatchedDimension(text)
            if "NaN" in text or "infinite" in text.lower() or "Infinity" in text:
                return InvalidVector(text)
        return exc
    message = diag.message_primary if diag and diag.message_primary else str(exc)
    hint = diag.message_hint if diag else None
    return cls(f"{message}\n  hint: {hint}" if hint else message)


# Citus's words for a worker it cannot connect to (the statement then fails as a whole)
_REMOTE_NODE = re.compile(r"connection to the remote node (?:[^@\s]+@)?(\S+?) failed"
                          r"(?: with the following error: (.*))?")


def _unreachable_node(message: str) -> NodeUnavailable | None:
    match = _REMOTE_NODE.search(message)
    if match is None:
        return None
    reason = (match.group(2) or "").splitlines()[0].strip().rstrip(".") if match.group(2) else ""
    return NodeUnavailable(
        f"the Citus worker {match.group(1)} is not reachable"
        + (f" ({reason})" if reason else "")
        + ": nothing was changed; start it (`pgallery db cluster start` for a local "
          "cluster) and try again")
