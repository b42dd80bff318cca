"""Live progress of a run for ``fanflow run``: which steps run, which are done, events per type.

`Progress` counts from the run's records. On a terminal `StatusBlock`
keeps a few status lines at the bottom of the screen and redraws them in
place; anything printed meanwhile goes above them (`Above`). Elsewhere the
same lines are printed plainly, now and then.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from typing import TextIO

from fanflow._runtime.records import Record, RecordKind

__all__ = ["Above", "Progress", "StatusBlock"]

TIMES = "\u00d7"


class Progress:
    """What a run's steps and events have done so far, counted from its records."""

    def __init__(self) -> None:
        self.running: dict[str, set[int]] = {}
        self.done: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.events: Counter[str] = Counter()

    def add(self, records: Iterable[Record]) -> bool:
        """Count `records`; return whether anything changed."""
        changed = False
        for record in records:
            changed = self._add(record) or changed
        return changed

    def _add(self, record: Record) -> bool:
        kind, step = record.kind, record.step
        if kind is RecordKind.EVENT_EMITTED and record.event is not None:
            self.events[type(record.event).__name__] += 1
        elif kind is RecordKind.RUN_FINISHED:
            self.running.clear()
        elif step is None or record.invocation is None:
            return False
        elif kind is RecordKind.STEP_STARTED:
            self.running.setdefault(step, set()).add(record.invocation)
        elif kind is RecordKind.STEP_FINISHED:
            self.running.get(step, set()).discard(record.invocation)
            self.done[step] += 1
        elif kind is RecordKind.STEP_FAILED:
            self.failed[step] += 1  # the invocation stays running: a retry may follow
        else:
            return False
        return True

    def lines(self) -> list[str]:
        """Return the status: steps running, steps done, events per type."""
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


class StatusBlock:
    """A few lines kept at the bottom of a terminal and redrawn in place."""

    def __init__(self, stream: TextIO, width: int = 100) -> None:
        self.stream = stream
        self.width = max(width, 20)
        self.shown = 0
        self.at_line_start = True  # only draw below complete lines of other output

    def show(self, lines: list[str]) -> None:
        """Replace the block with `lines`, each cut to the terminal's width."""
        if not self.at_line_start:
            return
        self.clear()
        cut = [
            line if len(line) < self.width else line[: self.width - 2] + "\u2026" for line in lines
        ]
        self.stream.write("".join(f"{line}\n" for line in cut))
        self.stream.flush()
        self.shown = len(cut)

    def clear(self) -> None:
        """Erase the block, leaving the cursor where it began."""
        if self.shown:
            # Cursor up `shown` lines to column 1, then erase to the end of the screen.
            self.stream.write(f"\x1b[{self.shown}F\x1b[J")
            self.stream.flush()
            self.shown = 0


class Above(io.TextIOBase):
    """A text stream whose writes appear above a `StatusBlock` on the same terminal."""

    def __init__(self, real: TextIO, block: StatusBlock) -> None:
        super().__init__()
        self.real = real
        self.block = block

    def write(self, text: str) -> int:
        """Erase the status block, then write `text`."""
        if text:
            self.block.clear()
            self.real.write(text)
            self.real.flush()
            self.block.at_line_start = text.endswith("\n")
        return len(text)

    def flush(self) -> None:
        """Flush the real stream."""
        self.real.flush()

    def isatty(self) -> bool:
        """Return whether the real stream is a terminal."""
        return self.real.isatty()
