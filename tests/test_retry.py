"""Retry policies and retried steps: attempts, delays and what the step sees."""

import asyncio
import random

import pytest

import fanflow.retry_policy
from fanflow import (
    ConstantDelayRetryPolicy,
    Context,
    ExponentialBackoffRetryPolicy,
    MockClock,
    RetryPolicy,
    StartEvent,
    StepTimeoutError,
    StopEvent,
    Workflow,
    step,
)

ERROR = RuntimeError("flaky")


# ------------------------------------------------------------------ policies


def test_constant_policy_gives_its_delay_until_the_last_attempt():
    """ConstantDelayRetryPolicy returns `delay` after failures 1..max-1, then None."""
    policy = ConstantDelayRetryPolicy(delay=2.5, maximum_attempts=3)

    assert [policy.next(0.0, attempts, ERROR) for attempts in (1, 2, 3)] == [2.5, 2.5, None]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"maximum_attempts": 0}, "maximum_attempts must be >= 1"),
        ({"delay": -1}, "delay must be >= 0"),
    ],
)
def test_constant_policy_rejects_bad_settings(settings, message):
    """ConstantDelayRetryPolicy rejects zero attempts and negative delays."""
    with pytest.raises(ValueError, match=message):
        ConstantDelayRetryPolicy(**settings)


def test_exponential_policy_doubles_up_to_max_delay():
    """Without jitter the delay grows by `multiplier` and is capped at `max_delay`."""
    policy = ExponentialBackoffRetryPolicy(
        maximum_attempts=6, initial_delay=1, multiplier=2, max_delay=5, jitter=False
    )

    assert [policy.next(0.0, n, ERROR) for n in range(1, 7)] == [1, 2, 4, 5, 5, None]


def test_exponential_jitter_stays_within_half_to_full_delay():
    """With jitter each delay lies in [delay/2, delay]."""
    policy = ExponentialBackoffRetryPolicy(
        maximum_attempts=10, initial_delay=1, multiplier=2, max_delay=60, rng=random.Random(0)
    )

    for attempts in range(1, 10):
        full = min(60, 2 ** (attempts - 1))
        assert full / 2 <= policy.next(0.0, attempts, ERROR) <= full


def test_exponential_jitter_is_repeatable_with_a_seeded_rng():
    """Two policies with equally seeded rngs give the same delays."""

    def delays() -> list[float]:
        policy = ExponentialBackoffRetryPolicy(maximum_attempts=5, rng=random.Random(0))
        return [policy.next(0.0, n, ERROR) for n in range(1, 5)]

    first = delays()
    assert first == delays()
    assert len(set(first)) == 4


def test_exponential_policy_rejects_a_shrinking_multiplier():
    """A multiplier below 1 is rejected."""
    with pytest.raises(ValueError, match="multiplier >= 1"):
        ExponentialBackoffRetryPolicy(multiplier=0.5)


def test_policies_satisfy_the_retry_policy_protocol():
    """Both built-in policies and any object with next() are RetryPolicy instances."""

    class Once:
        def next(self, elapsed_time, attempts, error):
            return None

    assert isinstance(ConstantDelayRetryPolicy(), RetryPolicy)
    assert isinstance(ExponentialBackoffRetryPolicy(), RetryPolicy)
    assert isinstance(Once(), RetryPolicy)


def test_retry_policy_module_matches_the_reference_layout():
    """fanflow.retry_policy exposes the same classes, as `workflows.retry_policy` does."""
    assert fanflow.retry_policy.ConstantDelayRetryPolicy is ConstantDelayRetryPolicy
    assert fanflow.retry_policy.ExponentialBackoffRetryPolicy is ExponentialBackoffRetryPolicy
    assert fanflow.retry_policy.RetryPolicy is RetryPolicy


# ------------------------------------------------------------------ retried steps


def flaky_flow(policy: RetryPolicy, failures: int, clock: MockClock) -> Workflow:
    """Return a workflow whose step fails `failures` times, logging what it sees each attempt."""

    class Flaky(Workflow):
        attempts: list[tuple[int, int, float, Exception | None]] = []
        errors: list[Exception] = []

        @step(retry_policy=policy)
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            info = ctx.retry_info()
            self.attempts.append(
                (info.retry_number, info.attempt, clock.now(), info.last_exception)
            )
            if len(self.attempts) <= failures:
                error = RuntimeError(f"failure {len(self.attempts)}")
                self.errors.append(error)
                raise error
            return StopEvent(result=f"succeeded on attempt {info.attempt}")

    flow = Flaky(timeout=None, clock=clock)
    flow.attempts, flow.errors = [], []
    return flow


async def test_step_is_retried_after_the_policy_delay(finish):
    """A failing step runs again after each delay and sees its 0-based retry and 1-based attempt."""
    clock = MockClock(autojump=True)
    flow = flaky_flow(ConstantDelayRetryPolicy(delay=2, maximum_attempts=3), 2, clock)

    assert await finish(flow.run()) == "succeeded on attempt 3"
    assert [(retry, attempt, at) for retry, attempt, at, _ in flow.attempts] == [
        (0, 1, 0.0),
        (1, 2, 2.0),
        (2, 3, 4.0),
    ]


async def test_retry_info_carries_the_previous_error(finish):
    """On a retry, ctx.retry_info().last_exception is the error of the attempt before."""
    clock = MockClock(autojump=True)
    flow = flaky_flow(ConstantDelayRetryPolicy(delay=1, maximum_attempts=3), 2, clock)

    await finish(flow.run())

    assert [last for *_, last in flow.attempts] == [None, *flow.errors]


async def test_retries_stop_at_maximum_attempts_with_the_last_error(finish):
    """After maximum_attempts failures the last error reaches the caller, unwrapped."""
    clock = MockClock(autojump=True)
    flow = flaky_flow(ConstantDelayRetryPolicy(delay=1, maximum_attempts=3), 10, clock)

    with pytest.raises(RuntimeError) as caught:
        await finish(flow.run())

    assert len(flow.attempts) == 3
    assert caught.value is flow.errors[-1]


async def test_exponential_backoff_delays_between_attempts(finish):
    """Exponential backoff waits 1, 2, 4 s between the attempts of a step."""
    clock = MockClock(autojump=True)
    policy = ExponentialBackoffRetryPolicy(maximum_attempts=4, initial_delay=1, jitter=False)
    flow = flaky_flow(policy, 3, clock)

    await finish(flow.run())

    assert [at for _, _, at, _ in flow.attempts] == [0.0, 1.0, 3.0, 7.0]


async def test_retry_waits_on_the_clock(finish, spin):
    """The next attempt starts only once the clock has moved by the delay."""
    clock = MockClock()
    flow = flaky_flow(ConstantDelayRetryPolicy(delay=5, maximum_attempts=2), 1, clock)
    handler = flow.run()
    await spin()
    clock.advance(4.9)
    await spin()

    assert len(flow.attempts) == 1
    clock.advance(0.1)
    assert await finish(handler) == "succeeded on attempt 2"


async def test_retry_elapsed_seconds_counts_from_the_first_attempt(finish):
    """retry_info().elapsed_seconds runs from the first attempt's start to the latest failure."""
    clock = MockClock(autojump=True)
    seen = []

    class Flow(Workflow):
        @step(retry_policy=ConstantDelayRetryPolicy(delay=3, maximum_attempts=3))
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            seen.append(ctx.retry_info().elapsed_seconds)
            if len(seen) < 3:
                await clock.sleep(1)  # the failing attempt itself takes 1 s
                raise RuntimeError("again")
            return StopEvent()

    await finish(Flow(timeout=None, clock=clock).run())

    assert seen == [0.0, 1.0, 5.0]


async def test_custom_policy_is_asked_with_the_failure_count_and_error(finish):
    """A custom policy's next() gets elapsed time, failures so far and the error."""
    clock = MockClock(autojump=True)
    calls = []

    class Twice:
        def next(self, elapsed_time, attempts, error):
            calls.append((elapsed_time, attempts, str(error)))
            return 0.5 if attempts < 2 else None

    flow = flaky_flow(Twice(), 5, clock)

    with pytest.raises(RuntimeError, match="failure 2"):
        await finish(flow.run())
    assert calls == [(0.0, 1, "failure 1"), (0.5, 2, "failure 2")]


async def test_timed_out_attempt_is_retried(finish, spin):
    """A StepTimeoutError counts as a failure the retry policy may retry."""
    clock = MockClock()
    gate = asyncio.Event()
    errors = []

    class Flow(Workflow):
        @step(timeout=1, retry_policy=ConstantDelayRetryPolicy(delay=2, maximum_attempts=2))
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            info = ctx.retry_info()
            if info.attempt == 1:
                await gate.wait()  # never opened: this attempt times out
            errors.append(info.last_exception)
            return StopEvent(result=info.attempt)

    handler = Flow(timeout=None, clock=clock).run()
    await spin()
    clock.advance(1)
    await spin()
    clock.advance(2)

    assert await finish(handler) == 2
    assert isinstance(errors[0], StepTimeoutError)
