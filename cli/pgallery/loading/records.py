"""What a loader hands the database: one painting's metadata and (maybe) its vector."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METADATA_FIELDS = ("title", "author", "technique", "date", "painting_type", "school",
                   "timeframe", "description")

# SemArt marks unknown values with "-"; we store them as NULL so filters never match them.
UNKNOWN_VALUES = {"", "-"}


def clean(value) -> str | None:
    """A metadata value as stored: stripped, with SemArt's '-' and empty values as NULL."""
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    text = str(value).strip()
    return None if text in UNKNOWN_VALUES else text


@dataclass
class PaintingRecord:
    image_file: str
    title: str | None = None
    author: str | None = None
    technique: str | None = None
    date: str | None = None
    painting_type: str | None = None
    school: str | None = None
    timeframe: str | None = None
    description: str | None = None
    image_uri: str | None = None
    content_hash: str | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)
    palette: object = field(default=None, repr=False)   # pgallery.palette.Palette


@dataclass
class RejectedRow:
    """An input row that was not loaded, and why (reported to the user, never silently lost)."""

    where: str      # "line 17" or a file path
    image_file: str | None
    reason: str
