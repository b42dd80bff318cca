"""Collect buffers: fan-in for ``ctx.collect_events``.

One buffer per (step, buffer id), one FIFO per event type inside it. An
event is appended on every call; once every requested type is present in
the requested number, exactly those events are popped, in the order of the
type list. Surplus events stay for the next call: nothing is dropped.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

from fanflow.events import Event

__all__ = ["CollectBuffer"]


class CollectBuffer:
    """Per-type FIFOs of events waiting to be collected together."""

    __slots__ = ("last_expected", "queues", "size")

    def __init__(self) -> None:
        self.queues: dict[type[Event], deque[tuple[int, Event]]] = {}
        self.size = 0
        self.last_expected: Sequence[type[Event]] = ()

    def add(self, event_id: int, event: Event) -> None:
        """Buffer `event` at the end of its type's FIFO."""
        queue = self.queues.get(type(event))
        if queue is None:
            queue = self.queues[type(event)] = deque()
        queue.append((event_id, event))
        self.size += 1

    def remove(self, event_ids: Sequence[int]) -> None:
        """Drop the events with `event_ids` (replaying a recorded collect)."""
        wanted = set(event_ids)
        for event_type, queue in self.queues.items():
            kept = deque(item for item in queue if item[0] not in wanted)
            self.size -= len(queue) - len(kept)
            self.queues[event_type] = kept

    def take(self, expected: Sequence[type[Event]]) -> list[tuple[int, Event]] | None:
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
