"""Composable retry policies: *whether* to retry, *how long* to wait, *when* to stop.

``retry_policy(retry=..., wait=..., stop=...)`` builds a `RetryPolicy` from
three parts, named and combined as in tenacity::

    from fanflow.retry_policy import (
        retry_if_exception_type, retry_policy, stop_after_attempt, wait_exponential,
    )

    policy = retry_policy(
        retry=retry_if_exception_type((TimeoutError, ConnectionError)),
        wait=wait_exponential(multiplier=1, exp_base=2, max=30),
        stop=stop_after_attempt(5),
    )

- a retry condition (``retry_if_*``) is called with the error; ``a | b`` and
  ``a & b`` combine conditions (`retry_any`, `retry_all`);
- a wait strategy (``wait_*``) is called with the retry index (0 for the
  first retry) and gives the delay in seconds; ``a + b`` (and ``sum([...])``)
  adds delays (`wait_combine`);
- a stop condition (``stop_*``) is called with the number of failures so far,
  the seconds since the first failure and the delay about to be slept; ``a | b``
  and ``a & b`` combine them (`stop_any`, `stop_all`).

Strategies with randomness take a keyword ``seed`` for repeatable delays.
Settings are checked when a part is built: a NaN, infinite or negative delay
raises ``ValueError`` naming the parameter. The deprecated factories of
`fanflow.retry` (`ConstantDelayRetryPolicy`, `ExponentialBackoffRetryPolicy`,
which warn and return a policy built from these parts) are re-exported here,
as in LlamaIndex Workflows' module of the same name.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from fanflow.retry import (
    ConstantDelayRetryPolicy,
    ExponentialBackoffRetryPolicy,
    RetryInfo,
    RetryPolicy,
    check_seconds,
)

__all__ = [
    "ConstantDelayRetryPolicy",
    "ExponentialBackoffRetryPolicy",
    "RetryCondition",
    "RetryInfo",
    "RetryPolicy",
    "StopCondition",
    "WaitStrategy",
    "retry_all",
    "retry_always",
    "retry_any",
    "retry_if_exception",
    "retry_if_exception_cause_type",
    "retry_if_exception_message",
    "retry_if_exception_type",
    "retry_if_not_exception_message",
    "retry_if_not_exception_type",
    "retry_never",
    "retry_policy",
    "retry_unless_exception_type",
    "stop_after_attempt",
    "stop_after_delay",
    "stop_all",
    "stop_any",
    "stop_before_delay",
    "stop_never",
    "wait_chain",
    "wait_combine",
    "wait_exponential",
    "wait_exponential_jitter",
    "wait_fixed",
    "wait_full_jitter",
    "wait_incrementing",
    "wait_none",
    "wait_random",
    "wait_random_exponential",
]

# A duration: seconds as a number, or a timedelta (the annotation tenacity uses).
time_unit_type = int | float | timedelta
ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


class RetryCondition(Protocol):
    """Says whether an error is worth another attempt."""

    def __call__(self, error: BaseException) -> bool: ...


class WaitStrategy(Protocol):
    """Gives the delay before retry number `attempts` (0 for the first retry)."""

    def __call__(self, attempts: int, *, seed: int | None = None) -> float: ...


class StopCondition(Protocol):
    """Says whether to give up after `attempts` failures and `elapsed_time` seconds."""

    def __call__(
        self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0
    ) -> bool: ...


def _seconds(owner: str, name: str, value: object, *, infinite_ok: bool = False) -> float:
    """Return a duration setting in seconds, refusing NaN, negative and (unless allowed) inf."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if infinite_ok and value == math.inf:
        return math.inf
    return check_seconds(owner, name, value)


def _number(owner: str, name: str, value: object, *, minimum: float = 0.0) -> float:
    """Return a finite number setting >= `minimum`, or raise ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}")
    number = float(value)
    if not (minimum <= number < math.inf):
        raise ValueError(f"{owner}: {name} must be finite and >= {minimum:g}, got {value!r}")
    return number


def _rng(seed: int | None) -> random.Random | Any:
    return random.Random(seed) if seed is not None else random


def _power(base: float, exponent: int, scale: float, cap: float) -> float:
    """Return ``scale * base**exponent`` capped at `cap`, without overflowing."""
    try:
        return min(scale * base**exponent, cap)
    except OverflowError:
        return cap


class _Part:
    """Shared ``repr``: the part's name and the settings it was built with."""

    _settings: tuple[Any, ...] = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(s) for s in self._settings)})"


# ------------------------------------------------------------------ retry conditions


class _RetryBase(_Part):
    """A retry condition that combines with ``|`` (any) and ``&`` (all)."""

    def __call__(self, error: BaseException) -> bool:
        raise NotImplementedError

    def __or__(self, other: RetryCondition) -> retry_any:
        return retry_any(self, other)

    def __ror__(self, other: RetryCondition) -> retry_any:
        return retry_any(other, self)

    def __and__(self, other: RetryCondition) -> retry_all:
        return retry_all(self, other)

    def __rand__(self, other: RetryCondition) -> retry_all:
        return retry_all(other, self)


class retry_if_exception(_RetryBase):
    """Retry when ``predicate(error)`` is true."""

    def __init__(self, predicate: Callable[[BaseException], bool]) -> None:
        if not callable(predicate):
            raise TypeError(f"retry_if_exception: predicate must be callable, got {predicate!r}")
        self.predicate = predicate
        self._settings = (predicate,)

    def __call__(self, error: BaseException) -> bool:
        return bool(self.predicate(error))


def _check_types(owner: str, exception_types: object) -> None:
    members = exception_types if isinstance(exception_types, tuple) else (exception_types,)
    if not all(isinstance(t, type) and issubclass(t, BaseException) for t in members):
        raise TypeError(
            f"{owner}: exception_types must be an exception class or a tuple of them, "
            f"got {exception_types!r}"
        )


class retry_if_exception_type(_RetryBase):
    """Retry when the error is an instance of `exception_types`."""

    def __init__(self, exception_types: ExceptionTypes = Exception) -> None:
        _check_types(type(self).__name__, exception_types)
        self.exception_types = exception_types
        self._settings = (exception_types,)

    def __call__(self, error: BaseException) -> bool:
        return isinstance(error, self.exception_types)


class retry_if_not_exception_type(retry_if_exception_type):
    """Retry unless the error is an instance of `exception_types`."""

    def __call__(self, error: BaseException) -> bool:
        return not isinstance(error, self.exception_types)


class retry_unless_exception_type(retry_if_not_exception_type):
    """Retry unless the error is an instance of `exception_types` (tenacity's name)."""


class retry_if_exception_message(_RetryBase):
    """Retry when ``str(error)`` equals `message`, or when the regex `match` finds a match.

    Give exactly one of the two.
    """

    def __init__(
        self, message: str | None = None, match: str | re.Pattern[str] | None = None
    ) -> None:
        owner = type(self).__name__
        if message is None and match is None:
            raise TypeError(f"{owner}() needs one argument: 'message' or 'match'")
        if message is not None and match is not None:
            raise TypeError(f"{owner}() takes either 'message' or 'match', not both")
        self.message = message
        self.match = match
        self._pattern = re.compile(match) if isinstance(match, str) else match
        self._settings = (message,) if message is not None else (match,)

    def _matches(self, error: BaseException) -> bool:
        text = str(error)
        if self.message is not None:
            return text == self.message
        return self._pattern is not None and self._pattern.search(text) is not None

    def __call__(self, error: BaseException) -> bool:
        return self._matches(error)


class retry_if_not_exception_message(retry_if_exception_message):
    """Retry unless the error's message equals `message` or matches `match`."""

    def __call__(self, error: BaseException) -> bool:
        return not self._matches(error)


class retry_if_exception_cause_type(_RetryBase):
    """Retry when an error in the ``raise ... from`` chain is one of `exception_types`.

    Only explicit causes (``__cause__``) are followed, as in tenacity.
    """

    def __init__(self, exception_types: ExceptionTypes = Exception) -> None:
        _check_types(type(self).__name__, exception_types)
        self.exception_types = exception_types
        self._settings = (exception_types,)

    def __call__(self, error: BaseException) -> bool:
        cause = error.__cause__
        while cause is not None:
            if isinstance(cause, self.exception_types):
                return True
            cause = cause.__cause__
        return False


class retry_any(_RetryBase):
    """Retry when any of `retries` says so (also written ``a | b``)."""

    def __init__(self, *retries: RetryCondition) -> None:
        self.retries = retries
        self._settings = retries

    def __call__(self, error: BaseException) -> bool:
        return any(condition(error) for condition in self.retries)


class retry_all(_RetryBase):
    """Retry when all of `retries` say so (also written ``a & b``)."""

    def __init__(self, *retries: RetryCondition) -> None:
        self.retries = retries
        self._settings = retries

    def __call__(self, error: BaseException) -> bool:
        return all(condition(error) for condition in self.retries)


class retry_always(_RetryBase):
    """Retry every error."""

    def __call__(self, error: BaseException) -> bool:
        return True


class retry_never(_RetryBase):
    """Retry no error."""

    def __call__(self, error: BaseException) -> bool:
        return False


# ------------------------------------------------------------------ wait strategies


class _WaitBase(_Part):
    """A wait strategy that adds up with ``+`` and ``sum()``."""

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        raise NotImplementedError

    def __add__(self, other: WaitStrategy) -> wait_combine:
        return wait_combine(self, other)

    def __radd__(self, other: object) -> Any:
        if other == 0:  # sum() starts from 0
            return self
        if callable(other):
            return wait_combine(other, self)
        return NotImplemented


class wait_fixed(_WaitBase):
    """Wait the same `wait` seconds before every retry."""

    def __init__(self, wait: time_unit_type) -> None:
        self.wait = _seconds("wait_fixed", "wait", wait)
        self._settings = (self.wait,)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        return self.wait


class wait_none(wait_fixed):
    """Retry at once."""

    def __init__(self) -> None:
        super().__init__(0)
        self._settings = ()


class wait_incrementing(_WaitBase):
    """Wait ``start + increment * attempts`` seconds, kept within [0, `max`]."""

    def __init__(
        self,
        start: time_unit_type = 0,
        increment: time_unit_type = 100,
        max: time_unit_type = math.inf,
    ) -> None:
        owner = "wait_incrementing"
        # start and increment may be negative: the result is clamped at 0.
        self.start = _signed_seconds(owner, "start", start)
        self.increment = _signed_seconds(owner, "increment", increment)
        self.max = _seconds(owner, "max", max, infinite_ok=True)
        self._settings = (self.start, self.increment, self.max)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        return max(0.0, min(self.start + self.increment * attempts, self.max))


def _signed_seconds(owner: str, name: str, value: object) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}: {name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    return float(value)


class wait_random(_WaitBase):
    """Wait a random number of seconds drawn uniformly from [`min`, `max`]."""

    def __init__(self, min: time_unit_type = 0, max: time_unit_type = 1) -> None:
        self.min = _seconds("wait_random", "min", min)
        self.max = _seconds("wait_random", "max", max)
        if self.min > self.max:
            raise ValueError(f"wait_random: min ({self.min}) must not exceed max ({self.max})")
        self._settings = (self.min, self.max)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        return float(_rng(seed).uniform(self.min, self.max))


class _ExponentialSettings(_WaitBase):
    """Validated ``multiplier * exp_base**attempts`` settings, kept within [`min`, `max`]."""

    def _configure(self, multiplier: object, exp_base: object, max: object, min: object) -> None:
        owner = type(self).__name__
        self.multiplier = _number(owner, "multiplier", multiplier)
        self.exp_base = _number(owner, "exp_base", exp_base)
        self.max = _seconds(owner, "max", max)
        self.min = _seconds(owner, "min", min)
        if self.min > self.max:
            raise ValueError(f"{owner}: min ({self.min}) must not exceed max ({self.max})")

    def _grown(self, attempts: int) -> float:
        return _power(self.exp_base, attempts, self.multiplier, self.max)


class wait_exponential(_ExponentialSettings):
    """Wait ``multiplier * exp_base**attempts`` seconds, kept within [`min`, `max`]."""

    def __init__(
        self,
        multiplier: float = 1,
        max: time_unit_type = 60,
        exp_base: float = 2,
        min: time_unit_type = 0,
    ) -> None:
        self._configure(multiplier, exp_base, max, min)
        self._settings = (self.multiplier, self.max, self.exp_base, self.min)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        return max(self.min, self._grown(attempts))


class wait_random_exponential(_ExponentialSettings):
    """Wait a random delay between `min` and the exponential bound (full jitter)."""

    def __init__(
        self,
        multiplier: float = 1,
        max: time_unit_type = 60,
        exp_base: float = 2,
        min: time_unit_type = 0,
    ) -> None:
        self._configure(multiplier, exp_base, max, min)
        self._settings = (self.multiplier, self.max, self.exp_base, self.min)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        upper = max(self.min, self._grown(attempts))
        return float(_rng(seed).uniform(self.min, upper))


class _wait_random_exponential_from(wait_random_exponential):
    """`wait_random_exponential` drawing from a given ``random.Random``.

    Backs ``ExponentialBackoffRetryPolicy(rng=...)``, which earlier fanflow
    releases offered; a ``seed`` passed when called still takes precedence.
    """

    def __init__(
        self,
        rng: random.Random,
        multiplier: float = 1,
        max: time_unit_type = 60,
        exp_base: float = 2,
        min: time_unit_type = 0,
    ) -> None:
        super().__init__(multiplier=multiplier, max=max, exp_base=exp_base, min=min)
        self.rng = rng

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        upper = max(self.min, self._grown(attempts))
        source = random.Random(seed) if seed is not None else self.rng
        return float(source.uniform(self.min, upper))


def wait_full_jitter(
    multiplier: float = 1,
    max: time_unit_type = 60,
    exp_base: float = 2,
    min: time_unit_type = 0,
) -> wait_random_exponential:
    """Return `wait_random_exponential` with these settings (tenacity's other name)."""
    return wait_random_exponential(multiplier=multiplier, max=max, exp_base=exp_base, min=min)


class wait_exponential_jitter(_ExponentialSettings):
    """Wait ``initial * exp_base**attempts`` plus a random ``[0, jitter]``, within [`min`, `max`].

    `multiplier` is tenacity's newer name for `initial`; give one of them.
    """

    def __init__(
        self,
        initial: float = 1,
        max: time_unit_type = 60,
        exp_base: float = 2,
        jitter: time_unit_type = 1,
        min: time_unit_type = 0,
        multiplier: float = 1,
    ) -> None:
        if initial != 1 and multiplier != 1:
            raise ValueError("wait_exponential_jitter: give initial or multiplier, not both")
        self._configure(multiplier if initial == 1 else initial, exp_base, max, min)
        self.initial = self.multiplier
        self.jitter = _seconds("wait_exponential_jitter", "jitter", jitter)
        self._settings = (self.initial, self.max, self.exp_base, self.jitter, self.min)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        delay = self._grown(attempts) + _rng(seed).uniform(0, self.jitter)
        return float(max(self.min, min(delay, self.max)))


class wait_chain(_WaitBase):
    """Use `strategies` one per retry in order, then keep using the last one."""

    def __init__(self, *strategies: WaitStrategy) -> None:
        if not strategies:
            raise ValueError("wait_chain needs at least one wait strategy")
        self.strategies = strategies
        self._settings = strategies

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        chosen = self.strategies[min(max(attempts, 0), len(self.strategies) - 1)]
        return chosen(attempts, seed=seed)


class wait_combine(_WaitBase):
    """Wait the sum of what `strategies` give (also written ``a + b``)."""

    def __init__(self, *strategies: WaitStrategy) -> None:
        self.strategies = strategies
        self._settings = strategies

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        return float(sum(strategy(attempts, seed=seed) for strategy in self.strategies))


# ------------------------------------------------------------------ stop conditions


class _StopBase(_Part):
    """A stop condition that combines with ``|`` (any) and ``&`` (all)."""

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        raise NotImplementedError

    def __or__(self, other: StopCondition) -> stop_any:
        return stop_any(self, other)

    def __ror__(self, other: StopCondition) -> stop_any:
        return stop_any(other, self)

    def __and__(self, other: StopCondition) -> stop_all:
        return stop_all(self, other)

    def __rand__(self, other: StopCondition) -> stop_all:
        return stop_all(other, self)


class stop_after_attempt(_StopBase):
    """Stop once `max_attempt_number` attempts have failed."""

    def __init__(self, max_attempt_number: int) -> None:
        if isinstance(max_attempt_number, bool) or not isinstance(max_attempt_number, int):
            raise ValueError(
                f"stop_after_attempt: max_attempt_number must be an int, got {max_attempt_number!r}"
            )
        self.max_attempt_number = max_attempt_number
        self._settings = (max_attempt_number,)

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return attempts >= self.max_attempt_number


class stop_after_delay(_StopBase):
    """Stop once `max_delay` seconds have passed since the first failure."""

    def __init__(self, max_delay: time_unit_type) -> None:
        self.max_delay = _seconds(type(self).__name__, "max_delay", max_delay, infinite_ok=True)
        self._settings = (self.max_delay,)

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return elapsed_time >= self.max_delay


class stop_before_delay(stop_after_delay):
    """Stop when the coming delay would pass `max_delay` seconds since the first failure."""

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return elapsed_time + upcoming_sleep >= self.max_delay


class stop_any(_StopBase):
    """Stop when any of `stops` says so (also written ``a | b``)."""

    def __init__(self, *stops: StopCondition) -> None:
        self.stops = stops
        self._settings = stops

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return any(s(attempts, elapsed_time, upcoming_sleep=upcoming_sleep) for s in self.stops)


class stop_all(_StopBase):
    """Stop when all of `stops` say so (also written ``a & b``)."""

    def __init__(self, *stops: StopCondition) -> None:
        self.stops = stops
        self._settings = stops

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return all(s(attempts, elapsed_time, upcoming_sleep=upcoming_sleep) for s in self.stops)


class stop_never(_StopBase):
    """Never stop (bound the retries with a retry condition or the run's timeout)."""

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return False


# ------------------------------------------------------------------ the policy


class _ComposableRetryPolicy:
    """A `RetryPolicy` made of a retry condition, a wait strategy and a stop condition."""

    def __init__(
        self, retry: RetryCondition | None, wait: WaitStrategy, stop: StopCondition
    ) -> None:
        for name, part in (("retry", retry), ("wait", wait), ("stop", stop)):
            if part is not None and not callable(part):
                raise TypeError(f"retry_policy: {name} must be callable, got {part!r}")
        self.retry = retry
        self.wait = wait
        self.stop = stop

    def next(
        self, elapsed_time: float, attempts: int, error: Exception, *, seed: int | None = None
    ) -> float | None:
        """Return the delay before the next attempt, or None to give up.

        `attempts` counts the failures so far (1 after the first); the wait
        strategy gets the retry index, ``attempts - 1``.
        """
        if self.retry is not None and not self.retry(error):
            return None
        delay = self.wait(max(attempts - 1, 0), seed=seed)
        if (
            isinstance(delay, bool)
            or not isinstance(delay, (int, float))
            or not (0 <= delay < math.inf)
        ):
            raise ValueError(f"retry_policy: wait strategy {self.wait!r} gave delay {delay!r}")
        if self.stop(attempts, elapsed_time, upcoming_sleep=delay):
            return None
        return float(delay)

    def __repr__(self) -> str:
        return f"retry_policy(retry={self.retry!r}, wait={self.wait!r}, stop={self.stop!r})"


def retry_policy(
    retry: RetryCondition | None = None,
    wait: WaitStrategy | None = None,
    stop: StopCondition | None = None,
) -> RetryPolicy:
    """Return a retry policy built from a retry condition, a wait strategy and a stop condition.

    `retry` None retries every error; `wait` defaults to ``wait_fixed(5)`` and
    `stop` to ``stop_after_attempt(3)`` (three attempts in all).
    """
    return _ComposableRetryPolicy(
        retry=retry,
        wait=wait if wait is not None else wait_fixed(5),
        stop=stop if stop is not None else stop_after_attempt(3),
    )
