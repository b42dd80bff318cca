"""JSON for records, events and values, never pickle; nothing is imported because a row says so.

An event is stored as its registered name (``module:Qualname``) and its
fields. Values (event fields, state, wait requirements) keep their type
(see `fanflow._values`): what cannot come back as itself is refused when
written (`check_event`, `check_state_value`), never silently changed.

A record becomes a row of plain JSON values (`record_to_row`) and back
(`row_to_record`), which checks the row's shape so that a malformed row
raises `SerializationError` naming the run and the sequence number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fanflow._runtime.records import Record, RecordKind
from fanflow._values import (
    MAX_DEPTH,
    Malformed,
    Refused,
    Unjournaled,
    Unloaded,
    UnloadedEvent,
    advice,
    check_event,
    check_state_value,
    event_fields,
    make_event,
    value_from_json,
    value_to_json,
)
from fanflow.errors import SerializationError, StoreError
from fanflow.events import Event, type_name

__all__ = [
    "MAX_DEPTH",
    "SCHEMA_VERSION",
    "RecordedError",
    "Unjournaled",
    "Unloaded",
    "UnloadedEvent",
    "check_event",
    "check_history",
    "check_state_value",
    "event_from_json",
    "event_to_json",
    "not_resumable",
    "record_to_row",
    "record_to_text_row",
    "row_to_record",
    "value_from_json",
    "value_to_json",
]

# Version of the row format and tables; stores keep it in their tables and
# refuse a database written by a newer fanflow. 2: typed values, lease epochs.
SCHEMA_VERSION = 2

K = RecordKind


class RecordedError(Exception):
    """An error loaded from a record; the original type is named in `type_name`."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"RecordedError({self.type_name}: {self.args[0]!r})"


# ---------------------------------------------------------------- events


def event_to_json(event: Event) -> dict[str, Any]:
    """Return ``{"type": name, "data": {field: value}}`` for `event`."""
    name = type_name(type(event))
    try:
        return {"type": name, "data": event_fields(event, 0)}
    except Refused as exc:
        raise SerializationError(f"event {name} is not journalable: {advice(exc)}") from None


def event_from_json(payload: Any, where: str = "record", *, loose: bool = False) -> Event:
    """Rebuild an event from `event_to_json` output; `where` names it in errors."""
    if not isinstance(payload, dict) or type(payload.get("type")) is not str:
        raise SerializationError(f"{where}: malformed event {payload!r:.80}")
    data = payload.get("data")
    data = {} if data is None else data
    if type(data) is not dict:
        raise SerializationError(f"{where}: malformed event {payload!r:.80}")
    fields = value_from_json(data, where, loose=loose)
    try:
        return make_event(payload["type"], fields, loose)
    except Malformed as exc:
        raise SerializationError(f"{where}: malformed event ({exc})") from None
    except SerializationError as exc:
        raise SerializationError(f"{where}: {exc}") from None


# ---------------------------------------------------------------- records


def _error_to_json(error: BaseException | None) -> dict[str, str] | None:
    if error is None:
        return None
    if isinstance(error, RecordedError):
        return {"type": error.type_name, "message": str(error)}
    return {"type": f"{type(error).__module__}.{type(error).__qualname__}", "message": str(error)}


# Records whose data is a tuple of the engine's: stored as a JSON list.
TUPLE_KINDS = (K.WAIT_STARTED, K.COLLECTED)
_TUPLES = TUPLE_KINDS


def data_to_json(record: Record, where: str) -> Any:
    """Return the JSON of `record.data` (STATE_CHANGED as ``{"path", "value"}``)."""
    data = record.data
    if record.kind is K.STATE_CHANGED:
        path, value = data
        return {"path": path, "value": value_to_json(value, f"{where}: state value")}
    if record.kind in _TUPLES and type(data) is tuple:
        return [value_to_json(item, f"{where}: data") for item in data]
    return value_to_json(data, f"{where}: data")


def record_to_row(record: Record) -> dict[str, Any]:
    """Return `record` as a dict of JSON-ready values (one database row)."""
    where = f"run {record.run_id} record {record.seq} ({record.kind.value})"
    event = record.event
    if event is None:
        event_json = None
    else:
        try:
            event_json = event_to_json(event)
        except SerializationError as exc:
            raise SerializationError(f"{where}: {exc}") from None
    return {
        "run_id": record.run_id,
        "seq": record.seq,
        "kind": record.kind.value,
        "at": record.at,
        "step": record.step,
        "invocation": record.invocation,
        "event_id": record.event_id,
        "event": event_json,
        "data": data_to_json(record, where),
        "error": _error_to_json(record.error),
    }


JSON_COLUMNS = ("event", "data", "error")


def record_to_text_row(record: Record) -> dict[str, Any]:
    """Return `record_to_row` with the JSON columns as JSON text, as stores keep them."""
    row = record_to_row(record)
    for column in JSON_COLUMNS:
        row[column] = json.dumps(row[column])
    return row


def row_to_record(row: dict[str, Any], *, loose: bool = False) -> Record:
    """Rebuild a `Record` from `record_to_row` output (JSON columns may be strings).

    The row's shape is checked for its kind: anything fanflow would not
    have written raises `SerializationError` naming the run and the record.
    With `loose`, events, models and enums of types not imported come back
    as placeholders (`UnloadedEvent`, `Unloaded`): for display only.
    """
    where = f"run {row.get('run_id')} record {row.get('seq')}"
    try:
        record = _row_to_record(row, where, loose)
        _check_shape(record)
    except (SerializationError, StoreError):
        raise
    except (KeyError, ValueError, TypeError, AttributeError, Malformed) as exc:
        raise SerializationError(f"{where}: malformed record ({exc!r:.200})") from None
    except RecursionError:
        raise SerializationError(f"{where}: malformed record (nested too deeply)") from None
    return record


_ERROR_KEYS = ("type", "message")


def _row_to_record(row: dict[str, Any], where: str, loose: bool) -> Record:
    kind = RecordKind(row["kind"])
    event = _maybe_json(row.get("event"))
    error = _maybe_json(row.get("error"))
    if error is not None:
        if type(error) is not dict or not all(type(error.get(k)) is str for k in _ERROR_KEYS):
            raise Malformed(f"error {error!r:.80}")
        error = RecordedError(error["type"], error["message"])
    return Record(
        run_id=_text(row["run_id"], "run_id"),
        seq=_int(row["seq"], "seq"),
        kind=kind,
        at=_number(row["at"]),
        step=_optional(row.get("step"), str, "step"),
        invocation=_optional(row.get("invocation"), int, "invocation"),
        event_id=_optional(row.get("event_id"), int, "event_id"),
        event=None if event is None else event_from_json(event, where, loose=loose),
        data=_data_from_json(kind, _maybe_json(row.get("data")), where, loose),
        error=error,
    )


def _text(value: Any, name: str) -> str:
    if type(value) is not str:
        raise Malformed(f"{name} is {value!r:.40}")
    return value


def _int(value: Any, name: str) -> int:
    if type(value) is not int:
        raise Malformed(f"{name} is {value!r:.40}, not an integer")
    return value


def _number(value: Any) -> float:
    if type(value) not in (int, float):
        raise Malformed(f"at is {value!r:.40}, not a number")
    return float(value)


def _optional(value: Any, kind: type, name: str) -> Any:
    if value is not None and type(value) is not kind:
        raise Malformed(f"{name} is {value!r:.40}")
    return value


def _data_from_json(kind: RecordKind, data: Any, where: str, loose: bool) -> Any:
    if kind is K.STATE_CHANGED:
        if type(data) is not dict or set(data) != {"path", "value"}:
            raise Malformed("state change is not {path, value}")
        value = value_from_json(data["value"], f"{where}: state value", loose=loose)
        return (_optional(data["path"], str, "state path"), value)
    value = value_from_json(data, f"{where}: data", loose=loose)
    if kind in _TUPLES and type(value) is list:
        return tuple(value)
    return value


_NEEDS: dict[RecordKind, tuple[str, ...]] = {
    K.EVENT_EMITTED: ("event_id", "event"),
    K.STEP_STARTED: ("step", "invocation", "event_id"),
    K.STEP_FINISHED: ("invocation",),
    K.STEP_FAILED: ("invocation",),
    K.WAIT_STARTED: ("step", "invocation"),
    K.WAIT_RESOLVED: ("invocation", "event_id"),
    K.COLLECT_ADDED: ("step", "event_id"),
    K.COLLECTED: ("step",),
    K.STREAMED: ("event",),
}


def _check_shape(record: Record) -> None:
    """Raise `Malformed` if `record` lacks what its kind always has (what resume reads)."""
    missing = [name for name in _NEEDS.get(record.kind, ()) if getattr(record, name) is None]
    if missing:
        raise Malformed(f"{record.kind.value} without {', '.join(missing)}")
    data = record.data
    if record.kind is K.COLLECTED and not (
        type(data) is tuple
        and len(data) == 2
        and (data[0] is None or type(data[0]) is str)
        and type(data[1]) is list
        and all(type(i) is int for i in data[1])
    ):
        raise Malformed("collected is not (buffer id, [event ids])")
    if record.kind is K.WAIT_STARTED and not (
        type(data) is tuple and len(data) == 2 and type(data[0]) is str
    ):
        raise Malformed("wait_started is not (event type, requirements)")
    named = data is None or type(data) is str
    if record.kind in (K.EVENT_EMITTED, K.COLLECT_ADDED) and not named:
        raise Malformed(f"{record.kind.value} data is not a step or buffer name")


def _maybe_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def check_history(run_id: str, records: Sequence[Record]) -> None:
    """Raise `StoreError` unless `records` are run `run_id`'s whole history, seq 1, 2, 3, ...

    A gap, or a history that does not begin with RUN_STARTED at seq 1 (its
    beginning was cut off), names the run and the first sequence number
    that is wrong.
    """
    for expected, record in enumerate(records, 1):
        if record.seq != expected:
            problem = "is missing" if record.seq > expected else "comes twice"
            raise StoreError(
                f"run {run_id}: record {expected} {problem} (the next stored record is "
                f"{record.seq}); its history is not contiguous, so it cannot be read or resumed"
            )
    if records and records[0].kind is not K.RUN_STARTED:
        raise StoreError(
            f"run {run_id}: record 1 is {records[0].kind.value}, not run_started; "
            "the beginning of its history is missing"
        )


def not_resumable(records: Sequence[Record]) -> str | None:
    """Return why a run with `records` cannot be resumed (a state value not journaled), or None."""
    for record in records:
        if record.kind is K.STATE_CHANGED and isinstance(record.data[1], Unjournaled):
            path = record.data[0] or "(the whole state)"
            return (
                f"its state {path} held {record.data[1].description}, which was not journaled "
                f"(record {record.seq}); keep such objects in a Resource, not in the state"
            )
    return None
