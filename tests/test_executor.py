"""Executors: plain `def` steps in threads, and custom executors for steps and workflows."""

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any

import pytest

from fanflow import (
    Context,
    Event,
    MockClock,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowTimeoutError,
    WorkflowValidationError,
    step,
)
from fanflow.executor import DefaultExecutor, Executor, StepCall, ThreadExecutor


class Item(Event):
    n: int


class Done(Event):
    thread: str


class ThreadFlow(Workflow):
    """`work` is a plain def step; two of its invocations must overlap to pass the barrier."""

    barrier = threading.Barrier(2, timeout=5)

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Item | None:
        for n in range(4):
            ctx.send_event(Item(n=n))
        return None

    @step(num_workers=2)
    def work(self, ev: Item) -> Done:
        self.barrier.wait()
        return Done(thread=threading.current_thread().name)

    @step
    async def join(self, ctx: Context, ev: Done) -> StopEvent | None:
        got = ctx.collect_events(ev, [Done] * 4)
        return None if got is None else StopEvent(result={e.thread for e in got})


async def test_plain_def_steps_run_in_threads_up_to_num_workers(finish):
    """Two invocations run at once in worker threads (they meet at a two-party barrier)."""
    threads = await finish(ThreadFlow().run())
    assert all(name.startswith("fanflow-step") for name in threads)
    assert threading.current_thread().name not in threads


class SleepsInThread(Workflow):
    @step
    def start(self, ev: StartEvent) -> StopEvent:
        threading.Event().wait(0.05)  # real time: work outside the event loop
        return StopEvent(result="done")


async def test_autojump_waits_for_thread_work():
    """A mock clock does not jump to the run's timeout while a thread step is working."""
    flow = SleepsInThread(clock=MockClock(autojump=True), timeout=1)
    assert await flow.run() == "done"


async def test_autojump_still_times_out_an_idle_run():
    """With nothing running and nothing in threads, the clock jumps to the timeout."""

    class Idle(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            await ctx.wait_for_event(Item)
            return StopEvent()

    with pytest.raises(WorkflowTimeoutError):
        await Idle(clock=MockClock(autojump=True), timeout=30).run()


class Recorder:
    """An executor that records each call and runs it with the default executor."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def run(self, call: StepCall) -> Awaitable[Any]:
        self.calls.append((call.spec.name, call.attempt))
        return DefaultExecutor().run(call)


class Pair(Workflow):
    recorder = Recorder()

    @step
    async def start(self, ev: StartEvent) -> Item:
        return Item(n=1)

    @step(executor=recorder)
    async def finish(self, ev: Item) -> StopEvent:
        return StopEvent(result=ev.n)


async def test_a_step_executor_runs_only_that_step(finish):
    """@step(executor=...) receives that step's invocations, nobody else's."""
    Pair.recorder.calls.clear()
    assert await finish(Pair().run()) == 1
    assert Pair.recorder.calls == [("finish", 1)]


async def test_a_workflow_executor_runs_every_step(finish):
    """Workflow(executor=...) receives every step without an executor of its own."""
    recorder = Recorder()
    Pair.recorder.calls.clear()
    assert await finish(Pair(executor=recorder).run()) == 1
    assert recorder.calls == [("start", 1)]
    assert Pair.recorder.calls == [("finish", 1)]


async def test_the_thread_executor_runs_async_bodies_in_a_loop_of_their_own(finish):
    """ThreadExecutor moves even an async def body off the run's event loop."""
    main_loop = asyncio.get_running_loop()

    class OffLoop(Workflow):
        @step(executor=ThreadExecutor())
        async def start(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result=asyncio.get_running_loop() is main_loop)

    assert await finish(OffLoop().run()) is False


def test_an_object_without_run_is_refused_as_an_executor():
    """Both @step(executor=) and Workflow(executor=) name what an executor needs."""
    with pytest.raises(WorkflowValidationError, match=r"run\(step, ctx, event\)|run\(call\)"):

        @step(executor=object())
        async def loose(ev: StartEvent) -> StopEvent:
            return StopEvent()

    with pytest.raises(WorkflowValidationError, match=r"run\(call\)"):
        Pair(executor=object())


def test_the_default_executor_satisfies_the_protocol():
    """DefaultExecutor and ThreadExecutor are Executors."""
    assert isinstance(DefaultExecutor(), Executor)
    assert isinstance(ThreadExecutor(), Executor)
