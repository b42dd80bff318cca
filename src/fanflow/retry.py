"""Retry policies: whether a failed step runs again, and after what delay.

A policy is any object with ``next(elapsed_time, attempts, error)`` that
returns the delay in seconds before the next attempt, or ``None`` to give up
and let the error end the run. ``attempts`` counts the failures so far
(1 after the first failure). Policies may also take a keyword ``seed`` that
makes their random jitter repeatable. Build one with
``retry_policy(retry=..., wait=..., stop=...)`` from `fanflow.retry_policy`.

`ConstantDelayRetryPolicy` and `ExponentialBackoffRetryPolicy` are deprecated
factory functions, as in LlamaIndex Workflows 2.26.1: each emits
``DeprecationWarning`` and returns the equivalent composable policy. They
check their settings when called: a delay that is NaN, infinite or negative
raises ``ValueError`` naming the parameter.
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = [
    "ConstantDelayRetryPolicy",
    "ExponentialBackoffRetryPolicy",
    "RetryInfo",
    "RetryPolicy",
]


@runtime_checkable
class RetryPolicy(Protocol):
    """Decides whether, and when, a failed step is tried again."""

    def next(self, elapsed_time: float, attempts: int, error: Exception) -> float | None:
        """Return the delay before the next attempt, or None to stop retrying."""


def _check_attempts(maximum_attempts: int) -> None:
    if isinstance(maximum_attempts, bool) or not isinstance(maximum_attempts, int):
        raise ValueError(f"maximum_attempts must be an int >= 1, got {maximum_attempts!r}")
    if maximum_attempts < 1:
        raise ValueError(f"maximum_attempts must be >= 1, got {maximum_attempts}")


def check_seconds(owner: str, name: str, value: object) -> float:
    """Return `value` as seconds, or raise ValueError naming `owner`'s parameter `name`.

    A delay must be a real number that is finite and not negative.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}: {name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"{owner}: {name} must be >= 0 and finite, got {value!r}")
    return seconds


def _check_multiplier(owner: str, multiplier: object) -> None:
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)):
        raise ValueError(f"{owner}: need a number multiplier >= 1, got {multiplier!r}")
    if not (1 <= multiplier < math.inf):
        raise ValueError(f"{owner}: need a finite multiplier >= 1, got {multiplier!r}")


# The two legacy names build their policies from the parts in `fanflow.retry_policy`.
# That module imports this one, so they import it when called, not at load time:
# there is no import cycle, whichever module is imported first.


def ConstantDelayRetryPolicy(maximum_attempts: int = 3, delay: float = 5) -> RetryPolicy:
    """Deprecated: return a policy that waits `delay` s between at most `maximum_attempts` runs.

    Emits ``DeprecationWarning``. The result is the composable policy
    ``retry_policy(wait=wait_fixed(delay), stop=stop_after_attempt(maximum_attempts))``,
    which is what to write instead. A `maximum_attempts` that is not an int
    >= 1, or a `delay` that is NaN, infinite or negative, raises ``ValueError``
    naming the parameter.
    """
    warnings.warn(
        "ConstantDelayRetryPolicy is deprecated and returns a composable policy; write "
        "retry_policy(wait=wait_fixed(delay), stop=stop_after_attempt(maximum_attempts)) "
        "(from fanflow.retry_policy) instead",
        DeprecationWarning,
        stacklevel=2,
    )
    from fanflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed

    _check_attempts(maximum_attempts)
    seconds = check_seconds("ConstantDelayRetryPolicy", "delay", delay)
    return retry_policy(wait=wait_fixed(seconds), stop=stop_after_attempt(maximum_attempts))


def ExponentialBackoffRetryPolicy(
    maximum_attempts: int = 5,
    initial_delay: float = 1.0,
    multiplier: float = 2.0,
    max_delay: float = 60.0,
    jitter: bool = True,
    rng: random.Random | None = None,
) -> RetryPolicy:
    """Deprecated: return a policy whose delays grow by `multiplier`, capped at `max_delay`.

    Emits ``DeprecationWarning``. The result is the composable policy
    ``retry_policy(wait=wait_exponential(multiplier=initial_delay,
    exp_base=multiplier, max=max_delay), stop=stop_after_attempt(maximum_attempts))``,
    which is what to write instead: the first retry waits `initial_delay`, the
    n-th ``initial_delay * multiplier**(n-1)``. With `jitter` the wait is
    ``wait_random_exponential`` with the same settings, so each delay is drawn
    uniformly from [0, that bound]. `rng` (a fanflow extension kept from its
    earlier releases) is the ``random.Random`` the jittered delays are drawn
    from; a ``seed`` passed to ``next`` still takes precedence. Bad settings
    (`maximum_attempts` not an int >= 1, a NaN, infinite or negative delay, a
    `multiplier` below 1) raise ``ValueError`` naming the parameter.
    """
    warnings.warn(
        "ExponentialBackoffRetryPolicy is deprecated and returns a composable policy; write "
        "retry_policy(wait=wait_exponential(multiplier=initial_delay, exp_base=multiplier, "
        "max=max_delay), stop=stop_after_attempt(maximum_attempts)) (from "
        "fanflow.retry_policy; wait_random_exponential(...) for jitter) instead",
        DeprecationWarning,
        stacklevel=2,
    )
    from fanflow.retry_policy import (
        WaitStrategy,
        _wait_random_exponential_from,
        retry_policy,
        stop_after_attempt,
        wait_exponential,
        wait_random_exponential,
    )

    owner = "ExponentialBackoffRetryPolicy"
    _check_attempts(maximum_attempts)
    first = check_seconds(owner, "initial_delay", initial_delay)
    cap = check_seconds(owner, "max_delay", max_delay)
    _check_multiplier(owner, multiplier)
    growth = float(multiplier)
    wait: WaitStrategy
    if not jitter:
        wait = wait_exponential(multiplier=first, exp_base=growth, max=cap)
    elif rng is not None:
        wait = _wait_random_exponential_from(rng, multiplier=first, exp_base=growth, max=cap)
    else:
        wait = wait_random_exponential(multiplier=first, exp_base=growth, max=cap)
    return retry_policy(wait=wait, stop=stop_after_attempt(maximum_attempts))


@dataclass(frozen=True)
class RetryInfo:
    """Where the running step stands in its retries (``ctx.retry_info()``).

    ``retry_number`` is 0 on the first attempt, 1 on the first retry;
    ``attempt`` is the same count starting at 1.
    """

    retry_number: int = 0
    elapsed_seconds: float = 0.0
    last_exception: Exception | None = None
    last_failed_at: datetime | None = None

    @property
    def attempt(self) -> int:
        """Return the 1-based number of the current attempt."""
        return self.retry_number + 1
