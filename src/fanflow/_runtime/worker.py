"""Step workers: drain one step's queue with at most ``num_workers`` tasks.

A worker task is started when an event is queued and fewer than
``num_workers`` are alive; it runs invocations until the queue is empty and
then ends, so an idle step costs nothing. Each invocation applies the step's
timeout and retry policy and hands its output back to the run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from fanflow._runtime.records import RecordKind
from fanflow._runtime.table import StepBinding
from fanflow.errors import StepOutputError, StepTimeoutError
from fanflow.events import Event
from fanflow.retry import RetryInfo

if TYPE_CHECKING:
    from fanflow._runtime.run import Run

__all__ = ["StepFrame", "StepRunner", "current_frame"]

_FIRST_ATTEMPT = RetryInfo()
_STARTED = RecordKind.STEP_STARTED
_FINISHED = RecordKind.STEP_FINISHED

current_frame: ContextVar[StepFrame | None] = ContextVar("fanflow_step_frame", default=None)


class Replay:
    """What an interrupted invocation did before a resume, so its rerun does not repeat it."""

    __slots__ = ("emitted", "streamed")

    def __init__(self, emitted: deque[int], streamed: int) -> None:
        self.emitted = emitted  # ids of the events it emitted, in order
        self.streamed = streamed  # how many events it wrote to the stream


class StepFrame:
    """The step invocation a worker task is running (read by `Context`)."""

    __slots__ = ("event", "event_id", "invocation", "replay", "retry", "run", "step", "timed_out")

    def __init__(self, run: Run, step: str) -> None:
        self.run = run
        self.step = step
        self.invocation = 0
        self.event: Event | None = None
        self.event_id = 0
        self.replay: Replay | None = None
        self.retry = _FIRST_ATTEMPT
        self.timed_out = False


class StepRunner:
    """One step's queue and worker count within one run."""

    __slots__ = ("binding", "limit", "name", "queue", "run", "started", "workers")

    def __init__(self, run: Run, binding: StepBinding) -> None:
        self.run = run
        self.binding = binding
        self.name = binding.spec.name
        self.limit = binding.spec.num_workers
        self.queue: deque[tuple[int, Event]] = deque()
        self.workers = 0
        self.started = 0  # invocations begun, for messages

    def submit(self, event_id: int, event: Event) -> None:
        """Queue `event`; start a worker if the step is below ``num_workers``.

        When a worker that is about to go idle dispatches its step's output,
        the first step that needs a worker is handed to it instead of to a
        new task (see `_work`): a chain of steps then runs in one task.
        """
        self.queue.append((event_id, event))
        if self.workers < self.limit:
            self.workers += 1
            run = self.run
            if run.handoff_open and run.handoff is None:
                run.handoff = self
            else:
                run.tasks.add(run.loop.create_task(self._work()))

    def start_worker(self) -> None:
        """Give a worker slot this step already counts a task of its own."""
        self.run.tasks.add(self.run.loop.create_task(self._work()))

    def describe(self) -> str:
        """Describe queued and running invocations, or '' when idle."""
        running = self.workers if self.started else 0
        if not running and not self.queue:
            return ""
        return f"step {self.name!r} has {running} running, {len(self.queue)} queued"

    async def _work(self) -> None:
        run, runner = self.run, self
        frame = StepFrame(run, self.name)
        current_frame.set(frame)
        try:
            while True:
                queue = runner.queue
                while queue and run.outcome is None:
                    event_id, event = queue.popleft()
                    await runner._invoke(frame, event_id, event)
                successor, run.handoff = run.handoff, None
                if successor is None:
                    break
                # Yield first, so the successor starts when a new task would
                # have: after everything that is already ready to run.
                await asyncio.sleep(0)
                runner.workers -= 1
                runner = successor
                frame.step = runner.name
        finally:
            runner.workers -= 1
            run.tasks.discard(asyncio.current_task())

    async def _invoke(self, frame: StepFrame, event_id: int, event: Event) -> None:
        run, spec, now = self.run, self.binding.spec, self.run.now
        run.invocations += 1
        frame.invocation = invocation = run.invocations
        frame.event, frame.event_id = event, event_id
        frame.replay = run.replays.pop((self.name, event_id), None) if run.replays else None
        frame.retry = _FIRST_ATTEMPT
        self.started += 1
        first_start = started = now()
        while True:
            run.record(
                _STARTED, self.name, invocation, event_id, None, frame.retry.retry_number + 1
            )
            if run.verbose:
                print(f"Running step {spec.name}")
            try:
                if spec.timeout is None:
                    output = await self.binding.call(run.ctx, event)
                else:
                    output = await self._call_with_timeout(frame, event, spec.timeout)
                if output is not None and not isinstance(output, Event):
                    raise StepOutputError(
                        f"step {spec.name!r} returned {type(output).__name__} ({output!r:.60}); "
                        "a step returns an Event or None (use ctx.send_event for several)"
                    )
            except Exception as error:
                delay = self._retry_delay(error, first_start, frame)
                run.record(
                    RecordKind.STEP_FAILED,
                    step=spec.name,
                    invocation=invocation,
                    data=now() - started,
                    error=error,
                )
                if delay is None or run.outcome is not None:
                    run.fail(error)
                    return
                await run.clock.sleep(delay)
                started = now()
                continue
            self._finished(frame, output, now() - started)
            return

    async def _call_with_timeout(self, frame: StepFrame, event: Event, timeout: float) -> object:
        run, spec = self.run, self.binding.spec
        task = asyncio.current_task()
        assert task is not None
        frame.timed_out = False

        def expire() -> None:
            frame.timed_out = True
            task.cancel()

        timer = run.clock.call_later(timeout, expire)
        try:
            return await self.binding.call(run.ctx, event)
        except asyncio.CancelledError:
            if not frame.timed_out or run.outcome is not None:
                raise
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            raise StepTimeoutError(
                f"step {spec.name!r} timed out after {timeout} s "
                f"(invocation {frame.invocation}, attempt {frame.retry.attempt})"
            ) from None
        finally:
            timer.cancel()

    def _retry_delay(self, error: Exception, first_start: float, frame: StepFrame) -> float | None:
        policy = self.binding.spec.retry_policy
        if policy is None:
            return None
        failures = frame.retry.attempt
        elapsed = self.run.clock.now() - first_start
        delay = policy.next(elapsed, failures, error)
        if delay is not None:
            frame.retry = RetryInfo(
                retry_number=failures,
                elapsed_seconds=elapsed,
                last_exception=error,
                last_failed_at=datetime.now(timezone.utc),
            )
        return delay

    def _finished(self, frame: StepFrame, output: Event | None, seconds: float) -> None:
        run, name = self.run, self.name
        if run.verbose:
            if output is None:
                print(f"Step {name} produced no event")
            else:
                print(f"Step {name} produced event {type(output).__name__}")
        if output is None or run.outcome is not None:
            run.record(_FINISHED, name, frame.invocation, None, None, seconds)
        elif frame.replay is not None and frame.replay.emitted:
            # Rerun after a resume: the output was recorded and routed before.
            event_id = frame.replay.emitted.popleft()
            run.record(_FINISHED, name, frame.invocation, event_id, None, seconds)
        else:
            event_id = run.record_emitted(output, frame)
            run.record(_FINISHED, name, frame.invocation, event_id, None, seconds)
            # This worker goes idle next if its queue is empty: it may take over
            # the first step that needs a worker instead of a new task starting.
            run.handoff_open = not self.queue
            run.dispatch(event_id, output, frame)
            run.handoff_open = False
            successor = run.handoff
            if successor is not None and (self.queue or run.outcome is not None):
                run.handoff = None  # busy after all (or the run ended): no takeover
                if run.outcome is None:
                    successor.start_worker()
                else:
                    successor.workers -= 1
        run.busy -= 1
        run.last_finished = (name, output)
        if run.busy == 0:
            run.check_stuck()
