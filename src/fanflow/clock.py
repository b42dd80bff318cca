"""Clocks: where a run reads the time and schedules its timers.

The engine never calls ``time`` or ``asyncio.sleep`` for timeouts and retry
delays; it asks its `Clock`. `SystemClock` is the event loop's clock.
`MockClock` only moves when told to, so tests of timeouts and retries take
no real time and never flake.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "MockClock", "SystemClock", "Timer"]


class Timer(Protocol):
    """A scheduled callback that can be called off."""

    def cancel(self) -> None:
        """Stop the callback from running (no-op if it already ran)."""


class Clock(Protocol):
    """What a run needs of time."""

    def now(self) -> float:
        """Return the current time in seconds (monotonic)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` once after `delay` seconds."""

    async def sleep(self, delay: float) -> None:
        """Suspend the caller for `delay` seconds."""


class SystemClock:
    """The running event loop's monotonic clock."""

    def now(self) -> float:
        """Return the monotonic time, the clock asyncio's default loop runs on."""
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Schedule `callback` on the running loop."""
        return asyncio.get_running_loop().call_later(delay, callback)

    async def sleep(self, delay: float) -> None:
        """Sleep on the running loop."""
        await asyncio.sleep(delay)


class _MockTimer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class MockClock:
    """A clock that moves only when `advance` is called, or by itself when all is idle.

    With ``autojump=True`` the clock jumps to its next timer whenever the
    event loop has nothing else to run and no work outside the loop (a
    thread running a plain ``def`` step) is pending, as trio's `MockClock`
    does: retry delays and timeouts then happen instantly and in a
    deterministic order, but never while a step still has work to do.
    Work outside the loop is announced with `hold` and `release`.
    """

    def __init__(self, start: float = 0.0, *, autojump: bool = False) -> None:
        self._now = start
        self.autojump = autojump
        self._timers: list[tuple[float, int, _MockTimer]] = []
        self._seq = itertools.count()
        self._held = 0
        self._check_scheduled = False

    def now(self) -> float:
        """Return the virtual time."""
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Schedule `callback` at ``now() + delay`` virtual seconds."""
        timer = _MockTimer(callback)
        heapq.heappush(self._timers, (self._now + max(0.0, delay), next(self._seq), timer))
        if self.autojump:
            self._schedule_check()
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, running every timer that falls due, in order."""
        if seconds < 0:
            raise ValueError(f"MockClock.advance() needs seconds >= 0, got {seconds}")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback()
        self._now = target

    async def sleep(self, delay: float) -> None:
        """Wait until the clock has moved `delay` seconds."""
        future = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_later(delay, wake)
        try:
            await future
        finally:
            timer.cancel()

    def hold(self) -> None:
        """Announce work outside the event loop: no autojump until `release`."""
        self._held += 1

    def release(self) -> None:
        """End work announced with `hold`."""
        self._held -= 1
        if self.autojump and not self._held:
            self._schedule_check()

    def _next_due(self) -> float | None:
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    def _schedule_check(self) -> None:
        if self._check_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._check_scheduled = True
        loop.call_soon(self._check, loop, 0)

    def _check(self, loop: asyncio.AbstractEventLoop, quiet_rounds: int) -> None:
        self._check_scheduled = False
        if not self.autojump or self._held:
            return
        due = self._next_due()
        if due is None:
            return
        # The default loop shows what else is ready to run; on other loops,
        # a few quiet rounds in a row stand in for it.
        ready = getattr(loop, "_ready", None)
        idle = not ready if ready is not None else quiet_rounds >= 3
        if not idle:
            self._check_scheduled = True
            loop.call_soon(self._check, loop, 0 if ready is not None else quiet_rounds + 1)
            return
        self.advance(max(0.0, due - self._now))
        if self._next_due() is not None:
            self._schedule_check()
