"""Progress bars on stderr: the one every long CLI step draws (spinner, what it is at, bar, done of total, time
taken), and direct mode's scan of every token."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def step_progress(
    console: Console, *, description: str = "{task.description}", item: bool = False, **options: Any
) -> Progress:
    """A rich Progress with the CLI's columns; `description` formats the task's name (a width keeps the bars in a
    column), and `item` adds the task's `item` field (what it is at now) in dim text at the end."""
    columns = [SpinnerColumn(), TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if item:
        columns.append(TextColumn("{task.fields[item]}", style="dim"))
    return Progress(*columns, console=console, **options)


class ScanProgress:
    """Discovery's scan of every token (direct mode), as a progress bar on stderr with an estimate of the rest."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        if self._progress is None:
            columns = (TextColumn("looking up every token"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self._progress = Progress(*columns, console=self._console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("scan", total=total)
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
