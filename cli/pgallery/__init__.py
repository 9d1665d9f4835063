"""pgallery: SQL-first image similarity search for painting collections.

The search logic lives in PostgreSQL (``sql/``, applied by Alembic migrations); this
package starts the database, fetches embeddings and calls the stored functions. Python
callers use :class:`pgallery.Gallery` (gallery.py), the core the CLI and the web share.
"""

# The one place the version is written: pyproject.toml reads it for the wheel's metadata
# (dynamic version), `pgallery --version` and the web app import it.
__version__ = "0.1.0"

__all__ = ["Gallery", "__version__"]


def __getattr__(name: str):
    # Imported on first use, so that `import pgallery` (the CLI's --version) stays cheap.
    if name in ("Gallery", "Result", "Results"):
        from pgallery import gallery

        return getattr(gallery, name)
    raise AttributeError(f"module 'pgallery' has no attribute {name!r}")
