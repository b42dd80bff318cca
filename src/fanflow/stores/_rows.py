"""Rows of the durable stores: records as column tuples of JSON text, and back.

Both SQL stores keep the same columns; each JSON column is encoded once
into the text `record_to_row` and ``json.dumps`` would give, and handed
back as text to `row_to_record`, which names the run and record of a
malformed row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

from fanflow._runtime.records import Record, RecordKind
from fanflow.events import type_name
from fanflow.serialize import record_to_row, row_to_record

__all__ = [
    "COLUMNS",
    "Row",
    "decode",
    "encode",
    "finished_status",
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

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode(record: Record) -> Row:
    """Return `record` as a tuple of column values (JSON columns as text).

    The text is what ``json.dumps`` makes of `record_to_row`'s columns
    (tests/test_serialize.py holds the two equal), built with pydantic's
    encoder in one step: `write` runs on the event loop, and this is 3-4x
    faster. Whatever that encoder refuses goes through `record_to_row`,
    which raises the `SerializationError` naming the run and record.
    """
    try:
        event = record.event
        if event is None:
            event_text = None
        else:
            data = to_json(event.model_dump()).decode()
            event_text = f'{{"type":"{type_name(type(event))}","data":{data}}}'
        value = record.data
        if record.kind is _STATE_CHANGED:
            path, state = value
            value = {"path": path, "value": state}
        data_text = None if value is None else to_json(value).decode()
    except (PydanticSerializationError, TypeError, ValueError):
        return _encode_row(record)
    error = record.error
    return (
        record.run_id,
        record.seq,
        record.kind._value_,
        record.at,
        record.step,
        record.invocation,
        record.event_id,
        event_text,
        data_text,
        None if error is None else _dumps(record_to_row(record)["error"]),
    )


def _encode_row(record: Record) -> Row:
    row = record_to_row(record)
    return (
        row["run_id"],
        row["seq"],
        row["kind"],
        row["at"],
        row["step"],
        row["invocation"],
        row["event_id"],
        _text(row["event"]),
        _text(row["data"]),
        _text(row["error"]),
    )


def _text(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def decode(values: Sequence[Any]) -> Record:
    """Rebuild a `Record` from column values in `COLUMNS` order."""
    return row_to_record(dict(zip(COLUMNS, values, strict=True)))


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
