"""Progress for long work: rich's bars on a terminal, plain lines elsewhere.

rich draws nothing until the end when its console is not a terminal (CI, ``| tee``, a log
file), so a 13-minute demo would look hung. Here every task also prints one plain line each
10 % of its total or each 30 s, whichever comes first. Imports only rich (usable from any layer).
"""
from __future__ import annotations

import math
import time
from typing import Iterable, Sequence

import rich.progress
from rich.text import Text


class Progress(rich.progress.Progress):
    """``rich.progress.Progress`` that also prints plain lines when the console is not a terminal."""

    def __init__(self, *columns, every_fraction: float = 0.1, every_seconds: float = 30.0, **kwargs):
        super().__init__(*columns, **kwargs)
        self._plain = not self.disable and not self.console.is_terminal  # a disabled bar (DDP rank > 0) stays silent
        self._every = (every_fraction, every_seconds)
        self._marks: dict = {}

    def add_task(self, description: str, *args, **kwargs):
        task_id = super().add_task(description, *args, **kwargs)
        self._marks[task_id] = (0, time.monotonic())  # (the last step of every_fraction printed, when)
        return task_id

    def update(self, task_id, *args, **kwargs) -> None:
        super().update(task_id, *args, **kwargs)
        self._report(task_id)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._report(task_id)

    def _report(self, task_id) -> None:
        if not self._plain:
            return
        task = self._tasks[task_id]
        last_step, last_time = self._marks.get(task_id, (0, time.monotonic()))
        now = time.monotonic()
        fraction = min(1.0, task.completed / task.total) if task.total else None
        every_fraction, every_seconds = self._every
        # whole steps of every_fraction passed (the epsilon: 3 * 0.1 must count as step 3)
        step = math.floor(fraction / every_fraction + 1e-9) if fraction is not None else last_step
        if step <= last_step and now - last_time < every_seconds:
            return
        self._marks[task_id] = (step, now)
        elapsed = task.elapsed or 0.0
        done = f"{task.completed:g}/{task.total:g} ({100 * fraction:.0f} %)" if fraction is not None else f"{task.completed:g}"
        left = f", about {elapsed * (1 - fraction) / fraction:.0f} s left" if fraction and fraction < 1 else ""
        self.console.print(f"{Text.from_markup(task.description).plain}: {done}, {elapsed:.0f} s{left}",
                           markup=False, highlight=False, soft_wrap=True)


def track(sequence: Iterable | Sequence, description: str = "working", total: float | None = None,
          console=None, **kwargs):
    """``rich.progress.track`` with plain lines where the console is not a terminal."""
    columns = [rich.progress.TextColumn("[progress.description]{task.description}"), rich.progress.BarColumn(),
               rich.progress.MofNCompleteColumn(), rich.progress.TimeElapsedColumn(),
               rich.progress.TimeRemainingColumn()]
    with Progress(*columns, console=console, **kwargs) as progress:
        yield from progress.track(sequence, total=total, description=description)
