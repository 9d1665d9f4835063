"""pgallery: SQL-first image similarity search for painting collections.

The search logic lives in PostgreSQL (``sql/``, applied by Alembic migrations); this
package only starts the database, fetches embeddings and calls the stored functions.
"""

# The one place the version is written: pyproject.toml reads it for the wheel's metadata
# (dynamic version), `pgallery --version` and the web app import it.
__version__ = "0.1.0"
