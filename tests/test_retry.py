"""Retry policies and retried steps: attempts, delays and what the step sees."""

import asyncio
import math
import random

import pytest

import fanflow.retry
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
from fanflow.retry_policy import (
    retry_policy,
    stop_after_attempt,
    wait_exponential,
    wait_fixed,
    wait_random_exponential,
)

ERROR = RuntimeError("flaky")
CONSTANT_DEPRECATED = "ConstantDelayRetryPolicy is deprecated"
EXPONENTIAL_DEPRECATED = "ExponentialBackoffRetryPolicy is deprecated"


def constant(delay: float, attempts: int) -> RetryPolicy:
    """Return the composable policy that replaces ConstantDelayRetryPolicy(attempts, delay)."""
    return retry_policy(wait=wait_fixed(delay), stop=stop_after_attempt(attempts))


def legacy_constant(**settings) -> RetryPolicy:
    """Call the deprecated ConstantDelayRetryPolicy, expecting its DeprecationWarning."""
    with pytest.warns(DeprecationWarning, match=CONSTANT_DEPRECATED):
        return ConstantDelayRetryPolicy(**settings)


def legacy_exponential(**settings) -> RetryPolicy:
    """Call the deprecated ExponentialBackoffRetryPolicy, expecting its DeprecationWarning."""
    with pytest.warns(DeprecationWarning, match=EXPONENTIAL_DEPRECATED):
        return ExponentialBackoffRetryPolicy(**settings)


# ------------------------------------------------------------------ legacy policy names


@pytest.mark.parametrize(
    ("factory", "message", "replacement"),
    [
        (ConstantDelayRetryPolicy, CONSTANT_DEPRECATED, "wait=wait_fixed(delay)"),
        (ExponentialBackoffRetryPolicy, EXPONENTIAL_DEPRECATED, "wait=wait_exponential("),
    ],
)
def test_legacy_names_warn_at_the_caller_and_name_the_replacement(factory, message, replacement):
    """Each call warns once, from this file, suggesting retry_policy(..., stop_after_attempt)."""
    with pytest.warns(DeprecationWarning) as caught:
        factory()

    assert len(caught) == 1
    text = str(caught[0].message)
    assert text.startswith(message)
    assert "retry_policy(" in text
    assert replacement in text
    assert "stop=stop_after_attempt(" in text
    assert caught[0].filename == __file__


def test_legacy_names_are_functions_returning_composable_policies():
    """As in LlamaIndex Workflows 2.26.1 they are factories, not classes."""
    policies = [legacy_constant(), legacy_exponential(), legacy_exponential(jitter=False)]

    assert not isinstance(ConstantDelayRetryPolicy, type)
    assert not isinstance(ExponentialBackoffRetryPolicy, type)
    for policy in policies:
        assert type(policy).__name__ == "_ComposableRetryPolicy"
        assert isinstance(policy, RetryPolicy)


def test_legacy_names_build_the_policy_they_suggest():
    """The parts are the ones the warning tells callers to write instead."""
    exponential = {"initial_delay": 0.5, "multiplier": 3, "max_delay": 20, "maximum_attempts": 4}

    assert repr(legacy_constant(maximum_attempts=5, delay=4.2)) == repr(constant(4.2, 5))
    assert repr(legacy_exponential(**exponential, jitter=False)) == repr(
        retry_policy(
            wait=wait_exponential(multiplier=0.5, exp_base=3, max=20), stop=stop_after_attempt(4)
        )
    )
    assert repr(legacy_exponential(**exponential)) == repr(
        retry_policy(
            wait=wait_random_exponential(multiplier=0.5, exp_base=3, max=20),
            stop=stop_after_attempt(4),
        )
    )


def test_constant_policy_gives_its_delay_until_the_last_attempt():
    """ConstantDelayRetryPolicy returns `delay` after failures 1..max-1, then None."""
    policy = legacy_constant(maximum_attempts=5, delay=4.2)

    assert [policy.next(0.0, attempts, ERROR) for attempts in (1, 4)] == [4.2, 4.2]
    assert policy.next(0.0, 5, ERROR) is None
    assert policy.next(0.0, 999, ERROR) is None


@pytest.mark.parametrize(
    ("initial_delay", "multiplier", "max_delay"), [(1, 2, 5), (0.5, 3, 100), (2, 1, 60)]
)
def test_exponential_policy_grows_from_the_initial_delay_up_to_max_delay(
    initial_delay, multiplier, max_delay
):
    """Without jitter failure n waits initial_delay * multiplier**(n-1), capped at max_delay."""
    policy = legacy_exponential(
        maximum_attempts=6,
        initial_delay=initial_delay,
        multiplier=multiplier,
        max_delay=max_delay,
        jitter=False,
    )

    expected = [min(initial_delay * multiplier ** (n - 1), max_delay) for n in range(1, 6)]
    assert [policy.next(0.0, n, ERROR) for n in range(1, 6)] == expected
    assert policy.next(0.0, 6, ERROR) is None


def test_exponential_policy_doubles_up_to_max_delay():
    """The 2.26.1 retry index: failures 0 and 1 both wait initial_delay, then 2, 4, capped at 5."""
    policy = legacy_exponential(
        maximum_attempts=6, initial_delay=1, multiplier=2, max_delay=5, jitter=False
    )

    assert [policy.next(0.0, n, ERROR) for n in range(7)] == [1, 1, 2, 4, 5, 5, None]


def test_exponential_jitter_draws_from_zero_to_the_exponential_bound():
    """With jitter each delay lies in [0, bound], often below half of it (full jitter)."""
    policy = legacy_exponential(maximum_attempts=10, initial_delay=1, multiplier=2, max_delay=60)

    for attempts in range(1, 10):
        bound = min(60, 2 ** (attempts - 1))
        delays = [policy.next(0.0, attempts, ERROR, seed=seed) for seed in range(50)]
        assert all(0 <= delay <= bound for delay in delays)
        assert min(delays) < bound / 2
        assert len(set(delays)) == 50


def test_exponential_jitter_is_repeatable_with_a_seed():
    """The same seed gives the same delay; the stop still applies."""
    policy = legacy_exponential(maximum_attempts=5)

    assert policy.next(0.0, 3, ERROR, seed=7) == policy.next(0.0, 3, ERROR, seed=7)
    assert policy.next(0.0, 5, ERROR, seed=7) is None


def test_exponential_jitter_draws_from_the_given_rng():
    """rng= (kept from earlier fanflow releases) is the source of the jittered delays."""
    policy = legacy_exponential(maximum_attempts=5, rng=random.Random(0))
    delays = [policy.next(0.0, n, ERROR) for n in range(1, 5)]

    source = random.Random(0)
    assert delays == [source.uniform(0, 2 ** (n - 1)) for n in range(1, 5)]
    again = legacy_exponential(maximum_attempts=5, rng=random.Random(0))
    assert [again.next(0.0, n, ERROR) for n in range(1, 5)] == delays
    assert policy.next(0.0, 2, ERROR, seed=3) == again.next(0.0, 2, ERROR, seed=3)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"maximum_attempts": 0}, "maximum_attempts must be >= 1"),
        ({"maximum_attempts": 2.5}, "maximum_attempts must be an int"),
        ({"maximum_attempts": True}, "maximum_attempts must be an int"),
        ({"delay": -1}, "ConstantDelayRetryPolicy: delay must be >= 0"),
        ({"delay": math.nan}, "ConstantDelayRetryPolicy: delay must be >= 0"),
        ({"delay": math.inf}, "ConstantDelayRetryPolicy: delay must be >= 0"),
    ],
)
def test_constant_policy_rejects_bad_settings(settings, message):
    """ConstantDelayRetryPolicy rejects bad attempts and delays when called, naming them."""
    with (
        pytest.warns(DeprecationWarning, match=CONSTANT_DEPRECATED),
        pytest.raises(ValueError, match=message),
    ):
        ConstantDelayRetryPolicy(**settings)


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"maximum_attempts": 0}, "maximum_attempts"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"initial_delay": math.nan}, "initial_delay"),
        ({"max_delay": math.inf}, "max_delay"),
        ({"multiplier": 0.5}, "multiplier >= 1"),
        ({"multiplier": math.nan}, "multiplier"),
    ],
)
def test_exponential_policy_rejects_bad_settings(settings, name):
    """ExponentialBackoffRetryPolicy rejects bad settings when called, naming them."""
    with (
        pytest.warns(DeprecationWarning, match=EXPONENTIAL_DEPRECATED),
        pytest.raises(ValueError, match=name),
    ):
        ExponentialBackoffRetryPolicy(**settings)


def test_policies_satisfy_the_retry_policy_protocol():
    """Built policies and any object with next() are RetryPolicy instances."""

    class Once:
        def next(self, elapsed_time, attempts, error):
            return None

    assert isinstance(constant(1, 2), RetryPolicy)
    assert isinstance(Once(), RetryPolicy)


def test_retry_policy_module_matches_the_reference_layout():
    """fanflow.retry_policy exposes the same names, as `workflows.retry_policy` does."""
    assert fanflow.retry_policy.ConstantDelayRetryPolicy is ConstantDelayRetryPolicy
    assert fanflow.retry.ConstantDelayRetryPolicy is ConstantDelayRetryPolicy
    assert fanflow.retry_policy.ExponentialBackoffRetryPolicy is ExponentialBackoffRetryPolicy
    assert fanflow.retry.ExponentialBackoffRetryPolicy is ExponentialBackoffRetryPolicy
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
    flow = flaky_flow(constant(2, 3), 2, clock)

    assert await finish(flow.run()) == "succeeded on attempt 3"
    assert [(retry, attempt, at) for retry, attempt, at, _ in flow.attempts] == [
        (0, 1, 0.0),
        (1, 2, 2.0),
        (2, 3, 4.0),
    ]


async def test_retry_info_carries_the_previous_error(finish):
    """On a retry, ctx.retry_info().last_exception is the error of the attempt before."""
    clock = MockClock(autojump=True)
    flow = flaky_flow(constant(1, 3), 2, clock)

    await finish(flow.run())

    assert [last for *_, last in flow.attempts] == [None, *flow.errors]


async def test_retries_stop_at_maximum_attempts_with_the_last_error(finish):
    """After maximum_attempts failures the last error reaches the caller, unwrapped."""
    clock = MockClock(autojump=True)
    flow = flaky_flow(constant(1, 3), 10, clock)

    with pytest.raises(RuntimeError) as caught:
        await finish(flow.run())

    assert len(flow.attempts) == 3
    assert caught.value is flow.errors[-1]


async def test_exponential_backoff_delays_between_attempts(finish):
    """The deprecated exponential policy still drives a step: it waits 1, 2, 4 s."""
    clock = MockClock(autojump=True)
    policy = legacy_exponential(maximum_attempts=4, initial_delay=1, jitter=False)
    flow = flaky_flow(policy, 3, clock)

    await finish(flow.run())

    assert [at for _, _, at, _ in flow.attempts] == [0.0, 1.0, 3.0, 7.0]


async def test_retry_waits_on_the_clock(finish, spin):
    """The next attempt starts only once the clock has moved by the delay."""
    clock = MockClock()
    flow = flaky_flow(constant(5, 2), 1, clock)
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
        @step(retry_policy=constant(3, 3))
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
        @step(timeout=1, retry_policy=constant(2, 2))
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
