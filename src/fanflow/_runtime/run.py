"""One run of a workflow: routing events to steps and deciding how the run ends.

Events are dispatched synchronously when they are emitted: each step has a
FIFO queue and at most ``num_workers`` worker tasks draining it (see
`fanflow._runtime.worker`). Nothing is copied or rescanned per event, so the
cost of an event does not depend on how many are pending.

The run ends on the first StopEvent, on a step's unhandled exception, on
timeout, on cancellation, or as soon as it is stuck: nothing running, nothing
queued and nobody waiting for input from outside.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from fanflow._runtime.collect import CollectBuffer
from fanflow._runtime.journal import Durability
from fanflow._runtime.lease import Lease
from fanflow._runtime.records import Record, RecordKind, Store
from fanflow._runtime.resume import restore
from fanflow._runtime.stream import EventStream
from fanflow._runtime.table import StepBinding, StepTable
from fanflow._runtime.waiters import Waiters
from fanflow._runtime.worker import Replay, StepFrame, StepRunner, current_frame
from fanflow.clock import Clock, SystemClock, Timer
from fanflow.errors import (
    StoreError,
    UnroutableEventError,
    WorkflowCancelledByUser,
    WorkflowRuntimeError,
    WorkflowStuckError,
    WorkflowTimeoutError,
)
from fanflow.events import Event, InputRequiredEvent, StopEvent

__all__ = ["Run"]

_new_tuple = tuple.__new__
_EMITTED = RecordKind.EVENT_EMITTED
_COLLECT_ADDED = RecordKind.COLLECT_ADDED
_COLLECTED = RecordKind.COLLECTED


class Run:
    """The live state of one run; `Context` and `WorkflowHandler` talk to it."""

    def __init__(
        self,
        *,
        run_id: str,
        workflow_name: str,
        table: StepTable,
        ctx: Any,
        future: asyncio.Future[Any],
        clock: Clock,
        sink: Store,
        timeout: float | None,
        verbose: bool,
        source: str = "",
        durability: Durability = "batched",
    ) -> None:
        self.run_id = run_id
        self.workflow_name = workflow_name
        self.table = table
        self.ctx = ctx
        self.future = future
        self.clock = clock
        self.sink = sink
        self.timeout = timeout
        self.verbose = verbose
        self.source = source
        self.durability = durability
        self.stream = EventStream()
        self.waiters = Waiters(self)
        self.runners: dict[str, StepRunner] = {}
        self.buffers: dict[tuple[str, str | None], CollectBuffer] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.busy = 0  # queued events + invocations in progress
        self.awaiting_input = 0  # InputRequiredEvents not yet answered from outside
        self.parked: deque[tuple[int, Event]] = deque()  # outside events nobody took yet
        self.outcome: str | None = None
        self.stop_event: StopEvent | None = None
        self.last_finished: tuple[str, Event | None] | None = None
        self._seq = 0
        self._event_ids = 0
        self.invocations = 0  # step invocations begun; the last one's id
        self.replays: dict[tuple[str, int], Replay] = {}  # reruns after a resume
        self.on_end: Callable[[], None] | None = None  # told once when the run ends
        self.handoff_open = False  # a worker that will go idle is dispatching its output
        self.handoff: StepRunner | None = None  # the step it takes over (see StepRunner)
        self._synthetic_ids = 0  # ids (< 0) for collected events that were not step inputs
        self._lease: Lease | None = None
        self._timer: Timer | None = None
        self._closed = False
        self._pending: list[Record] = []
        self._flush_scheduled = False
        self.loop = asyncio.get_running_loop()
        # Record times are wall-clock on the system clock (stored runs are read
        # by other processes); skip the method call per read.
        self.now = time.time if isinstance(clock, SystemClock) else clock.now

    # ------------------------------------------------------------ records

    def record(
        self,
        kind: RecordKind,
        step: str | None = None,
        invocation: int | None = None,
        event_id: int | None = None,
        event: Event | None = None,
        data: Any = None,
        error: BaseException | None = None,
    ) -> None:
        """Add a record of `kind` (nothing after RUN_FINISHED).

        Records of one event-loop turn reach the sink together, as one batch.
        """
        if self._closed:
            return
        self._seq += 1
        # tuple.__new__ skips the named tuple's keyword-handling constructor:
        # this runs several times per event.
        self._pending.append(
            _new_tuple(
                Record,
                (
                    self.run_id,
                    self._seq,
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
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if self.durability == "batched":
                self.loop.call_soon(self.flush)
            elif self.durability == "sync":
                self.flush()
            else:
                atexit.register(self.flush)

    def flush(self) -> None:
        """Hand the records recorded so far to the store; a failed write fails the run."""
        error = self._write_pending()
        if error is not None:
            self.fail(error)

    def _write_pending(self) -> BaseException | None:
        if self._flush_scheduled and self.durability == "exit":
            atexit.unregister(self.flush)
        self._flush_scheduled = False
        if not self._pending:
            return None
        batch, self._pending = self._pending, []
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

    # ------------------------------------------------------------ lifecycle

    def start(self, start_event: Event) -> None:
        """Record the start and dispatch `start_event`."""
        self._begin()
        info = {"workflow": self.workflow_name, "source": self.source}
        self.record(RecordKind.RUN_STARTED, event=start_event, data=info)
        self.emit(start_event, None)

    def _begin(self) -> None:
        if getattr(self.sink, "durable", False):
            self._lease = Lease(self.sink, self.run_id)
            self._lease.take()
        if self.timeout is not None:
            self._timer = self.clock.call_later(self.timeout, self._timed_out)

    def resume(self, records: list[Record]) -> None:
        """Continue this run from its `records` (see `fanflow._runtime.resume`)."""
        self._begin()
        self._seq = records[-1].seq
        self.record(RecordKind.RUN_RESUMED, data=self._lease.holder if self._lease else None)
        restore(self, records)
        self.check_stuck()

    def state_changed(self, path: str | None, value: Any) -> None:
        """Record a change of the run's state (`path` None: the whole state)."""
        if self.outcome is None:
            frame = current_frame.get()
            step, invocation = (frame.step, frame.invocation) if frame else (None, None)
            self.record(RecordKind.STATE_CHANGED, step, invocation, data=(path, value))

    def finish(self, stop: StopEvent, event_id: int | None = None) -> None:
        """End the run with `stop`; running workers are cancelled."""
        self.stop_event = stop
        self.stream.put(stop)
        self._end("ok", None, event_id, stop.result if type(stop) is StopEvent else stop)

    def fail(self, error: BaseException, status: str = "failed") -> None:
        """End the run with `error`, which reaches ``await handler`` unchanged."""
        if self.outcome is None:
            self._end(status, error)

    def cancel(self) -> None:
        """End the run at the caller's request."""
        self.fail(WorkflowCancelledByUser(f"run {self.run_id} was cancelled"), "cancelled")

    def detach(self) -> None:
        """Stop driving the run in this process, unfinished; its records stay resumable.

        The records so far are written, the lease is released and nothing
        more is recorded; ``await handler`` then raises `WorkflowRuntimeError`.
        """
        if self.outcome is None:
            detached = WorkflowRuntimeError(
                f"run {self.run_id} was detached unfinished; continue it with "
                f"resume({self.run_id!r}) on a workflow with the same store"
            )
            self._end("detached", detached, finished=False)

    def _end(
        self,
        status: str,
        error: BaseException | None,
        event_id: int | None = None,
        result: Any = None,
        *,
        finished: bool = True,
    ) -> None:
        self.outcome = status
        if finished:
            self.record(RecordKind.RUN_FINISHED, event_id=event_id, data=status, error=error)
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.waiters.cancel_all()
        self._cancel_tasks()
        write_error = self._write_pending()
        error = error or write_error
        if self._lease is not None:
            # A lease the store could not release lapses after its ttl.
            with contextlib.suppress(Exception):
                self._lease.release()
        self.stream.close(error if finished else None)
        if self.on_end is not None:
            self.on_end()
        if self.future.done():
            return
        if error is None:
            self.future.set_result(result)
        else:
            self.future.set_exception(error)
            if not finished:
                self.future.exception()  # nobody need retrieve it: don't log it as lost

    def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    def _timed_out(self) -> None:
        self.fail(
            WorkflowTimeoutError(
                f"run {self.run_id} of {self.workflow_name} timed out after {self.timeout} s; "
                f"{self.activity()}"
            ),
            "timeout",
        )

    # ------------------------------------------------------------ events

    def emit(self, event: Event, frame: StepFrame | None, target: str | None = None) -> int | None:
        """Record `event` as emitted by `frame` (None: from outside) and dispatch it."""
        if self.outcome is not None:
            return None
        if frame is not None and frame.replay is not None and frame.replay.emitted:
            # A rerun after a resume: this event was recorded and routed before.
            return frame.replay.emitted.popleft()
        if target is not None:
            self._target(event, target)  # a bad target raises before anything is recorded
        event_id = self.record_emitted(event, frame, target)
        self.dispatch(event_id, event, frame, target)
        return event_id

    def record_emitted(
        self, event: Event, frame: StepFrame | None, target: str | None = None
    ) -> int:
        """Give `event` an id and record who emitted it."""
        self._event_ids += 1
        step, invocation = (frame.step, frame.invocation) if frame else (None, None)
        self.record(_EMITTED, step, invocation, self._event_ids, event, target)
        return self._event_ids

    def dispatch(
        self, event_id: int, event: Event, frame: StepFrame | None, target: str | None = None
    ) -> None:
        """Deliver `event` to a waiter, to the accepting steps, or end the run."""
        if self.outcome is not None:
            return
        if frame is None:
            self.awaiting_input = 0
        if self.waiters.open and self.waiters.deliver(event_id, event):
            return
        if isinstance(event, StopEvent):
            self.finish(event, event_id)
            return
        bindings = self.table.routes.get(type(event), ())
        if target is not None:
            bindings = self._target(event, target)
        if bindings:
            for binding in bindings:
                self._submit(binding, event_id, event)
        elif isinstance(event, InputRequiredEvent):
            self.stream.put(event)
            self.awaiting_input += 1
        elif frame is None:
            # An answer from outside may arrive before its wait_for_event.
            self.parked.append((event_id, event))
            self.check_stuck()
        else:
            self.fail(self._unroutable(event, frame))

    def _target(self, event: Event, target: str) -> tuple[StepBinding, ...]:
        binding = self.table.by_name.get(target)
        if binding is None:
            raise WorkflowRuntimeError(
                f"send_event(..., step={target!r}): {self.workflow_name} has no step {target!r}; "
                f"steps are {', '.join(sorted(self.table.by_name))}"
            )
        if type(event) not in binding.spec.accepts:
            raise WorkflowRuntimeError(
                f"send_event(..., step={target!r}): step {target!r} does not accept "
                f"{type(event).__name__} (it accepts "
                f"{', '.join(t.__name__ for t in binding.spec.accepts)})"
            )
        return (binding,)

    def _unroutable(self, event: Event, frame: StepFrame) -> UnroutableEventError:
        name = type(event).__name__
        similar = self.table.graph.similar_consumers(type(event))
        hint = (
            f"; steps accepting related types: {', '.join(similar)} (routing is by exact type)"
            if similar
            else f"; add a step with 'ev: {name}'"
        )
        return UnroutableEventError(
            f"step {frame.step!r} emitted {name}, but no step of {self.workflow_name} "
            f"accepts {name}{hint}"
        )

    def _submit(self, binding: StepBinding, event_id: int, event: Event) -> None:
        runner = self.runners.get(binding.spec.name)
        if runner is None:
            runner = self.runners[binding.spec.name] = StepRunner(self, binding)
        self.busy += 1
        runner.submit(event_id, event)

    def write_to_stream(self, event: Event, frame: StepFrame | None) -> None:
        """Record `event` as streamed by `frame` and put it on the run's event stream."""
        if self.outcome is not None:
            return
        if frame is not None and frame.replay is not None and frame.replay.streamed:
            frame.replay.streamed -= 1  # streamed before the resume
            return
        step, invocation = (frame.step, frame.invocation) if frame else (None, None)
        self.record(RecordKind.STREAMED, step, invocation, None, event)
        self.stream.put(event)
        if isinstance(event, InputRequiredEvent):
            self.awaiting_input += 1  # the caller is asked; don't call the run stuck

    def collect(
        self,
        frame: StepFrame,
        event: Event,
        expected: Sequence[type[Event]],
        buffer_id: str | None,
    ) -> list[Event] | None:
        """Buffer `event` for the step of `frame`; return the set once complete."""
        buffer = self.buffer(frame.step, buffer_id)
        if event is frame.event:
            event_id, stored = frame.event_id, None
        else:
            self._synthetic_ids -= 1
            event_id, stored = self._synthetic_ids, event
        self.record(_COLLECT_ADDED, frame.step, frame.invocation, event_id, stored, buffer_id)
        buffer.add(event_id, event)
        taken = buffer.take(expected)
        if taken is None:
            return None
        ids = [item[0] for item in taken]
        self.record(_COLLECTED, frame.step, frame.invocation, None, None, (buffer_id, ids))
        return [item[1] for item in taken]

    def buffer(self, step: str, buffer_id: str | None) -> CollectBuffer:
        """Return the collect buffer of `step` and `buffer_id`, made on first use."""
        buffer = self.buffers.get((step, buffer_id))
        if buffer is None:
            buffer = self.buffers[(step, buffer_id)] = CollectBuffer()
        return buffer

    # ------------------------------------------------------------ progress

    def check_stuck(self) -> None:
        """Fail the run at once if nothing can make progress any more."""
        if self.outcome is None and self.busy == 0 and not self.awaiting_input:
            self.fail(WorkflowStuckError(f"run {self.run_id} is stuck: {self.activity()}"))

    def activity(self) -> str:
        """Describe what the run is doing or waiting for, for error messages."""
        # With nothing busy no step runs, though a worker that just finished its
        # last invocation (and reported it) has not yet exited and still counts.
        runners = [r.describe() for r in self.runners.values()] if self.busy else []
        parts = [described for described in runners if described]
        for (step, _), buffer in self.buffers.items():
            if missing := buffer.missing():
                parts.append(f"step {step!r} collected {missing}")
        parts += [
            f"{type(ev).__name__} was sent from outside but no step accepts or waits for it"
            for _, ev in self.parked
        ]
        parts += self.waiters.describe()
        if self.awaiting_input:
            parts.append("waiting for input from outside (InputRequiredEvent)")
        if not parts and self.last_finished is not None:
            step, output = self.last_finished
            what = (
                f"produced {type(output).__name__}" if output is not None else "produced no event"
            )
            parts.append(f"no StopEvent was produced; the last step to finish, {step!r}, {what}")
        return "; ".join(parts) or "no step is running"
