"""Retry policies: whether a failed step runs again, and after what delay.

A policy is any object with ``next(elapsed_time, attempts, error)`` that
returns the delay in seconds before the next attempt, or ``None`` to give up
and let the error end the run. ``attempts`` counts the failures so far
(1 after the first failure).
"""

from __future__ import annotations

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
    if maximum_attempts < 1:
        raise ValueError(f"maximum_attempts must be >= 1, got {maximum_attempts}")


@dataclass(frozen=True)
class ConstantDelayRetryPolicy:
    """Run a step at most `maximum_attempts` times, `delay` seconds apart."""

    maximum_attempts: int = 3
    delay: float = 5.0

    def __post_init__(self) -> None:
        _check_attempts(self.maximum_attempts)
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0, got {self.delay}")

    def next(self, elapsed_time: float, attempts: int, error: Exception) -> float | None:
        """Return `delay` until `maximum_attempts` runs have failed."""
        return None if attempts >= self.maximum_attempts else self.delay


@dataclass(frozen=True)
class ExponentialBackoffRetryPolicy:
    """Retry with delays growing by `multiplier`, capped at `max_delay`.

    With `jitter` each delay is drawn uniformly from [delay/2, delay], so
    many failing runs do not retry in lockstep. Pass `rng` for repeatable
    delays.
    """

    maximum_attempts: int = 5
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: bool = True
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        _check_attempts(self.maximum_attempts)
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("need initial_delay >= 0, max_delay >= 0 and multiplier >= 1")

    def next(self, elapsed_time: float, attempts: int, error: Exception) -> float | None:
        """Return the capped exponential delay for failure number `attempts`."""
        if attempts >= self.maximum_attempts:
            return None
        delay = min(self.max_delay, self.initial_delay * self.multiplier ** (attempts - 1))
        if self.jitter:
            delay = (self.rng or random).uniform(delay / 2, delay)
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
