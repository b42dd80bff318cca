"""`Context`: sending, collecting, waiting for outside input, streaming, retry info."""

import asyncio

import pytest

from fanflow import (
    Context,
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    RetryInfo,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowRuntimeError,
    WorkflowTimeoutError,
    step,
)


class Ping(Event):
    n: int = 0


class Item(Event):
    n: int


class Batch(Event):
    ns: list[int]


class Left(Event):
    n: int


class Right(Event):
    n: int


class Progress(Event):
    msg: str


class Minimal(Workflow):
    @step
    async def start(self, ev: StartEvent) -> StopEvent:
        return StopEvent()


# ------------------------------------------------------------------ send_event


def test_send_event_outside_a_run_fails():
    """Context(wf).send_event(...) before any run raises WorkflowRuntimeError saying why."""
    ctx = Context(Minimal())

    with pytest.raises(WorkflowRuntimeError, match=r"send_event\(\) needs a run"):
        ctx.send_event(Ping())


async def test_send_event_rejects_a_non_event(finish):
    """ctx.send_event('text') fails the run, naming the type it got."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            ctx.send_event("not an event")
            return StopEvent()

    with pytest.raises(WorkflowRuntimeError, match=r"takes an Event instance, got str"):
        await finish(Flow().run())


class TwoListeners(Workflow):
    seen: list[str] = []

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Ping:
        ctx.send_event(Ping(), step=ev.target)

    @step
    async def a(self, ev: Ping) -> StopEvent:
        self.seen.append("a")
        return StopEvent(result="a")

    @step
    async def b(self, ev: Ping) -> StopEvent:
        self.seen.append("b")
        return StopEvent(result="b")


async def test_send_event_to_a_named_step_reaches_only_that_step(finish, spin):
    """send_event(ev, step='b') delivers to step b even though step a accepts the type too."""
    flow = TwoListeners()
    flow.seen = []

    assert await finish(flow.run(target="b")) == "b"
    await spin()
    assert flow.seen == ["b"]


async def test_send_event_to_an_unknown_step_fails_listing_the_steps(finish):
    """send_event(ev, step='nope') fails naming the step and listing the real ones."""
    with pytest.raises(WorkflowRuntimeError, match=r"no step 'nope'; steps are a, b, start"):
        await finish(TwoListeners().run(target="nope"))


async def test_send_event_to_a_step_that_does_not_accept_it_fails(finish):
    """send_event(ev, step='start') fails when that step does not accept the event type."""
    with pytest.raises(
        WorkflowRuntimeError, match=r"step 'start' does not accept Ping \(it accepts StartEvent\)"
    ):
        await finish(TwoListeners().run(target="start"))


# ------------------------------------------------------------------ collect_events


class BatchFlow(Workflow):
    """Four items are collected two at a time; two batches make the result."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Item:
        for n in range(1, 5):
            ctx.send_event(Item(n=n))

    @step(num_workers=1)
    async def pair(self, ctx: Context, ev: Item) -> Batch | None:
        items = ctx.collect_events(ev, [Item] * 2)
        return None if items is None else Batch(ns=[i.n for i in items])

    @step(num_workers=1)
    async def gather(self, ctx: Context, ev: Batch) -> StopEvent | None:
        batches = ctx.collect_events(ev, [Batch] * 2)
        return None if batches is None else StopEvent(result=[b.ns for b in batches])


async def test_collect_events_keeps_surplus_for_the_next_call(finish):
    """Four events with a collect of two give two batches, in arrival order: none is dropped."""
    assert await finish(BatchFlow().run()) == [[1, 2], [3, 4]]


async def test_collect_events_keeps_surplus_of_an_already_buffered_type(finish):
    """Left1, Left2, Right1, Right2 collected as [Left, Right] give two pairs (nothing dropped)."""

    class Pairs(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Left | Right:
            ctx.send_event(Left(n=1))
            ctx.send_event(Left(n=2))
            ctx.send_event(Right(n=1))
            ctx.send_event(Right(n=2))

        @step(num_workers=1)
        async def pair(self, ctx: Context, ev: Left | Right) -> Batch | None:
            got = ctx.collect_events(ev, [Left, Right])
            return None if got is None else Batch(ns=[got[0].n, got[1].n])

        @step(num_workers=1)
        async def done(self, ctx: Context, ev: Batch) -> StopEvent | None:
            got = ctx.collect_events(ev, [Batch] * 2)
            return None if got is None else StopEvent(result=[b.ns for b in got])

    assert await finish(Pairs().run()) == [[1, 1], [2, 2]]


async def test_collect_events_returns_none_until_complete(finish):
    """collect_events returns None for each event until the last requested one arrives."""

    class Flow(Workflow):
        answers: list[object] = []

        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Item:
            for n in range(3):
                ctx.send_event(Item(n=n))

        @step(num_workers=1)
        async def take(self, ctx: Context, ev: Item) -> StopEvent | None:
            got = ctx.collect_events(ev, [Item] * 3)
            self.answers.append(got if got is None else [i.n for i in got])
            return None if got is None else StopEvent()

    flow = Flow()
    flow.answers = []
    await finish(flow.run())
    assert flow.answers == [None, None, [0, 1, 2]]


async def test_collect_events_buffer_ids_keep_fan_ins_apart(finish):
    """Two buffer ids in one step collect separately, even for the same event type."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Item:
            for n in range(4):
                ctx.send_event(Item(n=n))

        @step(num_workers=1)
        async def split(self, ctx: Context, ev: Item) -> Batch | None:
            buffer = "even" if ev.n % 2 == 0 else "odd"
            got = ctx.collect_events(ev, [Item] * 2, buffer_id=buffer)
            return None if got is None else Batch(ns=[i.n for i in got])

        @step(num_workers=1)
        async def done(self, ctx: Context, ev: Batch) -> StopEvent | None:
            got = ctx.collect_events(ev, [Batch] * 2)
            return None if got is None else StopEvent(result=[b.ns for b in got])

    assert await finish(Flow().run()) == [[0, 2], [1, 3]]


async def test_collect_events_with_an_empty_list_fails_naming_the_step(finish):
    """collect_events(ev, []) is an error naming the step, not a silent None."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent | None:
            return ctx.collect_events(ev, [])

    with pytest.raises(
        WorkflowRuntimeError, match=r"step 'start': collect_events\(\) needs a non-empty list"
    ):
        await finish(Flow().run())


async def test_collect_events_with_instances_instead_of_types_fails(finish):
    """collect_events(ev, [Item(...)]) fails, showing the expected form."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent | None:
            return ctx.collect_events(ev, [Item(n=1)])

    with pytest.raises(WorkflowRuntimeError, match=r"takes event types, e.g. \[MyEvent\] \* 3"):
        await finish(Flow().run())


def test_collect_events_outside_a_step_fails():
    """collect_events() outside a step raises WorkflowRuntimeError."""
    with pytest.raises(WorkflowRuntimeError, match=r"must be called inside a step"):
        Context(Minimal()).collect_events(Item(n=1), [Item])


# ------------------------------------------------------------------ wait_for_event


class AskFlow(Workflow):
    """Asks for a name once and greets whoever answers."""

    asked = 0

    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
        self.asked += 1
        answer = await ctx.wait_for_event(
            HumanResponseEvent,
            waiter_event=InputRequiredEvent(prefix="Your name? "),
            requirements=ev.get("requirements"),
        )
        return StopEvent(result=f"Hello {answer.response}")


async def test_wait_for_event_resumes_the_step_with_the_answer(finish, receive, drain):
    """The caller sees the InputRequiredEvent, answers via handler.ctx, and the step resumes."""
    handler = AskFlow().run()
    stream = handler.stream_events()

    assert await receive(stream) == InputRequiredEvent(prefix="Your name? ")
    handler.ctx.send_event(HumanResponseEvent(response="Ada"))

    assert await drain(stream) == [StopEvent(result="Hello Ada")]
    assert await finish(handler) == "Hello Ada"


async def test_code_before_wait_for_event_runs_once(finish, receive):
    """The step is suspended, not re-run: code before the wait runs exactly once."""
    flow = AskFlow()
    handler = flow.run()
    await receive(handler.stream_events())
    handler.ctx.send_event(HumanResponseEvent(response="Ada"))

    await finish(handler)
    assert flow.asked == 1


async def test_wait_for_event_requirements_filter_answers(finish, spin):
    """An answer that does not match `requirements` is not handed to the waiting step."""
    handler = AskFlow().run(requirements={"user": "ada"})
    await spin()

    handler.ctx.send_event(HumanResponseEvent(user="bob", response="Bob"))
    await spin()
    assert not handler.done()
    handler.ctx.send_event(HumanResponseEvent(user="ada", response="Ada"))

    assert await finish(handler) == "Hello Ada"


async def test_outside_send_of_a_non_event_fails_at_once(finish, spin):
    """handler.ctx.send_event('Ada') raises in the caller, naming the type; the run goes on."""
    handler = AskFlow().run()
    await spin()

    with pytest.raises(WorkflowRuntimeError, match=r"takes an Event instance, got str \('Ada'\)"):
        handler.ctx.send_event("Ada")
    handler.ctx.send_event(HumanResponseEvent(response="Ada"))

    assert await finish(handler) == "Hello Ada"


async def test_answer_sent_before_the_wait_is_kept(finish, spin):
    """An answer sent before the step reaches wait_for_event is delivered when it does."""
    gate = asyncio.Event()

    class Flow(Workflow):
        @step
        async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
            await gate.wait()
            answer = await ctx.wait_for_event(HumanResponseEvent)
            return StopEvent(result=answer.response)

    handler = Flow().run()
    await spin()
    handler.ctx.send_event(HumanResponseEvent(response="early"))
    gate.set()

    assert await finish(handler) == "early"


async def test_wait_for_event_timeout_raises_in_the_step(clock, finish, spin):
    """wait_for_event(timeout=5) raises WorkflowTimeoutError in the step after 5 s."""

    class Flow(Workflow):
        @step
        async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
            try:
                await ctx.wait_for_event(HumanResponseEvent, timeout=5)
            except WorkflowTimeoutError as error:
                return StopEvent(result=str(error))
            return StopEvent(result="answered")

    handler = Flow(clock=clock).run()
    await spin()
    clock.advance(4.9)
    await spin()
    assert not handler.done()
    clock.advance(0.1)

    assert await finish(handler) == (
        "step 'ask' waited 5 s for HumanResponseEvent and none arrived"
    )


async def test_wait_for_event_needs_an_event_type(finish):
    """wait_for_event(str) fails naming what it got."""

    class Flow(Workflow):
        @step
        async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
            await ctx.wait_for_event(str)
            return StopEvent()

    with pytest.raises(WorkflowRuntimeError, match=r"takes an Event subclass, got <class 'str'>"):
        await finish(Flow().run())


# ------------------------------------------------------------------ stream, retry info, binding


async def test_write_event_to_stream_reaches_the_caller_in_order(finish, drain):
    """Events written to the stream arrive in order, before the StopEvent; None is skipped."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            ctx.write_event_to_stream(Progress(msg="one"))
            ctx.write_event_to_stream(None)
            ctx.write_event_to_stream(Progress(msg="two"))
            return StopEvent(result="done")

    handler = Flow().run()
    streamed = await drain(handler.stream_events())

    assert streamed == [Progress(msg="one"), Progress(msg="two"), StopEvent(result="done")]
    assert await finish(handler) == "done"


async def test_write_event_to_stream_rejects_a_non_event(finish):
    """write_event_to_stream({'msg': ...}) fails the run naming the type."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            ctx.write_event_to_stream({"msg": "hi"})
            return StopEvent()

    with pytest.raises(WorkflowRuntimeError, match=r"write_event_to_stream\(\).*got dict"):
        await finish(Flow().run())


async def test_retry_info_on_a_first_attempt(finish):
    """ctx.retry_info() in a first attempt reports retry 0, attempt 1, no last error."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            return StopEvent(result=ctx.retry_info())

    info = await finish(Flow().run())
    assert info == RetryInfo()
    assert (info.retry_number, info.attempt, info.last_exception) == (0, 1, None)


def test_retry_info_outside_a_step_fails():
    """ctx.retry_info() outside a step raises WorkflowRuntimeError."""
    with pytest.raises(WorkflowRuntimeError, match=r"retry_info\(\) must be called inside a step"):
        Context(Minimal()).retry_info()


async def test_context_serves_one_run_at_a_time(spin, finish):
    """Passing a Context to run() while its run is still going fails clearly."""
    gate = asyncio.Event()

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            await gate.wait()
            return StopEvent()

    flow = Flow()
    ctx = Context(flow)
    handler = flow.run(ctx=ctx)
    await spin()

    assert ctx.is_running and ctx.run_id == handler.run_id
    with pytest.raises(WorkflowRuntimeError, match=r"already running run"):
        flow.run(ctx=ctx)
    gate.set()
    await finish(handler)
    assert not ctx.is_running
