"""`WorkflowHandler`: awaiting, streaming, cancelling and inspecting a run."""

import asyncio

import pytest

from fanflow import (
    Context,
    Event,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowCancelledByUser,
    WorkflowRuntimeError,
    step,
)
from fanflow.events import WorkflowCancelledEvent, WorkflowFailedEvent


class Progress(Event):
    n: int


class Gated(Workflow):
    """Streams one Progress event, then waits at `gate` before stopping."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.gate = asyncio.Event()
        self.cancelled = asyncio.Event()

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
        ctx.write_event_to_stream(Progress(n=1))
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        ctx.write_event_to_stream(Progress(n=2))
        return StopEvent(result="opened")


class Failing(Workflow):
    error = LookupError("no such row")

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
        ctx.write_event_to_stream(Progress(n=1))
        raise self.error


async def test_await_returns_the_result(finish):
    """Awaiting the handler gives the StopEvent's result."""
    flow = Gated()
    flow.gate.set()

    assert await finish(flow.run()) == "opened"


async def test_done_is_false_while_running_and_true_after(finish, spin):
    """done() tells whether the run has ended."""
    flow = Gated()
    handler = flow.run()
    await spin()

    assert not handler.done()
    flow.gate.set()
    await finish(handler)
    assert handler.done()


async def test_exception_returns_the_step_error_object(finish):
    """exception() of a failed run is the step's own exception; None for a successful run."""
    failed = Failing().run()
    with pytest.raises(LookupError):
        await finish(failed)
    ok = Gated()
    ok.gate.set()
    succeeded = ok.run()
    await finish(succeeded)

    assert failed.exception() is Failing.error
    assert succeeded.exception() is None


async def test_run_id_is_unique_and_keys_the_records(finish):
    """Each run has its own run_id, under which the workflow's store keeps its records."""
    flow = Gated()
    flow.gate.set()
    first, second = flow.run(), flow.run()
    await finish(first)
    await finish(second)

    assert first.run_id != second.run_id
    assert {r.run_id for r in flow.store.records(first.run_id)} == {first.run_id}


async def test_ctx_is_the_runs_context(finish):
    """handler.ctx is the Context the steps see."""
    seen = []

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            seen.append(ctx)
            return StopEvent()

    handler = Flow().run()
    await finish(handler)

    assert seen == [handler.ctx]


async def test_handlers_can_be_gathered(spin):
    """asyncio.gather takes handlers like any awaitable."""
    flow = Gated()
    flow.gate.set()

    gathered = asyncio.gather(flow.run(), flow.run())
    await spin()

    assert gathered.done() and gathered.result() == ["opened", "opened"]


async def test_cancel_run_raises_cancelled_by_user_and_stops_steps(finish, spin):
    """cancel_run() makes `await handler` raise WorkflowCancelledByUser and cancels the steps."""
    flow = Gated()
    handler = flow.run()
    await spin()

    handler.cancel_run()

    with pytest.raises(WorkflowCancelledByUser, match=rf"run {handler.run_id} was cancelled"):
        await finish(handler)
    await spin()
    assert flow.cancelled.is_set()


async def test_cancel_run_can_be_awaited(finish, spin):
    """`await handler.cancel_run()` works as well as the plain call."""
    handler = Gated().run()
    await spin()

    await handler.cancel_run()

    with pytest.raises(WorkflowCancelledByUser):
        await finish(handler)


async def test_cancel_run_after_the_end_keeps_the_result(finish):
    """Cancelling a finished run changes nothing."""
    flow = Gated()
    flow.gate.set()
    handler = flow.run()
    await finish(handler)

    handler.cancel_run()

    assert await handler == "opened"


async def test_cancelling_the_handler_future_stops_the_run(spin):
    """handler.cancel() (as asyncio.wait_for does on timeout) also cancels the running steps."""
    flow = Gated()
    handler = flow.run()
    await spin()

    handler.cancel()

    with pytest.raises(asyncio.CancelledError):
        await handler
    await spin()
    assert flow.cancelled.is_set()


async def test_stream_is_live(finish, receive, drain):
    """The consumer receives a streamed event while the run is still going."""
    flow = Gated()
    handler = flow.run()
    stream = handler.stream_events()

    first = await receive(stream)

    assert first == Progress(n=1)
    assert not handler.done()
    flow.gate.set()
    assert await drain(stream) == [Progress(n=2), StopEvent(result="opened")]
    assert await finish(handler) == "opened"


async def test_stream_is_buffered_until_read(finish, drain):
    """Events written before anyone reads are kept; a late consumer gets them all."""
    flow = Gated()
    flow.gate.set()
    handler = flow.run()
    await finish(handler)

    streamed = await drain(handler.stream_events())

    assert streamed == [Progress(n=1), Progress(n=2), StopEvent(result="opened")]


async def test_stream_ends_with_the_stop_event_subclass(finish, drain):
    """The last streamed event is the StopEvent itself, subclass included."""

    class Report(StopEvent):
        pages: int

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> Report:
            return Report(pages=3)

    handler = Flow().run()
    streamed = await drain(handler.stream_events())

    assert streamed == [Report(pages=3)]
    assert await finish(handler) == Report(pages=3)


async def test_second_stream_consumer_is_refused(finish):
    """A second stream_events() call raises WorkflowRuntimeError: one consumer per run."""
    flow = Gated()
    flow.gate.set()
    handler = flow.run()
    handler.stream_events()

    with pytest.raises(WorkflowRuntimeError, match=r"already called for this run"):
        handler.stream_events()
    await finish(handler)


async def test_stream_of_a_failed_run_ends_with_workflow_failed_event(finish, receive, drain):
    """A failed run's stream yields what was written, then WorkflowFailedEvent; await raises."""
    handler = Failing().run()
    stream = handler.stream_events()

    assert await receive(stream) == Progress(n=1)
    (failed,) = await drain(stream)

    assert isinstance(failed, WorkflowFailedEvent)
    assert failed.exception is Failing.error
    assert failed.step_name == "start"
    with pytest.raises(LookupError) as caught:
        await finish(handler)
    assert caught.value is Failing.error


async def test_stream_of_a_cancelled_run_ends_with_workflow_cancelled_event(finish, receive, drain):
    """A consumer waiting on the stream gets WorkflowCancelledEvent when the run is cancelled."""
    handler = Gated().run()
    stream = handler.stream_events()
    assert await receive(stream) == Progress(n=1)
    waiting = asyncio.ensure_future(drain(stream))
    await asyncio.sleep(0)

    handler.cancel_run()

    assert [type(e) for e in await waiting] == [WorkflowCancelledEvent]
    with pytest.raises(WorkflowCancelledByUser):
        await finish(handler)


async def test_sending_to_a_finished_run_fails(finish):
    """handler.ctx.send_event() after the run ended raises, naming the run's outcome."""
    flow = Gated()
    flow.gate.set()
    handler = flow.run()
    await finish(handler)

    with pytest.raises(WorkflowRuntimeError, match=r"cannot send Progress: run .* finished \(ok\)"):
        handler.ctx.send_event(Progress(n=3))
