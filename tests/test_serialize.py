"""JSON for records and events: round trips, and errors that name the run and record."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import BaseModel
from store_contract import K, sample

from fanflow import Event, Record, RecordKind, StartEvent, StopEvent
from fanflow.errors import SerializationError
from fanflow.serialize import (
    SCHEMA_VERSION,
    RecordedError,
    event_from_json,
    event_to_json,
    record_to_row,
    row_to_record,
)
from fanflow.stores import _rows


class SerializeProbe(Event):
    n: int
    label: str = "x"


class Point(BaseModel):
    x: int
    y: int


def through_text(row: dict[str, Any]) -> dict[str, Any]:
    """Return `row` as a database gives it back: JSON columns as text."""
    return {k: json.dumps(v) if k in ("event", "data", "error") else v for k, v in row.items()}


def test_schema_version_is_a_positive_int() -> None:
    """SCHEMA_VERSION is the integer the stores keep in their tables."""
    assert isinstance(SCHEMA_VERSION, int) and SCHEMA_VERSION >= 1


def test_event_is_stored_by_qualified_name_with_its_data() -> None:
    """An event becomes {"type": "module:Qualname", "data": fields and extras}."""
    payload = event_to_json(SerializeProbe(n=1, extra=[1, 2]))
    assert payload == {
        "type": f"{__name__}:SerializeProbe",
        "data": {"n": 1, "label": "x", "extra": [1, 2]},
    }


def test_event_round_trips_with_extras() -> None:
    """event_from_json rebuilds an equal event of the same type, extras included."""
    event = SerializeProbe(n=3, label="y", note="kept")
    again = event_from_json(json.loads(json.dumps(event_to_json(event))))
    assert type(again) is SerializeProbe and again == event and again["note"] == "kept"


def test_event_from_another_main_module_is_found_by_qualname() -> None:
    """A type saved under __main__ loads by its qualified name when that is unique."""
    again = event_from_json({"type": "__main__:SerializeProbe", "data": {"n": 4}})
    assert again == SerializeProbe(n=4)


def test_unknown_event_type_says_to_import_it() -> None:
    """An event type nobody defined raises SerializationError naming it and what to do."""
    with pytest.raises(SerializationError, match=r"run r1 record 3: unknown event type.*import"):
        event_from_json({"type": "nowhere:Ghost", "data": {}}, "run r1 record 3")


def test_event_that_does_not_validate_names_its_type() -> None:
    """Stored data that no longer fits the event type raises SerializationError naming it."""
    with pytest.raises(SerializationError, match="SerializeProbe does not validate"):
        event_from_json({"type": f"{__name__}:SerializeProbe", "data": {"n": "many"}})


@pytest.mark.parametrize("payload", [None, [], "text", {"data": {}}])
def test_malformed_event_payload_is_refused(payload: Any) -> None:
    """Something that is not {"type": ..., "data": ...} raises SerializationError."""
    with pytest.raises(SerializationError, match="malformed event"):
        event_from_json(payload, "here")


@pytest.mark.parametrize("kind", list(RecordKind))
def test_every_kind_round_trips_through_json_text(kind: RecordKind) -> None:
    """record_to_row gives plain JSON values; row_to_record rebuilds the record from text."""
    record = sample(kind, "r1", 5)
    again = row_to_record(through_text(record_to_row(record)))
    assert again._replace(error=None) == record._replace(error=None)


def test_row_carries_plain_columns() -> None:
    """A row's plain columns are the record's fields, its kind by value."""
    row = record_to_row(sample(K.STEP_STARTED, "r1", 2))
    assert {k: row[k] for k in ("run_id", "seq", "kind", "step", "invocation", "event_id")} == {
        "run_id": "r1",
        "seq": 2,
        "kind": "step_started",
        "step": "work",
        "invocation": 2,
        "event_id": 1,
    }


def test_error_comes_back_as_recorded_error() -> None:
    """A step's exception is kept as its qualified type name and message."""
    row = record_to_row(sample(K.STEP_FAILED, "r1", 0))
    assert row["error"] == {"type": "builtins.ValueError", "message": "boom"}
    error = row_to_record(through_text(row)).error
    assert isinstance(error, RecordedError)
    assert (error.type_name, str(error)) == ("builtins.ValueError", "boom")
    assert repr(error) == "RecordedError(builtins.ValueError: 'boom')"


def test_state_change_is_stored_as_path_and_value() -> None:
    """STATE_CHANGED data is {"path", "value"} in JSON and a tuple in memory."""
    record = Record("r1", 0, K.STATE_CHANGED, 1.0, data=(None, {"a": [1, {"b": None}]}))
    row = record_to_row(record)
    assert row["data"] == {"path": None, "value": {"a": [1, {"b": None}]}}
    assert row_to_record(through_text(row)).data == (None, {"a": [1, {"b": None}]})


def test_pydantic_data_is_stored_as_its_fields() -> None:
    """A pydantic model in data (or in a state value) is stored as its fields."""
    record = Record("r1", 0, K.STATE_CHANGED, 1.0, data=("p", Point(x=1, y=2)))
    assert record_to_row(record)["data"] == {"path": "p", "value": {"x": 1, "y": 2}}
    stop = Record("r1", 1, K.RUN_FINISHED, 2.0, event=StopEvent(result=Point(x=3, y=4)), data="ok")
    assert record_to_row(stop)["event"]["data"] == {"result": {"x": 3, "y": 4}}


def test_unserializable_state_value_names_the_run_and_record() -> None:
    """A state value JSON cannot hold raises SerializationError naming run, record and kind."""
    record = Record("r9", 4, K.STATE_CHANGED, 1.0, data=("lock", object()))
    with pytest.raises(SerializationError, match=r"run r9 record 4 \(state_changed\): state value"):
        record_to_row(record)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"kind": "no_such_kind"}, "malformed record"),
        ({"at": "later"}, "malformed record"),
        ({"data": '{"path": '}, "malformed record"),
        ({"data": '{"value": 1}'}, "malformed record"),
        ({"event": '{"type": "nowhere:Ghost"}'}, "unknown event type"),
    ],
)
def test_malformed_row_names_the_run_and_record(change: dict[str, Any], problem: str) -> None:
    """A row that cannot be a record raises SerializationError naming run and record."""
    row = through_text(record_to_row(sample(K.STATE_CHANGED, "r1", 7)))
    with pytest.raises(SerializationError, match=rf"run r1 record 7.*{problem}"):
        row_to_record({**row, **change})


def test_missing_column_is_a_malformed_record() -> None:
    """A row without a kind raises SerializationError, not KeyError."""
    row = through_text(record_to_row(sample(K.RUN_STARTED, "r1", 0)))
    del row["kind"]
    with pytest.raises(SerializationError, match="run r1 record 0: malformed record"):
        row_to_record(row)


def test_start_event_round_trips_with_run_arguments() -> None:
    """A StartEvent keeps the keyword arguments of run() as extras."""
    record = Record("r1", 0, K.RUN_STARTED, 1.0, event=StartEvent(query="q", n=3), data="Flow")
    again = row_to_record(through_text(record_to_row(record)))
    assert again.event == StartEvent(query="q", n=3) and again.data == "Flow"


def mixed_records() -> list[Record]:
    """Return records of every kind plus awkward values: unicode, models, big and small floats."""
    odd = [
        Record(
            "r2",
            0,
            K.EVENT_EMITTED,
            1.0,
            event=SerializeProbe(n=1, label='é\u2603"q\\', p=Point(x=1, y=2)),
        ),
        Record("r2", 1, K.STATE_CHANGED, 1.0, data=(None, {"f": [1e16, 1e-7, 0.1, -0.0, 2**70]})),
        Record("r2", 2, K.STATE_CHANGED, 1.0, data=("p", Point(x=3, y=4))),
        Record("r2", 3, K.RUN_FINISHED, 1.0, event=StopEvent(result=Point(x=5, y=6)), data="ok"),
        Record("r2", 4, K.RUN_FINISHED, 1.0, data={"status": "ok", "result": [None, True]}),
        Record("r2", 5, K.WAIT_STARTED, 1.0, data=("m:Answer", {"id": "x"})),
        Record("r2", 6, K.STEP_FAILED, 1.0, error=KeyError("k"), data=0.5),
    ]
    return [sample(kind, "r1", seq) for seq, kind in enumerate(RecordKind)] + odd


@pytest.mark.parametrize("record", mixed_records(), ids=lambda r: f"{r.run_id}-{r.seq}")
def test_store_encoder_writes_what_record_to_row_gives(record: Record) -> None:
    """The stores' one-step encoder gives the JSON of record_to_row, column by column."""
    fast, reference = _rows.encode(record), _rows._encode_row(record)
    assert fast[:7] == reference[:7]
    for got, want in zip(fast[7:], reference[7:], strict=True):
        assert (got is None) == (want is None)
        assert got is None or json.loads(got) == json.loads(want)


def test_store_encoder_keeps_nan_and_infinity() -> None:
    """NaN and infinities in events and state come back as themselves, not None."""
    record = Record(
        "r1", 0, K.STATE_CHANGED, 1.0, event=SerializeProbe(n=1, x=math.inf), data=("v", math.nan)
    )
    again = _rows.decode(_rows.encode(record))
    assert again.event is not None and again.event["x"] == math.inf
    assert math.isnan(again.data[1])


def test_store_encoder_errors_name_the_run_and_record() -> None:
    """A value JSON cannot hold raises the SerializationError of record_to_row."""
    record = Record("r9", 4, K.STATE_CHANGED, 1.0, data=("lock", object()))
    with pytest.raises(SerializationError, match=r"run r9 record 4 \(state_changed\): state value"):
        _rows.encode(record)
    event = Record("r9", 5, K.EVENT_EMITTED, 1.0, event=SerializeProbe(n=1, lock=object()))
    with pytest.raises(SerializationError, match="SerializeProbe is not JSON-serializable"):
        _rows.encode(event)
