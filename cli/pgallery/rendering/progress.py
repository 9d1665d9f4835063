"""A rich progress bar with rate and ETA for long loads (implements loading's Progress)."""

from __future__ import annotations

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                           TaskProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from pgallery.rendering.tables import err_console


class LoadProgress:
    def __init__(self, description: str):
        self.description = description
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=err_console, transient=False,
        )
        self._task = None

    def __enter__(self) -> "LoadProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def start(self, total: int | None, description: str | None = None) -> None:
        if total == 0:   # nothing to do: no bar stuck at 0/0 (the summary says so)
            return
        self._task = self._progress.add_task(description or self.description, total=total,
                                             rate="")

    def advance(self, n: int = 1) -> None:
        if self._task is None:
            self.start(None)
        self._progress.advance(self._task, n)
        task = self._progress.tasks[self._task]
        speed = task.speed
        self._progress.update(self._task, rate=f"{speed:,.0f}/s" if speed else "")
