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

StepCall = Callable[..., Awaitable[Any]]  # call(ctx, event, **resources)


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
    """Bind `spec` to `owner` (the workflow instance) in the ``(ctx, event, **resources)`` shape.

    The resources (see `fanflow.resource.resolve_resources`) are passed by
    parameter name; a step without resources is called with none.
    """
    fn: Callable[..., Awaitable[Any]] = spec.fn.__get__(owner) if spec.is_method else spec.fn
    call: StepCall
    if spec.ctx_position == 0:
        call = fn
    elif spec.ctx_position == 1:

        def call(ctx: Any, event: Event, **resources: Any) -> Awaitable[Any]:
            return fn(event, ctx, **resources)

    else:

        def call(ctx: Any, event: Event, **resources: Any) -> Awaitable[Any]:
            return fn(event, **resources)

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
        self._in_loop: dict[tuple[str, bool], bool] = {}
        catchers = [b for b in self.by_name.values() if b.spec.catches_errors]
        self._catch_for: dict[str, StepBinding] = {}
        self._catch_any: StepBinding | None = None
        for binding in catchers:
            if binding.spec.for_steps is None:
                self._catch_any = self._catch_any or binding
            for name in binding.spec.for_steps or ():
                self._catch_for.setdefault(name, binding)

    def in_loop(self, step: str, workflow_executor: object) -> bool:
        """Return whether `step`'s body is awaited as it is, in the loop (the fast path).

        True for an ``async def`` body with no executor, resources or timeout
        of its own, on a workflow without an executor. Remembered per step.
        """
        key = (step, workflow_executor is None)
        found = self._in_loop.get(key)
        if found is None:
            spec = self.by_name[step].spec
            found = self._in_loop[key] = (
                spec.is_async
                and spec.executor is None
                and workflow_executor is None
                and not spec.resources
                and spec.timeout is None
            )
        return found

    def catcher(self, step: str) -> StepBinding | None:
        """Return the ``@catch_error`` step for a failure of `step`, if any.

        A handler scoped to `step` wins over one for every step; a handler's
        own failure is never caught.
        """
        if self.by_name[step].spec.catches_errors:
            return None
        return self._catch_for.get(step) or self._catch_any
