"""What the image readers (SemArt CSV, folder, failed-image list) hand the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pgallery.loading.records import PaintingRecord, RejectedRow


@dataclass
class ImageItem:
    """One image to load: where its file is, and the painting row it becomes."""

    path: Path | str                # a local file (or an http(s) URL)
    record: PaintingRecord          # image_file, metadata and image_uri
    where: str                      # "line 17", or the path, for messages


@dataclass
class SourceListing:
    """What a reader found: the images to load, the rows it refused, and warnings."""

    items: list[ImageItem] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
