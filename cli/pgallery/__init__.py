"""pgallery: SQL-first image similarity search for painting collections.

The search logic lives in PostgreSQL (``sql/``, applied by Alembic migrations); this
package only starts the database, fetches embeddings and calls the stored functions.
"""

__version__ = "0.1.0"
