"""`MemoryStore`: run records kept in this process's memory."""

from __future__ import annotations

from collections import OrderedDict

from fanflow._runtime.records import Record, RecordKind

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps the records of every running run and of the last `max_runs` finished ones.

    ``max_runs=None`` keeps everything (memory grows with every run).
    """

    def __init__(self, max_runs: int | None = 16) -> None:
        if max_runs is not None and max_runs < 1:
            raise ValueError(f"max_runs must be >= 1 or None, got {max_runs}")
        self.max_runs = max_runs
        self._runs: OrderedDict[str, list[Record]] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()

    def append(self, record: Record) -> None:
        """Keep `record`; forget the oldest finished run beyond `max_runs`."""
        records = self._runs.get(record.run_id)
        if records is None:
            records = self._runs[record.run_id] = []
        records.append(record)
        if record.kind is RecordKind.RUN_FINISHED and self.max_runs is not None:
            self._finished[record.run_id] = None
            while len(self._finished) > self.max_runs:
                old, _ = self._finished.popitem(last=False)
                del self._runs[old]

    def records(self, run_id: str) -> list[Record]:
        """Return the records of `run_id` in order; KeyError if unknown or forgotten."""
        try:
            return list(self._runs[run_id])
        except KeyError:
            raise KeyError(f"no records for run {run_id!r} in this MemoryStore") from None

    def run_ids(self) -> list[str]:
        """Return the ids of the runs held, oldest first."""
        return list(self._runs)
