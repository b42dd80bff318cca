"""The journal hand-off: numbering a run's records and handing them to its store.

`Durability` decides when records are handed to the store: ``"sync"``
commits each step transition (a finished invocation with what it emitted
and its state changes) before that worker goes on, ``"batched"`` writes the
records of one event-loop turn together (or sooner, once `MAX_PENDING`
have piled up), ``"exit"`` writes them when the run ends (or the process
exits cleanly).

An in-memory store is written in place. A durable store is written off
the event loop, by a pool of writer threads, one batch per run in flight
at a time (the next batch takes everything recorded meanwhile), so a slow
or stalled store holds up only the runs waiting on it. A failed write is
retried with backoff for up to `retry_limit` seconds; meanwhile the run is
held (``on_hold(True)``: no new invocations, its timeout paused). Past the
limit the journal gives up with `JournalInterrupted`: the records not yet
written are dropped, and the run can be resumed from those that were.
A `LeaseError` (another process holds the run) or a `SerializationError`
is not retried.
"""

from __future__ import annotations

import asyncio
import atexit
import random
import time
from collections.abc import Callable
from typing import Any, Literal

from fanflow._runtime.pools import shared_pool
from fanflow._runtime.records import Record, RecordKind, Store
from fanflow.errors import (
    JournalInterrupted,
    LeaseError,
    SchemaVersionError,
    SerializationError,
    StoreError,
)

__all__ = [
    "DURABILITY_LEVELS",
    "MAX_PENDING",
    "RETRY_LIMIT",
    "Durability",
    "Journal",
    "JournalInterrupted",
    "check_durability",
]

Durability = Literal["sync", "batched", "exit"]
DURABILITY_LEVELS: tuple[str, ...] = ("sync", "batched", "exit")
MAX_PENDING = 4096  # records in one batch; past 4x this a run is held until its store catches up
RETRY_LIMIT = 30.0  # seconds a failing store is retried before the run is interrupted
WRITERS = 8  # writer threads shared by every run in the process

_new_tuple = tuple.__new__
_FINAL = (LeaseError, SerializationError, SchemaVersionError)  # retrying cannot help


def check_durability(value: str) -> Durability:
    """Return `value` if it names a durability level; ValueError otherwise."""
    if value not in DURABILITY_LEVELS:
        raise ValueError(f"durability must be one of {', '.join(DURABILITY_LEVELS)}; got {value!r}")
    return value  # type: ignore[return-value]


class Journal:
    """Numbers one run's records and writes them to its store in order.

    `on_error(error)` hears of a write that failed for good (a
    `JournalInterrupted` past the retry limit, a `LeaseError`, ...);
    `on_hold(held)` of the run having to wait for its store (a stalled
    write, or too many records in flight) and of the wait's end;
    `on_idle()` of everything recorded so far being written.
    """

    __slots__ = (
        "_drains",
        "_failed",
        "_held",
        "_inflight",
        "_scheduled",
        "_stalled",
        "background",
        "closed",
        "durability",
        "loop",
        "now",
        "on_error",
        "on_hold",
        "on_idle",
        "pending",
        "retry_limit",
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
        *,
        on_hold: Callable[[bool], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        retry_limit: float = RETRY_LIMIT,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.run_id = run_id
        self.sink = sink
        self.durability = durability
        self.now = now
        self.on_error = on_error
        self.on_hold = on_hold
        self.on_idle = on_idle
        self.retry_limit = retry_limit
        self.seq = 0
        self.pending: list[Record] = []
        self.closed = False
        self.background = bool(getattr(sink, "durable", False))
        self._scheduled = False
        self._inflight: list[Record] | None = None
        self._stalled = False
        self._held = False
        self._failed = False
        self._drains: list[asyncio.Future[None]] = []
        self.loop = loop or asyncio.get_running_loop()

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
            if self.durability == "exit":
                atexit.register(self.write_now)
            elif self.durability == "sync" and not self.background:
                self.flush()
            else:
                self.loop.call_soon(self.flush)
        elif len(pending) >= MAX_PENDING and self.durability != "exit":
            self.flush()

    # ------------------------------------------------------------ writing

    def flush(self) -> None:
        """Hand the records so far to the store (in place, or to a writer thread)."""
        if self._scheduled and self.durability == "exit":
            atexit.unregister(self.write_now)
        self._scheduled = False
        if not self.pending or self._failed:
            return
        if not self.background:
            error = self.write_now()
            if error is not None:
                self.on_error(error)
            return
        if self._inflight is None:
            self._send()
        elif len(self.pending) >= 4 * MAX_PENDING:
            self._hold(overfull=True)

    def write_now(self) -> BaseException | None:
        """Write the pending records in this thread; return the error, if the write failed."""
        if not self.pending:
            return None
        batch, self.pending = self.pending, []
        try:
            self.sink.write(batch)
        except StoreError as exc:
            return exc
        except Exception as exc:
            return _store_error(self.run_id, self.sink, len(batch), exc)
        return None

    def _send(self) -> None:
        batch = self.pending[:MAX_PENDING]
        del self.pending[:MAX_PENDING]
        self._inflight = batch
        future = self.loop.run_in_executor(
            shared_pool("journal", WRITERS), self._write_retrying, batch
        )
        future.add_done_callback(self._written)

    def _write_retrying(self, batch: list[Record]) -> BaseException | None:
        """Write `batch` (in a writer thread), retrying a failing store with backoff."""
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                self.sink.write(batch)
            except _FINAL as final:
                return final
            except Exception as exc:
                waited = time.monotonic() - started
                if waited >= self.retry_limit:
                    return self._interrupted(exc, waited)
                if not self._stalled:
                    self._stalled = True
                    self.loop.call_soon_threadsafe(self._hold, False)
                time.sleep(min(delay * random.uniform(0.5, 1.0), self.retry_limit - waited))
                delay = min(delay * 2, 2.0)
                continue
            return None

    def _interrupted(self, exc: Exception, waited: float) -> JournalInterrupted:
        error = JournalInterrupted(
            f"run {self.run_id} was interrupted: {type(self.sink).__name__} failed every write "
            f"for {waited:.1f} s (last: {exc!r}). Its records up to the failure are kept; "
            f"resume it with resume({self.run_id!r}) once the store works again"
        )
        error.__cause__ = exc
        return error

    def _written(self, future: asyncio.Future[BaseException | None]) -> None:
        error = future.exception() or future.result()
        self._inflight = None
        if self._stalled:
            self._stalled = False
        if error is not None:
            self._failed = True
            self.pending.clear()  # never written after a gap
            self._release()
            self.on_error(error)  # before the run may settle on what it had
            self._wake_drains()
            return
        if self.pending:
            self._send()
            if len(self.pending) < 4 * MAX_PENDING:
                self._release()
            return
        self._release()
        self._wake_drains()

    def _hold(self, overfull: bool) -> None:
        if not self._held:
            self._held = True
            if self.on_hold is not None:
                self.on_hold(True)

    def _release(self) -> None:
        if self._held and not self._stalled:
            self._held = False
            if self.on_hold is not None:
                self.on_hold(False)

    # ------------------------------------------------------------ waiting and ending

    @property
    def idle(self) -> bool:
        """Return whether every record so far is written (or can no longer be)."""
        return self._inflight is None and (not self.pending or self._failed)

    async def drain(self) -> None:
        """Wait until everything recorded so far is written (a "sync" step transition)."""
        if self.pending and self._inflight is None:
            self.flush()
        if self.idle:
            return
        waiter = self.loop.create_future()
        self._drains.append(waiter)
        await waiter

    def _wake_drains(self) -> None:
        drains, self._drains = self._drains, []
        for waiter in drains:
            if not waiter.done():
                waiter.set_result(None)
        if self.closed and self.on_idle is not None:
            self.on_idle()

    def unwritten(self) -> list[Record]:
        """Return the records recorded but not yet written, in order."""
        return [*(self._inflight or ()), *self.pending]

    def continue_after(self, seq: int) -> None:
        """Number the next record ``seq + 1`` (resuming a run whose records end at `seq`)."""
        self.seq = seq

    def close(self) -> BaseException | None:
        """Take no more records and write what is left.

        In place, the error of that write is returned; in the background it
        goes to `on_error`, and `on_idle` is called once all is written.
        """
        self.closed = True
        if self._scheduled and self.durability == "exit":
            atexit.unregister(self.write_now)
        self._scheduled = False
        if not self.background:
            return self.write_now()
        if self.pending and self._inflight is None and not self._failed:
            self._send()
        return None


def _store_error(run_id: str, sink: Store, count: int, exc: Exception) -> StoreError:
    # Records must never go missing quietly: the run fails with the reason.
    error = StoreError(
        f"run {run_id}: writing {count} records to {type(sink).__name__} failed: {exc!r}"
    )
    error.__cause__ = exc
    return error
