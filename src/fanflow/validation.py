"""Checks that a workflow's step graph can run from StartEvent to StopEvent.

`find_problems` lists every problem (the CLI prints them all); `validate`
raises `WorkflowConfigurationError` with all of them in one message.
"""

from __future__ import annotations

from fanflow.errors import WorkflowConfigurationError
from fanflow.events import HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent
from fanflow.graph import StepGraph

__all__ = ["find_problems", "validate"]


def find_problems(graph: StepGraph, workflow_name: str = "workflow") -> list[str]:
    """Return one sentence per problem in `graph`; empty when it is sound."""
    return [*_start_and_stop(graph, workflow_name), *_dangling(graph)]


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
        exempt = issubclass(event_type, (StartEvent, StopEvent, HumanResponseEvent))
        if not exempt and event_type not in graph.producers:
            problems.append(
                f"{event_type.__name__} is accepted by {_names(steps)} but no step produces it; "
                f"add it to a step's return annotation (e.g. '-> {event_type.__name__}')."
            )
    return problems


def _names(steps: tuple[str, ...]) -> str:
    return ", ".join(f"step {s!r}" for s in steps)
