"""Waiters: steps suspended in ``ctx.wait_for_event`` until a matching event arrives.

A waiting step stays suspended in place (the code before the wait runs once).
A waiter gets first pick of every event of its type that matches its
requirements; an answer sent from outside before the wait began is kept
(parked by the run) and handed over as soon as the wait starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from fanflow._runtime.records import RecordKind
from fanflow.errors import WorkflowTimeoutError
from fanflow.events import Event

if TYPE_CHECKING:
    from fanflow._runtime.run import Run
    from fanflow._runtime.worker import StepFrame

__all__ = ["Waiters"]

E = TypeVar("E", bound=Event)


class _Waiter:
    __slots__ = ("event_type", "future", "invocation", "requirements", "step")

    def __init__(
        self,
        frame: StepFrame,
        event_type: type[Event],
        requirements: Mapping[str, Any],
        future: asyncio.Future[Event],
    ) -> None:
        self.step = frame.step
        self.invocation = frame.invocation
        self.event_type = event_type
        self.requirements = requirements
        self.future = future

    def matches(self, event: Event) -> bool:
        return isinstance(event, self.event_type) and all(
            event.get(key) == value for key, value in self.requirements.items()
        )


class Waiters:
    """The run's open ``wait_for_event`` calls."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self.open: list[_Waiter] = []

    def deliver(self, event_id: int, event: Event) -> bool:
        """Hand `event` to the oldest matching waiter; return whether one took it."""
        for waiter in self.open:
            if not waiter.future.done() and waiter.matches(event):
                self._run.record(RecordKind.WAIT_RESOLVED, waiter.step, waiter.invocation, event_id)
                waiter.future.set_result(event)
                self.open.remove(waiter)
                return True
        return False

    async def wait(
        self,
        frame: StepFrame,
        event_type: type[E],
        waiter_event: Event | None,
        requirements: Mapping[str, Any] | None,
        timeout: float | None,
    ) -> E:
        """Suspend the calling step until an `event_type` event matching `requirements`."""
        run = self._run
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(frame, event_type, dict(requirements or {}), future)
        run.record(
            RecordKind.WAIT_STARTED,
            step=frame.step,
            invocation=frame.invocation,
            event=waiter_event,
            data=(event_type.__name__, waiter.requirements),
        )
        self.open.append(waiter)
        for parked in run.parked:
            if waiter.matches(parked[1]):
                run.parked.remove(parked)
                self.deliver(*parked)
                break
        if waiter_event is not None:
            # Recorded with WAIT_STARTED, so a rerun after a resume asks again.
            run.stream.put(waiter_event)
        timer = None
        if timeout is not None:
            timer = run.clock.call_later(timeout, lambda: self._expire(waiter, timeout))
        try:
            return await future  # type: ignore[return-value]
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self.open:
                self.open.remove(waiter)

    def _expire(self, waiter: _Waiter, timeout: float) -> None:
        if not waiter.future.done():
            waiter.future.set_exception(
                WorkflowTimeoutError(
                    f"step {waiter.step!r} waited {timeout} s for "
                    f"{waiter.event_type.__name__} and none arrived"
                )
            )

    def cancel_all(self) -> None:
        """Drop every open wait (the run has ended)."""
        self.open.clear()

    def describe(self) -> list[str]:
        """Describe each open wait for error messages."""
        return [
            f"step {w.step!r} waits for {w.event_type.__name__}"
            + (f" with {w.requirements}" if w.requirements else "")
            for w in self.open
        ]
