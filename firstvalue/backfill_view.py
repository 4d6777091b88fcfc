"""What ``firstvalue backfill`` shows: a progress bar per file (bytes, events/s, ETA) on
stderr while it runs, then the summary on stdout."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from services.ingest.backfill import Observer, Summary
from services.ingest.backfill_checkpoint import Counts, FileState

MB = 1024 * 1024


class ProgressBar(Observer):
    """The backfill's observer, drawn with rich (plain lines when not on a terminal)."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
        )
        self._tasks: dict[Path, TaskID] = {}
        self._lines: dict[Path, int] = {}
        self._started: dict[Path, float] = {}
        self._read: dict[Path, int] = {}
        self._projection: TaskID | None = None

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def file_started(self, path: Path, size: int, state: FileState) -> None:
        self._lines[path] = state.counts.lines
        self._read[path] = 0
        self._started[path] = time.perf_counter()
        self._tasks[path] = self._progress.add_task(
            path.name, total=max(size, 1), detail=self._detail(path, 0, size)
        )

    def batch_stored(self, path: Path, position: int, counts: Counts) -> None:
        self._lines[path] += counts.lines
        self._read[path] += counts.lines - counts.blank
        task = self._tasks[path]
        size = int(self._progress.tasks[task].total or 0)
        self._progress.update(task, completed=position, detail=self._detail(path, position, size))

    def projecting(self, accounts: int) -> None:
        self._projection = self._progress.add_task(
            "projecting onboardings", total=max(accounts, 1), detail=f"{accounts:,} accounts"
        )

    def projected(self, accounts: int) -> None:
        if self._projection is not None:
            self._progress.advance(self._projection, accounts)

    def _detail(self, path: Path, position: int, size: int) -> str:
        elapsed = time.perf_counter() - self._started[path]
        rate = self._read[path] / elapsed if elapsed > 0 else 0.0
        return (
            f"{position / MB:,.1f}/{size / MB:,.1f} MB · {self._lines[path]:,} lines · "
            f"{rate:,.0f} events/s"
        )


def print_summary(console: Console, summary: Summary) -> None:
    totals = summary.totals
    for path, line in summary.resumed.items():
        console.print(f"Resumed {path} after line {line:,} (from the checkpoint).", highlight=False)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    rows = [
        ("lines read", totals.lines),
        ("accepted (new events)", totals.accepted),
        ("duplicates (already stored)", totals.duplicates),
        ("pending (no account yet when read)", totals.pending),
        ("  still waiting for their account", summary.still_pending),
        ("onboardings registered", totals.registered),
        ("rejected", totals.rejected),
        ("blank lines skipped", totals.blank),
        ("onboardings projected", summary.projected),
    ]
    for label, value in rows:
        style = "red" if label == "rejected" and value else None
        table.add_row(label, f"{value:,}", style=style)
    table.add_row("elapsed", f"{summary.elapsed:,.1f} s")
    table.add_row("events/s (this run)", f"{summary.events_per_second:,.0f}")
    console.print(table)
    if not totals.rejected:
        return
    console.print(f"[red]{totals.rejected:,} rejected[/red] (line: reason):", highlight=False)
    for sample in summary.samples:
        console.print(
            f"  {sample.path}:{sample.line}: {sample.reason}: {sample.error}",
            highlight=False,
            soft_wrap=True,
        )
    if totals.rejected > len(summary.samples):
        console.print(f"  … and {totals.rejected - len(summary.samples):,} more", highlight=False)
    for path in summary.rejected_files:
        console.print(f"Rejected lines, with reasons and the original: {path}", highlight=False)
