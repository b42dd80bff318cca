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
    """A clock that moves only when `advance` is called.

    With ``autojump=True`` every ``sleep`` moves the clock forward by its own
    delay at once (firing any timer that falls due on the way), so retry
    delays and timeouts happen instantly and in a deterministic order.
    """

    def __init__(self, start: float = 0.0, *, autojump: bool = False) -> None:
        self._now = start
        self.autojump = autojump
        self._timers: list[tuple[float, int, _MockTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """Return the virtual time."""
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Schedule `callback` at ``now() + delay`` virtual seconds."""
        timer = _MockTimer(callback)
        heapq.heappush(self._timers, (self._now + max(0.0, delay), next(self._seq), timer))
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
        """Wait until the clock has moved `delay` seconds (at once with autojump)."""
        future = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_later(delay, wake)
        if self.autojump:
            self.advance(max(0.0, delay))
        try:
            await future
        finally:
            timer.cancel()
