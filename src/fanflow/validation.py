"""Checks that a workflow's step graph can run from StartEvent to StopEvent.

`find_problems` lists every problem (the CLI prints them all); `validate`
raises `WorkflowConfigurationError` with all of them in one message. Besides
start, stop and dangling events, a step that no chain of events from the
StartEvent (or from outside: human responses, failures for ``@catch_error``)
can reach is a problem, such as a step that only feeds itself.
"""

from __future__ import annotations

from fanflow.errors import WorkflowConfigurationError
from fanflow.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StepFailedEvent,
    StopEvent,
)
from fanflow.graph import StepGraph

__all__ = ["find_problems", "validate"]


def find_problems(graph: StepGraph, workflow_name: str = "workflow") -> list[str]:
    """Return one sentence per problem in `graph`; empty when it is sound."""
    return [*_start_and_stop(graph, workflow_name), *_dangling(graph), *_unreachable(graph)]


def validate(graph: StepGraph, workflow_name: str = "workflow", *, ends_only: bool = False) -> None:
    """Raise `WorkflowConfigurationError` listing every problem in `graph`.

    With `ends_only`, check only the start and stop of the graph.
    """
    problems = (
        _start_and_stop(graph, workflow_name) if ends_only else find_problems(graph, workflow_name)
    )
    if problems:
        raise WorkflowConfigurationError("\n".join(problems))


def _start_and_stop(graph: StepGraph, name: str) -> list[str]:
    problems = []
    starts = graph.start_types
    if not starts:
        problems.append(
            f"{name} has no step that accepts StartEvent; add a step with a parameter "
            "'ev: StartEvent' (or a StartEvent subclass)."
        )
    elif len(starts) > 1:
        listed = ", ".join(t.__name__ for t in starts)
        problems.append(
            f"{name} accepts several start events ({listed}); a run starts with exactly one."
        )
    if not graph.stop_types:
        problems.append(
            f"{name} has no step that returns StopEvent; annotate the final step '-> StopEvent'."
        )
    for event_type, steps in graph.consumers.items():
        if issubclass(event_type, StopEvent):
            for step_name in steps:
                problems.append(
                    f"step {step_name!r} accepts {event_type.__name__}, but a StopEvent ends "
                    "the run and reaches no step; accept another event type."
                )
    return problems


def _dangling(graph: StepGraph) -> list[str]:
    problems = []
    for event_type, steps in graph.producers.items():
        exempt = issubclass(event_type, (StopEvent, InputRequiredEvent))
        if not exempt and event_type not in graph.consumers:
            problems.append(
                f"{event_type.__name__} is produced by {_names(steps)} but no step accepts it; "
                f"add a step with 'ev: {event_type.__name__}' or drop it from the return "
                "annotation."
            )
    for event_type, steps in graph.consumers.items():
        exempt = issubclass(
            event_type, (StartEvent, StopEvent, HumanResponseEvent, StepFailedEvent)
        )
        if not exempt and event_type not in graph.producers:
            problems.append(
                f"{event_type.__name__} is accepted by {_names(steps)} but no step produces it; "
                f"add it to a step's return annotation (e.g. '-> {event_type.__name__}')."
            )
    return problems


# Event types that enter a run without a step emitting them.
_ENTRY_TYPES = (StartEvent, HumanResponseEvent, StepFailedEvent)


def reachable_steps(graph: StepGraph) -> set[str]:
    """Return the steps some chain of events from the run's entry events can reach."""
    arrived: set[type[Event]] = {t for t in graph.consumers if issubclass(t, _ENTRY_TYPES)}
    reached: set[str] = set()
    pending = list(arrived)
    while pending:
        for name in graph.consumers.get(pending.pop(), ()):
            if name in reached:
                continue
            reached.add(name)
            for produced in graph.steps[name].returns:
                if produced not in arrived:
                    arrived.add(produced)
                    pending.append(produced)
    return reached


def _unreachable(graph: StepGraph) -> list[str]:
    if not graph.start_types:
        return []  # already reported: with no start, nothing is reachable
    reached = reachable_steps(graph)
    problems = []
    for name, spec in graph.steps.items():
        if name in reached:
            continue
        producers = sorted({p for t in spec.accepts for p in graph.producers.get(t, ())})
        if not producers:
            continue  # reported by _dangling: no step produces what it accepts
        accepts = ", ".join(t.__name__ for t in spec.accepts)
        verb = "emits" if len(producers) == 1 else "emit"
        problems.append(
            f"step {name!r} cannot be reached from StartEvent: it accepts {accepts}, which "
            f"only {_names(tuple(producers))} {verb}, and no path from the start leads "
            f"there; emit {accepts} from a reachable step or remove the step."
        )
    return problems


def _names(steps: tuple[str, ...]) -> str:
    return ", ".join(f"step {s!r}" for s in steps)
