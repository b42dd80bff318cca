"""When a run's records reach its store, and who may write them.

`Durability` decides when records are handed to the store: ``"sync"``
writes each record before the run goes on, ``"batched"`` writes the
records of one event-loop turn together, ``"exit"`` writes them when the
run ends (or the process exits cleanly). A run on a durable store holds a
lease on its id, renewed while it runs, so two processes never drive the
same run.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

__all__ = ["DURABILITY_LEVELS", "Durability", "Lease", "check_durability", "new_holder"]

Durability = Literal["sync", "batched", "exit"]
DURABILITY_LEVELS: tuple[str, ...] = ("sync", "batched", "exit")
LEASE_TTL = 30.0  # seconds a lease outlives its last renewal


def check_durability(value: str) -> Durability:
    """Return `value` if it names a durability level; ValueError otherwise."""
    if value not in DURABILITY_LEVELS:
        raise ValueError(f"durability must be one of {', '.join(DURABILITY_LEVELS)}; got {value!r}")
    return value  # type: ignore[return-value]


def new_holder() -> str:
    """Return a lease holder name for this process: ``host:pid:token``."""
    return f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"


class Lease:
    """A run's lease on a durable store, renewed every third of its ttl."""

    def __init__(self, store: Any, run_id: str, ttl: float = LEASE_TTL) -> None:
        self.store = store
        self.run_id = run_id
        self.ttl = ttl
        self.holder = new_holder()
        self._timer: asyncio.TimerHandle | None = None

    def take(self) -> None:
        """Acquire the lease (LeaseError naming the holder if taken) and keep renewing it."""
        self.store.acquire_lease(self.run_id, self.holder, self.ttl)
        self._schedule()

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.ttl / 3, self._renew)

    def _renew(self) -> None:
        self.store.acquire_lease(self.run_id, self.holder, self.ttl)
        self._schedule()

    def release(self) -> None:
        """Stop renewing and give the run back."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.store.release_lease(self.run_id, self.holder)
