"""`Context`: what a step sees of its run, and what the caller sees through ``handler.ctx``.

Inside a step, ``ctx`` sends events, collects fan-in, waits for outside
input, streams progress and reads and writes the run's state. From outside,
``handler.ctx.send_event(...)`` delivers an answer into a running run.
A `Context` built by hand (``Context(workflow)``) and passed to several
``run(ctx=ctx)`` calls keeps its state between them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

from pydantic import BaseModel

from fanflow._runtime.frame import StepFrame, current_frame
from fanflow._runtime.records import Record, RecordKind
from fanflow._runtime.run import Run
from fanflow._runtime.state import DictState, StateStore
from fanflow.context.serializers import BaseSerializer, JsonSerializer, PickleSerializer
from fanflow.errors import (
    ContextStateError,
    SchemaVersionError,
    SerializationError,
    WorkflowRuntimeError,
)
from fanflow.events import Event
from fanflow.retry import RetryInfo
from fanflow.serialize import SCHEMA_VERSION, record_to_text_row, row_to_record

__all__ = ["BaseSerializer", "Context", "JsonSerializer", "PickleSerializer"]

StateT = TypeVar("StateT", bound=BaseModel)
E = TypeVar("E", bound=Event)


class Context(Generic[StateT]):
    """A run's context: events, fan-in, waits, stream and state.

    Annotate the step parameter ``ctx: Context`` (or ``ctx: Context[MyState]``
    for a typed state model with defaults for every field).
    """

    # Lets `@step` recognise the context parameter (see fanflow.step).
    __fanflow_context__ = True

    def __init__(self, workflow: Any) -> None:
        self._workflow = workflow
        self._store: StateStore[StateT] | None = None
        self._run: Run | None = None
        self._saved_records: list[Record] | None = None  # from `from_dict`, resumed by run()

    # ------------------------------------------------------------ run binding

    def _attach(self, run: Run) -> None:
        if self._run is not None and self._run.outcome is None:
            raise ContextStateError(
                f"this Context is already running run {self._run.run_id}; "
                "a Context serves one run at a time"
            )
        self._run = run

    @property
    def is_running(self) -> bool:
        """Return whether a run is using this context right now."""
        return self._run is not None and self._run.outcome is None

    @property
    def run_id(self) -> str | None:
        """Return the id of the run using (or last using) this context."""
        return self._run.run_id if self._run else None

    def _require_run(self, what: str) -> Run:
        if self._run is None:
            raise WorkflowRuntimeError(
                f"Context.{what}() needs a run: call it inside a step, or on handler.ctx "
                "after wf.run(...)"
            )
        return self._run

    def _require_step(self, what: str) -> StepFrame:
        frame = current_frame.get()
        if frame is None or frame.run is not self._run:
            raise WorkflowRuntimeError(
                f"Context.{what}() must be called inside a step of this context's run"
            )
        return frame

    # ------------------------------------------------------------ saving

    def to_dict(self, serializer: BaseSerializer | None = None) -> dict[str, Any]:
        """Return this context as JSON-ready data: its state and its run's records.

        The state is written as `StateStore.to_dict` writes it, values by
        `serializer` (default `JsonSerializer`). ``Context.from_dict(workflow,
        data)`` turns it back into a context; ``workflow.run(ctx=...)`` with
        it continues the run where it stood.
        """
        data: dict[str, Any] = {
            "version": SCHEMA_VERSION,
            "state": self.store.to_dict(serializer or JsonSerializer()),
            "records": [],
        }
        if self._run is not None:
            data["records"] = [record_to_text_row(r) for r in self._run.records()]
        return data

    @classmethod
    def from_dict(
        cls, workflow: Any, data: dict[str, Any], serializer: BaseSerializer | None = None
    ) -> Context[Any]:
        """Rebuild a context saved with `to_dict` for `workflow` (same `serializer`)."""
        if not isinstance(data, dict) or "state" not in data:
            raise SerializationError("Context.from_dict() needs the dict made by ctx.to_dict()")
        if data.get("version", 0) > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"context data has format version {data['version']}; this fanflow reads "
                f"up to {SCHEMA_VERSION}"
            )
        ctx: Context[Any] = cls(workflow)
        state = data["state"]
        if isinstance(state, dict) and "state_data" in state:
            saved = StateStore.from_dict(state, serializer or JsonSerializer())
            ctx.store.restore(None, saved.snapshot())
        else:  # the plain-JSON state of fanflow 0.1
            ctx.store.restore(None, state)
        records = [row_to_record(row) for row in data.get("records", [])]
        if records and records[-1].kind is not RecordKind.RUN_FINISHED:
            ctx._saved_records = records
        return ctx

    # ------------------------------------------------------------ state

    @property
    def store(self) -> StateStore[StateT]:
        """Return the state store: ``await ctx.store.get("a.b")``, ``set``, ``edit_state()``."""
        if self._store is None:
            state_type = getattr(self._workflow, "state_type", None) or DictState
            self._store = StateStore(cast(StateT, state_type()))
            self._store.on_change = self._state_changed
        return self._store

    def _state_changed(self, path: str | None, value: Any) -> None:
        run = self._run
        if run is not None:
            frame = current_frame.get()
            run.state_changed(path, value, frame if frame and frame.run is run else None)

    # ------------------------------------------------------------ events

    def send_event(self, message: Event, step: str | None = None) -> None:
        """Emit `message` into the run; with `step`, deliver it to that step only.

        Inside a step this fans out; from outside (``handler.ctx``) it answers
        a waiting run. Sending to a finished run from outside raises.
        """
        _check_event(message, "send_event")
        run = self._require_run("send_event")
        frame = current_frame.get()
        if frame is not None and frame.run is run:
            run.emit(message, frame, step)
            return
        if run.outcome is not None:
            raise WorkflowRuntimeError(
                f"cannot send {type(message).__name__}: run {run.run_id} has already "
                f"finished ({run.outcome})"
            )
        run.emit(message, None, step)

    def collect_events(
        self,
        ev: Event,
        expected: Sequence[type[Event]],
        buffer_id: str | None = None,
    ) -> list[Event] | None:
        """Buffer `ev`; once every type in `expected` has arrived, return them in that order.

        Returns None until then. Each call pops exactly one event per entry
        of `expected`; surplus events stay buffered for the next call.
        `buffer_id` keeps separate fan-ins of one step apart.
        """
        _check_event(ev, "collect_events")
        frame = self._require_step("collect_events")
        if not expected:
            raise WorkflowRuntimeError(
                f"step {frame.step!r}: collect_events() needs a non-empty list of event types"
            )
        first = expected[0]
        if not (isinstance(first, type) and issubclass(first, Event)):
            raise WorkflowRuntimeError(
                f"step {frame.step!r}: collect_events() takes event types, e.g. [MyEvent] * 3; "
                f"got {first!r}"
            )
        return frame.run.collect.collect(frame, ev, expected, buffer_id)  # type: ignore[no-any-return]

    async def wait_for_event(
        self,
        event_type: type[E],
        waiter_event: Event | None = None,
        waiter_id: str | None = None,
        requirements: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> E:
        """Suspend this step until an `event_type` event matching `requirements` arrives.

        `waiter_event` (often an InputRequiredEvent) is written to the stream
        once the wait is registered, so an answer cannot slip past it. The
        code before the wait runs once. `timeout` (seconds) raises
        `WorkflowTimeoutError` in the step. `waiter_id` is accepted for
        compatibility and has no effect: each call writes its waiter event once.
        """
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise WorkflowRuntimeError(
                f"wait_for_event() takes an Event subclass, got {event_type!r}"
            )
        frame = self._require_step("wait_for_event")
        event: E = await frame.run.wait(frame, event_type, waiter_event, requirements, timeout)
        return event

    def write_event_to_stream(self, ev: Event | None) -> None:
        """Put `ev` on the run's event stream (``handler.stream_events()``)."""
        if ev is None:
            return
        _check_event(ev, "write_event_to_stream")
        run = self._require_run("write_event_to_stream")
        frame = current_frame.get()
        run.write_to_stream(ev, frame if frame is not None and frame.run is run else None)

    def retry_info(self) -> RetryInfo:
        """Return the running step's retry state (attempt number, last error)."""
        return self._require_step("retry_info").retry


def _check_event(ev: object, what: str) -> None:
    if not isinstance(ev, Event):
        raise WorkflowRuntimeError(
            f"Context.{what}() takes an Event instance, got {type(ev).__name__} ({ev!r:.60})"
        )
