"""A search result as JSON: the one shape that `pgallery search ... --json` prints and that
every result object of the JSON API (/api/search's ``results``) starts with.

    result_objects(rows, first=11)  # [{"rank": 11, "image_file": ..., "type": ..., ...}]

The keys are the vocabulary's API names of the result columns (``type``, not the SQL's
``painting_type``), in the SQL's order, after the 1-based rank; the web adds its links
(thumbnail_url, image_url, painting_url, api_url) to each. web/openapi.py describes the
same fields from RESULT_FIELDS.
"""

from __future__ import annotations

from pgallery.vocabulary import RESULT_COLUMNS

# (SQL column, JSON key) of each result column shown, and (JSON key, Python type) of each
# field of a result object, rank first
JSON_COLUMNS: tuple[tuple[str, str], ...] = tuple((c.sql, c.api) for c in RESULT_COLUMNS
                                                  if c.web)
RESULT_FIELDS: tuple[tuple[str, type], ...] = (
    ("rank", int), *((c.api, c.type) for c in RESULT_COLUMNS if c.web))


def result_object(row: dict, rank: int) -> dict:
    """One result row (SQL column names) as its JSON object."""
    item = {"rank": rank}
    item.update({key: row[column] for column, key in JSON_COLUMNS})
    return item


def result_objects(rows: list[dict], first: int = 1) -> list[dict]:
    """The rows of one page of a ranking, ranked from ``first``."""
    return [result_object(row, rank) for rank, row in enumerate(rows, first)]
