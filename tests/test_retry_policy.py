"""The composable retry API of fanflow.retry_policy: conditions, waits, stops, policies."""

import math
from datetime import timedelta

import pytest

from fanflow import ConstantDelayRetryPolicy, ExponentialBackoffRetryPolicy, RetryPolicy
from fanflow.retry_policy import (
    retry_all,
    retry_always,
    retry_any,
    retry_if_exception,
    retry_if_exception_cause_type,
    retry_if_exception_message,
    retry_if_exception_type,
    retry_if_not_exception_message,
    retry_if_not_exception_type,
    retry_never,
    retry_policy,
    retry_unless_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_all,
    stop_any,
    stop_before_delay,
    stop_never,
    wait_chain,
    wait_combine,
    wait_exponential,
    wait_exponential_jitter,
    wait_fixed,
    wait_full_jitter,
    wait_incrementing,
    wait_none,
    wait_random,
    wait_random_exponential,
)

# ------------------------------------------------------------------ retry conditions


def test_exception_type_condition_matches_subclasses():
    """retry_if_exception_type matches the given types and their subclasses."""
    condition = retry_if_exception_type((OSError, KeyError))

    assert condition(ConnectionError()) and condition(KeyError())
    assert not condition(ValueError())


def test_not_exception_type_conditions_invert_the_match():
    """retry_if_not_exception_type and retry_unless_exception_type retry everything else."""
    for condition in (retry_if_not_exception_type(KeyError), retry_unless_exception_type(KeyError)):
        assert condition(ValueError()) and not condition(KeyError())


def test_predicate_condition_calls_the_predicate():
    """retry_if_exception retries when its predicate says so."""
    condition = retry_if_exception(lambda e: "again" in str(e))

    assert condition(RuntimeError("try again")) and not condition(RuntimeError("no"))


def test_message_condition_compares_exactly_or_searches_a_pattern():
    """message= compares the whole message; match= searches a regex."""
    assert retry_if_exception_message(message="busy")(Exception("busy"))
    assert not retry_if_exception_message(message="busy")(Exception("busy now"))
    assert retry_if_exception_message(match=r"\d{3}")(Exception("HTTP 503"))
    assert not retry_if_not_exception_message(match="fatal")(Exception("fatal error"))


@pytest.mark.parametrize("kwargs", [{}, {"message": "a", "match": "b"}])
def test_message_condition_needs_exactly_one_matcher(kwargs):
    """retry_if_exception_message takes message or match, not neither, not both."""
    with pytest.raises(TypeError, match="'message' or 'match'"):
        retry_if_exception_message(**kwargs)


def test_cause_condition_follows_explicit_causes_only():
    """retry_if_exception_cause_type walks __cause__, not __context__."""
    caused = RuntimeError("outer")
    caused.__cause__ = ConnectionError("root")
    implicit = RuntimeError("outer")
    implicit.__context__ = ConnectionError("root")
    condition = retry_if_exception_cause_type(ConnectionError)

    assert condition(caused) and not condition(implicit)


def test_conditions_combine_with_operators():
    """`|` and `&` build retry_any and retry_all, on either side of a plain callable."""
    either = retry_if_exception_type(KeyError) | (lambda e: "x" in str(e))
    both = retry_always() & retry_if_exception_type(KeyError)

    assert isinstance(either, retry_any) and isinstance(both, retry_all)
    assert either(ValueError("x")) and not either(ValueError("y"))
    assert both(KeyError()) and not both(ValueError())
    assert not retry_never()(KeyError())


def test_exception_type_condition_rejects_a_non_exception():
    """Passing something that is not an exception class fails when the condition is built."""
    with pytest.raises(TypeError, match="exception_types"):
        retry_if_exception_type(str)  # type: ignore[arg-type]


# ------------------------------------------------------------------ wait strategies


def test_fixed_and_none_waits():
    """wait_fixed gives its delay every time, wait_none zero; timedelta is accepted."""
    assert wait_fixed(timedelta(seconds=2))(7) == 2.0
    assert wait_none()(3) == 0.0


def test_exponential_wait_grows_and_is_clamped():
    """wait_exponential gives multiplier * exp_base**n within [min, max]."""
    wait = wait_exponential(multiplier=0.5, exp_base=3, max=10, min=1)

    assert [wait(n) for n in range(4)] == [1.0, 1.5, 4.5, 10.0]


def test_exponential_wait_does_not_overflow():
    """A huge retry index gives the cap instead of an OverflowError."""
    assert wait_exponential(max=30)(10_000) == 30.0


def test_incrementing_wait_is_kept_within_zero_and_max():
    """wait_incrementing adds `increment` per retry, never below 0 nor above max."""
    assert [wait_incrementing(start=1, increment=2, max=4)(n) for n in range(4)] == [1, 3, 4, 4]
    assert wait_incrementing(start=-3, increment=-1)(2) == 0.0


def test_random_waits_are_repeatable_with_a_seed():
    """Random waits give the same delay for the same seed, within their bounds."""
    for wait in (
        wait_random(1, 2),
        wait_random_exponential(max=20),
        wait_full_jitter(max=20),
        wait_exponential_jitter(initial=1, jitter=1, max=20),
    ):
        assert wait(3, seed=7) == wait(3, seed=7)
    assert 1 <= wait_random(1, 2)(0, seed=1) <= 2
    assert 8 <= wait_exponential_jitter(initial=1, jitter=1, max=20)(3, seed=2) <= 9


def test_exponential_jitter_takes_initial_or_multiplier_but_not_both():
    """wait_exponential_jitter accepts tenacity's `multiplier` as another name for `initial`."""
    assert wait_exponential_jitter(multiplier=2, jitter=0)(1) == 4.0
    with pytest.raises(ValueError, match="not both"):
        wait_exponential_jitter(initial=2, multiplier=3)


def test_chain_uses_each_wait_once_then_repeats_the_last():
    """wait_chain picks the strategy by retry index and keeps the last one."""
    wait = wait_chain(wait_fixed(1), wait_fixed(3))

    assert [wait(n) for n in range(4)] == [1, 3, 3, 3]
    with pytest.raises(ValueError, match="at least one"):
        wait_chain()


def test_waits_add_up_with_plus_and_sum():
    """`+` and sum() build wait_combine, which adds the delays."""
    total = sum([wait_fixed(1), wait_fixed(2)]) + wait_incrementing(start=0, increment=1)

    assert isinstance(total, wait_combine) and total(2) == 5.0


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: wait_fixed(math.nan), "wait"),
        (lambda: wait_fixed(-1), "wait"),
        (lambda: wait_fixed(math.inf), "wait"),
        (lambda: wait_random(min=0, max=math.nan), "max"),
        (lambda: wait_exponential(max=math.inf), "max"),
        (lambda: wait_exponential(multiplier=math.nan), "multiplier"),
        (lambda: wait_exponential_jitter(jitter=-1), "jitter"),
        (lambda: wait_incrementing(start=math.nan), "start"),
        (lambda: stop_after_delay(math.nan), "max_delay"),
    ],
)
def test_bad_delays_are_refused_when_built(build, name):
    """A NaN, infinite or negative delay setting raises ValueError naming the parameter."""
    with pytest.raises(ValueError, match=name):
        build()


# ------------------------------------------------------------------ stop conditions


def test_stop_conditions_and_their_combinations():
    """Attempts, elapsed time and the coming sleep decide when to stop; | and & combine."""
    attempts, delay = stop_after_attempt(3), stop_after_delay(10)

    assert not attempts(2, 0) and attempts(3, 0)
    assert not delay(1, 9.9) and delay(1, 10)
    assert stop_before_delay(10)(1, 8, upcoming_sleep=2)
    assert (attempts | delay)(1, 10) and not (attempts & delay)(3, 1)
    assert isinstance(attempts | delay, stop_any) and isinstance(attempts & delay, stop_all)
    assert not stop_never()(10**6, 1e9)


# ------------------------------------------------------------------ policies


def test_default_policy_waits_five_seconds_for_three_attempts():
    """retry_policy() retries any error after 5 s until 3 attempts have failed."""
    policy = retry_policy()

    assert [policy.next(0.0, n, ValueError()) for n in (1, 2, 3)] == [5.0, 5.0, None]


def test_policy_gives_the_wait_the_retry_index():
    """The first failure (attempts=1) gets the wait for retry 0, as in the reference 2.26.1."""
    policy = retry_policy(wait=wait_exponential(multiplier=1), stop=stop_after_attempt(10))

    assert [policy.next(0.0, n, ValueError()) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_policy_gives_up_on_an_error_the_condition_refuses():
    """An error the retry condition does not match ends the retries at once."""
    policy = retry_policy(retry=retry_if_exception_type(ConnectionError))

    assert policy.next(0.0, 1, ValueError()) is None
    assert policy.next(0.0, 1, ConnectionError()) == 5.0


def test_policy_stop_sees_the_coming_sleep():
    """stop_before_delay stops when the next sleep would pass the limit."""
    policy = retry_policy(wait=wait_fixed(2), stop=stop_before_delay(5))

    assert policy.next(2.9, 1, ValueError()) == 2.0
    assert policy.next(3.0, 1, ValueError()) is None


def test_policy_passes_the_seed_to_the_wait():
    """next(..., seed=n) makes a random wait repeatable."""
    policy = retry_policy(wait=wait_random(0, 100))

    assert policy.next(0.0, 1, ValueError(), seed=3) == policy.next(0.0, 1, ValueError(), seed=3)


def test_policy_refuses_a_bad_delay_from_a_custom_wait():
    """A custom wait that returns NaN fails loudly instead of sleeping forever."""
    policy = retry_policy(wait=lambda attempts, seed=None: math.nan)

    with pytest.raises(ValueError, match="gave delay nan"):
        policy.next(0.0, 1, ValueError())


def test_policy_refuses_a_part_that_is_not_callable():
    """retry_policy checks its parts when it is built."""
    with pytest.raises(TypeError, match="wait must be callable"):
        retry_policy(wait=5)  # type: ignore[arg-type]


def test_built_policies_are_retry_policies_and_read_well():
    """A composed policy satisfies RetryPolicy and its repr shows its parts."""
    policy = retry_policy(wait=wait_fixed(1), stop=stop_after_attempt(2))

    assert isinstance(policy, RetryPolicy)
    assert repr(policy) == (
        "retry_policy(retry=None, wait=wait_fixed(1.0), stop=stop_after_attempt(2))"
    )


def test_legacy_policy_names_accept_a_seed_too():
    """The deprecated factories return policies that take the seed keyword the engine may pass."""
    with pytest.warns(DeprecationWarning, match="ExponentialBackoffRetryPolicy is deprecated"):
        policy = ExponentialBackoffRetryPolicy(maximum_attempts=5)
    with pytest.warns(DeprecationWarning, match="ConstantDelayRetryPolicy is deprecated"):
        constant = ConstantDelayRetryPolicy(delay=1)

    assert policy.next(0.0, 2, ValueError(), seed=1) == policy.next(0.0, 2, ValueError(), seed=1)
    assert constant.next(0.0, 1, ValueError(), seed=1) == 1


@pytest.mark.parametrize("delay", [math.nan, math.inf, -0.5])
def test_constant_policy_refuses_a_bad_delay_when_called(delay):
    """ConstantDelayRetryPolicy(delay=nan/inf/negative) raises ValueError naming delay."""
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="delay"):
        ConstantDelayRetryPolicy(delay=delay)


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"initial_delay": math.nan}, "initial_delay"),
        ({"max_delay": math.inf}, "max_delay"),
        ({"multiplier": math.nan}, "multiplier"),
    ],
)
def test_exponential_policy_refuses_bad_settings_when_called(settings, name):
    """ExponentialBackoffRetryPolicy refuses NaN and infinite settings, naming them."""
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=name):
        ExponentialBackoffRetryPolicy(**settings)
