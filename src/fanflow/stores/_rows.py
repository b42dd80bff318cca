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
from fanflow._values import Refused, event_fields, tag
from fanflow.errors import StoreError
from fanflow.events import type_name
from fanflow.serialize import TUPLE_KINDS, check_history, record_to_row, row_to_record

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
_STATE_CHANGED = RecordKind.STATE_CHANGED


def _dumps(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()


def encode(record: Record) -> Row:
    """Return `record` as a tuple of column values (JSON columns as text).

    The text is what ``json.dumps`` makes of `record_to_row`'s columns
    (tests/test_serialize.py holds the two equal), built without the row
    dict and written by pydantic's encoder: `write` runs on the event loop.
    A value that cannot be journaled goes through `record_to_row`, which
    raises the `SerializationError` naming the run and record.
    """
    try:
        event = record.event
        if event is None:
            event_text = None
        else:
            fields = to_json(event_fields(event, 0)).decode()
            event_text = f'{{"type":{to_json(type_name(type(event))).decode()},"data":{fields}}}'
        data = record.data
        kind = record.kind
        if data is None:
            data_text = None
        elif kind is _STATE_CHANGED:
            data_text = to_json({"path": data[0], "value": tag(data[1])}).decode()
        elif kind in TUPLE_KINDS and type(data) is tuple:
            data_text = to_json([tag(item) for item in data]).decode()
        else:
            data_text = to_json(tag(data)).decode()
    except Refused:
        record_to_row(record)  # raises, naming the run and the record
        raise
    error = record.error
    return (
        record.run_id,
        record.seq,
        kind._value_,
        record.at,
        record.step,
        record.invocation,
        record.event_id,
        event_text,
        data_text,
        None if error is None else _dumps(record_to_row(record)["error"]),
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
