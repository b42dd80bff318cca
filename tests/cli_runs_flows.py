"""Workflows for the ``fanflow runs`` tests: one asks for a name, one counts, one fails."""

from __future__ import annotations

from fanflow import (
    Context,
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
    Workflow,
    step,
)


class Item(Event):
    n: int


class Greet(Workflow):
    """Asks for a name with wait_for_event, then greets."""

    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
        await ctx.store.set("asked", True)
        answer = await ctx.wait_for_event(
            HumanResponseEvent, waiter_event=InputRequiredEvent(prefix="name?")
        )
        return StopEvent(result=f"hello {answer.response}")


class Count(Workflow):
    """Fans out three items and collects them."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Item | None:
        for n in range(3):
            ctx.send_event(Item(n=n))
        return None

    @step
    async def total(self, ctx: Context, ev: Item) -> StopEvent | None:
        items = ctx.collect_events(ev, [Item] * 3)
        if items is None:
            return None
        return StopEvent(result=f"{len(items)} items")


class Fail(Workflow):
    """Fails in its only step."""

    @step
    async def boom(self, ev: StartEvent) -> StopEvent:
        raise ValueError("no luck")
