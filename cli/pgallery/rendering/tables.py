"""Terminal output: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table


def _piped_width(stream) -> int | None:
    """A terminal's own width, or COLUMNS; else 160 columns when piped to a file or a pager
    (rich's fallback of 80 wraps every title and file name over several lines)."""
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return 160


console = Console(width=_piped_width(sys.stdout))
err_console = Console(stderr=True, width=_piped_width(sys.stderr))


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def results_table(rows: Sequence[dict], title: str | None = None) -> Table:
    """Search results, best first: rank, similarity, title, author, and the key metadata."""
    table = Table(title=title, show_lines=False, header_style="bold")
    table.add_column("#", justify="right", style="dim")
    # a keyword-only hybrid search has no similarities: no empty column for them
    similarity = not rows or any(r.get("similarity") is not None for r in rows)
    if similarity:
        table.add_column("similarity", justify="right")
    table.add_column("title", overflow="fold", max_width=40)
    table.add_column("author", overflow="fold", max_width=28)
    table.add_column("date")
    table.add_column("type")
    table.add_column("school")
    table.add_column("image_file", style="cyan", overflow="fold")
    hybrid = any(r.get("score") is not None and r.get("score") != r.get("similarity")
                 for r in rows)
    if hybrid:
        table.add_column("score", justify="right")
    for rank, row in enumerate(rows, 1):
        cells = [str(rank)] + ([_fmt(row.get("similarity"))] if similarity else []) + [
                 _fmt(row.get("title")), _fmt(row.get("author")), _fmt(row.get("date")),
                 _fmt(row.get("painting_type")), _fmt(row.get("school")),
                 _fmt(row.get("image_file"))]
        if hybrid:
            cells.append(_fmt(row.get("score")))
        table.add_row(*cells)
    return table


def key_value_table(items: Iterable[tuple[str, object]], title: str | None = None) -> Table:
    table = Table(title=title, show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in items:
        table.add_row(key, _fmt(value))
    return table


def rows_table(rows: Sequence[dict], columns: Sequence[str], title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_fmt(row.get(c)) for c in columns))
    return table


def print_json(data) -> None:
    """JSON on stdout (plain, no colour codes), for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_load_summary(summary, limit: int = 20) -> None:
    """The end of a load: what went in, what was skipped, and every rejected row's reason."""
    merged = summary.merged
    items = [
        ("model", summary.model),
        ("seen", summary.seen),
        ("new paintings", merged.inserted),
        ("updated paintings", merged.updated),
        ("embeddings written", merged.embeddings),
        ("unchanged (skipped)", summary.unchanged),
        ("rejected", len(summary.rejected)),
    ]
    if getattr(summary, "ivfflat_rebuilt", False):
        items.append(("IVFFlat index", "rebuilt"))
    tuned = getattr(summary, "tuning", None)
    if tuned is not None and tuned.sample_size:
        items.append(("recall measured", tuning_line(tuned)))
    if getattr(summary, "ef_search_default", None):
        how = "measured on the collection" if tuned is not None else "sized to the collection"
        items.append(("search default", f"hnsw.ef_search = {summary.ef_search_default} "
                                         f"for new sessions ({how})"))
    console.print(key_value_table(items, title="load summary"))
    for note in [*getattr(summary, "notes", []), *getattr(summary, "map_notes", [])]:
        err_console.print(f"note: {note}", markup=False, highlight=False)
    if summary.rejected:
        rows = [{"where": r.where, "image_file": r.image_file, "reason": r.reason}
                for r in summary.rejected[:limit]]
        err_console.print(rows_table(rows, ("where", "image_file", "reason"),
                                     title="rejected (not loaded)"))
        if len(summary.rejected) > limit:
            err_console.print(f"... and {len(summary.rejected) - limit} more")


def tuning_line(result) -> str:
    """One line for a recall measurement (tuning.TuningResult)."""
    if result.chosen is None:
        return (f"no {result.setting} up to {result.table[-1].value if result.table else '?'}"
                f" met mean >= {result.target_mean:g}; best mean {result.mean:.3f}"
                f" ({result.sample_size} sample queries, {result.seconds:.1f} s)")
    return (f"{result.setting} = {result.chosen}: mean recall@{result.k} {result.mean:.3f},"
            f" p5 {result.p5:.2f}, {result.share_below_half:.1%} under 0.5"
            f" ({result.sample_size} sample queries, {result.seconds:.1f} s)")
