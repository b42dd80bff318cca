"""Which event answers a run's request for input, and how to build it from what the user types.

A step asks for input in one of two ways: it awaits
``ctx.wait_for_event(MyResponse, waiter_event=InputRequiredEvent(...))``
(its WAIT_STARTED record names ``MyResponse`` and the requirements), or it
returns an InputRequiredEvent and another step accepts the answer type. The
answer must be of that type: a plain HumanResponseEvent would not match a
wait for a subclass, nor reach a step that accepts only the subclass.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from fanflow import events
from fanflow._runtime.records import Record, RecordKind
from fanflow.events import Event, HumanResponseEvent, lookup_type
from fanflow.workflow import Workflow

__all__ = [
    "RESPONSE",
    "Answer",
    "answer_for",
    "field_value",
    "fields_to_ask",
    "has_default",
    "hint_data",
]

RESPONSE = "response"  # HumanResponseEvent's field in the reference; asked when none is declared


class Answer:
    """The event type that answers a request, and the fields the waiting step requires."""

    def __init__(self, event_type: type[Event], requirements: dict[str, Any]) -> None:
        self.event_type = event_type
        self.requirements = requirements

    def __repr__(self) -> str:
        return f"Answer({self.event_type.__name__}, {self.requirements!r})"


def answer_for(
    records: Sequence[Record], workflow: Workflow | None, request: Event | None = None
) -> Answer:
    """Return how to answer the open request of a run with `records`, a run of `workflow`.

    First the open wait (the one `request` started, else the last one), then
    the one HumanResponseEvent subclass a step accepts, then the one defined
    in the workflow's module; else a plain HumanResponseEvent.
    """
    wait = _open_wait(records, request)
    if wait is not None:
        found = _by_name(wait[0], workflow)
        if found is not None:
            return Answer(found, wait[1])
    for candidates in (_accepted(workflow), _defined(workflow)):
        if len(candidates) == 1:
            return Answer(candidates[0], {})
    return Answer(HumanResponseEvent, {})


def _open_wait(
    records: Sequence[Record], request: Event | None
) -> tuple[str, dict[str, Any]] | None:
    finished = {r.invocation for r in records if r.kind is RecordKind.STEP_FINISHED}
    open_waits: dict[int | None, Record] = {}
    for r in records:
        if r.kind is RecordKind.WAIT_STARTED and isinstance(r.data, (tuple, list)):
            open_waits[r.invocation] = r
        elif r.kind is RecordKind.WAIT_RESOLVED:
            open_waits.pop(r.invocation, None)
    still = [r for inv, r in open_waits.items() if inv not in finished]
    asked = [r for r in still if request is not None and r.event == request]
    if not still:
        return None
    name, requirements = (asked or still)[-1].data
    return str(name), dict(requirements or {})


def _by_name(name: str, workflow: Workflow | None) -> type[Event] | None:
    # A wait record keeps the class name only; look where the workflow's types live.
    for candidate in [*_graph_types(workflow), *_module_types(workflow), *_module_types(events)]:
        if candidate.__name__ == name:
            return candidate
    return lookup_type(f":{name}")


def _graph_types(workflow: Workflow | None) -> list[type[Event]]:
    return type(workflow).graph().event_types if workflow is not None else []


def _module_types(owner: Workflow | ModuleType | None) -> list[type[Event]]:
    if isinstance(owner, Workflow):
        owner = sys.modules.get(type(owner).__module__)
    if owner is None:
        return []
    return [v for v in vars(owner).values() if isinstance(v, type) and issubclass(v, Event)]


def _accepted(workflow: Workflow | None) -> list[type[Event]]:
    if workflow is None:
        return []
    consumers = type(workflow).graph().consumers
    return [t for t in consumers if issubclass(t, HumanResponseEvent)]


def _defined(workflow: Workflow | None) -> list[type[Event]]:
    module = type(workflow).__module__ if workflow is not None else None
    return [
        t
        for t in _module_types(workflow)
        if issubclass(t, HumanResponseEvent)
        and t is not HumanResponseEvent
        and t.__module__ == module
    ]


def fields_to_ask(answer: Answer) -> list[str]:
    """Return the fields the user types, in order: the declared ones the wait does not fix."""
    declared = [name for name in answer.event_type.model_fields if name not in answer.requirements]
    if declared or answer.event_type.model_fields:
        return declared
    return [RESPONSE]  # no declared field: the reference's HumanResponseEvent(response=...)


def field_value(answer: Answer, name: str, text: str) -> Any:
    """Return field `name` from the typed `text`: as is for a str, else JSON if it parses."""
    info = answer.event_type.model_fields.get(name)
    if info is None or info.annotation is str:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def has_default(answer: Answer, name: str) -> bool:
    """Return whether field `name` of the answer type may be left out."""
    info = answer.event_type.model_fields.get(name)
    return info is not None and not info.is_required()


def hint_data(answer: Answer) -> dict[str, Any]:
    """Return the ``data`` of a ``fanflow runs send --event`` line that answers with `answer`."""
    asked = [name for name in fields_to_ask(answer) if not has_default(answer, name)]
    return {**{name: "..." for name in asked}, **answer.requirements}
