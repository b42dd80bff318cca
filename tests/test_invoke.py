"""Step invocations: blocking steps, fatal raises, broken retry policies, retries inside fan-in."""

import asyncio
import math
import time
from typing import ClassVar

import pytest

from fanflow import (
    Context,
    Event,
    MockClock,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowRuntimeError,
    WorkflowTimeoutError,
    step,
)
from fanflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed


class Next(Event):
    pass


class Blocks(Workflow):
    """`slow` holds the event loop with time.sleep past the run's deadline."""

    @step
    async def slow(self, ev: StartEvent) -> StopEvent:
        time.sleep(0.3)
        return StopEvent(result="finished anyway")


class BlocksMidway(Workflow):
    @step
    async def slow(self, ev: StartEvent) -> Next:
        time.sleep(0.3)
        return Next()

    @step
    async def fast(self, ev: Next) -> StopEvent:
        return StopEvent(result="finished anyway")


@pytest.mark.parametrize("flow", [Blocks, BlocksMidway])
async def test_a_step_blocking_past_the_deadline_times_the_run_out_naming_it(flow):
    """time.sleep past the timeout ends in WorkflowTimeoutError naming the step and duration."""
    with pytest.raises(WorkflowTimeoutError) as caught:
        await flow(timeout=0.1).run()

    message = str(caught.value)
    assert "step 'slow' blocked the event loop for 0." in message
    assert "plain 'def' step" in message


class Fatal(BaseException):
    pass


def raising(exc_factory):
    class Raises(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            raise exc_factory()

    return Raises


@pytest.mark.parametrize(
    "exc_type", [Fatal, SystemExit, KeyboardInterrupt, GeneratorExit, asyncio.CancelledError]
)
async def test_a_step_raising_a_base_exception_fails_the_run_naming_the_step(finish, exc_type):
    """BaseExceptions (and a CancelledError nobody asked for) fail the run with the cause kept."""
    with pytest.raises(WorkflowRuntimeError, match=r"step 'start' raised") as caught:
        await finish(raising(exc_type)().run())

    assert isinstance(caught.value.__cause__, exc_type)


async def test_a_step_exception_reaches_the_caller_as_the_same_object(finish):
    """An ordinary exception is not wrapped."""
    error = ValueError("mine")
    with pytest.raises(ValueError) as caught:
        await finish(raising(lambda: error)().run())
    assert caught.value is error


class RaisingPolicy:
    def next(self, elapsed_time: float, attempts: int, error: Exception) -> float | None:
        raise RuntimeError("policy bug")


class ReturnsDelay:
    def __init__(self, delay: object) -> None:
        self.delay = delay

    def next(self, elapsed_time: float, attempts: int, error: Exception) -> float | None:
        return self.delay  # type: ignore[return-value]


def failing_with(policy):
    class Failing(Workflow):
        @step(retry_policy=policy)
        async def start(self, ev: StartEvent) -> StopEvent:
            raise ValueError("step failed")

    return Failing


async def test_a_retry_policy_that_raises_fails_the_run_at_once(finish):
    """The run fails naming the step and the policy; the policy's error is the cause."""
    with pytest.raises(WorkflowRuntimeError, match=r"step 'start': retry policy RaisingPolicy"):
        await finish(failing_with(RaisingPolicy())(clock=MockClock(autojump=True)).run())


@pytest.mark.parametrize("delay", [math.nan, math.inf, -1.0, "soon"])
async def test_a_retry_policy_returning_a_bad_delay_fails_the_run_at_once(finish, delay):
    """NaN, infinite, negative or non-numeric delays fail the run, the step error as cause."""
    flow = failing_with(ReturnsDelay(delay))(clock=MockClock(autojump=True))
    with pytest.raises(WorkflowRuntimeError, match="returned the delay") as caught:
        await finish(flow.run())
    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize("delay", [math.nan, math.inf, -1.0])
def test_a_bad_delay_is_refused_when_the_policy_is_built(delay):
    """wait_fixed refuses a delay that is not a finite number >= 0, naming its parameter."""
    with pytest.raises(ValueError, match="wait_fixed: wait"):
        retry_policy(wait=wait_fixed(delay), stop=stop_after_attempt(3))


class Item(Event):
    n: int


class FlakyJoin(Workflow):
    """`join` raises on its first attempt after the fan-in is complete, then succeeds."""

    def __init__(self, fail_when: str, **kwargs):
        super().__init__(**kwargs)
        self.fail_when = fail_when

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Item | None:
        for n in range(3):
            ctx.send_event(Item(n=n))
        return None

    @step(retry_policy=retry_policy(wait=wait_fixed(1), stop=stop_after_attempt(2)))
    async def join(self, ctx: Context, ev: Item) -> StopEvent | None:
        got = ctx.collect_events(ev, [Item] * 3)
        first_attempt = ctx.retry_info().attempt == 1
        if first_attempt and (self.fail_when == "always" or got is not None):
            raise RuntimeError("flaky")
        return None if got is None else StopEvent(result=[e.n for e in got])


@pytest.mark.parametrize("fail_when", ["complete", "always"])
async def test_a_retried_attempt_sees_the_collect_buffers_as_before_the_failure(finish, fail_when):
    """A failed attempt's buffered and taken events are rolled back: the same set, once each."""
    flow = FlakyJoin(fail_when, clock=MockClock(autojump=True))
    assert await finish(flow.run()) == [0, 1, 2]


class Recording:
    """A fixed-delay policy that records the elapsed time it is asked with."""

    elapsed: ClassVar[list[float]] = []

    def __init__(self, delay: float, attempts: int) -> None:
        self.policy = retry_policy(wait=wait_fixed(delay), stop=stop_after_attempt(attempts))

    def next(self, elapsed_time: float, attempts: int, error: Exception) -> float | None:
        Recording.elapsed.append(elapsed_time)
        return self.policy.next(elapsed_time, attempts, error)


async def test_retry_elapsed_time_is_measured_on_the_run_clock(finish):
    """On the system clock the policy and retry_info() see the same small, non-negative time."""
    Recording.elapsed.clear()

    class Flow(Workflow):
        @step(retry_policy=Recording(delay=0, attempts=3))
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            if ctx.retry_info().attempt < 3:
                raise ValueError("again")
            return StopEvent(result=ctx.retry_info().elapsed_seconds)

    seen = await finish(Flow().run())
    elapsed = Recording.elapsed
    assert len(elapsed) == 2
    assert all(0 <= value < 5 for value in elapsed)
    assert seen == elapsed[-1]
