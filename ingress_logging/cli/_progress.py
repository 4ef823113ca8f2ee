"""Progress for ``ship``: a rich bar (rate, ETA) on a terminal, plain lines elsewhere.

A bar redraws in place, which is noise in a CI log or a file; so when stderr
is not a terminal the same progress is written as a plain line per file and
every ``PLAIN_EVERY`` entries. Messages about single entries (``note``) go
above the bar, or as their own line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Protocol

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from ._ship import ShipCounts

__all__ = ["PLAIN_EVERY", "Reporter", "make_progress"]

PLAIN_EVERY: Final = 1000


class Reporter(Protocol):
    def advance(self, path: str, counts: ShipCounts) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self, counts: ShipCounts) -> None: ...


class _RateColumn(ProgressColumn):
    """Entries per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- entries/s" if speed is None else f"{speed:,.0f} entries/s")


class _Bar:
    def __init__(self, total: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]ship[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("ship", total=total)
        self._progress.start()

    def advance(self, path: str, counts: ShipCounts) -> None:
        self._progress.advance(self._task)

    def note(self, message: str) -> None:
        self._progress.console.print(message, markup=False, highlight=False)

    def close(self, counts: ShipCounts) -> None:
        self._progress.stop()


class _Plain:
    def __init__(self, per_file: Mapping[str, int]) -> None:
        self._total = sum(per_file.values())
        self._left = dict(per_file)
        self._done = 0
        self._start = time.monotonic()

    def _line(self, counts: ShipCounts) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self._done / elapsed
        click.echo(
            f"ship: {self._done}/{self._total} entries ({rate:,.0f}/s): {counts.summary()}",
            err=True,
        )

    def advance(self, path: str, counts: ShipCounts) -> None:
        self._done += 1
        self._left[path] -= 1
        if self._left[path] == 0:
            click.echo(f"ship: done with {path}", err=True)
        if self._done % PLAIN_EVERY == 0:
            self._line(counts)

    def note(self, message: str) -> None:
        click.echo(message, err=True)

    def close(self, counts: ShipCounts) -> None:
        self._line(counts)


def make_progress(*, bar: bool, per_file: Mapping[str, int]) -> Reporter:
    """A terminal bar or plain lines; ``per_file`` is how many entries each file has."""
    return _Bar(sum(per_file.values())) if bar else _Plain(per_file)
