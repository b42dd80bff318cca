"""The inbox: what a run expects from outside, and what came from outside unasked.

- **Waits**: steps suspended in ``ctx.wait_for_event``. A waiter gets first
  pick of every event of its type that matches its requirements; each wait
  is its own request, so an answer to one never completes another.
- **Input requests**: InputRequiredEvents that no step consumes. Each one
  keeps the run alive until an event from outside is routed to a step.
- **Parked events**: events sent from outside that no waiter and no step
  takes yet. They are kept (one warning names them) and handed to the
  first wait that matches.
- **Early events**: events sent to a run that has not started yet (held
  back by ``num_concurrent_runs``); they are delivered when it starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from fanflow._runtime.frame import StepFrame
from fanflow._runtime.records import RecordKind
from fanflow.clock import Clock
from fanflow.errors import WorkflowTimeoutError
from fanflow.events import Event

__all__ = ["Inbox", "Waiter"]

log = logging.getLogger("fanflow")


class Waiter:
    """One open ``wait_for_event`` call."""

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
        """Return whether `event` answers this wait."""
        return isinstance(event, self.event_type) and all(
            event.get(key) == value for key, value in self.requirements.items()
        )

    def describe(self) -> str:
        """Return ``step 'x' waits for T`` for messages."""
        with_ = f" with {dict(self.requirements)}" if self.requirements else ""
        return f"step {self.step!r} waits for {self.event_type.__name__}{with_}"


class Inbox:
    """Open waits, open input requests, parked and early events of one run."""

    __slots__ = (
        "_clock",
        "_put_on_stream",
        "_record",
        "early",
        "parked",
        "requests",
        "run_id",
        "waiters",
    )

    def __init__(
        self,
        run_id: str,
        record: Callable[..., None],
        put_on_stream: Callable[[Event], None],
        clock: Clock,
    ) -> None:
        self.run_id = run_id
        self._record = record
        self._put_on_stream = put_on_stream
        self._clock = clock
        self.waiters: list[Waiter] = []
        # Lists, not deques: most runs never use them, and an empty deque is 600 bytes.
        self.parked: list[tuple[int, Event]] = []
        self.requests: list[int] = []  # ids of unconsumed InputRequiredEvents, oldest first
        self.early: list[tuple[Event, str | None]] = []  # sent before the run started

    # ------------------------------------------------------------ waits

    def deliver(self, event_id: int, event: Event) -> bool:
        """Hand `event` to the oldest matching waiter; return whether one took it."""
        for waiter in self.waiters:
            if not waiter.future.done() and waiter.matches(event):
                self._record(RecordKind.WAIT_RESOLVED, waiter.step, waiter.invocation, event_id)
                waiter.future.set_result(event)
                self.waiters.remove(waiter)
                return True
        return False

    async def wait(
        self,
        frame: StepFrame,
        event_type: type[Event],
        waiter_event: Event | None,
        requirements: Mapping[str, Any] | None,
        timeout: float | None,
    ) -> Event:
        """Suspend the calling step until an `event_type` event matching `requirements`."""
        replayed: tuple[int, Event] | bool | None = False
        if frame.replay is not None and frame.replay.waits:
            replayed = frame.replay.waits.popleft()
        if isinstance(replayed, tuple):
            return replayed[1]  # answered before the resume: not asked again
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        waiter = Waiter(frame, event_type, dict(requirements or {}), future)
        if replayed is False:  # a new wait, not one still open from before a resume
            self._record(
                RecordKind.WAIT_STARTED,
                frame.step,
                frame.invocation,
                event=waiter_event,
                data=(event_type.__name__, waiter.requirements),
            )
        self.waiters.append(waiter)
        for parked in self.parked:
            if waiter.matches(parked[1]):
                self.parked.remove(parked)
                self.deliver(*parked)
                break
        if waiter_event is not None and not future.done():
            self._put_on_stream(waiter_event)  # after registering: no answer slips past
        timer = None
        if timeout is not None and not future.done():
            timer = self._clock.call_later(timeout, lambda: _expire(waiter, timeout))
        try:
            return await future
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    # ------------------------------------------------------------ requests, parking

    def open_request(self, event_id: int) -> None:
        """Count an InputRequiredEvent that no step consumes as waiting for an answer."""
        self.requests.append(event_id)

    def answer_request(self) -> None:
        """Close the oldest open input request (an outside event reached a step)."""
        if self.requests:
            del self.requests[0]

    def keep(self, event_id: int, event: Event) -> None:
        """Keep an outside event nobody takes yet, for a later wait."""
        self.parked.append((event_id, event))

    def park(self, event_id: int, event: Event) -> None:
        """Keep an outside event nobody takes yet, and warn once that it is waiting."""
        self.keep(event_id, event)
        waited = ", ".join(sorted({w.event_type.__name__ for w in self.waiters}))
        if not waited:
            waited = "an answer to an InputRequiredEvent" if self.requests else "nothing"
        log.warning(
            "run %s: %s was sent from outside, but no step accepts it and no wait_for_event "
            "matches it; it is kept for a later wait (the run waits for: %s)",
            self.run_id,
            type(event).__name__,
            waited,
            extra={"run_id": self.run_id, "step": None},
        )

    def close(self) -> None:
        """Drop every open wait and request (the run has ended)."""
        self.waiters.clear()
        self.requests.clear()

    def describe(self) -> list[str]:
        """Describe what the run waits for and what it holds, for error messages."""
        parts = [
            f"{type(ev).__name__} was sent from outside but no step accepts or waits for it"
            for _, ev in self.parked
        ]
        parts += [w.describe() for w in self.waiters]
        if self.requests:
            parts.append(
                f"waiting for input from outside ({len(self.requests)} InputRequiredEvent"
                f"{'s' if len(self.requests) > 1 else ''} unanswered)"
            )
        return parts


def _expire(waiter: Waiter, timeout: float) -> None:
    if not waiter.future.done():
        waiter.future.set_exception(
            WorkflowTimeoutError(
                f"step {waiter.step!r} waited {timeout} s for "
                f"{waiter.event_type.__name__} and none arrived"
            )
        )
