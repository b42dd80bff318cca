"""Rows of the durable stores: records as column tuples of JSON text, and back.

Both SQL stores keep the same columns; each JSON column is encoded once
into the text `record_to_row` and ``json.dumps`` would give, and handed
back as text to `row_to_record`, which names the run and record of a
malformed row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic_core import to_json

from fanflow._runtime.records import Record, RecordKind
from fanflow.errors import StoreError
from fanflow.serialize import check_history, record_to_row, row_to_record

__all__ = [
    "COLUMNS",
    "Row",
    "check_batch",
    "decode",
    "encode",
    "finished_status",
    "load",
    "run_updates",
    "started_info",
]

# The columns of fanflow_records, in the order of `encode`'s tuples.
COLUMNS = (
    "run_id",
    "seq",
    "kind",
    "at",
    "step",
    "invocation",
    "event_id",
    "event",
    "data",
    "error",
)

Row = tuple[Any, ...]

_STARTED = RecordKind.RUN_STARTED
_FINISHED = RecordKind.RUN_FINISHED


def _dumps(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()


def encode(record: Record) -> Row:
    """Return `record` as a tuple of column values (JSON columns as text).

    The text is what ``json.dumps`` makes of `record_to_row`'s columns
    (tests/test_serialize.py holds the two equal), written by pydantic's
    encoder, which is several times faster: `write` runs on the event loop.
    """
    row = record_to_row(record)
    return (
        record.run_id,
        record.seq,
        record.kind._value_,
        record.at,
        record.step,
        record.invocation,
        record.event_id,
        _dumps(row["event"]),
        _dumps(row["data"]),
        _dumps(row["error"]),
    )


def decode(values: Sequence[Any], *, loose: bool = False) -> Record:
    """Rebuild a `Record` from column values in `COLUMNS` order."""
    return row_to_record(dict(zip(COLUMNS, values, strict=True)), loose=loose)


def load(run_id: str, rows: Sequence[Sequence[Any]], *, loose: bool = False) -> list[Record]:
    """Return the records of `run_id` from its rows in seq order, checked to be whole.

    A malformed row, a gap or a missing beginning raises `StoreError`
    naming the run and the sequence number.
    """
    records = [decode(row, loose=loose) for row in rows]
    check_history(run_id, records)
    return records


def check_batch(records: Sequence[Record]) -> tuple[str, int]:
    """Return ``(run id, first seq)`` of a batch; `StoreError` unless one run's, contiguous."""
    run_id, first = records[0].run_id, records[0].seq
    for offset, record in enumerate(records):
        if record.run_id != run_id or record.seq != first + offset:
            raise StoreError(
                f"a batch must hold consecutive records of one run: record {offset} of the "
                f"batch is run {record.run_id} record {record.seq}, after run {run_id} "
                f"record {first + offset - 1}"
            )
    return run_id, first


def run_updates(records: Sequence[Record]) -> tuple[list[Row], list[Row]]:
    """Return the fanflow_runs changes a batch makes: ``(started, finished)`` rows.

    A started row is ``(run_id, workflow, source, started_at)``; a finished
    row is ``(status, finished_at, run_id)``.
    """
    started: list[Row] = []
    finished: list[Row] = []
    for record in records:
        if record.kind is _STARTED:
            started.append((record.run_id, *started_info(record), record.at))
        elif record.kind is _FINISHED:
            finished.append((finished_status(record), record.at, record.run_id))
    return started, finished


def started_info(record: Record) -> tuple[str, str | None]:
    """Return ``(workflow, source)`` from a RUN_STARTED record's data.

    The data is ``{"workflow": name, "source": where, ...}``; a plain string
    is taken as the workflow's name.
    """
    data = record.data
    if isinstance(data, dict):
        source = data.get("source")
        return str(data.get("workflow") or "?"), None if source is None else str(source)
    return ("?" if data is None else str(data)), None


def finished_status(record: Record) -> str:
    """Return the status a RUN_FINISHED record ends its run with ("ok", "failed", ...)."""
    data = record.data
    if isinstance(data, dict):
        return str(data.get("status", "?"))
    return str(data)
