"""What a load did: counts for the summary, and every row or image that did not make it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pgallery.loading.records import RejectedRow
from pgallery.loading.writer import MergeCounts

if TYPE_CHECKING:
    from pgallery.loading.after_load import AfterLoad


class Progress(Protocol):
    """Where loaders report progress (the CLI shows a bar; library callers may pass None)."""

    def start(self, total: int | None, description: str | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...


@dataclass
class LoadSummary:
    model: str
    seen: int = 0                 # input rows or images looked at
    merged: MergeCounts = field(default_factory=MergeCounts)
    unchanged: int = 0            # already embedded with the same content: not re-embedded
    rejected: list[RejectedRow] = field(default_factory=list)   # bad input rows / images
    ivfflat_rebuilt: bool = False
    ef_search_default: int | None = None   # the database default, if this load changed it
    tuning: object | None = None            # tuning.TuningResult, if recall was measured
    notes: list[str] = field(default_factory=list)   # advice and facts worth a line each
    map_notes: list[str] = field(default_factory=list)   # what the map's step did

    def took(self, after: "AfterLoad") -> None:
        """Record what the after-load steps (after_load.py) did."""
        self.notes += after.notes
        self.map_notes += after.map_notes
        self.ivfflat_rebuilt = after.ivfflat_rebuilt
        self.ef_search_default = after.ef_search_default
        self.tuning = after.tuning

    @property
    def loaded(self) -> int:
        return self.seen - len(self.rejected) - self.unchanged
