"""The journal hand-off: numbering a run's records and handing them to its store.

`Durability` decides when records are handed to the store: ``"sync"``
writes each record before the run goes on, ``"batched"`` writes the
records of one event-loop turn together (or sooner, once `MAX_PENDING`
have piled up, so a fan-out of a million events does not hold a million
records), ``"exit"`` writes them when the run ends (or the process exits
cleanly).
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Callable
from typing import Any, Literal

from fanflow._runtime.records import Record, RecordKind, Store
from fanflow.errors import StoreError

__all__ = ["DURABILITY_LEVELS", "MAX_PENDING", "Durability", "Journal", "check_durability"]

Durability = Literal["sync", "batched", "exit"]
DURABILITY_LEVELS: tuple[str, ...] = ("sync", "batched", "exit")
MAX_PENDING = 4096  # records held back before a "batched" journal writes early

_new_tuple = tuple.__new__


def check_durability(value: str) -> Durability:
    """Return `value` if it names a durability level; ValueError otherwise."""
    if value not in DURABILITY_LEVELS:
        raise ValueError(f"durability must be one of {', '.join(DURABILITY_LEVELS)}; got {value!r}")
    return value  # type: ignore[return-value]


class Journal:
    """Numbers one run's records and writes them to its store in order.

    A failed write is reported to `on_error` (the run fails with it); the
    records of that batch are not retried here.
    """

    __slots__ = (
        "_scheduled",
        "closed",
        "durability",
        "loop",
        "now",
        "on_error",
        "pending",
        "run_id",
        "seq",
        "sink",
    )

    def __init__(
        self,
        run_id: str,
        sink: Store,
        durability: Durability,
        now: Callable[[], float],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.run_id = run_id
        self.sink = sink
        self.durability = durability
        self.now = now
        self.on_error = on_error
        self.seq = 0
        self.pending: list[Record] = []
        self.closed = False
        self._scheduled = False
        self.loop = asyncio.get_running_loop()

    def record(
        self,
        kind: RecordKind,
        step: str | None = None,
        invocation: int | None = None,
        event_id: int | None = None,
        event: Any = None,
        data: Any = None,
        error: BaseException | None = None,
    ) -> None:
        """Add a record of `kind` (nothing once the journal is closed)."""
        if self.closed:
            return
        self.seq += 1
        pending = self.pending
        # tuple.__new__ skips the named tuple's keyword-handling constructor:
        # this runs several times per event.
        pending.append(
            _new_tuple(
                Record,
                (
                    self.run_id,
                    self.seq,
                    kind,
                    self.now(),
                    step,
                    invocation,
                    event_id,
                    event,
                    data,
                    error,
                ),
            )
        )
        if not self._scheduled:
            self._scheduled = True
            if self.durability == "batched":
                self.loop.call_soon(self.flush)
            elif self.durability == "sync":
                self.flush()
            else:
                atexit.register(self.flush)
        elif len(pending) >= MAX_PENDING and self.durability == "batched":
            self.flush()

    def continue_after(self, seq: int) -> None:
        """Number the next record ``seq + 1`` (resuming a run whose records end at `seq`)."""
        self.seq = seq

    def flush(self) -> None:
        """Write the records so far; a failed write goes to `on_error`."""
        error = self.write()
        if error is not None:
            self.on_error(error)

    def write(self) -> BaseException | None:
        """Write the records so far and return the error, if the write failed."""
        if self._scheduled and self.durability == "exit":
            atexit.unregister(self.flush)
        self._scheduled = False
        if not self.pending:
            return None
        batch, self.pending = self.pending, []
        try:
            self.sink.write(batch)
        except StoreError as exc:
            return exc
        except Exception as exc:
            # Records must never go missing quietly: the run fails with the reason.
            error = StoreError(
                f"run {self.run_id}: writing {len(batch)} records to "
                f"{type(self.sink).__name__} failed: {exc!r}"
            )
            error.__cause__ = exc
            return error
        return None

    def close(self) -> BaseException | None:
        """Write what is left and take no more records; return a write error, if any."""
        error = self.write()
        self.closed = True
        return error
