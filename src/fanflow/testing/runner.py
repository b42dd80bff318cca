"""`WorkflowTestRunner`: run a workflow to the end and collect its event stream."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fanflow.context import Context
from fanflow.events import Event, StartEvent
from fanflow.workflow import Workflow

__all__ = ["WorkflowTestResult", "WorkflowTestRunner"]


@dataclass
class WorkflowTestResult:
    """What one test run produced.

    `collected` holds the streamed events in order (minus the excluded
    types), `event_types` counts them by exact type, `result` is what
    ``await handler`` returned and `ctx` is the run's context.
    """

    collected: list[Event]
    event_types: dict[type[Event], int]
    result: Any
    ctx: Context[Any]


class WorkflowTestRunner:
    """Runs `workflow` end to end, collecting the events it streams."""

    def __init__(self, workflow: Workflow) -> None:
        self._workflow = workflow

    async def run(
        self,
        start_event: StartEvent | None = None,
        ctx: Context[Any] | None = None,
        expose_internal: bool = True,
        exclude_events: Sequence[type[Event]] | None = None,
    ) -> WorkflowTestResult:
        """Run the workflow once and return what it streamed and returned.

        `start_event` defaults to a plain ``StartEvent()``; pass `ctx` to
        continue with an earlier run's context. With `expose_internal`
        (the default) the stream includes the engine's own events, such as
        `StepStateChanged`. Events whose exact type is in `exclude_events`
        are left out of `collected`. If the run fails, its error is raised.
        """
        handler = self._workflow.run(start_event=start_event or StartEvent(), ctx=ctx)
        excluded = set(exclude_events or ())
        collected = [
            event
            async for event in handler.stream_events(expose_internal=expose_internal)
            if type(event) not in excluded
        ]
        result = await handler
        return WorkflowTestResult(
            collected=collected,
            event_types=dict(Counter(type(event) for event in collected)),
            result=result,
            ctx=handler.ctx,
        )
