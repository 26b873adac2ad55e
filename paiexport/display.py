"""One live display per run: the current stage and, while training, the epoch bar with an ETA.

Stages and the training loop share one rich `Progress` on one console (stderr), so they
never overwrite each other. On a console that is not a terminal (CI logs, pipes) nothing
is redrawn: each finished stage and each epoch is one plain line instead.
The training loop finds the display of the stage it runs in through `current()`; outside
a stage (library use, tests) it gets a silent one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

_current: ContextVar[Display | None] = ContextVar("paiexport_display", default=None)


class _StepsOnly(ProgressColumn):
    """A column shown for the epoch bar only (tasks with a total), blank on the stage line."""

    def __init__(self, column: ProgressColumn) -> None:
        super().__init__()
        self.column = column

    def render(self, task: Task) -> Any:
        return self.column.render(task) if task.total is not None else Text("")


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        _StepsOnly(BarColumn()),
        _StepsOnly(MofNCompleteColumn()),
        TimeElapsedColumn(),
        _StepsOnly(TextColumn("ETA")),
        _StepsOnly(TimeRemainingColumn()),
        console=console,
        transient=True,
    )


class Display:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal and not console.is_dumb_terminal
        self.progress = _progress(console) if self.live else None
        self.bar: TaskID | None = None
        self.epochs, self.seconds = 0, 0.0

    @contextmanager
    def stage(self, what: str) -> Iterator[None]:
        """The stage line (live) for the duration of the block; `current()` is this display."""
        token = _current.set(self)
        try:
            if self.progress is None:
                yield
                return
            with self.progress:
                task = self.progress.add_task(f"{what}…", total=None)
                try:
                    yield
                finally:
                    self.progress.remove_task(task)
        finally:
            _current.reset(token)

    @contextmanager
    def training(self, epochs: int, total_steps: int) -> Iterator[Display]:
        """The epoch bar for one call of the training loop (methods may train several times)."""
        self.epochs, self.seconds = epochs, 0.0
        if self.progress is not None:
            self.bar = self.progress.add_task(f"  train epoch 1/{epochs}", total=total_steps)
        try:
            yield self
        finally:
            if self.progress is not None and self.bar is not None:
                self.progress.remove_task(self.bar)
            self.bar = None

    def step(self) -> None:
        if self.progress is not None and self.bar is not None:
            self.progress.advance(self.bar)

    def epoch_done(self, record: dict[str, Any], percent: bool = True) -> None:
        """A finished epoch's metrics.jsonl record; `percent`: the primary metric is a fraction."""
        name = next(k for k in record if k.startswith("val_") and k != "val_loss")
        epoch, n, value = record["epoch"], self.epochs, record[name]
        label = name.replace("_", " ")
        shown = f"{label} {value:.2%}" if percent else f"{label} {value:.4g}"
        took, self.seconds = record["seconds"] - self.seconds, record["seconds"]  # cumulative in record
        if self.progress is None:
            self.console.print(
                f"epoch {epoch}/{n}  loss {record['train_loss']:.4f}  {shown}  {took:.1f} s",
                highlight=False,
                markup=False,
            )
        elif self.bar is not None:
            now = f"  train epoch {min(epoch + 1, n)}/{n} · {shown} (epoch {epoch})"
            self.progress.update(self.bar, description=now)


def current() -> Display:
    """The display of the stage running now; outside a stage, one that shows nothing."""
    return _current.get() or Display(Console(quiet=True))
