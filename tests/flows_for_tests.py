"""Workflows the drawing, CLI and browser tests share.

The seed's three flows (without their random sleeps), a flow whose step
fails, a flow that retries, and `generated_flow` for large drawings. The
CLI tests load this file by path, so it must import cleanly on its own.
"""

from __future__ import annotations

import functools
import operator
import random
from typing import Any

from fanflow import (
    Context,
    Event,
    StartEvent,
    StopEvent,
    Workflow,
    step,
)
from fanflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed


class StepTwoEvent(Event):
    """A query for step_two."""

    query: str


class ParellelFlow(Workflow):
    """The seed's first flow: start fans out three queries; the first answer wins."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StepTwoEvent:
        ctx.send_event(StepTwoEvent(query="Query 1"))
        ctx.send_event(StepTwoEvent(query="Query 2"))
        ctx.send_event(StepTwoEvent(query="Query 3"))

    @step(num_workers=4)
    async def step_two(self, ctx: Context, ev: StepTwoEvent) -> StopEvent:
        return StopEvent(result=ev.query)


class StepThreeEvent(Event):
    result: str


class ConcurrentFlow(Workflow):
    """The seed's second flow: fan out three queries and collect all three results."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StepTwoEvent:
        ctx.send_event(StepTwoEvent(query="Query 1"))
        ctx.send_event(StepTwoEvent(query="Query 2"))
        ctx.send_event(StepTwoEvent(query="Query 3"))

    @step(num_workers=4)
    async def step_two(self, ctx: Context, ev: StepTwoEvent) -> StepThreeEvent:
        return StepThreeEvent(result=ev.query)

    @step
    async def step_three(self, ctx: Context, ev: StepThreeEvent) -> StopEvent:
        result = ctx.collect_events(ev, [StepThreeEvent] * 3)
        if result is None:
            return None
        return StopEvent(result="Done")


class StepAEvent(Event):
    query: str


class StepBEvent(Event):
    query: str


class StepCEvent(Event):
    query: str


class StepACompleteEvent(Event):
    result: str


class StepBCompleteEvent(Event):
    result: str


class StepCCompleteEvent(Event):
    result: str


class MultipleEventTypesFlow(Workflow):
    """The seed's third flow (a second ConcurrentFlow there): three event types, one collector."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StepAEvent | StepBEvent | StepCEvent:
        ctx.send_event(StepAEvent(query="Query 1"))
        ctx.send_event(StepBEvent(query="Query 2"))
        ctx.send_event(StepCEvent(query="Query 3"))

    @step
    async def step_a(self, ctx: Context, ev: StepAEvent) -> StepACompleteEvent:
        return StepACompleteEvent(result=ev.query)

    @step
    async def step_b(self, ctx: Context, ev: StepBEvent) -> StepBCompleteEvent:
        return StepBCompleteEvent(result=ev.query)

    @step
    async def step_c(self, ctx: Context, ev: StepCEvent) -> StepCCompleteEvent:
        return StepCCompleteEvent(result=ev.query)

    @step
    async def step_three(
        self,
        ctx: Context,
        ev: StepACompleteEvent | StepBCompleteEvent | StepCCompleteEvent,
    ) -> StopEvent:
        if (
            ctx.collect_events(ev, [StepCCompleteEvent, StepACompleteEvent, StepBCompleteEvent])
            is None
        ):
            return None
        return StopEvent(result="Done")


SEED_FLOWS: list[type[Workflow]] = [ParellelFlow, ConcurrentFlow, MultipleEventTypesFlow]


class CheckEvent(Event):
    value: int


class FailingFlow(Workflow):
    """A run that fails: check raises on the value 2."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> CheckEvent:
        for value in range(3):
            ctx.send_event(CheckEvent(value=value))

    @step(num_workers=1)
    async def check(self, ev: CheckEvent) -> StopEvent | None:
        if ev.value == 2:
            raise ValueError("value 2 is not allowed")
        return None


class FlakyFlow(Workflow):
    """A run that succeeds on the second attempt of its only step."""

    attempts = 0

    @step(retry_policy=retry_policy(wait=wait_fixed(0.0), stop=stop_after_attempt(3)), timeout=30)
    async def flaky(self, ev: StartEvent) -> StopEvent:
        FlakyFlow.attempts += 1
        if FlakyFlow.attempts % 2:
            raise RuntimeError("first attempt fails")
        return StopEvent(result="ok")


class StreamingFlow(Workflow):
    """Writes two events to the stream, then stops with the sum of its inputs."""

    @step
    async def add(self, ctx: Context, ev: StartEvent) -> StopEvent:
        ctx.write_event_to_stream(Event(msg="adding"))
        ctx.write_event_to_stream(CheckEvent(value=ev.get("a", 0)))
        return StopEvent(result=ev.get("a", 0) + ev.get("b", 0))


class BrokenFlow(Workflow):
    """Has validation problems: an event nobody produces and one nobody accepts."""

    @step
    async def start(self, ev: StartEvent) -> StepTwoEvent | StopEvent:
        return StopEvent()

    @step
    async def orphan(self, ev: StepThreeEvent) -> StopEvent:
        return StopEvent()


not_a_workflow = 42


def generated_flow(steps: int, seed: int = 0) -> type[Workflow]:
    """Return a Workflow class with `steps` steps that fan out, join, skip ahead and loop.

    Step i accepts event type ``E{i}``, which one or two of the previous
    five steps emit; every tenth step also loops back five steps. Some steps
    have non-default workers, a retry policy or a timeout.
    """
    rng = random.Random(seed)
    events: list[type[Event]] = [StartEvent]
    events += [type(f"E{i}", (Event,), {"__module__": __name__}) for i in range(1, steps)]
    returns: list[list[type[Event]]] = [[] for _ in range(steps)]
    for i in range(1, steps):
        for producer in {rng.randrange(max(0, i - 5), i) for _ in range(rng.choice((1, 1, 2)))}:
            returns[producer].append(events[i])
    for i in range(9, steps, 10):
        returns[i].append(events[i - 5])
    for outputs in returns:
        if not outputs:
            outputs.append(StopEvent)
    if StopEvent not in returns[-1]:
        returns[-1].append(StopEvent)
    body = {
        f"step_{i}": _make_step(f"step_{i}", events[i], returns[i], _settings(i))
        for i in range(steps)
    }
    return type(f"Generated{steps}Flow", (Workflow,), body)


def _settings(i: int) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if i % 6 == 5:
        settings["num_workers"] = 8
    if i % 7 == 3:
        settings["retry_policy"] = retry_policy(wait=wait_fixed(0.0), stop=stop_after_attempt(2))
    if i % 11 == 4:
        settings["timeout"] = 10.0
    return settings


def _make_step(
    name: str, accepts: type[Event], returns: list[type[Event]], settings: dict[str, Any]
) -> Any:
    async def fn(self: Workflow, ev: Event) -> None:
        return None

    fn.__name__ = fn.__qualname__ = name
    fn.__annotations__ = {"ev": accepts, "return": functools.reduce(operator.or_, returns)}
    return step(**settings)(fn)
