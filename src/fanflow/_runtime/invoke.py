"""One step invocation: attempts, retries, the step's timeout and its executor.

Each invocation runs in a copy of its worker's context (`contextvars`), so
context variables set by one invocation never leak into the next one on
the same worker, and a listener's span opened in `step_started` is current
inside the step. The copy is entered for every slice of the invocation,
between two suspensions; timing the slices is also how a step that
blocks the event loop past the run's deadline is caught and named.

How an attempt can end:

- it returns an event or None: the output is dispatched;
- it raises an `Exception`: the collect buffers are rolled back to where
  they were before the attempt, and the retry policy decides; a policy
  that raises or returns a delay that is not a finite number >= 0 fails
  the run with `WorkflowRuntimeError`;
- it raises any other `BaseException`, or a `CancelledError` the engine
  did not ask for: the run fails at once with `WorkflowRuntimeError`
  naming the step, the original as its ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Awaitable, Callable, Generator
from datetime import datetime, timezone
from typing import Any, Protocol

from fanflow._runtime.collect import CollectBuffers
from fanflow._runtime.executor import DEFAULT, StepCall
from fanflow._runtime.frame import FIRST_ATTEMPT, Replay, StepFrame
from fanflow._runtime.hooks import Hooks, InvocationInfo
from fanflow._runtime.records import RecordKind
from fanflow._runtime.scheduler import Item, Lane, Scheduler
from fanflow._values import check_event
from fanflow.clock import Clock
from fanflow.errors import (
    StepOutputError,
    StepTimeoutError,
    WorkflowCancelledByUser,
    WorkflowRuntimeError,
)
from fanflow.events import Event
from fanflow.retry import RetryInfo

__all__ = ["Invoker", "Owner"]

_STARTED = RecordKind.STEP_STARTED
_FINISHED = RecordKind.STEP_FINISHED
_FAILED = RecordKind.STEP_FAILED


class Owner(Protocol):
    """What an invocation needs of its run (`fanflow._runtime.run.Run`)."""

    run_id: str
    workflow_name: str
    ctx: Any
    clock: Clock
    monotonic: Callable[[], float]
    hooks: Hooks
    collect: CollectBuffers
    scheduler: Scheduler
    outcome: str | None
    deadline: float | None
    durable: bool
    sync_writes: bool
    executor: Any
    replays: dict[tuple[str, int], Replay]
    last_finished: tuple[str, Event | None] | None

    def now(self) -> float: ...
    def record(self, kind: RecordKind, *args: Any) -> None: ...
    def next_invocation(self) -> int: ...
    def record_emitted(self, event: Event, frame: StepFrame | None) -> int: ...
    def dispatch(self, event_id: int, event: Event, frame: StepFrame | None) -> None: ...
    def fail(
        self,
        error: BaseException,
        status: str = "failed",
        *,
        step: str | None = None,
        attempts: int | None = None,
    ) -> None: ...
    def recover(self, frame: StepFrame, error: Exception, elapsed: float) -> bool: ...
    async def committed(self) -> None: ...
    def check_stuck(self) -> None: ...
    def blocked(self, step: str, seconds: float) -> None: ...
    async def resources(self, lane: Lane) -> dict[str, Any]: ...


class Invoker:
    """Runs the invocations of one run; `invoke` is the scheduler's callback."""

    __slots__ = ("owner",)

    def __init__(self, owner: Owner) -> None:
        self.owner = owner

    def invoke(self, lane: Lane, frame: StepFrame, item: Item) -> Awaitable[None] | None:
        """Start the invocation of `item` by `lane`'s step in a context of its own.

        Runs its first slice at once; returns None if that finished it (no
        suspension: the common case, which then costs no awaitable), else
        the awaitable that runs the rest.
        """
        coro = self._invoke(lane, frame, item)
        context = contextvars.copy_context()
        owner = self.owner
        deadline = owner.deadline
        frame.slice_start = start = owner.monotonic()  # also the invocation's start
        try:
            yielded = context.run(coro.send, None)
        except StopIteration:
            return None
        finally:
            if deadline is not None and start < deadline:
                end = owner.monotonic()
                if end >= deadline:
                    owner.blocked(frame.step, end - start)
        return _InContext(coro, context, frame, owner, yielded)

    async def _invoke(self, lane: Lane, frame: StepFrame, item: Item) -> None:
        owner = self.owner
        now, record, hooks = owner.monotonic, owner.record, owner.hooks
        event_id, event, cause = item
        name = lane.name
        frame.invocation = invocation = owner.next_invocation()
        frame.event, frame.event_id, frame.cause_id = event, event_id, cause
        frame.replay = owner.replays.pop((name, event_id), None) if owner.replays else None
        frame.retry = FIRST_ATTEMPT
        frame.undo = None
        lane.started += 1
        first_start = started = frame.slice_start  # set by `invoke` as this slice began
        while True:
            record(_STARTED, name, invocation, event_id, None, frame.retry.retry_number + 1)
            info = self._info(frame, event) if hooks.steps else None
            if info is not None:
                hooks.call("step_started", info)
            try:
                output = await self._call(lane, frame, event)
                if output is not None:
                    if not isinstance(output, Event):
                        raise StepOutputError(
                            f"step {name!r} returned {type(output).__name__} ({output!r:.60}); "
                            "a step returns an Event or None (use ctx.send_event for several)"
                        )
                    if owner.durable:
                        check_event(output)  # fails the step, as sending it would
            except asyncio.CancelledError as cancelled:
                if frame.stopping or owner.outcome is not None:
                    raise
                if _cancelled_from_outside():
                    # Someone else cancelled the worker (the loop is shutting
                    # down): the run cannot go on without it.
                    owner.fail(_outside_cancel(owner.run_id, frame), "cancelled")
                    raise
                self._fatal(
                    frame,
                    cancelled,
                    started,
                    info,
                    "raised a CancelledError that "
                    "fanflow did not ask for (a task it awaited was cancelled?)",
                )
                return
            except Exception as error:
                owner.collect.roll_back(frame)
                seconds = now() - started
                record(_FAILED, name, invocation, None, None, seconds, error)
                if info is None and hooks.failures:
                    info = self._info(frame, event)
                if info is not None:
                    hooks.call("step_failed", info, error, seconds)
                if owner.outcome is not None:
                    return
                delay = self._retry_delay(lane, frame, error, first_start)
                if delay is None:
                    if not owner.recover(frame, error, now() - first_start):
                        owner.fail(error, step=name, attempts=frame.retry.attempt)
                        return
                    frame.undo = None
                    self._finished(lane, frame, None, seconds, None)
                    return
                if isinstance(delay, BaseException):
                    owner.fail(delay)
                    return
                if info is not None:
                    hooks.call("step_retried", info, delay)
                await owner.clock.sleep(delay)
                started = now()
                continue
            except BaseException as fatal:
                self._fatal(frame, fatal, started, info, f"raised {type(fatal).__name__}")
                return
            frame.undo = None
            self._finished(lane, frame, output, now() - started, info)
            if owner.sync_writes:
                await owner.committed()  # "sync": this step transition is written first
            return

    def _info(self, frame: StepFrame, event: Event) -> InvocationInfo:
        owner = self.owner
        return InvocationInfo(
            owner.run_id,
            owner.workflow_name,
            frame.step,
            frame.invocation,
            frame.retry.retry_number + 1,
            frame.event_id,
            type(event),
            frame.cause_id,
            frame.worker,
        )

    async def _call(self, lane: Lane, frame: StepFrame, event: Event) -> object:
        owner = self.owner
        if lane.in_loop:
            return await lane.binding.call(owner.ctx, event)
        binding = lane.binding
        spec = binding.spec
        executor = spec.executor or owner.executor
        if executor is None and spec.is_async and not spec.resources:
            awaitable: Awaitable[Any] = binding.call(owner.ctx, event)
            outside = False
        else:
            kwargs = await owner.resources(lane) if spec.resources else {}
            call = StepCall(
                spec,
                binding.call,
                owner.ctx,
                event,
                kwargs,
                owner.run_id,
                frame.invocation,
                frame.retry.retry_number + 1,
            )
            executor = executor or DEFAULT
            awaitable = executor.run(call)
            # Work outside the loop (a thread, a cluster): a mock clock must
            # not jump over it as if the run were idle.
            outside = not (executor is DEFAULT and spec.is_async)
        if spec.timeout is None and not outside:
            return await awaitable
        return await self._await_bounded(frame, awaitable, spec.timeout, outside)

    async def _await_bounded(
        self, frame: StepFrame, awaitable: Awaitable[Any], timeout: float | None, outside: bool
    ) -> object:
        owner = self.owner
        task = asyncio.current_task()
        assert task is not None
        frame.timed_out = False
        timer = None
        if timeout is not None:

            def expire() -> None:
                frame.timed_out = True
                task.cancel()

            timer = owner.clock.call_later(timeout, expire)
        hold = getattr(owner.clock, "hold", None) if outside else None
        if hold is not None:
            hold()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not frame.timed_out or frame.stopping or owner.outcome is not None:
                raise
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            raise StepTimeoutError(
                f"step {frame.step!r} timed out after {timeout} s "
                f"(invocation {frame.invocation}, attempt {frame.retry.attempt})"
            ) from None
        finally:
            if timer is not None:
                timer.cancel()
            if hold is not None:
                owner.clock.release()  # type: ignore[attr-defined]

    def _retry_delay(
        self, lane: Lane, frame: StepFrame, error: Exception, first_start: float
    ) -> float | BaseException | None:
        policy = lane.binding.spec.retry_policy
        if policy is None:
            return None
        owner = self.owner
        failures = frame.retry.attempt
        elapsed = owner.clock.now() - first_start
        what = f"step {lane.name!r}: retry policy {type(policy).__name__}"
        try:
            delay = policy.next(elapsed, failures, error)
        except BaseException as broken:
            problem = WorkflowRuntimeError(
                f"{what} raised {type(broken).__name__} ({broken}) deciding whether to retry "
                f"{type(error).__name__}"
            )
            problem.__cause__ = broken
            return problem
        if delay is None:
            return None
        if (
            isinstance(delay, bool)
            or not isinstance(delay, (int, float))
            or not math.isfinite(delay)
            or delay < 0
        ):
            problem = WorkflowRuntimeError(
                f"{what} returned the delay {delay!r}; a delay is a finite number of seconds "
                ">= 0, or None to stop retrying"
            )
            problem.__cause__ = error
            return problem
        frame.retry = RetryInfo(
            retry_number=failures,
            elapsed_seconds=elapsed,
            last_exception=error,
            last_failed_at=datetime.fromtimestamp(owner.now(), timezone.utc),
        )
        return float(delay)

    def _fatal(
        self,
        frame: StepFrame,
        fatal: BaseException,
        started: float,
        info: InvocationInfo | None,
        what: str,
    ) -> None:
        owner = self.owner
        error = WorkflowRuntimeError(
            f"step {frame.step!r} {what} (invocation {frame.invocation}, "
            f"attempt {frame.retry.attempt}); the run cannot go on"
        )
        error.__cause__ = fatal
        seconds = owner.monotonic() - started
        owner.record(_FAILED, frame.step, frame.invocation, None, None, seconds, error)
        if info is None and owner.hooks.failures and frame.event is not None:
            info = self._info(frame, frame.event)
        if info is not None:
            owner.hooks.call("step_failed", info, fatal, seconds)
        owner.fail(error, step=frame.step, attempts=frame.retry.attempt)

    def _finished(
        self,
        lane: Lane,
        frame: StepFrame,
        output: Event | None,
        seconds: float,
        info: InvocationInfo | None,
    ) -> None:
        owner = self.owner
        name, record = lane.name, owner.record
        if info is not None:
            owner.hooks.call("step_finished", info, output, seconds)
        if output is None or owner.outcome is not None:
            record(_FINISHED, name, frame.invocation, None, None, seconds)
        elif frame.replay is not None and frame.replay.emitted:
            # Rerun after a resume: the output was recorded and routed before.
            event_id = frame.replay.emitted.popleft()
            record(_FINISHED, name, frame.invocation, event_id, None, seconds)
        else:
            event_id = owner.record_emitted(output, frame)
            record(_FINISHED, name, frame.invocation, event_id, None, seconds)
            owner.scheduler.handing_off(frame, lane, owner.dispatch, event_id, output)
        owner.last_finished = (name, output)
        if owner.scheduler.done() == 0:
            owner.check_stuck()


def _cancelled_from_outside() -> bool:
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    # Before Python 3.11 a task cannot tell; take it as asked for from outside.
    return cancelling is None or cancelling() > 0


def _outside_cancel(run_id: str, frame: StepFrame) -> BaseException:
    return WorkflowCancelledByUser(
        f"run {run_id} was cancelled: the task running step {frame.step!r} was cancelled "
        "from outside the run (is the event loop shutting down?)"
    )


class _InContext:
    """Await a coroutine with every one of its slices run in `context`.

    Also times each slice: one that runs past the run's deadline is
    reported (`Owner.blocked`), naming the step that held the event loop.
    """

    __slots__ = ("_context", "_coro", "_first", "_frame", "_owner")

    def __init__(
        self,
        coro: Any,
        context: contextvars.Context,
        frame: StepFrame,
        owner: Owner,
        first: Any,
    ) -> None:
        self._coro = coro
        self._context = context
        self._frame = frame
        self._owner = owner
        self._first = first  # what the first slice (run by `Invoker.invoke`) yielded

    def __await__(self) -> Generator[Any, Any, None]:
        coro, enter, frame, owner = self._coro, self._context.run, self._frame, self._owner
        send, throw = coro.send, coro.throw
        deadline = owner.deadline
        now = owner.monotonic
        value: Any = None
        error: BaseException | None = None
        try:
            value = yield self._first
        except BaseException as thrown:
            error = thrown
        while True:
            if deadline is not None:
                frame.slice_start = start = now()
            try:
                yielded = enter(send, value) if error is None else enter(throw, error)
            except StopIteration:
                if deadline is not None:
                    _watch(owner, frame, start, deadline, now)
                return
            except BaseException:
                if deadline is not None:
                    _watch(owner, frame, start, deadline, now)
                raise
            if deadline is not None:
                _watch(owner, frame, start, deadline, now)
            try:
                value, error = (yield yielded), None
            except BaseException as thrown:
                value, error = None, thrown


def _watch(
    owner: Owner, frame: StepFrame, start: float, deadline: float, now: Callable[[], float]
) -> None:
    if start < deadline:
        end = now()
        if end >= deadline:
            owner.blocked(frame.step, end - start)
