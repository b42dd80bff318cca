"""`Workflow`: settings, starting runs, start events, results and verbose output."""

import asyncio

import pytest

from fanflow import (
    Context,
    Event,
    MemoryStore,
    MockClock,
    StartEvent,
    StartEventError,
    StopEvent,
    Workflow,
    WorkflowHandler,
    WorkflowRuntimeError,
    WorkflowValidationError,
    step,
)


class Echo(Workflow):
    @step
    async def start(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=ev)


class Query(StartEvent):
    topic: str
    limit: int = 10


class Answer(StopEvent):
    topic: str
    hits: int


class Search(Workflow):
    @step
    async def start(self, ev: Query) -> Answer:
        return Answer(topic=ev.topic, hits=ev.limit)


class MidEvent(Event):
    pass


def test_default_settings():
    """Workflow() defaults to timeout 45 s, verbose off, validation on."""
    flow = Echo()

    assert (flow.timeout, flow.verbose, flow.disable_validation) == (45.0, False, False)


def test_settings_are_kept():
    """Workflow(timeout=, verbose=, disable_validation=) keeps the given values."""
    flow = Echo(timeout=None, verbose=True, disable_validation=True)

    assert (flow.timeout, flow.verbose, flow.disable_validation) == (None, True, True)


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_non_positive_timeout_is_rejected(timeout):
    """Workflow(timeout=0) fails with a message saying what is allowed."""
    with pytest.raises(WorkflowValidationError, match=r"timeout must be None or > 0"):
        Echo(timeout=timeout)


async def test_run_returns_a_handler_that_awaits_to_the_result(finish):
    """run() returns a WorkflowHandler; awaiting it gives StopEvent.result."""
    handler = Echo().run(topic="x")

    assert isinstance(handler, WorkflowHandler)
    result = await finish(handler)
    assert isinstance(result, StartEvent) and result.topic == "x"


async def test_run_keywords_become_start_event_attributes(finish):
    """run(**kwargs) builds the StartEvent the first step receives."""
    ev = await finish(Echo().run(query="q", limit=3))

    assert (ev.query, ev.limit) == ("q", 3)


async def test_typed_start_event_validates_and_converts_keywords(finish):
    """A StartEvent subclass with typed fields gets validated, converted values."""
    answer = await finish(Search().run(topic="cats", limit="5"))

    assert answer == Answer(topic="cats", hits=5)


async def test_stop_event_subclass_is_returned_as_the_event(finish):
    """A StopEvent subclass reaches `await handler` as the event itself, typed fields and all."""
    answer = await finish(Search().run(topic="cats"))

    assert isinstance(answer, Answer)
    assert (answer.topic, answer.hits) == ("cats", 10)


async def test_bad_start_keywords_raise_start_event_error_at_once():
    """run() kwargs not fitting the StartEvent raise StartEventError naming class and fields."""
    with pytest.raises(
        StartEventError,
        match=r"Search.run\(\) arguments do not fit Query: topic: Field required; "
        r"limit: Input should be a valid integer",
    ):
        Search().run(limit="many")


def test_start_event_error_is_a_type_error():
    """StartEventError can be caught as TypeError, like a bad call."""
    assert issubclass(StartEventError, TypeError)


async def test_run_with_start_event_passes_it_through(finish):
    """run(start_event=ev) hands that very event to the first step."""
    given = Query(topic="dogs")

    class Flow(Workflow):
        @step
        async def start(self, ev: Query) -> StopEvent:
            return StopEvent(result=ev)

    assert await finish(Flow().run(start_event=given)) is given


async def test_run_with_start_event_and_keywords_fails():
    """run(start_event=..., topic=...) is ambiguous and raises StartEventError."""
    with pytest.raises(StartEventError, match=r"either start_event or keyword arguments"):
        Search().run(start_event=Query(topic="a"), topic="b")


async def test_run_with_start_event_of_the_wrong_type_fails():
    """run(start_event=StartEvent()) fails when the workflow starts with Query."""
    with pytest.raises(StartEventError, match=r"needs a Query, got StartEvent"):
        Search().run(start_event=StartEvent())


async def test_run_with_ctx_and_start_event(finish):
    """run(ctx=ctx, start_event=ev) runs with that context, exposed as handler.ctx."""
    flow = Search()
    ctx = Context(flow)
    handler = flow.run(ctx=ctx, start_event=Query(topic="owls", limit=1))

    assert handler.ctx is ctx
    assert await finish(handler) == Answer(topic="owls", hits=1)


def test_run_outside_an_event_loop_fails_with_a_hint():
    """run() without a running loop fails, telling the user to await it or use asyncio.run."""
    with pytest.raises(WorkflowRuntimeError, match=r"needs a running event loop.*asyncio.run"):
        Echo().run()


async def test_verbose_prints_each_step_like_the_seed(finish, capsys):
    """verbose=True prints exactly the seed's lines for a send_event step and a stop step."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> MidEvent:
            ctx.send_event(MidEvent())

        @step
        async def step_two(self, ev: MidEvent) -> StopEvent:
            return StopEvent()

    await finish(Flow(verbose=True).run())

    assert capsys.readouterr().out == (
        "Running step start\n"
        "Step start produced no event\n"
        "Running step step_two\n"
        "Step step_two produced event StopEvent\n"
    )


async def test_not_verbose_prints_nothing(finish, capsys):
    """verbose=False (the default) prints nothing."""
    await finish(Search().run(topic="quiet"))

    assert capsys.readouterr().out == ""


async def test_steps_are_inherited_and_can_be_overridden(finish):
    """A subclass inherits its parent's steps; a step of the same name replaces the parent's."""

    class Base(Workflow):
        @step
        async def start(self, ev: StartEvent) -> MidEvent:
            return MidEvent()

        @step
        async def finish(self, ev: MidEvent) -> StopEvent:
            return StopEvent(result="base")

    class Child(Base):
        @step
        async def finish(self, ev: MidEvent) -> StopEvent:
            return StopEvent(result="child")

    assert [s.name for s in Child.step_specs()] == ["start", "finish"]
    assert await finish(Base().run()) == "base"
    assert await finish(Child().run()) == "child"


def test_each_instance_has_its_own_store():
    """Workflow instances default to separate MemoryStores; an explicit store is used as given."""
    shared = MemoryStore()

    assert Echo().store is not Echo().store
    assert isinstance(Echo().store, MemoryStore)
    assert Echo(store=shared).store is shared


def test_graph_lists_consumers_and_producers():
    """Workflow.graph() maps each event type to the steps that accept and emit it."""

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> MidEvent:
            return MidEvent()

        @step
        async def finish(self, ev: MidEvent) -> StopEvent:
            return StopEvent()

    graph = Flow.graph()

    assert graph.consumers == {StartEvent: ("start",), MidEvent: ("finish",)}
    assert graph.producers == {MidEvent: ("start",), StopEvent: ("finish",)}


async def test_timeout_none_never_times_out(finish, spin):
    """Workflow(timeout=None) runs however far the clock moves."""
    clock = MockClock()
    gate = asyncio.Event()

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            await gate.wait()
            return StopEvent(result="late but fine")

    handler = Flow(timeout=None, clock=clock).run()
    await spin()
    clock.advance(10**9)
    await spin()
    assert not handler.done()
    gate.set()

    assert await finish(handler) == "late but fine"


async def test_num_concurrent_runs_holds_back_runs_beyond_the_limit():
    """With num_concurrent_runs=1 the second run starts only when the first has ended."""
    import asyncio

    from fanflow import StartEvent, StopEvent, Workflow, step

    gate = asyncio.Event()
    started: list[str] = []

    class Gated(Workflow):
        @step
        async def only(self, ev: StartEvent) -> StopEvent:
            started.append(ev.name)
            if ev.name == "first":
                await gate.wait()
            return StopEvent(result=ev.name)

    wf = Gated(num_concurrent_runs=1)
    first, second = wf.run(name="first"), wf.run(name="second")
    for _ in range(5):
        await asyncio.sleep(0)
    assert started == ["first"]
    gate.set()
    assert await first == "first"
    assert await second == "second"
    assert started == ["first", "second"]


async def test_workflow_name_names_the_runs():
    """workflow_name= replaces the class name in the run's records."""
    from fanflow import MemoryStore, RecordKind, StartEvent, StopEvent, Workflow, step

    class Plain(Workflow):
        @step
        async def only(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result=1)

    store = MemoryStore()
    handler = Plain(workflow_name="billing", store=store).run()
    await handler
    first = store.records(handler.run_id)[0]
    assert first.kind is RecordKind.RUN_STARTED
    assert first.data["workflow"] == "billing"
    assert store.list_runs()[0].workflow == "billing"


def test_num_concurrent_runs_must_be_positive():
    """num_concurrent_runs=0 is refused with a clear error."""
    import pytest

    from fanflow import StartEvent, StopEvent, Workflow, WorkflowValidationError, step

    class Plain(Workflow):
        @step
        async def only(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result=1)

    with pytest.raises(WorkflowValidationError, match="num_concurrent_runs"):
        Plain(num_concurrent_runs=0)
