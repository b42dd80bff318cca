"""Structured runs: the caller hears the result only after every invocation has finished."""

import asyncio
import gc
import logging

import pytest

from fanflow import (
    Context,
    Event,
    MockClock,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowCancelledByUser,
    WorkflowTimeoutError,
    step,
)
from fanflow._runtime import run as run_module


class Slow(Event):
    pass


class Fast(Event):
    pass


class Cleans(Workflow):
    """`slow` waits forever and cleans up slowly when cancelled; `fast` ends the run."""

    def __init__(self, ending: str, cleaned: list[str], **kwargs):
        super().__init__(**kwargs)
        self.ending = ending
        self.cleaned = cleaned

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Slow | Fast:
        ctx.send_event(Slow())
        return Fast() if self.ending in ("ok", "error") else None

    @step
    async def slow(self, ev: Slow) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            for _ in range(5):
                await asyncio.sleep(0)
            self.cleaned.append("slow")

    @step
    async def fast(self, ev: Fast) -> StopEvent:
        if self.ending == "error":
            raise ValueError("fast failed")
        return StopEvent(result="ok")


@pytest.mark.parametrize("ending", ["ok", "error", "timeout", "cancel"])
async def test_the_handler_settles_after_cancelled_steps_finish_their_cleanup(ending, spin):
    """Whatever ends the run, `slow`'s finally block has run by the time await handler returns."""
    cleaned: list[str] = []
    clock = MockClock()
    handler = Cleans(ending, cleaned, clock=clock, timeout=10).run()
    cleaned_when_settled: list[list[str]] = []
    handler.add_done_callback(lambda _: cleaned_when_settled.append(list(cleaned)))
    await spin()
    if ending == "timeout":
        clock.advance(10)
    elif ending == "cancel":
        handler.cancel_run()
    expected = {
        "ok": None,
        "error": ValueError,
        "timeout": WorkflowTimeoutError,
        "cancel": WorkflowCancelledByUser,
    }[ending]
    await asyncio.wait([handler])
    await spin()
    assert cleaned_when_settled == [["slow"]]
    if expected is None:
        assert handler.result() == "ok"
    else:
        assert isinstance(handler.exception(), expected)


class Waits(Workflow):
    @step
    async def start(self, ev: StartEvent) -> StopEvent:
        await asyncio.Event().wait()
        return StopEvent()


def test_cancel_run_logs_no_unretrieved_exception():
    """A run cancelled with cancel_run() and never awaited leaves nothing in the error log."""
    reported: list[dict] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, c: reported.append(c))
        handler = Waits().run()
        for _ in range(5):
            await asyncio.sleep(0)
        handler.cancel_run()
        for _ in range(5):
            await asyncio.sleep(0)
        assert handler.done()
        del handler
        gc.collect()

    asyncio.run(main())
    assert reported == []


async def test_handler_cancel_stops_the_run_and_ends_cancelled(spin):
    """handler.cancel() ends the run; the handler is cancelled once the steps have finished."""
    handler = Waits().run()
    await spin()
    assert handler.cancel() is True
    await asyncio.wait([handler])
    assert handler.cancelled()


async def test_cancelling_a_task_that_awaits_the_handler_stops_the_run(spin):
    """The awaiting task is cancelled, and so is the run."""
    handler = Waits().run()
    waiter = asyncio.ensure_future(handler)
    await spin()
    waiter.cancel()
    await asyncio.wait([waiter])
    assert waiter.cancelled()
    assert handler.cancelled()


async def test_a_wait_for_timeout_stops_the_run():
    """asyncio.wait_for(handler, t) raises TimeoutError and the run ends cancelled."""
    handler = Waits().run()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(handler, 0.01)
    assert handler.cancelled()


async def test_a_shielded_handler_keeps_running_when_its_waiter_is_cancelled(spin, finish):
    """asyncio.shield(handler) protects the run from the awaiting task's cancellation."""

    class Gated(Workflow):
        gate = asyncio.Event()

        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            await self.gate.wait()
            return StopEvent(result="done")

    flow = Gated()
    handler = flow.run()
    waiter = asyncio.ensure_future(asyncio.shield(handler))
    await spin()
    waiter.cancel()
    await asyncio.wait([waiter])
    assert not handler.done()
    flow.gate.set()
    assert await finish(handler) == "done"


class Streams(Workflow):
    gate: asyncio.Event

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
        ctx.write_event_to_stream(Fast())
        await self.gate.wait()
        return StopEvent(result="done")


async def test_cancelling_a_stream_reader_does_not_stop_the_run(spin, finish):
    """A task iterating stream_events() can be cancelled; the run goes on."""
    flow = Streams()
    flow.gate = asyncio.Event()
    handler = flow.run()

    async def read() -> None:
        async for _ in handler.stream_events():
            pass

    reader = asyncio.ensure_future(read())
    await spin()
    reader.cancel()
    await asyncio.wait([reader])
    assert not handler.done()
    flow.gate.set()
    assert await finish(handler) == "done"


class Stubborn(Workflow):
    """`stubborn` swallows its cancellation and keeps waiting; `ender` ends the run."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Slow | Fast:
        ctx.send_event(Slow())
        return Fast()

    @step
    async def stubborn(self, ev: Slow) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.Event().wait()  # ignores the first cancellation

    @step
    async def ender(self, ev: Fast) -> StopEvent:
        return StopEvent(result="ended")


async def test_a_step_that_ignores_cancellation_delays_the_result_only_by_the_grace(
    monkeypatch, caplog
):
    """After CANCEL_GRACE the handler settles anyway and a warning names the step."""
    monkeypatch.setattr(run_module, "CANCEL_GRACE", 0.05)
    with caplog.at_level(logging.WARNING, logger="fanflow"):
        assert await asyncio.wait_for(Stubborn().run(), 5) == "ended"
    assert any("stubborn" in r.getMessage() for r in caplog.records)
