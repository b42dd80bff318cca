"""One run of a workflow: the thin object that wires the parts together.

The parts, each with its own state (see docs/architecture.md):

- `Journal` numbers the records and hands them to the store;
- `Scheduler` holds each step's queue and worker tasks;
- `Invoker` runs one invocation (attempts, retries, timeout, executor);
- `Inbox` holds the waits, input requests, parked and early events;
- `CollectBuffers` hold the fan-in buffers;
- `EventStream` carries what steps stream to the caller;
- `Hooks` tell listeners what happens.

The run itself routes each emitted event and decides how the run ends: on
the first StopEvent, on a step's unhandled exception, on timeout, on
cancellation, or as soon as it is stuck (nothing running, nothing queued
and nobody waiting for input from outside). The caller hears the result
only after every worker task of the run has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from typing import Any

from fanflow._runtime.collect import CollectBuffers
from fanflow._runtime.frame import Replay, StepFrame
from fanflow._runtime.hooks import VERBOSE, Hooks, InternalEvents, Listener, RunIdentity
from fanflow._runtime.inbox import Inbox
from fanflow._runtime.invoke import Invoker
from fanflow._runtime.journal import RETRY_LIMIT, Durability, Journal, JournalInterrupted
from fanflow._runtime.lease import Lease
from fanflow._runtime.records import Record, RecordKind, Store
from fanflow._runtime.resume import restore
from fanflow._runtime.scheduler import Lane, Scheduler
from fanflow._runtime.stream import EventStream
from fanflow._runtime.table import StepBinding, StepTable
from fanflow._values import Unjournaled, check_event, check_state_value
from fanflow.clock import Clock, SystemClock, Timer
from fanflow.errors import (
    LeaseError,
    UnroutableEventError,
    WorkflowCancelledByUser,
    WorkflowRuntimeError,
    WorkflowStuckError,
    WorkflowTimeoutError,
)
from fanflow.events import (
    Event,
    InputRequiredEvent,
    StepFailedEvent,
    StopEvent,
    UnhandledEvent,
    WorkflowCancelledEvent,
    WorkflowFailedEvent,
    WorkflowIdleEvent,
    WorkflowTimedOutEvent,
)

__all__ = ["CANCEL_GRACE", "Run"]

log = logging.getLogger("fanflow")

# Seconds the caller waits, after a run ends, for cancelled steps that ignore
# cancellation; then it gets the result anyway and a warning names them.
CANCEL_GRACE = 10.0

_EMITTED = RecordKind.EVENT_EMITTED


class Run:
    """The live state of one run; `Context` and `WorkflowHandler` talk to it."""

    # Thousands of runs may be alive at once: no per-instance dict.
    __slots__ = (
        "_blocked",
        "_event_ids",
        "_failure",
        "_grace",
        "_internal",
        "_invocations",
        "_lease",
        "_overdue_tasks",
        "_owns_sink",
        "_paused_left",
        "_recoveries",
        "_resources",
        "_settlement",
        "_timer",
        "_unjournaled",
        "_workers",
        "cancel_requested",
        "clock",
        "collect",
        "context",
        "ctx",
        "deadline",
        "durable",
        "executor",
        "future",
        "hooks",
        "identity",
        "inbox",
        "invoker",
        "journal",
        "last_finished",
        "loop",
        "monotonic",
        "now",
        "on_end",
        "outcome",
        "record",
        "replays",
        "run_id",
        "scheduler",
        "source",
        "started",
        "stop_event",
        "stream",
        "sync_writes",
        "table",
        "timeout",
        "workflow_name",
    )

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
        verbose: bool = False,
        source: str = "",
        durability: Durability = "batched",
        listeners: Sequence[Listener] = (),
        executor: Any = None,
        resources: Any = None,
        context: contextvars.Context | None = None,
        owns_sink: bool = False,
        retry_limit: float = RETRY_LIMIT,
    ) -> None:
        self.run_id = run_id
        self.workflow_name = workflow_name
        self.table = table
        self.ctx = ctx
        self.future = future
        self.clock = clock
        self.timeout = timeout
        self.source = source
        self.executor = executor
        self._resources = resources  # resolves a step's Resource parameters
        self._owns_sink = owns_sink  # opened from a URL for this run: closed when it settles
        self.loop = asyncio.get_running_loop()
        # Every worker starts from a copy of this: the caller's context, plus
        # whatever a listener sets in `run_started` (a tracer's run span).
        self.context = context if context is not None else contextvars.copy_context()
        # Record times are wall-clock on the system clock (stored runs are read
        # by other processes); the clock's own time otherwise.
        system = isinstance(clock, SystemClock)
        self.now = time.time if system else clock.now
        # Durations and deadlines: the clock's own time, skipping a method call.
        self.monotonic = time.monotonic if system else clock.now
        self.journal = Journal(
            run_id,
            sink,
            durability,
            self.now,
            self._write_failed,
            on_hold=self._hold,
            on_idle=self._maybe_settle,
            retry_limit=retry_limit,
            loop=self.loop,
        )
        # Events and state of a durable run are read back by other processes:
        # what cannot round-trip is refused (events) or flagged (state) at once.
        self.durable = bool(getattr(sink, "durable", False))
        self.sync_writes = self.durable and durability == "sync"
        self._unjournaled: set[str] | None = None  # state keys warned about
        self.record = self.journal.record
        self.stream = EventStream()
        self.inbox = Inbox(run_id, self.record, self.stream.put, clock)
        self.collect = CollectBuffers(self.record)
        self.invoker = Invoker(self)
        self.scheduler = Scheduler(
            self.loop,
            self.context,
            self._new_frame,
            self.invoker.invoke,
            self._maybe_settle,
            self._crashed,
            lambda step: table.in_loop(step, executor),
        )
        self.hooks = Hooks.for_run((*listeners, VERBOSE) if verbose else listeners)
        self.identity = RunIdentity(run_id, workflow_name)
        self.replays: dict[tuple[str, int], Replay] = {}  # reruns after a resume
        self.started = False
        self.outcome: str | None = None
        self.stop_event: StopEvent | None = None
        self.last_finished: tuple[str, Event | None] | None = None
        self.deadline: float | None = None
        self.on_end: Any = None  # told once when the run ends (the workflow's run queue)
        self.cancel_requested = False  # handler.cancel(): the handler ends cancelled
        self._event_ids = 0
        self._invocations = 0
        self._workers = 0
        self._recoveries: dict[str, int] = {}  # catch_error step -> times it was entered
        self._failure: tuple[str, int | None] | None = None  # (step, attempts) that failed
        self._internal: InternalEvents | None = None
        self._blocked: tuple[str, float] | None = None
        self._lease: Lease | None = None
        self._timer: Timer | None = None
        self._paused_left: float | None = None  # timeout left while held by the store
        self._grace: asyncio.TimerHandle | None = None
        self._overdue_tasks = False
        self._settlement: tuple[BaseException | None, Any] | None = None

    @property
    def sink(self) -> Store:
        """Return the store the run's records go to."""
        return self.journal.sink

    # ------------------------------------------------------------ parts' callbacks

    def _new_frame(self, step: str) -> StepFrame:
        self._workers += 1
        return StepFrame(self, step, self._workers)

    def next_invocation(self) -> int:
        """Number a new invocation."""
        self._invocations += 1
        return self._invocations

    def counters(self, event_ids: int, invocations: int) -> None:
        """Continue numbering events and invocations after these (resuming)."""
        self._event_ids, self._invocations = event_ids, invocations

    async def resources(self, lane: Lane) -> dict[str, Any]:
        """Resolve the resources `lane`'s step asks for."""
        if self._resources is None:
            return {}
        resolved: dict[str, Any] = await self._resources(lane.binding.spec.resources)
        return resolved

    async def committed(self) -> None:
        """Wait until every record so far is in the store ("sync" durability)."""
        await self.journal.drain()

    def blocked(self, step: str, seconds: float) -> None:
        """Note that `step` held the event loop for `seconds` across the deadline."""
        if self._blocked is None:
            self._blocked = (step, seconds)

    def _write_failed(self, error: BaseException) -> None:
        """End the run on a write that failed for good: lost, interrupted or failed."""
        if isinstance(error, LeaseError):
            status = "lost"
        elif isinstance(error, JournalInterrupted):
            status = "interrupted"
        else:
            status = "failed"
        if self.outcome is None:
            if status == "failed":
                self.fail(error)
            else:
                self._end(status, error, finished=False)
        elif self._settlement is not None:
            # Ended already, but its last records could not be written: the
            # caller must not take a result the journal does not hold.
            self.outcome = status
            self._settlement = (error, None)
            self._maybe_settle()

    def _hold(self, held: bool) -> None:
        """Hold the run while its store catches up: no new invocations, timeout paused."""
        if self.outcome is not None:
            return
        if held:
            self.scheduler.pause()
            if self._timer is not None and self.deadline is not None:
                self._timer.cancel()
                self._paused_left = max(0.0, self.deadline - self.monotonic())
        else:
            self.scheduler.resume()
            if self._paused_left is not None:
                left, self._paused_left = self._paused_left, None
                self.deadline = self.monotonic() + left
                self._timer = self.clock.call_later(left, self._timed_out)

    def _crashed(self, error: BaseException) -> None:
        if isinstance(error, Exception):
            self.fail(error)
            return
        wrapped = WorkflowRuntimeError(f"run {self.run_id}: {type(error).__name__} in the engine")
        wrapped.__cause__ = error
        self.fail(wrapped)

    # ------------------------------------------------------------ lifecycle

    def start(self, start_event: Event) -> None:
        """Record the start, dispatch `start_event`, then the events sent while queued."""
        self._begin()
        info = {"workflow": self.workflow_name, "source": self.source, **self.identity.metadata}
        self.record(RecordKind.RUN_STARTED, None, None, None, start_event, info)
        self.emit(start_event, None)
        early, self.inbox.early = self.inbox.early, []
        for event, target in early:
            self.emit(event, None, target)

    def _begin(self) -> None:
        self.started = True
        if self.durable and self._lease is None:
            self.take_lease()
        if self.timeout is not None:
            self.deadline = self.monotonic() + self.timeout
            self._timer = self.clock.call_later(self.timeout, self._timed_out)
        if self.hooks.listeners:
            self.context.run(self.hooks.call, "run_started", self.identity)

    def take_lease(self) -> None:
        """Take the run's lease on a durable store (before reading its records to resume)."""
        if self.durable:
            self._lease = Lease(self.sink, self.run_id, on_lost=self._lease_lost)
            self._lease.take()

    def release_lease(self) -> None:
        """Give the lease back without running (a resume that was refused)."""
        if self._lease is not None:
            with contextlib.suppress(Exception):
                self._lease.release()
            self._lease = None

    def _lease_lost(self, error: BaseException) -> None:
        """Stop driving the run at once: another process holds it now."""
        if self.outcome is None:
            self._end("lost", error, finished=False)

    def resume(self, records: list[Record]) -> None:
        """Continue this run from its `records` (see `fanflow._runtime.resume`)."""
        first = records[0].data if records and records[0].kind is RecordKind.RUN_STARTED else None
        kept = (
            {k: v for k, v in first.items() if k not in ("workflow", "source")}
            if isinstance(first, dict)
            else {}
        )
        self.identity = RunIdentity(self.run_id, self.workflow_name, resumed=True, metadata=kept)
        self._begin()
        self.journal.continue_after(records[-1].seq)
        self.record(RecordKind.RUN_RESUMED, data=self._lease.holder if self._lease else None)
        restore(self, records)
        self.check_stuck()

    def state_changed(self, path: str | None, value: Any, frame: StepFrame | None) -> None:
        """Record a change of the run's state (`path` None: the whole state).

        On a durable store a value that cannot round-trip is recorded as
        `Unjournaled`: the run goes on, one warning names the key, and the
        run can no longer be resumed.
        """
        if self.outcome is not None:
            return
        step, invocation = (frame.step, frame.invocation) if frame else (None, None)
        if self.durable:
            problem = check_state_value(value)
            if problem is not None:
                self._warn_unjournaled(path, problem)
                value = Unjournaled(problem)
        self.record(RecordKind.STATE_CHANGED, step, invocation, data=(path, value))

    def _warn_unjournaled(self, path: str | None, problem: str) -> None:
        key = path or "(the whole state)"
        if self._unjournaled is None:
            self._unjournaled = set()
        if key in self._unjournaled:
            return
        self._unjournaled.add(key)
        log.warning(
            "run %s: state %s holds %s, which cannot be journaled; the run goes on but cannot "
            "be resumed. Keep such objects (clients, buffers) in a Resource instead: "
            "Annotated[T, Resource(make_t)]",
            self.run_id,
            key,
            problem,
            extra={"run_id": self.run_id, "step": None},
        )

    def records(self) -> list[Record]:
        """Return the run's records: those in its store, then those not yet written."""
        self.journal.flush()
        try:
            stored = self.sink.records(self.run_id)
        except KeyError:
            stored = []
        last = stored[-1].seq if stored else 0
        return stored + [r for r in self.journal.unwritten() if r.seq > last]

    def subscribe(self, after: int = 0) -> AsyncIterator[Record]:
        """Follow the run's records from ``seq > after`` (see `Store.subscribe`)."""
        self.journal.flush()
        subscribe = getattr(self.sink, "subscribe", None)
        if subscribe is None:
            raise WorkflowRuntimeError(
                f"{type(self.sink).__name__} has no subscribe(run_id, after): it cannot be "
                "followed live; read store.records(run_id) once the run has ended"
            )
        records: AsyncIterator[Record] = subscribe(self.run_id, after)
        return records

    # ------------------------------------------------------------ events

    def emit(self, event: Event, frame: StepFrame | None, target: str | None = None) -> int | None:
        """Record `event` as emitted by `frame` (None: from outside) and dispatch it."""
        if self.outcome is not None:
            return None
        if not self.started:
            self.inbox.early.append((event, target))  # held back by num_concurrent_runs
            return None
        if frame is not None and frame.replay is not None and frame.replay.emitted:
            # A rerun after a resume: this event was recorded and routed before.
            return frame.replay.emitted.popleft()
        if target is not None:
            self._target(event, target)  # a bad target raises before anything is recorded
        if self.durable:
            check_event(event)  # SerializationError in the step that sent it
        event_id = self.record_emitted(event, frame, target)
        self.dispatch(event_id, event, frame, target)
        return event_id

    def record_emitted(
        self, event: Event, frame: StepFrame | None, target: str | None = None
    ) -> int:
        """Give `event` an id and record who emitted it."""
        self._event_ids += 1
        event_id = self._event_ids
        if frame is None:
            self.record(_EMITTED, None, None, event_id, event, target)
        else:
            self.record(_EMITTED, frame.step, frame.invocation, event_id, event, target)
        if self.hooks.emits:
            by = self.invoker._info(frame, frame.event) if frame and frame.event else None
            self.hooks.call("event_emitted", self.run_id, event_id, event, by)
        return event_id

    def dispatch(
        self, event_id: int, event: Event, frame: StepFrame | None, target: str | None = None
    ) -> None:
        """Deliver `event` to a waiter, to the accepting steps, or end the run."""
        if self.outcome is not None:
            return
        inbox = self.inbox
        if inbox.waiters and inbox.deliver(event_id, event):
            return
        if isinstance(event, StopEvent):
            self.finish(event, event_id, frame)
            return
        bindings = self.table.routes.get(type(event), ())
        if target is not None:
            bindings = self._target(event, target)
        if bindings:
            cause = frame.event_id if frame is not None else None
            submit = self.scheduler.submit
            for binding in bindings:
                submit(binding, event_id, event, cause)
            if frame is None and inbox.requests:
                inbox.answer_request()
        elif isinstance(event, InputRequiredEvent):
            self.stream.put(event)
            inbox.open_request(event_id)
        elif frame is None:
            inbox.park(event_id, event)  # an answer may arrive before its wait_for_event
            if self._internal is not None:
                self.stream.put(_unhandled(event, target, self.scheduler.busy == 0))
            self.check_stuck()
        else:
            self.fail(self._unroutable(event, frame))

    def requeue(self, binding: StepBinding, event_id: int, event: Event) -> None:
        """Queue an event again for `binding`'s step (resuming)."""
        self.scheduler.submit(binding, event_id, event, None)

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
            self.inbox.open_request(0)  # the caller is asked; don't call the run stuck

    async def wait(
        self,
        frame: StepFrame,
        event_type: type[Event],
        waiter_event: Event | None,
        requirements: Any,
        timeout: float | None,
    ) -> Event:
        """Suspend the step of `frame` until a matching event arrives (see `Inbox.wait`)."""
        return await self.inbox.wait(frame, event_type, waiter_event, requirements, timeout)

    # ------------------------------------------------------------ ending

    def finish(self, stop: StopEvent, event_id: int | None, frame: StepFrame | None = None) -> None:
        """End the run with `stop`, unless a step blocked the loop past the deadline first."""
        if self.deadline is not None and self.monotonic() >= self.deadline:
            if frame is not None and frame.slice_start < self.deadline:
                self.blocked(frame.step, self.monotonic() - frame.slice_start)
            self._timed_out()
            return
        self.stop_event = stop
        self.stream.put(stop)
        self._end("ok", None, event_id, stop.result if type(stop) is StopEvent else stop)

    def fail(
        self,
        error: BaseException,
        status: str = "failed",
        *,
        step: str | None = None,
        attempts: int | None = None,
    ) -> None:
        """End the run with `error`, which reaches ``await handler`` unchanged.

        `step` and `attempts` say which step's failure it was, for the
        stream's closing `WorkflowFailedEvent`.
        """
        if self.outcome is None:
            if step is not None:
                self._failure = (step, attempts)
            self._end(status, error)

    def recover(self, frame: StepFrame, error: Exception, elapsed: float) -> bool:
        """Route a step's last error to its ``@catch_error`` step; False if none takes it."""
        handler = self.table.catcher(frame.step)
        if handler is None:
            return False
        spec = handler.spec
        entered = self._recoveries.get(spec.name, 0)
        if entered >= spec.max_recoveries:
            return False
        self._recoveries[spec.name] = entered + 1
        failed = StepFailedEvent(
            step_name=frame.step,
            input_event=frame.event or StopEvent(),
            exception=error,
            attempts=frame.retry.attempt,
            elapsed_seconds=elapsed,
            failed_at=datetime.fromtimestamp(self.now(), timezone.utc),
        )
        self.emit(failed, frame, spec.name)
        return True

    def cancel(self, *, handler_too: bool = False) -> None:
        """End the run at the caller's request; with `handler_too` the handler ends cancelled."""
        if handler_too:
            self.cancel_requested = True
            if self._settlement is None and self.outcome is not None and not self.future.done():
                return  # ended and settling: the settlement cancels the handler
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
        if finished and self.started:
            self.record(RecordKind.RUN_FINISHED, None, None, event_id, None, status, error)
        if self._timer is not None:
            self._timer.cancel()
        self.inbox.close()
        write_error = self.journal.close()  # in the background: reported to _write_failed
        error = error or write_error
        if finished and error is not None:
            self.stream.put(self._final_event(status, error))
        self.stream.close()
        if self.hooks.listeners:
            self.context.run(self.hooks.call, "run_finished", self.identity, status, error)
        self._settlement = (error, result)
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end()
        if self.scheduler.close():  # others than the caller, which ends by itself
            self._grace = self.loop.call_later(CANCEL_GRACE, self._overdue)
        self._maybe_settle()

    def _final_event(self, status: str, error: BaseException) -> StopEvent:
        """Return the event that ends the stream of a run that did not succeed."""
        if status == "timeout":
            active = sorted({lane.name for lane in self.scheduler.lanes.values() if lane.workers})
            return WorkflowTimedOutEvent(timeout=self.timeout or 0.0, active_steps=active)
        if status == "cancelled":
            return WorkflowCancelledEvent()
        step, attempts = self._failure or ("", None)
        exception = error if isinstance(error, Exception) else WorkflowRuntimeError(str(error))
        return WorkflowFailedEvent(step_name=step, exception=exception, attempts=attempts)

    def expose_internal(self) -> None:
        """Stream the engine's own events too (`StepStateChanged`, ...) from now on."""
        if self._internal is None:
            self._internal = InternalEvents(self.stream.put)
            self.hooks = Hooks((*self.hooks.listeners, self._internal), with_global=False)

    def _overdue(self) -> None:
        steps = self.scheduler.cancel_again()
        log.warning(
            "run %s: step(s) %s still run %s s after the run ended (they ignore cancellation); "
            "the run's result is delivered without waiting for them",
            self.run_id,
            ", ".join(sorted(set(steps))),
            CANCEL_GRACE,
            extra={"run_id": self.run_id, "step": None},
        )
        self._overdue_tasks = True
        self._maybe_settle()

    def _maybe_settle(self) -> None:
        """Settle once the run has ended, its workers are done and its records are written."""
        if self._settlement is None:
            return
        if (self._overdue_tasks or not self.scheduler.tasks) and self.journal.idle:
            self._settle()

    def _settle(self) -> None:
        """Give the caller the run's result: every worker task has finished."""
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        future, settlement = self.future, self._settlement
        if settlement is None or future.done():
            return
        self._settlement = None
        if self._lease is not None:
            # After the last write; a lease the store could not release lapses after its ttl.
            with contextlib.suppress(Exception):
                self._lease.release()
        if self._owns_sink:
            self._owns_sink = False
            with contextlib.suppress(Exception):  # its records are already written
                self.sink.close()
        error, result = settlement
        if self.cancel_requested:
            _cancel_future(future)
        elif error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
            if self.outcome in ("cancelled", "detached", "interrupted", "lost"):
                future.exception()  # asked for by the caller: don't log it as never retrieved

    def settle_finished(self, status: str, stop: StopEvent | None, error: BaseException) -> None:
        """Settle a run whose records say it already ended (resuming a finished run)."""
        self.journal.close()  # nothing to write: the records say it ended
        if self._owns_sink:
            self._owns_sink = False
            with contextlib.suppress(Exception):
                self.sink.close()
        self.outcome = status
        if stop is not None:
            self.stop_event = stop
            self.stream.put(stop)
            self.stream.close()
            self.future.set_result(stop.result if type(stop) is StopEvent else stop)
            return
        self.stream.close(error)
        self.future.set_exception(error)

    def _timed_out(self) -> None:
        blocked = ""
        if self._blocked is not None:
            step, seconds = self._blocked
            blocked = (
                f"; step {step!r} blocked the event loop for {seconds:.2f} s (a synchronous "
                "call such as time.sleep in an 'async def' step: make it a plain 'def' step, "
                "which runs in a thread, or await the call)"
            )
        self.fail(
            WorkflowTimeoutError(
                f"run {self.run_id} of {self.workflow_name} timed out after {self.timeout} s"
                f"{blocked}; {self.activity()}"
            ),
            "timeout",
        )

    # ------------------------------------------------------------ progress

    def check_stuck(self) -> None:
        """Fail the run at once if nothing can make progress any more."""
        if self.outcome is None and self.scheduler.busy == 0:
            if not self.inbox.requests:
                self.fail(WorkflowStuckError(f"run {self.run_id} is stuck: {self.activity()}"))
            elif self._internal is not None:
                self.stream.put(WorkflowIdleEvent())

    def activity(self) -> str:
        """Describe what the run is doing or waiting for, for error messages."""
        # With nothing busy no step runs, though a worker that just finished its
        # last invocation (and reported it) has not yet exited and still counts.
        parts = list(self.scheduler.describe()) if self.scheduler.busy else []
        parts += self.collect.describe()
        parts += self.inbox.describe()
        if not parts and self.last_finished is not None:
            step, output = self.last_finished
            what = (
                f"produced {type(output).__name__}" if output is not None else "produced no event"
            )
            parts.append(f"no StopEvent was produced; the last step to finish, {step!r}, {what}")
        return "; ".join(parts) or "no step is running"


def _unhandled(event: Event, target: str | None, idle: bool) -> UnhandledEvent:
    kind = type(event)
    return UnhandledEvent(
        event_type=kind.__name__,
        qualified_name=f"{kind.__module__}:{kind.__qualname__}",
        step_name=target,
        idle=idle,
    )


def _cancel_future(future: asyncio.Future[Any]) -> None:
    cancel = getattr(future, "cancel_now", None)
    if cancel is not None:
        cancel()
    else:
        future.cancel()
