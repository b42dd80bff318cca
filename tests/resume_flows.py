"""Workflows for the resume and crash tests: fan-out, collect, a loop and state."""

from __future__ import annotations

import asyncio

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

ITEMS = 4
ROUNDS = 3


class Round(Event):
    round: int


class Item(Event):
    i: int
    round: int


class Done(Event):
    i: int
    round: int
    value: int


class CrashFlow(Workflow):
    """Rounds of fan-out and collect; each round's total goes into the state."""

    @step
    async def begin(self, ctx: Context, ev: StartEvent) -> Round:
        await ctx.store.set("seed", ev.get("seed", 1))
        return Round(round=0)

    @step
    async def fan(self, ctx: Context, ev: Round) -> Item:
        for i in range(ITEMS):
            ctx.send_event(Item(i=i, round=ev.round))
            await asyncio.sleep(0)
        ctx.write_event_to_stream(Round(round=ev.round))
        return None

    @step(num_workers=3)
    async def work(self, ctx: Context, ev: Item) -> Done:
        seed = await ctx.store.get("seed")
        await asyncio.sleep(0)
        return Done(i=ev.i, round=ev.round, value=(ev.i + 1) * (ev.round + seed))

    @step
    async def gather(self, ctx: Context, ev: Done) -> Round | StopEvent:
        got = ctx.collect_events(ev, [Done] * ITEMS)
        if got is None:
            return None
        total = sum(d.value for d in got)
        await ctx.store.set(f"totals.r{ev.round}", total)  # idempotent: safe to redo
        if ev.round + 1 < ROUNDS:
            return Round(round=ev.round + 1)
        totals = await ctx.store.get("totals")
        return StopEvent(result=sum(totals.values()))


class AskFlow(Workflow):
    """Asks a person for a name with wait_for_event, then greets."""

    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
        await ctx.store.set("asked", True)
        answer = await ctx.wait_for_event(
            HumanResponseEvent, waiter_event=InputRequiredEvent(prefix="name?")
        )
        return StopEvent(result=f"hello {answer.response}")
