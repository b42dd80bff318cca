"""Retry policies: whether a failed step runs again, and after what delay.

A policy is any object with ``next(elapsed_time, attempts, error)`` that
returns the delay in seconds before the next attempt, or ``None`` to give up
and let the error end the run. ``attempts`` counts the failures so far
(1 after the first failure). Policies may also take a keyword ``seed`` that
makes their random jitter repeatable. The composable builders
(``retry_policy(retry=..., wait=..., stop=...)``) live in `fanflow.retry_policy`.

Every policy checks its settings when it is built: a delay that is NaN,
infinite or negative raises ``ValueError`` naming the parameter.
"""

from __future__ import annotations

import math
import random
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


@dataclass(frozen=True)
class ConstantDelayRetryPolicy:
    """Run a step at most `maximum_attempts` times, `delay` seconds apart."""

    maximum_attempts: int = 3
    delay: float = 5.0

    def __post_init__(self) -> None:
        _check_attempts(self.maximum_attempts)
        check_seconds("ConstantDelayRetryPolicy", "delay", self.delay)

    def next(
        self, elapsed_time: float, attempts: int, error: Exception, *, seed: int | None = None
    ) -> float | None:
        """Return `delay` until `maximum_attempts` runs have failed."""
        return None if attempts >= self.maximum_attempts else self.delay


@dataclass(frozen=True)
class ExponentialBackoffRetryPolicy:
    """Retry with delays growing by `multiplier`, capped at `max_delay`.

    The first retry waits `initial_delay`. With `jitter` each delay is drawn
    uniformly from [delay/2, delay], so many failing runs do not retry in
    lockstep. Pass `rng` (or ``next(..., seed=n)``) for repeatable delays.
    """

    maximum_attempts: int = 5
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: bool = True
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        _check_attempts(self.maximum_attempts)
        owner = "ExponentialBackoffRetryPolicy"
        check_seconds(owner, "initial_delay", self.initial_delay)
        check_seconds(owner, "max_delay", self.max_delay)
        multiplier = self.multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)):
            raise ValueError(f"{owner}: need a number multiplier >= 1, got {multiplier!r}")
        if not (1 <= multiplier < math.inf):
            raise ValueError(f"{owner}: need a finite multiplier >= 1, got {multiplier!r}")

    def next(
        self, elapsed_time: float, attempts: int, error: Exception, *, seed: int | None = None
    ) -> float | None:
        """Return the capped exponential delay for failure number `attempts`."""
        if attempts >= self.maximum_attempts:
            return None
        try:
            grown = self.initial_delay * self.multiplier ** max(attempts - 1, 0)
        except OverflowError:
            grown = self.max_delay
        delay = min(self.max_delay, grown)
        if self.jitter:
            rng = random.Random(seed) if seed is not None else (self.rng or random)
            delay = rng.uniform(delay / 2, delay)
        return delay


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
