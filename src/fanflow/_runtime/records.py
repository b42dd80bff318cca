"""Records: the append-only account of everything that happens in a run.

A run's records, in ``seq`` order, say which events were emitted and by
whom, which step invocations started and finished (and with what), how the
state changed and how the run ended. They are enough to rebuild the run's
history, and a durable store can resume a run from them: an event whose
consuming invocation has a STEP_FINISHED record need not be processed again.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from fanflow.events import Event

__all__ = ["Record", "RecordKind", "RecordSink", "RunInfo", "Store"]


class RecordKind(str, enum.Enum):
    """What a record says happened."""

    # event = the start event; data = {"workflow": name, "source": "module:Class", ...}
    RUN_STARTED = "run_started"
    # event_id, event; step/invocation = emitter (None: from outside); data = target step
    EVENT_EMITTED = "event_emitted"
    STEP_STARTED = "step_started"  # step, invocation, event_id = input, data = attempt (1-based)
    STEP_FINISHED = "step_finished"  # step, invocation, event_id = output or None, data = seconds
    STEP_FAILED = "step_failed"  # step, invocation, error, data = seconds; a retry may follow
    WAIT_STARTED = "wait_started"  # step, invocation, data = (event type name, requirements)
    WAIT_RESOLVED = "wait_resolved"  # step, invocation, event_id = the event the wait got
    COLLECT_ADDED = (
        "collect_added"  # step, invocation, event_id (event if not an input), data = buffer id
    )
    COLLECTED = "collected"  # step, invocation, data = (buffer id, [event ids taken])
    STREAMED = "streamed"  # step, invocation (None: outside), event = what was written
    STATE_CHANGED = "state_changed"  # step, invocation, data = (path or None: whole state, value)
    RUN_RESUMED = "run_resumed"  # data = the lease holder that took the run over
    RUN_FINISHED = "run_finished"  # data = status ("ok", "failed", ...), event_id = the StopEvent


class Record(NamedTuple):
    """One thing that happened in a run (a named tuple: cheap and immutable)."""

    run_id: str
    seq: int
    kind: RecordKind
    at: float
    step: str | None = None
    invocation: int | None = None
    event_id: int | None = None
    event: Event | None = None
    data: Any = None
    error: BaseException | None = None


class RecordSink(Protocol):
    """Where a run sends its records, a batch per event-loop turn."""

    def write(self, records: Sequence[Record]) -> None:
        """Take a batch of one run's records; batches arrive in ``seq`` order."""


@dataclass(frozen=True)
class RunInfo:
    """One line of a run listing (``store.list_runs()``, ``fanflow runs list``)."""

    run_id: str
    workflow: str
    status: str  # "running", or how the run ended: "ok", "failed", "cancelled", "timeout"
    started_at: float  # seconds since the epoch
    finished_at: float | None

    @property
    def duration(self) -> float | None:
        """Return the run's length in seconds, None while it runs."""
        return None if self.finished_at is None else self.finished_at - self.started_at


class Store(RecordSink, Protocol):
    """Keeps run records and gives them back by run; guards resumes with leases.

    `fanflow.stores.MemoryStore` is the reference implementation and the
    test double; durable stores commit each `write` batch atomically.

    Optional: ``subscribe(run_id, after=0) -> AsyncIterator[Record]``
    follows a run live (``handler.records()``, ``fanflow runs show
    --follow``): the run's records with ``seq > after``, those stored
    first, then each one as it is written (by any process, for a durable
    store), ending after RUN_FINISHED; KeyError if the store holds no
    record of the run. All of fanflow's stores have it.
    """

    def records(self, run_id: str) -> list[Record]:
        """Return the records of `run_id` in ``seq`` order; KeyError if unknown."""

    def run_ids(self) -> list[str]:
        """Return the ids of the runs held, oldest first."""

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Return the runs held, newest first, optionally only those with `status`."""

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        """Take the run for `holder` for `ttl` seconds; `LeaseError` naming the holder if taken.

        A lease whose holder stopped renewing it (its process died) expires
        after its ttl; re-acquiring one's own lease renews it.
        """

    def release_lease(self, run_id: str, holder: str) -> None:
        """Give the run back (no-op if `holder` does not hold it)."""

    def close(self) -> None:
        """Release connections and files (writes already made are kept)."""
