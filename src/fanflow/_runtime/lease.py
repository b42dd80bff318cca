"""A run's lease on a durable store: who may drive it, renewed while it runs.

The holder is a random token, new for every lease; the store keeps the
holder's ``host:pid`` beside it for people to read. A task renews the lease
every third of its ttl (less a random part, so that many runs do not renew
in step), retrying sooner after a failure. When the lease is lost (another
process took the run over, or it could not be renewed before it expired)
`on_lost` is called once, on the event loop, with the `LeaseError`: the
process must stop driving the run. The store refuses the run's writes from
then on (it fences them with the lease's epoch), whatever the process does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fanflow.errors import LeaseError

__all__ = ["LEASE_TTL", "Lease", "new_holder"]

LEASE_TTL = 30.0  # seconds a lease outlives its last renewal
RETRIES_PER_TTL = 12  # after a failed renewal, retry every ttl / this


def new_holder() -> str:
    """Return a new lease holder token: 32 random hex digits."""
    return os.urandom(16).hex()


class Lease:
    """A run's lease on a durable store, renewed by a task of its own until released."""

    def __init__(
        self,
        store: Any,
        run_id: str,
        ttl: float = LEASE_TTL,
        on_lost: Callable[[BaseException], None] | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"a lease's ttl must be > 0 seconds, got {ttl!r}")
        self.store = store
        self.run_id = run_id
        self.ttl = ttl
        self.on_lost = on_lost
        self.holder = new_holder()
        self.lost: BaseException | None = None
        self._sleep = sleep
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._expires = 0.0  # by `clock`: when the lease lapses unless renewed

    @property
    def epoch(self) -> int | None:
        """Return the lease's fencing token, if the store keeps one."""
        epoch = getattr(self.store, "lease_epoch", None)
        return None if epoch is None else epoch(self.run_id)

    def take(self) -> None:
        """Acquire the lease (`LeaseError` naming the holder if taken) and keep renewing it."""
        self.renew()
        self._task = asyncio.get_running_loop().create_task(
            self._keep(), name=f"fanflow lease {self.run_id}"
        )

    def renew(self) -> None:
        """Renew the lease once, now; `LeaseError` if it was lost."""
        started = self._clock()
        self.store.acquire_lease(self.run_id, self.holder, self.ttl)
        self._expires = started + self.ttl

    async def _keep(self) -> None:
        delay = self.ttl / 3
        while True:
            await self._sleep(delay * random.uniform(0.8, 1.0))
            try:
                self.renew()
            except LeaseError as exc:
                self._lose(exc)
                return
            except Exception as exc:
                if self._clock() >= self._expires:
                    self._lose(self._lapsed(exc))
                    return
                delay = self.ttl / RETRIES_PER_TTL  # try again soon, before it lapses
            else:
                delay = self.ttl / 3

    def _lapsed(self, exc: BaseException) -> LeaseError:
        error = LeaseError(
            f"run {self.run_id}: its lease could not be renewed within its ttl of {self.ttl} s "
            f"(last error: {type(exc).__name__}: {exc}); another process may take the run "
            "over, so this one stops driving it"
        )
        error.__cause__ = exc
        return error

    def _lose(self, error: BaseException) -> None:
        if self.lost is not None:
            return
        self.lost = error
        if self.on_lost is not None:
            try:
                self.on_lost(error)
            except Exception as exc:  # the callback's bug must not pass unseen
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "Lease on_lost callback failed", "exception": exc}
                )

    def release(self) -> None:
        """Stop renewing and give the run back (nothing to give back if it was lost)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.store.release_lease(self.run_id, self.holder)

    async def aclose(self) -> None:
        """Release the lease and wait for the renewal task to end."""
        task = self._task
        self.release()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
