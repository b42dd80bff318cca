"""The event stream of one run: what steps write, read by one consumer.

Events are buffered until read, so a consumer that starts late misses
nothing. The stream ends after the StopEvent, or with the run's error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from fanflow.errors import WorkflowRuntimeError
from fanflow.events import Event

__all__ = ["EventStream"]


class EventStream:
    """A single-consumer, unbounded, live queue of events with an end."""

    __slots__ = ("_buffer", "_closed", "_consumed", "_error", "_wakeup")

    def __init__(self) -> None:
        self._buffer: deque[Event] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None
        self._consumed = False

    def put(self, event: Event) -> None:
        """Append `event` unless the stream has ended."""
        if self._closed:
            return
        self._buffer.append(event)
        self._wake()

    def close(self, error: BaseException | None = None) -> None:
        """End the stream; a reader sees the buffered events, then `error` if any."""
        if not self._closed:
            self._closed, self._error = True, error
            self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def consume(self) -> AsyncIterator[Event]:
        """Return the one iterator over this stream; a second call raises."""
        if self._consumed:
            raise WorkflowRuntimeError(
                "stream_events() was already called for this run; a run's events go to "
                "one consumer. Keep the first iterator (or fan it out yourself)."
            )
        self._consumed = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            while self._buffer:
                yield self._buffer.popleft()
            if self._closed:
                if self._error is not None:
                    raise self._error
                return
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
            self._wakeup = None
