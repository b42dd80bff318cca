"""JSON for records and events, never pickle.

An event is stored as its registered name (``module:Qualname``) and its
pydantic data; every `Event` subclass registers itself when defined. A
record becomes a row of plain JSON values (`record_to_row`) and back
(`row_to_record`); errors name the run and the record that failed.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from fanflow._runtime.records import Record, RecordKind
from fanflow.errors import SerializationError
from fanflow.events import Event, lookup_type, type_name

__all__ = [
    "SCHEMA_VERSION",
    "event_from_json",
    "event_to_json",
    "record_to_row",
    "record_to_text_row",
    "row_to_record",
]

# Version of the row format below; stores keep it in their tables and refuse
# a database written by a newer fanflow.
SCHEMA_VERSION = 1


def _jsonable(value: Any, what: str) -> Any:
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError as exc:
        raise SerializationError(f"{what} is not JSON-serializable: {exc}") from None


def event_to_json(event: Event) -> dict[str, Any]:
    """Return ``{"type": name, "data": {...}}`` for `event`."""
    name = type_name(type(event))
    return {"type": name, "data": _jsonable(event.model_dump(), f"event {name}")}


def event_from_json(payload: Any, where: str = "record") -> Event:
    """Rebuild an event from `event_to_json` output; `where` names it in errors."""
    if not isinstance(payload, dict) or "type" not in payload:
        raise SerializationError(f"{where}: malformed event {payload!r:.80}")
    event_type = lookup_type(payload["type"])
    if event_type is None:
        raise SerializationError(
            f"{where}: unknown event type {payload['type']!r}; import the module that "
            "defines it (and its workflow) before loading the run"
        )
    try:
        return event_type.model_validate(payload.get("data") or {})
    except ValidationError as exc:
        raise SerializationError(f"{where}: {payload['type']} does not validate: {exc}") from None


def _error_to_json(error: BaseException | None) -> dict[str, str] | None:
    if error is None:
        return None
    return {"type": f"{type(error).__module__}.{type(error).__qualname__}", "message": str(error)}


class RecordedError(Exception):
    """An error loaded from a record; the original type is named in `type_name`."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"RecordedError({self.type_name}: {self.args[0]!r})"


def _data_to_json(record: Record, where: str) -> Any:
    data = record.data
    if record.kind is RecordKind.STATE_CHANGED:
        path, value = data
        return {"path": path, "value": _jsonable(value, f"{where}: state value")}
    if isinstance(data, BaseModel):
        return _jsonable(data, f"{where}: data")
    if record.kind is RecordKind.RUN_FINISHED and isinstance(data, dict):
        return _jsonable(data, f"{where}: result")
    return _jsonable(data, f"{where}: data")


def _data_from_json(kind: RecordKind, data: Any) -> Any:
    if kind is RecordKind.STATE_CHANGED:
        return (data["path"], data["value"])
    if kind is RecordKind.WAIT_STARTED and isinstance(data, list):
        return tuple(data)
    return data


def record_to_row(record: Record) -> dict[str, Any]:
    """Return `record` as a dict of JSON-ready values (one database row)."""
    where = f"run {record.run_id} record {record.seq} ({record.kind.value})"
    return {
        "run_id": record.run_id,
        "seq": record.seq,
        "kind": record.kind.value,
        "at": record.at,
        "step": record.step,
        "invocation": record.invocation,
        "event_id": record.event_id,
        "event": None if record.event is None else event_to_json(record.event),
        "data": _data_to_json(record, where),
        "error": _error_to_json(record.error),
    }


JSON_COLUMNS = ("event", "data", "error")


def record_to_text_row(record: Record) -> dict[str, Any]:
    """Return `record_to_row` with the JSON columns as JSON text, as stores keep them."""
    row = record_to_row(record)
    for column in JSON_COLUMNS:
        row[column] = json.dumps(row[column])
    return row


def row_to_record(row: dict[str, Any]) -> Record:
    """Rebuild a `Record` from `record_to_row` output (JSON columns may be strings)."""
    where = f"run {row.get('run_id')} record {row.get('seq')}"
    try:
        kind = RecordKind(row["kind"])
        event = _maybe_json(row.get("event"))
        error = _maybe_json(row.get("error"))
        return Record(
            run_id=row["run_id"],
            seq=int(row["seq"]),
            kind=kind,
            at=float(row["at"]),
            step=row.get("step"),
            invocation=row.get("invocation"),
            event_id=row.get("event_id"),
            event=None if event is None else event_from_json(event, where),
            data=_data_from_json(kind, _maybe_json(row.get("data"))),
            error=None if error is None else RecordedError(error["type"], error["message"]),
        )
    except SerializationError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise SerializationError(f"{where}: malformed record ({exc!r})") from None


def _maybe_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value
