"""Collect buffers: fan-in for ``ctx.collect_events``.

One buffer per (step, buffer id), one FIFO per event type inside it. An
event is appended on every call; once every requested type is present in
the requested number, exactly those events are popped, in the order of the
type list. Surplus events stay for the next call: nothing is dropped.

Changes are kept in the calling attempt's undo log, so an attempt that
fails and is retried leaves the buffers exactly as they were before it:
the retry sees the same complete set, and no event is buffered twice.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence

from fanflow._runtime.frame import StepFrame
from fanflow._runtime.records import RecordKind
from fanflow.events import Event

__all__ = ["CollectBuffer", "CollectBuffers"]

_COLLECT_ADDED = RecordKind.COLLECT_ADDED
_COLLECTED = RecordKind.COLLECTED
Item = tuple[int, Event]


class CollectBuffer:
    """Per-type FIFOs of events waiting to be collected together."""

    __slots__ = ("last_expected", "queues", "size")

    def __init__(self) -> None:
        self.queues: dict[type[Event], deque[Item]] = {}
        self.size = 0
        self.last_expected: Sequence[type[Event]] = ()

    def add(self, event_id: int, event: Event) -> None:
        """Buffer `event` at the end of its type's FIFO."""
        queue = self.queues.get(type(event))
        if queue is None:
            queue = self.queues[type(event)] = deque()
        queue.append((event_id, event))
        self.size += 1

    def discard(self, event_type: type[Event], event_id: int) -> None:
        """Drop the buffered event with `event_id` (undoing its `add`)."""
        queue = self.queues[event_type]
        for index in range(len(queue) - 1, -1, -1):  # it was added last, most likely
            if queue[index][0] == event_id:
                del queue[index]
                self.size -= 1
                return

    def put_back(self, taken: Sequence[Item]) -> None:
        """Return `taken` (from `take`) to the front of their FIFOs, in their old order."""
        for item in reversed(taken):
            self.queues[type(item[1])].appendleft(item)
        self.size += len(taken)

    def remove(self, event_ids: Sequence[int]) -> None:
        """Drop the events with `event_ids` (replaying a recorded collect)."""
        wanted = set(event_ids)
        for event_type, queue in self.queues.items():
            kept = deque(item for item in queue if item[0] not in wanted)
            self.size -= len(queue) - len(kept)
            self.queues[event_type] = kept

    def take(self, expected: Sequence[type[Event]]) -> list[Item] | None:
        """Pop one (id, event) per entry of `expected` if all are present, else None."""
        self.last_expected = expected
        # Cheap necessary condition first: a fan-in of n events would otherwise
        # count the n-long type list on each of its n calls.
        if self.size < len(expected):
            return None
        for event_type, count in Counter(expected).items():
            queue = self.queues.get(event_type)
            if queue is None or len(queue) < count:
                return None
        self.size -= len(expected)
        return [self.queues[t].popleft() for t in expected]

    def missing(self) -> str:
        """Describe what the last request still lacks, e.g. ``2 of 3 ResultEvent``."""
        parts = []
        for event_type, count in Counter(self.last_expected).items():
            have = len(self.queues.get(event_type, ()))
            if have < count:
                parts.append(f"{have} of {count} {event_type.__name__}")
        return ", ".join(parts)


class CollectBuffers:
    """All collect buffers of one run, with a per-attempt undo log."""

    __slots__ = ("_buffers", "_record", "_synthetic")

    def __init__(self, record: Callable[..., None]) -> None:
        self._buffers: dict[tuple[str, str | None], CollectBuffer] = {}
        self._record = record
        self._synthetic = 0  # ids (< 0) for collected events that were not step inputs

    def buffer(self, step: str, buffer_id: str | None) -> CollectBuffer:
        """Return the buffer of `step` and `buffer_id`, made on first use."""
        buffer = self._buffers.get((step, buffer_id))
        if buffer is None:
            buffer = self._buffers[(step, buffer_id)] = CollectBuffer()
        return buffer

    def collect(
        self,
        frame: StepFrame,
        event: Event,
        expected: Sequence[type[Event]],
        buffer_id: str | None,
    ) -> list[Event] | None:
        """Buffer `event` for the step of `frame`; return the set once complete."""
        buffer = self.buffer(frame.step, buffer_id)
        if event is frame.event:
            event_id, stored = frame.event_id, None
        else:
            self._synthetic -= 1
            event_id, stored = self._synthetic, event
        self._record(_COLLECT_ADDED, frame.step, frame.invocation, event_id, stored, buffer_id)
        buffer.add(event_id, event)
        undo = frame.undo
        if undo is None:
            undo = frame.undo = []
        undo.append((buffer, type(event), event_id))
        taken = buffer.take(expected)
        if taken is None:
            return None
        undo.append((buffer, taken))
        ids = [item[0] for item in taken]
        self._record(_COLLECTED, frame.step, frame.invocation, None, None, (buffer_id, ids))
        return [item[1] for item in taken]

    def roll_back(self, frame: StepFrame) -> None:
        """Undo every change the failed attempt of `frame` made, newest first."""
        undo, frame.undo = frame.undo, None
        for change in reversed(undo or ()):
            if len(change) == 3:
                buffer, event_type, event_id = change
                buffer.discard(event_type, event_id)
            else:
                change[0].put_back(change[1])

    def restore_added(self, step: str, buffer_id: str | None, event_id: int, event: Event) -> None:
        """Replay a recorded add (resuming a run)."""
        self.buffer(step, buffer_id).add(event_id, event)
        self._synthetic = min(self._synthetic, event_id)

    def restore_taken(self, step: str, buffer_id: str | None, event_ids: Sequence[int]) -> None:
        """Replay a recorded collect (resuming a run)."""
        self.buffer(step, buffer_id).remove(event_ids)

    def describe(self) -> Iterator[str]:
        """Describe each buffer that holds an incomplete set."""
        for (step, _), buffer in self._buffers.items():
            if missing := buffer.missing():
                yield f"step {step!r} collected {missing}"
