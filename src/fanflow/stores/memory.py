"""`MemoryStore`: run records kept in this process's memory."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence

from fanflow._runtime.records import Record, RecordKind, RunInfo
from fanflow.errors import LeaseError, StoreError

__all__ = ["MemoryStore"]

_RUN_FINISHED = RecordKind.RUN_FINISHED


class MemoryStore:
    """Keeps the records of every running run and of the last `max_runs` finished ones.

    ``max_runs=None`` keeps every run (memory grows with every run). Each run
    keeps at most its last `max_records` records (None: all); asking for a
    history that lost records to the cap (``records()``, a resume,
    ``ctx.to_dict()``) raises `StoreError` rather than returning part of it.
    Not durable: the records are gone with the process.

    `subscribe` follows a run's records live. Each subscriber gets a queue of
    its own, bounded by `max_records`: a subscriber that falls further behind
    than that gets `StoreError` instead of the records it missed, so a slow
    reader never makes the store hold more.
    """

    durable = False

    def __init__(self, max_runs: int | None = 16, max_records: int | None = 100_000) -> None:
        if max_runs is not None and max_runs < 1:
            raise ValueError(f"max_runs must be >= 1 or None, got {max_runs}")
        if max_records is not None and max_records < 1:
            raise ValueError(f"max_records must be >= 1 or None, got {max_records}")
        self.max_runs = max_runs
        self.max_records = max_records
        self._runs: OrderedDict[str, _Kept] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._leases: dict[str, tuple[str, float]] = {}

    def write(self, records: Sequence[Record]) -> None:
        """Keep a batch of one run's records; forget the oldest finished run beyond `max_runs`."""
        run_id = records[0].run_id
        kept = self._runs.get(run_id)
        if kept is None:
            kept = self._runs[run_id] = _Kept(self.max_records)
            kept.first = records[0]
        held = kept.records
        if held.maxlen is not None and len(held) + len(records) > held.maxlen:
            kept.dropped += len(held) + len(records) - held.maxlen
        held.extend(records)
        if kept.subscribers:
            kept.publish(records)
        if records[-1].kind is _RUN_FINISHED and self.max_runs is not None:
            self._finished[run_id] = None
            while len(self._finished) > self.max_runs:
                old, _ = self._finished.popitem(last=False)
                del self._runs[old]

    def append(self, record: Record) -> None:
        """Keep one record (same as ``write([record])``)."""
        self.write([record])

    def records(self, run_id: str) -> list[Record]:
        """Return the records of `run_id` in order; KeyError if unknown or forgotten.

        `StoreError` if the run lost its oldest records to `max_records`.
        """
        kept = self._kept(run_id)
        if kept.dropped:
            raise StoreError(
                f"run {run_id}: this MemoryStore kept only its last {len(kept.records)} records "
                f"(max_records={self.max_records}); records 1 to {kept.dropped} are gone. Use "
                "MemoryStore(max_records=None) or a durable store to keep whole histories"
            )
        return list(kept.records)

    def _kept(self, run_id: str) -> _Kept:
        try:
            return self._runs[run_id]
        except KeyError:
            raise KeyError(f"no records for run {run_id!r} in this MemoryStore") from None

    def subscribe(self, run_id: str, after: int = 0) -> AsyncIterator[Record]:
        """Iterate over `run_id`'s records with ``seq > after``: those kept, then live ones.

        The iteration ends after the run's RUN_FINISHED record. KeyError if
        the store holds no record of `run_id` yet.
        """
        kept = self._kept(run_id)
        return kept.follow(after, self.max_records)

    def run_ids(self) -> list[str]:
        """Return the ids of the runs held, oldest first."""
        return list(self._runs)

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Return the runs held, newest first, optionally only those with `status`."""
        infos = [kept.info() for kept in reversed(self._runs.values())]
        infos = [i for i in infos if status is None or i.status == status]
        return infos[:limit] if limit is not None else infos

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        """Take `run_id` for `holder` for `ttl` seconds, unless someone else holds it."""
        now = time.time()
        current = self._leases.get(run_id)
        if current is not None and current[0] != holder and current[1] > now:
            raise LeaseError(
                f"run {run_id} is held by {current[0]} for {current[1] - now:.1f} s more"
            )
        self._leases[run_id] = (holder, now + ttl)

    def release_lease(self, run_id: str, holder: str) -> None:
        """Give `run_id` back if `holder` holds it."""
        if self._leases.get(run_id, ("", 0.0))[0] == holder:
            del self._leases[run_id]

    def close(self) -> None:
        """Do nothing: memory needs no closing."""


class _Kept:
    """One run's kept records and its live subscribers."""

    __slots__ = ("dropped", "first", "records", "subscribers")

    def __init__(self, max_records: int | None) -> None:
        self.records: deque[Record] = deque(maxlen=max_records)
        self.dropped = 0  # records lost to the cap, oldest first
        self.first: Record | None = None  # RUN_STARTED, kept for listings
        self.subscribers: list[_Subscriber] = []

    def publish(self, records: Sequence[Record]) -> None:
        for subscriber in self.subscribers:
            subscriber.push(records)

    def info(self) -> RunInfo:
        first = self.first if self.first is not None else self.records[0]
        return _info(first, self.records[-1])

    async def follow(self, after: int, limit: int | None) -> AsyncIterator[Record]:
        subscriber = _Subscriber(limit)
        backlog = [r for r in self.records if r.seq > after]
        if self.dropped and after < self.dropped:
            raise StoreError(
                f"run {self.records[0].run_id}: records {after + 1} to {self.dropped} were "
                "dropped by the MemoryStore's max_records; subscribe from a later seq"
            )
        finished = bool(self.records) and self.records[-1].kind is _RUN_FINISHED
        if not finished:
            self.subscribers.append(subscriber)
        try:
            for record in backlog:
                yield record
            if finished:
                return
            last = backlog[-1].seq if backlog else after
            async for record in subscriber.drain():
                if record.seq > last:
                    yield record
                    if record.kind is _RUN_FINISHED:
                        return
        finally:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)


class _Subscriber:
    """A bounded queue of records for one reader; overflowing it fails the reader."""

    __slots__ = ("_limit", "_overflowed", "_queue", "_wakeup")

    def __init__(self, limit: int | None) -> None:
        self._queue: deque[Record] = deque()
        self._limit = limit
        self._overflowed = False
        self._wakeup: asyncio.Future[None] | None = None

    def push(self, records: Sequence[Record]) -> None:
        if self._overflowed:
            return
        self._queue.extend(records)
        if self._limit is not None and len(self._queue) > self._limit:
            self._overflowed = True
            self._queue.clear()
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def drain(self) -> AsyncIterator[Record]:
        while True:
            while self._queue:
                yield self._queue.popleft()
            if self._overflowed:
                raise StoreError(
                    f"a subscriber fell more than {self._limit} records behind its run and "
                    "was dropped; read faster, or subscribe again from the last seq it saw"
                )
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None


def _info(first: Record, last: Record) -> RunInfo:
    data = first.data
    workflow = data.get("workflow", "?") if isinstance(data, dict) else str(data)
    finished = last.kind is _RUN_FINISHED
    return RunInfo(
        run_id=first.run_id,
        workflow=workflow,
        status=str(last.data) if finished else "running",
        started_at=first.at,
        finished_at=last.at if finished else None,
    )
