"""`MemoryStore`: run records kept in this process's memory."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from fanflow._runtime.records import Record, RecordKind, RunInfo
from fanflow.errors import LeaseError

__all__ = ["MemoryStore"]

_RUN_FINISHED = RecordKind.RUN_FINISHED


class MemoryStore:
    """Keeps the records of every running run and of the last `max_runs` finished ones.

    ``max_runs=None`` keeps everything (memory grows with every run). Not
    durable: the records are gone with the process.
    """

    durable = False

    def __init__(self, max_runs: int | None = 16) -> None:
        if max_runs is not None and max_runs < 1:
            raise ValueError(f"max_runs must be >= 1 or None, got {max_runs}")
        self.max_runs = max_runs
        self._runs: OrderedDict[str, list[Record]] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._leases: dict[str, tuple[str, float]] = {}

    def write(self, records: Sequence[Record]) -> None:
        """Keep a batch of one run's records; forget the oldest finished run beyond `max_runs`."""
        run_id = records[0].run_id
        try:
            self._runs[run_id].extend(records)
        except KeyError:
            self._runs[run_id] = list(records)
        if records[-1].kind is _RUN_FINISHED and self.max_runs is not None:
            self._finished[run_id] = None
            while len(self._finished) > self.max_runs:
                old, _ = self._finished.popitem(last=False)
                del self._runs[old]

    def append(self, record: Record) -> None:
        """Keep one record (same as ``write([record])``)."""
        self.write([record])

    def records(self, run_id: str) -> list[Record]:
        """Return the records of `run_id` in order; KeyError if unknown or forgotten."""
        try:
            return list(self._runs[run_id])
        except KeyError:
            raise KeyError(f"no records for run {run_id!r} in this MemoryStore") from None

    def run_ids(self) -> list[str]:
        """Return the ids of the runs held, oldest first."""
        return list(self._runs)

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Return the runs held, newest first, optionally only those with `status`."""
        infos = [_info(records) for records in reversed(self._runs.values())]
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


def _info(records: list[Record]) -> RunInfo:
    first, last = records[0], records[-1]
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
