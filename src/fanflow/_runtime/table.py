"""The step table: a workflow instance's steps, bound and indexed by event type.

Built once per `Workflow` instance and shared by all of its runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fanflow.events import Event
from fanflow.graph import StepGraph, build_graph
from fanflow.step import StepSpec

__all__ = ["StepBinding", "StepTable"]

StepCall = Callable[[Any, Event], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class StepBinding:
    """A step spec plus the callable that runs it as ``call(ctx, event)``."""

    spec: StepSpec
    call: StepCall

    @property
    def name(self) -> str:
        """Return the step's name."""
        return self.spec.name


def bind(spec: StepSpec, owner: object) -> StepBinding:
    """Bind `spec` to `owner` (the workflow instance) in the (ctx, event) call shape."""
    fn: Callable[..., Awaitable[Any]] = spec.fn.__get__(owner) if spec.is_method else spec.fn
    call: StepCall
    if spec.ctx_position == 0:
        call = fn
    elif spec.ctx_position == 1:

        def call(ctx: Any, event: Event) -> Awaitable[Any]:
            return fn(event, ctx)

    else:

        def call(ctx: Any, event: Event) -> Awaitable[Any]:
            return fn(event)

    return StepBinding(spec, call)


class StepTable:
    """Bound steps by name and by the exact event type they accept."""

    def __init__(self, bindings: Iterable[StepBinding]) -> None:
        self.by_name: dict[str, StepBinding] = {b.name: b for b in bindings}
        routes: dict[type[Event], list[StepBinding]] = {}
        for binding in self.by_name.values():
            for event_type in binding.spec.accepts:
                routes.setdefault(event_type, []).append(binding)
        self.routes: dict[type[Event], tuple[StepBinding, ...]] = {
            t: tuple(bs) for t, bs in routes.items()
        }
        self.graph: StepGraph = build_graph(b.spec for b in self.by_name.values())
