"""Follow runs' records: live from the runs this process drives, polled from the others.

`FeedStore` wraps the server's store: every batch a run of this process
writes goes through to the database and is kept in memory, where the
readers of that run are woken at once. A run another process drives (a
replica) is followed by reading its records from the database every
`poll` seconds. Either way a reader gets each record once, in ``seq``
order, from any point: that is what makes an SSE stream resumable from its
last id with nothing lost and nothing repeated.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fanflow._runtime.records import Record, RecordKind, RunInfo, Store

__all__ = ["KEEP_FINISHED", "FeedStore"]

KEEP_FINISHED = 30.0  # seconds a finished run's records stay in memory for late readers
FIRST_SEQ = 1  # a run's first record
LOCAL_RECHECK = 5.0  # a local run that stopped writing (detached, lost) is read again this often


def _seq(record: Record) -> int:
    return record.seq


class FeedStore:
    """A store that writes through to `inner` and wakes the readers of the runs it writes."""

    def __init__(self, inner: Store, *, poll: float = 0.2) -> None:
        self.inner = inner
        self.durable = bool(getattr(inner, "durable", False))
        self.poll = poll
        self._tails: dict[str, list[Record]] = {}
        self._wakers: dict[str, asyncio.Future[None]] = {}

    def __getattr__(self, name: str) -> Any:
        # lease_epoch, workflow_source, ...: whatever else the inner store offers.
        return getattr(self.inner, name)

    def write(self, records: Sequence[Record]) -> None:
        """Commit a batch to the inner store, keep it, and wake the run's readers."""
        if not records:
            return
        self.inner.write(records)
        run_id = records[0].run_id
        tail = self._tails.setdefault(run_id, [])
        if tail and records[0].seq <= tail[-1].seq:
            tail.clear()  # a run taken over again restarts its tail
        tail.extend(records)
        self.wake(run_id)
        if records[-1].kind is RecordKind.RUN_FINISHED:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
                loop.call_later(KEEP_FINISHED, self._tails.pop, run_id, None)

    def written(self, run_id: str) -> bool:
        """Return whether this process has written records of `run_id` (kept in memory)."""
        return run_id in self._tails

    def wake(self, run_id: str) -> None:
        """Wake the readers of `run_id` (new records may be there)."""
        waker = self._wakers.pop(run_id, None)
        if waker is not None and not waker.done():
            waker.set_result(None)

    def records(self, run_id: str) -> list[Record]:
        """Return the records of `run_id`: from memory if this process wrote all of them.

        KeyError if the run is unknown.
        """
        tail = self._tails.get(run_id)
        if tail and tail[0].seq == FIRST_SEQ:
            return list(tail)
        return self.inner.records(run_id)

    def run_ids(self) -> list[str]:
        """Return the inner store's run ids."""
        return self.inner.run_ids()

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Return the inner store's runs, newest first."""
        return self.inner.list_runs(status=status, limit=limit)

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        """Take the run's lease in the inner store."""
        self.inner.acquire_lease(run_id, holder, ttl)

    def release_lease(self, run_id: str, holder: str) -> None:
        """Give the run's lease back in the inner store."""
        self.inner.release_lease(run_id, holder)

    def close(self) -> None:
        """Close the inner store."""
        self.inner.close()

    def since(self, run_id: str, after: int) -> list[Record]:
        """Return the records of `run_id` with ``seq > after``: from memory if it has them."""
        tail = self._tails.get(run_id)
        if tail and tail[0].seq <= max(after, 0) + 1:
            if after < tail[0].seq:
                return list(tail)
            return tail[bisect.bisect_right(tail, after, key=_seq) :]
        try:
            records = self.inner.records(run_id)
        except KeyError:
            return []
        return records[bisect.bisect_right(records, after, key=_seq) :]

    async def follow(self, run_id: str, after: int, local: bool) -> AsyncIterator[Record]:
        """Yield the records of `run_id` with ``seq > after``, live, through RUN_FINISHED.

        `local` says whether this process drives the run (readers are woken
        by its writes) or another does (the database is polled).
        """
        while True:
            waker = self._wakers.get(run_id)
            if waker is None or waker.done():
                waker = self._wakers[run_id] = asyncio.get_running_loop().create_future()
            for record in self.since(run_id, after):
                yield record
                after = record.seq
                if record.kind is RecordKind.RUN_FINISHED:
                    return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(waker), LOCAL_RECHECK if local else self.poll)
            local = local and run_id in self._tails
