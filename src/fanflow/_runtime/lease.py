"""A run's lease on a durable store: who may drive it, renewed while it runs."""

from __future__ import annotations

import asyncio
import os
from typing import Any

__all__ = ["LEASE_TTL", "Lease", "new_holder"]

LEASE_TTL = 30.0  # seconds a lease outlives its last renewal


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
