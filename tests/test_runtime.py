"""The run engine: routing, first StopEvent, fan-in, stuck runs, worker limits, timeouts, errors."""

import asyncio

import pytest

from fanflow import (
    Context,
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StepOutputError,
    StepTimeoutError,
    StopEvent,
    UnroutableEventError,
    Workflow,
    WorkflowStuckError,
    WorkflowTimeoutError,
    step,
)


class Job(Event):
    n: int


class Done(Event):
    n: int


class SpecialJob(Job):
    pass


class Orphan(Event):
    pass


# ------------------------------------------------------------------ routing and ending


async def test_first_stop_event_wins_and_cancels_running_workers(finish, spin):
    """The first StopEvent ends the run; workers still running get CancelledError."""
    release = asyncio.Event()
    cancelled = []

    class Race(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Job:
            for n in range(3):
                ctx.send_event(Job(n=n))

        @step
        async def work(self, ev: Job) -> StopEvent:
            if ev.n != 2:
                try:
                    await release.wait()  # never released: only cancellation ends this
                except asyncio.CancelledError:
                    cancelled.append(ev.n)
                    raise
            return StopEvent(result=f"job {ev.n}")

    assert await finish(Race().run()) == "job 2"
    await spin()
    assert sorted(cancelled) == [0, 1]


async def test_events_after_the_first_stop_event_are_ignored(finish):
    """A second StopEvent (or any event) after the first does not change the result."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent | Job:
            ctx.send_event(StopEvent(result="first"))
            ctx.send_event(Job(n=1))
            return StopEvent(result="second")

        @step
        async def work(self, ev: Job) -> StopEvent:
            return StopEvent(result="from work")

    assert await finish(Flow().run()) == "first"


async def test_an_event_goes_to_every_step_that_accepts_its_type(finish):
    """Two steps accepting Job both receive the one Job sent."""

    class Broadcast(Workflow):
        @step
        async def start(self, ev: StartEvent) -> Job:
            return Job(n=7)

        @step
        async def left(self, ev: Job) -> Done:
            return Done(n=ev.n)

        @step
        async def right(self, ev: Job) -> Done:
            return Done(n=-ev.n)

        @step
        async def join(self, ctx: Context, ev: Done) -> StopEvent | None:
            both = ctx.collect_events(ev, [Done, Done])
            return None if both is None else StopEvent(result=sorted(d.n for d in both))

    assert await finish(Broadcast().run()) == [-7, 7]


async def test_a_step_may_send_events_and_return_one(finish):
    """A step that send_event()s one event and returns another emits both."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Job:
            ctx.send_event(Job(n=1))
            return Job(n=2)

        @step
        async def join(self, ctx: Context, ev: Job) -> StopEvent | None:
            jobs = ctx.collect_events(ev, [Job, Job])
            return None if jobs is None else StopEvent(result=[j.n for j in jobs])

    assert await finish(Flow().run()) == [1, 2]


async def test_unroutable_event_fails_naming_event_and_emitter(finish, clock):
    """An event no step accepts fails the run with UnroutableEventError, at once."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            ctx.send_event(Orphan())
            return StopEvent(result="unreachable")

    with pytest.raises(
        UnroutableEventError,
        match=r"step 'start' emitted Orphan, but no step of \S*Flow accepts Orphan; "
        r"add a step with 'ev: Orphan'",
    ):
        await finish(Flow(clock=clock).run())


async def test_routing_is_by_exact_type_and_the_error_names_related_steps(finish):
    """A subclass event is not routed to a parent-type step; the error points at that step."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Job:
            ctx.send_event(SpecialJob(n=1))

        @step
        async def work(self, ev: Job) -> StopEvent:
            return StopEvent()

    with pytest.raises(
        UnroutableEventError,
        match=r"emitted SpecialJob.*steps accepting related types: work \(accepts Job\) "
        r"\(routing is by exact type\)",
    ):
        await finish(Flow().run())


async def test_step_exception_reaches_the_caller_as_the_same_object(finish):
    """A step's exception is raised by `await handler` unwrapped: the very same object."""
    boom = ValueError("bad input row 3")

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            raise boom

    with pytest.raises(ValueError) as caught:
        await finish(Flow().run())
    assert caught.value is boom


async def test_step_failure_cancels_other_workers(finish, spin):
    """When one step fails, the run's other running workers are cancelled."""
    cancelled = asyncio.Event()

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Job:
            ctx.send_event(Job(n=0))
            ctx.send_event(Job(n=1))

        @step
        async def work(self, ev: Job) -> StopEvent:
            if ev.n == 1:
                raise RuntimeError("job 1 failed")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return StopEvent()

    with pytest.raises(RuntimeError, match="job 1 failed"):
        await finish(Flow().run())
    await spin()
    assert cancelled.is_set()


async def test_returning_a_non_event_fails_with_step_output_error(finish):
    """A step returning a plain value fails with StepOutputError naming the step and the type."""

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            return "done"

    with pytest.raises(
        StepOutputError, match=r"step 'start' returned str \('done'\); a step returns an Event"
    ):
        await finish(Flow().run())


# ------------------------------------------------------------------ stuck runs


async def test_stuck_fan_in_fails_at_once_naming_what_is_missing(finish, clock):
    """A fan-in that can never complete fails with WorkflowStuckError without waiting for time."""

    class StepTwoEvent(Event):
        query: str

    class StepThreeEvent(Event):
        result: str

    class Stuck(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StepTwoEvent:
            ctx.send_event(StepTwoEvent(query="Query 1"))
            ctx.send_event(StepTwoEvent(query="Query 2"))

        @step
        async def step_two(self, ev: StepTwoEvent) -> StepThreeEvent:
            return StepThreeEvent(result=ev.query)

        @step
        async def step_three(self, ctx: Context, ev: StepThreeEvent) -> StopEvent | None:
            if ctx.collect_events(ev, [StepThreeEvent] * 3) is None:
                return None
            return StopEvent()

    handler = Stuck(clock=clock).run()  # the clock never moves: only stuck detection can end it
    with pytest.raises(
        WorkflowStuckError, match=r"is stuck: step 'step_three' collected 2 of 3 StepThreeEvent$"
    ):
        await finish(handler)


async def test_run_that_produces_no_stop_event_fails_as_stuck(finish, clock):
    """When the last step produces nothing and nothing else runs, the run fails at once."""

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> Job:
            return Job(n=1)

        @step
        async def work(self, ev: Job) -> StopEvent | None:
            return None

    with pytest.raises(
        WorkflowStuckError,
        match=r"is stuck: no StopEvent was produced; the last step to finish, 'work', "
        r"produced no event$",
    ):
        await finish(Flow(clock=clock).run())


async def test_waiting_for_input_is_not_stuck(finish, spin, receive, clock):
    """A run whose step returned InputRequiredEvent waits for the answer instead of failing."""

    class Flow(Workflow):
        @step
        async def ask(self, ev: StartEvent) -> InputRequiredEvent:
            return InputRequiredEvent(prefix="Continue? ")

        @step
        async def answer(self, ev: HumanResponseEvent) -> StopEvent:
            return StopEvent(result=ev.response)

    handler = Flow(clock=clock).run()
    stream = handler.stream_events()
    assert await receive(stream) == InputRequiredEvent(prefix="Continue? ")
    await spin()
    assert not handler.done()
    handler.ctx.send_event(HumanResponseEvent(response="yes"))

    assert await finish(handler) == "yes"


# ------------------------------------------------------------------ worker limits and order


JOBS = 7


def limited_flow(workers: int | None) -> Workflow:
    """Return a workflow whose `work` step holds each of JOBS invocations at a gate."""
    settings = {} if workers is None else {"num_workers": workers}

    class Limited(Workflow):
        def __init__(self) -> None:
            super().__init__()
            self.gate = asyncio.Event()
            self.running = self.peak = 0

        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Job:
            for n in range(JOBS):
                ctx.send_event(Job(n=n))

        @step(**settings)
        async def work(self, ev: Job) -> Done:
            self.running += 1
            self.peak = max(self.peak, self.running)
            await self.gate.wait()
            self.running -= 1
            return Done(n=ev.n)

        @step
        async def join(self, ctx: Context, ev: Done) -> StopEvent | None:
            done = ctx.collect_events(ev, [Done] * JOBS)
            return None if done is None else StopEvent(result=len(done))

    return Limited()


@pytest.mark.parametrize(("workers", "expected"), [(None, 4), (1, 1), (2, 2), (3, 3)])
async def test_num_workers_is_an_exact_limit(workers, expected, finish, spin):
    """At most num_workers invocations of a step run at once, and that many do (default 4)."""
    flow = limited_flow(workers)
    handler = flow.run()
    await spin()
    assert flow.running == expected
    flow.gate.set()

    assert await finish(handler) == JOBS
    assert flow.peak == expected


async def test_one_worker_processes_events_in_emission_order(finish):
    """A step's queue is FIFO: with one worker, events are handled in the order sent."""

    class Flow(Workflow):
        handled: list[int] = []

        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Job:
            for n in (5, 3, 9, 1):
                ctx.send_event(Job(n=n))

        @step(num_workers=1)
        async def work(self, ctx: Context, ev: Job) -> StopEvent | None:
            self.handled.append(ev.n)
            await asyncio.sleep(0)
            return StopEvent() if len(self.handled) == 4 else None

    flow = Flow()
    flow.handled = []
    await finish(flow.run())
    assert flow.handled == [5, 3, 9, 1]


# ------------------------------------------------------------------ timeouts and cancellation


class Slow(Workflow):
    """Its one step waits at a gate that no test opens."""

    @step
    async def start(self, ev: StartEvent) -> StopEvent:
        await asyncio.Event().wait()
        return StopEvent()


async def test_run_timeout_fails_with_workflow_timeout_error(finish, spin, clock):
    """A run still going when the clock passes its timeout fails with WorkflowTimeoutError."""
    handler = Slow(timeout=10, clock=clock).run()
    await spin()
    clock.advance(9.99)
    await spin()
    assert not handler.done()
    clock.advance(0.01)

    with pytest.raises(
        WorkflowTimeoutError,
        match=r"of test_runtime.Slow timed out after 10 s; step 'start' has 1 running",
    ):
        await finish(handler)


async def test_step_timeout_fails_with_step_timeout_error(finish, spin, clock):
    """An invocation exceeding @step(timeout=...) fails with StepTimeoutError naming the step."""

    class Flow(Workflow):
        @step(timeout=2)
        async def start(self, ev: StartEvent) -> StopEvent:
            await asyncio.Event().wait()
            return StopEvent()

    handler = Flow(clock=clock).run()
    await spin()
    clock.advance(2)

    with pytest.raises(StepTimeoutError, match=r"step 'start' timed out after 2 s") as caught:
        await finish(handler)
    assert isinstance(caught.value, WorkflowTimeoutError)


async def test_step_timeout_does_not_fire_for_a_fast_step(finish, spin, clock):
    """A step that finishes within its timeout is unaffected when the clock moves on."""
    gate = asyncio.Event()

    class Flow(Workflow):
        @step(timeout=2)
        async def start(self, ev: StartEvent) -> Job:
            await gate.wait()
            return Job(n=1)

        @step
        async def work(self, ev: Job) -> StopEvent:
            return StopEvent(result="ok")

    handler = Flow(clock=clock).run()
    await spin()
    clock.advance(1.5)
    gate.set()
    await spin()
    clock.advance(5)

    assert await finish(handler) == "ok"


# ------------------------------------------------------------------ many runs


class Isolated(Workflow):
    """Each run fans out over its own input and keeps its own state."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Job:
        await ctx.store.set("owner", ev.n)
        for k in range(3):
            ctx.send_event(Job(n=ev.n * 10 + k))

    @step
    async def work(self, ctx: Context, ev: Job) -> Done:
        await asyncio.sleep(0)  # interleave with the other runs
        await ctx.store.set(f"seen.{ev.n % 10}", ev.n)
        return Done(n=ev.n)

    @step
    async def join(self, ctx: Context, ev: Done) -> StopEvent | None:
        done = ctx.collect_events(ev, [Done] * 3)
        if done is None:
            return None
        owner = await ctx.store.get("owner")
        seen = await ctx.store.get("seen")
        return StopEvent(result=(owner, sorted(d.n for d in done), sorted(seen.values())))


async def test_a_thousand_concurrent_runs_stay_isolated(finish, clock):
    """1,000 concurrent runs of one instance each see only their own events and state."""
    flow = Isolated(clock=clock)
    handlers = [flow.run(n=n) for n in range(1000)]

    results = [await finish(h) for h in handlers]

    expected = [(n, [n * 10, n * 10 + 1, n * 10 + 2]) for n in range(1000)]
    assert [(owner, jobs) for owner, jobs, _ in results] == expected
    assert [seen for _, _, seen in results] == [jobs for _, jobs in expected]
    assert len({h.run_id for h in handlers}) == 1000


async def test_an_input_request_written_to_the_stream_is_not_a_stuck_run():
    """A step that streams an InputRequiredEvent and returns leaves the run waiting."""
    from fanflow import HumanResponseEvent, InputRequiredEvent

    class Asker(Workflow):
        @step
        async def ask(self, ctx: Context, ev: StartEvent) -> None:
            ctx.write_event_to_stream(InputRequiredEvent(prefix="name?"))

        @step
        async def answer(self, ev: HumanResponseEvent) -> StopEvent:
            return StopEvent(result=f"hi {ev.response}")

    handler = Asker().run()
    events = handler.stream_events()
    assert isinstance(await anext(events), InputRequiredEvent)
    handler.ctx.send_event(HumanResponseEvent(response="Bo"))
    assert await handler == "hi Bo"
