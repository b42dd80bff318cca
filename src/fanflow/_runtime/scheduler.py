"""The scheduler: each step's queue, its worker limit, hand-off and fairness.

A step's events wait in its lane, first in, first out. A worker task is
started when an event is queued and fewer than ``num_workers`` are alive;
it runs invocations until the lane is empty and then ends, so an idle step
costs nothing. A worker that finishes a step and would go idle takes over
the next step that needs a worker (the hand-off), so a chain of steps runs
in one task.

Every invocation ends with a checkpoint: the worker yields to the event
loop once, so a step that keeps re-emitting its own event without ever
suspending cannot starve the other steps, the run's timeout or the
caller.

`busy` counts events queued plus invocations in progress; when it is zero
nothing runs and nothing is queued, which is how the run knows it is stuck.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any

from fanflow._runtime.frame import StepFrame, current_frame
from fanflow._runtime.table import StepBinding
from fanflow.events import Event

__all__ = ["Item", "Lane", "Scheduler"]

Item = tuple[int, Event, "int | None"]  # (event id, event, id of the event that caused it)

if sys.version_info >= (3, 11):

    def _spawn(
        loop: asyncio.AbstractEventLoop, coro: Any, context: contextvars.Context
    ) -> asyncio.Task[None]:
        return loop.create_task(coro, context=context)

else:

    def _spawn(
        loop: asyncio.AbstractEventLoop, coro: Any, context: contextvars.Context
    ) -> asyncio.Task[None]:
        return context.run(loop.create_task, coro)


@types.coroutine
def _checkpoint() -> Generator[None, None, None]:
    """Yield to the event loop once (what ``asyncio.sleep(0)`` does, minus the call)."""
    yield


class Lane:
    """One step's queue and worker count within one run."""

    __slots__ = ("binding", "in_loop", "limit", "name", "queue", "started", "workers")

    def __init__(self, binding: StepBinding, in_loop: bool = False) -> None:
        self.binding = binding
        self.in_loop = in_loop  # the body is awaited as it is, in the loop (the fast path)
        self.name = binding.spec.name
        self.limit = binding.spec.num_workers
        self.queue: deque[Item] = deque()
        self.workers = 0  # tasks working this lane, or promised it by a hand-off
        self.started = 0  # invocations begun, for messages

    def describe(self) -> str:
        """Describe queued and running invocations, or '' when idle."""
        running = self.workers if self.started else 0
        if not running and not self.queue:
            return ""
        return f"step {self.name!r} has {running} running, {len(self.queue)} queued"


class Scheduler:
    """Lanes and worker tasks of one run.

    `on_crash(error)` hears of an invocation that failed outside the step's
    own code (which the invoker handles), so the run can end instead of hang.
    `invoke(lane, frame, item)` starts one invocation and returns what is left
    to await of it, if anything (the run supplies it);
    `on_drained()` is called once the scheduler is closed and its last task
    has ended.
    """

    __slots__ = (
        "_gate",
        "_in_loop",
        "_invoke",
        "_new_frame",
        "_offering",
        "_on_crash",
        "_on_drained",
        "busy",
        "closed",
        "context",
        "lanes",
        "loop",
        "paused",
        "tasks",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context,
        new_frame: Callable[[str], StepFrame],
        invoke: Callable[[Lane, StepFrame, Item], Awaitable[None] | None],
        on_drained: Callable[[], None],
        on_crash: Callable[[BaseException], None],
        in_loop: Callable[[str], bool] = lambda step: False,
    ) -> None:
        self.loop = loop
        self.context = context  # the run's context; every worker starts from a copy
        self._new_frame = new_frame
        self._invoke = invoke
        self._on_drained = on_drained
        self._on_crash = on_crash
        self._in_loop = in_loop
        self.lanes: dict[str, Lane] = {}
        self.tasks: dict[asyncio.Task[None], StepFrame | None] = {}
        self.busy = 0
        self.closed = False
        self.paused = False
        self._gate: asyncio.Future[None] | None = None  # set when unpaused
        self._offering: StepFrame | None = None  # a worker that may take over a lane now

    # ------------------------------------------------------------ queueing

    def submit(self, binding: StepBinding, event_id: int, event: Event, cause: int | None) -> None:
        """Queue `event` for `binding`'s step; start (or hand off) a worker if below the limit."""
        lane = self.lanes.get(binding.spec.name)
        if lane is None:
            lane = self.lanes[binding.spec.name] = Lane(binding, self._in_loop(binding.spec.name))
        lane.queue.append((event_id, event, cause))
        self.busy += 1
        if lane.workers < lane.limit:
            lane.workers += 1
            offering = self._offering
            if offering is None:
                self._start(lane)
            else:
                # The offering worker takes the last lane that needs one; the
                # earlier ones get tasks now, so steps start in the order the
                # event reached them (definition order, as in the reference).
                previous, offering.successor = offering.successor, lane
                if previous is not None:
                    self._start(previous)

    def pause(self) -> None:
        """Start no invocation until `resume` (those running go on)."""
        self.paused = True

    def resume(self) -> None:
        """Let workers start invocations again."""
        self.paused = False
        gate, self._gate = self._gate, None
        if gate is not None and not gate.done():
            gate.set_result(None)

    async def _wait_until_resumed(self) -> None:
        while self.paused and not self.closed:
            if self._gate is None:
                self._gate = self.loop.create_future()
            await asyncio.shield(self._gate)

    def done(self) -> int:
        """Count one invocation as finished; return how many remain busy."""
        self.busy -= 1
        return self.busy

    def handing_off(
        self,
        frame: StepFrame,
        lane: Lane,
        dispatch: Callable[[int, Event, StepFrame], None],
        event_id: int,
        event: Event,
    ) -> None:
        """Call ``dispatch(event_id, event, frame)``, letting `frame`'s worker take over a lane.

        While the worker of `frame` dispatches its output, the first lane that
        needs a new worker is promised to it instead of to a new task. Only a
        worker whose own lane is empty (it would go idle next) may take a lane
        over; if its lane fills up meanwhile, the promised lane gets a task.
        """
        self._offering = frame if not lane.queue else None
        try:
            dispatch(event_id, event, frame)
        finally:
            self._offering = None
        successor = frame.successor
        if successor is not None and (lane.queue or self.closed):
            frame.successor = None
            self._release(successor)

    def _release(self, lane: Lane) -> None:
        if self.closed:
            lane.workers -= 1
        else:
            self._start(lane)

    def _start(self, lane: Lane) -> None:
        task = _spawn(self.loop, self._work(lane), self.context.copy())
        self.tasks[task] = None  # None until it starts: see `close`

    async def _work(self, lane: Lane) -> None:
        task = asyncio.current_task()
        assert task is not None
        frame = self._new_frame(lane.name)
        self.tasks[task] = frame
        current_frame.set(frame)  # in this task's own context, copied per invocation
        invoke = self._invoke
        try:
            while True:
                queue = lane.queue
                while queue and not self.closed:
                    if self.paused:
                        await self._wait_until_resumed()
                        continue
                    try:
                        rest = invoke(lane, frame, queue.popleft())
                        if rest is not None:
                            await rest
                    except asyncio.CancelledError:
                        raise
                    except BaseException as crash:  # a bug of ours: end the run, never hang
                        self._on_crash(crash)
                        return
                    await _checkpoint()
                    if frame.successor is not None and queue:
                        # More work arrived for this lane while it yielded: the
                        # lane it took over must not wait for it.
                        successor, frame.successor = frame.successor, None
                        self._release(successor)
                successor, frame.successor = frame.successor, None
                if successor is None:
                    break
                if self.closed:
                    successor.workers -= 1
                    break
                lane.workers -= 1
                lane = successor
                frame.step = lane.name
        finally:
            lane.workers -= 1
            del self.tasks[task]
            if self.closed and not self.tasks:
                self._on_drained()

    # ------------------------------------------------------------ ending

    def close(self) -> bool:
        """Stop every worker but the calling one; return whether others remain to finish."""
        self.closed = True
        current = asyncio.current_task()
        others = False
        for task, frame in list(self.tasks.items()):
            if task is current:
                continue
            task.cancel()
            if frame is None:
                # Not started: cancelled now, its body (and `finally`) never runs.
                del self.tasks[task]
            else:
                frame.stopping = True
                others = True
        return others

    def cancel_again(self) -> list[str]:
        """Cancel the workers still alive once more; return the steps they run."""
        steps = []
        for task, frame in self.tasks.items():
            if frame is not None:
                frame.stopping = True
                steps.append(frame.step)
            task.cancel()
        return steps

    def describe(self) -> Iterator[str]:
        """Describe each lane with queued or running invocations."""
        for lane in self.lanes.values():
            if described := lane.describe():
                yield described

    def __repr__(self) -> str:
        return f"<Scheduler busy={self.busy} tasks={len(self.tasks)} closed={self.closed}>"
