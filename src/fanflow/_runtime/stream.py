"""The event stream of one run: what steps write, read by one consumer.

Events are buffered until read, so a consumer that starts late misses
nothing, up to `STREAM_LIMIT` events. Past that, the oldest buffered
event is dropped for each new one (input requests and the final events
are never dropped), and one warning says how to avoid it: read
``handler.stream_events()``. The stream ends after the StopEvent, or with
the run's error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fanflow.errors import WorkflowRuntimeError
from fanflow.events import Event, InputRequiredEvent, StopEvent

__all__ = ["STREAM_LIMIT", "EventStream"]

STREAM_LIMIT = 10_000  # events buffered for a consumer that reads slowly or never

log = logging.getLogger("fanflow")


class EventStream:
    """A single-consumer, bounded, live queue of events with an end."""

    __slots__ = (
        "_buffer",
        "_closed",
        "_consumed",
        "_error",
        "_head",
        "_wakeup",
        "dropped",
        "limit",
    )

    def __init__(self, limit: int | None = None) -> None:
        # A list read from `_head` on, compacted now and then: most runs stream
        # one event (the StopEvent), and an empty deque alone is 600 bytes.
        self._buffer: list[Event] = []
        self._head = 0
        self._wakeup: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None
        self._consumed = False
        self.limit = STREAM_LIMIT if limit is None else limit
        self.dropped = 0  # events dropped because nobody read them in time

    def put(self, event: Event) -> None:
        """Append `event` unless the stream has ended; drop the oldest past the limit."""
        if self._closed:
            return
        buffer = self._buffer
        buffer.append(event)
        if len(buffer) - self._head > self.limit:
            self._drop_oldest()
        if self._wakeup is not None:
            self._wake()

    def _drop_oldest(self) -> None:
        buffer = self._buffer
        for index in range(self._head, len(buffer)):
            if not isinstance(buffer[index], (InputRequiredEvent, StopEvent)):
                del buffer[index]
                break
        else:
            return
        self.dropped += 1
        if self.dropped == 1:
            log.warning(
                "a run's event stream holds %d unread events; dropping the oldest. Read "
                "handler.stream_events() while the run goes on to get them all",
                self.limit,
            )

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
                "All the streamed events have already been consumed: stream_events() was "
                "already called for this run, and a run's events go to one consumer. Keep the "
                "first iterator, or follow handler.records() (any number of readers)."
            )
        self._consumed = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            while self._head < len(self._buffer):
                event = self._buffer[self._head]
                self._head += 1
                if self._head > 64 and self._head * 2 > len(self._buffer):
                    del self._buffer[: self._head]
                    self._head = 0
                yield event
            if self._closed:
                if self._error is not None:
                    raise self._error
                return
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None
