"""`MemoryStore`: run records kept in this process's memory."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from fanflow._runtime.records import Record, RecordKind

__all__ = ["MemoryStore"]

_RUN_FINISHED = RecordKind.RUN_FINISHED


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
