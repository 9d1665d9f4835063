"""Where the database is (embedded or DATABASE_URL) and how to connect to it."""

from pgallery.database.connection import connect, resolve_url, embedded_server

__all__ = ["connect", "resolve_url", "embedded_server"]
