"""The live status of a run: a table of steps (running, done, failed, waiting, p50 duration).

`Progress` holds the counts. It is fed either by the engine's hooks
(`ProgressListener`, what ``fanflow run`` uses for its own run) or by a
run's records (`Progress.add`, what ``fanflow runs show --follow`` uses:
records also carry the history of a resumed run or of a run in another
process). `LiveView` draws it with rich on a terminal; elsewhere the
same counts are printed as plain lines (`Progress.lines`). `show_records`
consumes an async iterator of records and keeps a view up to date.

Events waiting for a step are derived: routing is by exact event type,
so once a step has started on an event of type T, every T emitted counts
as waiting for it until it starts on it.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from fanflow._runtime.hooks import InvocationInfo, Listener, RunIdentity
from fanflow._runtime.records import Record, RecordKind
from fanflow.events import Event

__all__ = ["Above", "LiveView", "Progress", "ProgressListener", "show_records"]

TIMES = "\u00d7"
DURATIONS = 1000  # durations kept per step for its p50


class Progress:
    """What a run's steps and events have done so far."""

    def __init__(self) -> None:
        self.running: dict[str, set[int]] = {}
        self.done: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.durations: dict[str, deque[float]] = {}
        self.routes: dict[str, set[str]] = {}  # event type -> steps seen to take it
        self.taken: Counter[tuple[str, str]] = Counter()  # (step, event type) first attempts
        self.types: dict[int, str] = {}  # event id -> event type (from records)
        self.ended: str | None = None

    # ------------------------------------------------------------ what happened

    def emitted(self, event_type: str, event_id: int | None = None) -> None:
        """An event of `event_type` was emitted."""
        self.events[event_type] += 1
        if event_id is not None:
            self.types[event_id] = event_type

    def started(self, step: str, invocation: int, event_type: str | None, attempt: int) -> None:
        """An attempt of `step` began on an event of `event_type`."""
        self.running.setdefault(step, set()).add(invocation)
        if attempt == 1 and event_type is not None:
            self.routes.setdefault(event_type, set()).add(step)
            self.taken[step, event_type] += 1

    def finished(self, step: str, invocation: int, seconds: float | None) -> None:
        """An invocation of `step` returned."""
        self.running.get(step, set()).discard(invocation)
        self.done[step] += 1
        self._time(step, seconds)

    def failed_attempt(self, step: str, seconds: float | None) -> None:
        """An attempt of `step` raised (the invocation stays running: a retry may follow)."""
        self.failed[step] += 1
        self._time(step, seconds)

    def end(self, status: str | None) -> None:
        """The run ended: nothing runs any more."""
        self.running.clear()
        self.ended = status or "ended"

    def _time(self, step: str, seconds: float | None) -> None:
        if isinstance(seconds, (int, float)):
            self.durations.setdefault(step, deque(maxlen=DURATIONS)).append(float(seconds))

    # ------------------------------------------------------------ from records

    def add(self, records: Iterable[Record]) -> bool:
        """Count `records`; return whether anything changed."""
        changed = False
        for record in records:
            changed = self._add(record) or changed
        return changed

    def _add(self, record: Record) -> bool:
        kind, step, invocation = record.kind, record.step, record.invocation
        if kind is RecordKind.EVENT_EMITTED and record.event is not None:
            self.emitted(type(record.event).__name__, record.event_id)
        elif kind is RecordKind.RUN_FINISHED:
            self.end(record.data if isinstance(record.data, str) else None)
        elif step is None or invocation is None:
            return False
        elif kind is RecordKind.STEP_STARTED:
            attempt = record.data if isinstance(record.data, int) else 1
            event_type = self.types.get(record.event_id) if record.event_id else None
            self.started(step, invocation, event_type, attempt)
        elif kind is RecordKind.STEP_FINISHED:
            self.finished(step, invocation, record.data)
        elif kind is RecordKind.STEP_FAILED:
            self.failed_attempt(step, record.data)
        else:
            return False
        return True

    # ------------------------------------------------------------ what to show

    def steps(self) -> list[str]:
        """Return the steps seen so far, in the order they first appeared."""
        seen = dict.fromkeys([*self.running, *self.done, *self.failed])
        return list(seen)

    def waiting(self, step: str) -> int:
        """Return the events that `step` is known to take and has not started on yet."""
        total = 0
        for event_type, steps in self.routes.items():
            if step in steps:
                total += self.events[event_type] - self.taken[step, event_type]
        return max(total, 0)

    def p50(self, step: str) -> float | None:
        """Return the median duration of `step`'s attempts so far (None: none ended)."""
        durations = self.durations.get(step)
        return statistics.median(durations) if durations else None

    def lines(self) -> list[str]:
        """Return the status as plain lines: steps running, steps done, events per type."""
        running = [f"{step} {TIMES}{len(ids)}" for step, ids in self.running.items() if ids]
        done = [
            f"{step} {count}" + (f" ({self.failed[step]} failed)" if self.failed[step] else "")
            for step, count in self.done.items()
        ]
        done += [
            f"{step} 0 ({n} failed)" for step, n in self.failed.items() if step not in self.done
        ]
        events = [f"{name} {count}" for name, count in self.events.items()]
        return [
            f"running: {', '.join(running) or '-'}",
            f"done:    {', '.join(done) or '-'}",
            f"events:  {', '.join(events) or '-'}",
        ]

    def table(self) -> Table:
        """Return the status as a rich table, one row per step, with a progress bar each."""
        table = Table(box=None, pad_edge=False, header_style="bold")
        for name, justify in [
            ("step", "left"),
            ("running", "right"),
            ("done", "right"),
            ("failed", "right"),
            ("waiting", "right"),
            ("p50", "right"),
            ("", "left"),
        ]:
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for step in self.steps():
            running, waiting = len(self.running.get(step, ())), self.waiting(step)
            done, failed = self.done[step], self.failed[step]
            p50 = self.p50(step)
            total = done + running + waiting
            table.add_row(
                step,
                str(running) if running else "",
                str(done),
                Text(str(failed), style="red") if failed else "",
                str(waiting) if waiting else "",
                _seconds(p50) if p50 is not None else "",
                ProgressBar(total=max(total, 1), completed=done, width=20),
            )
        return table

    def render(self) -> Group:
        """Return the table with the events emitted per type beneath it."""
        events = ", ".join(f"{name} {count}" for name, count in self.events.items()) or "-"
        return Group(self.table(), Text(f"events: {events}", style="dim"))


def _seconds(value: float) -> str:
    if value < 0.001:
        return f"{value * 1e6:.0f} \u00b5s"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


class ProgressListener(Listener):
    """Feed the `Progress` of one run (the first it hears, or `run_id`) from the engine's hooks."""

    def __init__(self, progress: Progress, run_id: str | None = None) -> None:
        self.progress = progress
        self.run_id = run_id

    def _mine(self, run_id: str) -> bool:
        if self.run_id is None:
            self.run_id = run_id
        return run_id == self.run_id

    def run_started(self, run: RunIdentity) -> None:
        self._mine(run.run_id)

    def run_finished(self, run: RunIdentity, status: str, error: BaseException | None) -> None:
        if self._mine(run.run_id):
            self.progress.end(status)

    def event_emitted(
        self, run_id: str, event_id: int, event: Event, by: InvocationInfo | None
    ) -> None:
        if self._mine(run_id):
            self.progress.emitted(type(event).__name__)

    def step_started(self, info: InvocationInfo) -> None:
        if self._mine(info.run_id):
            self.progress.started(
                info.step, info.invocation, info.event_type.__name__, info.attempt
            )

    def step_finished(self, info: InvocationInfo, output: Event | None, seconds: float) -> None:
        if self._mine(info.run_id):
            self.progress.finished(info.step, info.invocation, seconds)

    def step_failed(self, info: InvocationInfo, error: BaseException, seconds: float) -> None:
        if self._mine(info.run_id):
            self.progress.failed_attempt(info.step, seconds)


class LiveView(AbstractContextManager["LiveView"]):
    """A `Progress` drawn with rich at the bottom of a terminal and redrawn in place."""

    def __init__(self, progress: Progress, stream: TextIO, *, refresh: float = 10.0) -> None:
        self.progress = progress
        self.console = Console(file=stream, force_terminal=True)
        self.live = Live(
            progress.render(),
            console=self.console,
            refresh_per_second=refresh,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def start(self) -> None:
        """Draw the table and keep it up to date with `update`."""
        self.live.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def update(self) -> None:
        """Redraw from the counts now."""
        self.live.update(self.progress.render(), refresh=True)

    def print(self, text: str) -> None:
        """Print `text` above the live table."""
        self.live.console.print(text, end="", markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        """Erase the table (it is transient) and stop redrawing."""
        self.live.stop()


class Above:
    """A text stream whose writes appear above a `LiveView` on the same terminal."""

    def __init__(self, real: TextIO, view: LiveView) -> None:
        self.real = real
        self.view = view

    def write(self, text: str) -> int:
        """Write `text` above the live table (to the real stream when that is not a terminal)."""
        if text:
            if self.real.isatty():
                self.view.print(text)
            else:
                self.real.write(text)
                self.real.flush()
        return len(text)

    def flush(self) -> None:
        """Flush the real stream."""
        self.real.flush()

    def isatty(self) -> bool:
        """Return whether the real stream is a terminal."""
        return self.real.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def show_records(
    records: AsyncIterator[Record],
    stream: TextIO,
    *,
    live: bool | None = None,
    progress: Progress | None = None,
    every: float = 1.0,
    each: Callable[[Record], str | None] | None = None,
) -> Progress:
    """Show a run from its records until they end: a live table on a terminal, else plain lines.

    `live` None asks `stream.isatty()`. Plain output prints a ``progress:``
    line when the counts changed, at most once per `every` seconds, and
    the final counts at the end. `each` turns a record into a line to print
    (above the table when live), or None for none.
    Returns the counts.
    """
    progress = progress or Progress()
    live = stream.isatty() if live is None else live
    if live:
        with LiveView(progress, stream) as view:
            async for record in records:
                line = each(record) if each is not None else None
                if line is not None:
                    view.print(line + "\n")
                if progress.add([record]):
                    view.update()
    else:
        clock = asyncio.get_running_loop().time
        last = clock()
        async for record in records:
            line = each(record) if each is not None else None
            if line is not None:
                print(line, file=stream, flush=True)
            if progress.add([record]) and clock() - last >= every:
                last = clock()
                print("progress: " + " | ".join(progress.lines()), file=stream, flush=True)
    for line in progress.lines()[1:]:
        print(line, file=stream)
    return progress
