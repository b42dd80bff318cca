"""The scheduler: fairness between steps, worker limits, and context isolation per invocation."""

import asyncio
import time
from contextvars import ContextVar

import pytest

from fanflow import Context, Event, StartEvent, StopEvent, Workflow, WorkflowTimeoutError, step

POLLS = 10_000  # a poll loop that reaches this many rounds was starved


class Poll(Event):
    n: int = 0


class Go(Event):
    pass


class PollFlow(Workflow):
    """`poll` re-emits itself and never suspends; `go` must still get its turn."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Poll | Go:
        ctx.send_event(Poll())  # the poll loop gets going first
        return Go()

    @step
    async def poll(self, ctx: Context, ev: Poll) -> Poll | StopEvent:
        if await ctx.store.get("done", default=False):
            return StopEvent(result=ev.n)
        if ev.n >= POLLS:
            return StopEvent(result="starved")
        return Poll(n=ev.n + 1)

    @step
    async def go(self, ctx: Context, ev: Go) -> None:
        await ctx.store.set("done", True)


async def test_a_step_that_reemits_itself_cannot_starve_the_others(finish):
    """A poll loop over ctx.store.get lets the step it waits for run after a few rounds."""
    result = await finish(PollFlow().run())

    assert result != "starved"
    assert result < 5


class SpinForever(Workflow):
    """Re-emits without suspending until 5 s have passed (a starved timeout would let it)."""

    began = 0.0

    @step
    async def start(self, ev: StartEvent) -> Poll:
        self.began = time.monotonic()
        return Poll()

    @step
    async def poll(self, ev: Poll) -> Poll | StopEvent:
        if time.monotonic() - self.began > 5:
            return StopEvent(result="never interrupted")
        return Poll(n=ev.n + 1)


async def test_the_run_timeout_fires_on_a_step_that_never_suspends():
    """A busy re-emitting loop still ends at the run's timeout, not when it stops by itself."""
    with pytest.raises(WorkflowTimeoutError, match=r"timed out after 0\.05 s"):
        await SpinForever(timeout=0.05).run()


class Item(Event):
    n: int


class Seen(Event):
    value: str


tag: ContextVar[str] = ContextVar("tag", default="unset")


class TagFlow(Workflow):
    """One worker handles every Item and sets a context variable in each invocation."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Item | None:
        for n in range(3):
            ctx.send_event(Item(n=n))

    @step(num_workers=1)
    async def work(self, ev: Item) -> Seen:
        seen = tag.get()
        tag.set(f"item {ev.n}")
        return Seen(value=seen)

    @step
    async def join(self, ctx: Context, ev: Seen) -> StopEvent | None:
        got = ctx.collect_events(ev, [Seen] * 3)
        return None if got is None else StopEvent(result=[e.value for e in got])


async def test_context_variables_do_not_leak_between_invocations_on_one_worker(finish):
    """Each invocation starts from the run's context, not the previous invocation's."""
    assert await finish(TagFlow().run()) == ["unset"] * 3


async def test_the_callers_context_variables_reach_every_step(finish):
    """Steps see the context variables set where wf.run() was called."""
    tag.set("caller")
    try:
        assert await finish(TagFlow().run()) == ["caller"] * 3
    finally:
        tag.set("unset")


class Burst(Workflow):
    """Counts how many invocations of `work` overlap; `num_workers` caps them."""

    def __init__(self, workers_seen: list[int], **kwargs):
        super().__init__(**kwargs)
        self.workers_seen = workers_seen
        self.running = 0

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Item | None:
        for n in range(6):
            ctx.send_event(Item(n=n))

    @step(num_workers=2)
    async def work(self, ev: Item) -> Seen:
        self.running += 1
        self.workers_seen.append(self.running)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.running -= 1
        return Seen(value=str(ev.n))

    @step
    async def join(self, ctx: Context, ev: Seen) -> StopEvent | None:
        got = ctx.collect_events(ev, [Seen] * 6)
        return None if got is None else StopEvent(result=sorted(e.value for e in got))


async def test_num_workers_caps_concurrent_invocations_and_is_reached(finish):
    """At most num_workers invocations of a step overlap, and that many do."""
    seen: list[int] = []
    assert await finish(Burst(seen).run()) == [str(n) for n in range(6)]
    assert max(seen) == 2


class Shared(Event):
    pass


class BothTake(Workflow):
    """One event reaches two steps; each records when it ran."""

    def __init__(self, order: list[str], **kwargs):
        super().__init__(**kwargs)
        self.order = order

    @step
    async def start(self, ev: StartEvent) -> Shared:
        return Shared()

    @step
    async def first(self, ev: Shared) -> None:
        self.order.append("first")

    @step
    async def second(self, ev: Shared) -> StopEvent:
        self.order.append("second")
        return StopEvent(result=list(self.order))


async def test_steps_receiving_one_event_start_in_definition_order(finish):
    """An event accepted by several steps reaches them in the order they are defined."""
    assert await finish(BothTake([]).run()) == ["first", "second"]
