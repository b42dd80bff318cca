"""The static event -> step graph of a workflow, read from its step specs.

Validation, routing and drawing all read this one structure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fanflow.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StepFailedEvent,
    StopEvent,
)
from fanflow.step import StepSpec

__all__ = ["StepGraph", "build_graph"]


@dataclass(frozen=True)
class StepGraph:
    """Which step accepts and which step may emit each event type."""

    steps: Mapping[str, StepSpec]
    consumers: Mapping[type[Event], tuple[str, ...]]
    producers: Mapping[type[Event], tuple[str, ...]]

    @property
    def event_types(self) -> list[type[Event]]:
        """Return every event type in the graph, consumed or produced, in first-seen order."""
        return list(dict.fromkeys([*self.consumers, *self.producers]))

    @property
    def start_types(self) -> list[type[StartEvent]]:
        """Return the StartEvent types some step accepts."""
        return [t for t in self.consumers if issubclass(t, StartEvent)]

    @property
    def stop_types(self) -> list[type[StopEvent]]:
        """Return the StopEvent types some step may emit."""
        return [t for t in self.producers if issubclass(t, StopEvent)]

    def similar_consumers(self, event_type: type[Event]) -> list[str]:
        """Return ``step (accepts T)`` for steps accepting a parent or child of `event_type`."""
        found = []
        for other, names in self.consumers.items():
            if other is not event_type and (
                issubclass(event_type, other) or issubclass(other, event_type)
            ):
                found += [f"{name} (accepts {other.__name__})" for name in names]
        return found


def is_external(event_type: type[Event]) -> bool:
    """Return whether `event_type` crosses the run's edge (human input, start, stop)."""
    return issubclass(
        event_type, (InputRequiredEvent, HumanResponseEvent, StartEvent, StopEvent, StepFailedEvent)
    )


def build_graph(specs: Iterable[StepSpec]) -> StepGraph:
    """Index `specs` by the event types they accept and emit."""
    steps: dict[str, StepSpec] = {}
    consumers: dict[type[Event], list[str]] = {}
    producers: dict[type[Event], list[str]] = {}
    for spec in specs:
        steps[spec.name] = spec
        for t in spec.accepts:
            consumers.setdefault(t, []).append(spec.name)
        for t in spec.returns:
            producers.setdefault(t, []).append(spec.name)
    return StepGraph(
        steps=steps,
        consumers={t: tuple(names) for t, names in consumers.items()},
        producers={t: tuple(names) for t, names in producers.items()},
    )
