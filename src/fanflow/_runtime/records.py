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
from typing import Any, NamedTuple, Protocol

from fanflow.events import Event

__all__ = ["Record", "RecordKind", "RecordSink", "Store"]


class RecordKind(str, enum.Enum):
    """What a record says happened."""

    RUN_STARTED = "run_started"  # event = the start event, data = workflow name
    EVENT_EMITTED = "event_emitted"  # event_id, event; step/invocation = emitter (None: outside)
    STEP_STARTED = "step_started"  # step, invocation, event_id = input, data = attempt (1-based)
    STEP_FINISHED = "step_finished"  # step, invocation, event_id = output or None, data = seconds
    STEP_FAILED = "step_failed"  # step, invocation, error, data = seconds; a retry may follow
    WAIT_STARTED = "wait_started"  # step, invocation, data = (event type name, requirements)
    STATE_CHANGED = "state_changed"  # data = (path or None for the whole state, new value)
    RUN_FINISHED = "run_finished"  # data = status ("ok", "failed", "cancelled", "timeout")


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


class Store(RecordSink, Protocol):
    """Keeps run records and gives them back by run."""

    def records(self, run_id: str) -> list[Record]:
        """Return the records of `run_id` in ``seq`` order."""

    def run_ids(self) -> list[str]:
        """Return the ids of the runs held, oldest first."""
