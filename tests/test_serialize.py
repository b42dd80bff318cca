"""JSON for records and events: round trips, and errors that name the run and record."""

from __future__ import annotations

import enum
import json
import math
import sys
import threading
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel
from store_contract import K, assert_same_types, sample, typed_values

from fanflow import Event, Record, RecordKind, StartEvent, StopEvent
from fanflow._values import find_class
from fanflow.errors import SerializationError, StoreError
from fanflow.serialize import (
    MAX_DEPTH,
    SCHEMA_VERSION,
    RecordedError,
    Unjournaled,
    Unloaded,
    UnloadedEvent,
    check_event,
    check_history,
    check_state_value,
    event_from_json,
    event_to_json,
    not_resumable,
    record_to_row,
    row_to_record,
    value_from_json,
    value_to_json,
)
from fanflow.stores import _rows


class SerializeProbe(Event):
    n: int
    label: str = "x"


class Point(BaseModel):
    x: int
    y: int


def _local_model() -> type[BaseModel]:
    class Local(BaseModel):
        pass

    return Local


Local = _local_model()  # defined in a function: not found again by its name


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


def test_pydantic_data_is_stored_with_its_class() -> None:
    """A pydantic model in a state value or an event field is stored as its class and fields."""
    record = Record("r1", 0, K.STATE_CHANGED, 1.0, data=("p", Point(x=1, y=2)))
    model = {"$t": "model", "cls": f"{__name__}:Point", "v": {"x": 1, "y": 2}}
    assert record_to_row(record)["data"] == {"path": "p", "value": model}
    stop = Record("r1", 1, K.RUN_FINISHED, 2.0, event=StopEvent(result=Point(x=3, y=4)), data="ok")
    assert record_to_row(stop)["event"]["data"]["result"]["v"] == {"x": 3, "y": 4}
    again = row_to_record(through_text(record_to_row(stop)))
    assert again.event is not None and again.event.result == Point(x=3, y=4)


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
        ({"at": None}, "malformed record"),
        ({"seq": "7"}, "malformed record"),
        ({"kind": None}, "malformed record"),
        ({"data": "[" * 200_000 + "]" * 200_000}, "malformed record"),
        ({"data": '{"path": "p", "value": {"$t": "dict", "v": [[[1], 2]]}}'}, "unhashable"),
        ({"data": '{"path": "p", "value": {"$t": "decimal", "v": "abc"}}'}, "malformed value"),
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
            event_id=1,
            event=SerializeProbe(n=1, label='é\u2603"q\\', p=Point(x=1, y=2)),
        ),
        Record("r2", 1, K.STATE_CHANGED, 1.0, data=(None, {"f": [1e16, 1e-7, 0.1, -0.0, 2**70]})),
        Record("r2", 2, K.STATE_CHANGED, 1.0, data=("p", Point(x=3, y=4))),
        Record("r2", 3, K.RUN_FINISHED, 1.0, event=StopEvent(result=Point(x=5, y=6)), data="ok"),
        Record("r2", 4, K.RUN_FINISHED, 1.0, data={"status": "ok", "result": [None, True]}),
        Record("r2", 5, K.WAIT_STARTED, 1.0, "s", 1, data=("m:Answer", {"id": "x"})),
        Record("r2", 6, K.STEP_FAILED, 1.0, "s", 1, error=KeyError("k"), data=0.5),
    ]
    return [sample(kind, "r1", seq) for seq, kind in enumerate(RecordKind)] + odd


@pytest.mark.parametrize("record", mixed_records(), ids=lambda r: f"{r.run_id}-{r.seq}")
def test_store_encoder_writes_what_record_to_row_gives(record: Record) -> None:
    """The stores' encoder gives the JSON of record_to_row, column by column, and decodes back."""
    row = record_to_row(record)
    encoded = _rows.encode(record)
    assert encoded[:7] == tuple(row[c] for c in _rows.COLUMNS[:7])
    for column, text in zip(_rows.COLUMNS[7:], encoded[7:], strict=True):
        assert (text is None) == (row[column] is None)
        assert text is None or json.loads(text) == row[column]
    again = _rows.decode(encoded)
    assert again._replace(error=None) == record._replace(error=None)


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
    with pytest.raises(SerializationError, match=r"run r9 record 5.*SerializeProbe.*\.lock"):
        _rows.encode(event)


# ---------------------------------------------------------------- typed values


class Size(enum.IntEnum):
    S = 1
    L = 3


class Typed(Event):
    when: datetime
    amount: Decimal
    anything: Any = None


@pytest.mark.parametrize("name", sorted(typed_values()))
def test_each_type_round_trips_through_json_text(name: str) -> None:
    """Each supported type comes back as itself from JSON text, nested values too."""
    value = typed_values()[name]
    again = value_from_json(json.loads(json.dumps(value_to_json(value))))
    assert_same_types(again, value)


def test_more_types_round_trip() -> None:
    """time, timedelta, frozenset, IntEnum and events inside values keep their types too."""
    value = [time(1, 2, 3), timedelta(days=2, microseconds=5), frozenset({1}), Size.L]
    value.append(SerializeProbe(n=3, label="in state"))
    again = value_from_json(json.loads(json.dumps(value_to_json(value))))
    assert_same_types(again, value)


def test_event_fields_declared_or_not_keep_their_types() -> None:
    """Declared fields, Any fields and extras of an event all come back with their types."""
    event = Typed(when=datetime(2024, 1, 2, 3), amount=Decimal("2.50"), anything={1, 2}, t=(1,))
    again = event_from_json(json.loads(json.dumps(event_to_json(event))))
    assert type(again) is Typed
    assert_same_types(dict(again.items()), dict(event.items()))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (SerializeProbe(n=1, lock=threading.Lock()), r"field 'lock' holds a _thread\.lock"),
        (StopEvent(result=[1, {"k": object()}]), r"field 'result' holds a builtins\.object at"),
        (StopEvent(result=Local()), r"field 'result' holds a .*Local, whose class cannot be"),
    ],
)
def test_check_event_names_the_field_and_type(event: Event, message: str) -> None:
    """check_event raises SerializationError naming the field and the type that cannot be kept."""
    with pytest.raises(SerializationError, match=rf"event \w+: {message}"):
        check_event(event)


def test_check_event_accepts_what_round_trips() -> None:
    """An event whose fields all round-trip passes check_event."""
    check_event(Typed(when=datetime(2024, 1, 2), amount=Decimal(1), anything=typed_values()))


def test_check_state_value_describes_what_cannot_be_kept() -> None:
    """check_state_value returns None for a journalable value, else what and where it is."""
    assert check_state_value(typed_values()) is None
    problem = check_state_value({"client": [1, threading.Lock()]})
    assert problem == "a _thread.lock at ['client'][1]"
    deep: Any = 1
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    assert "nested more than" in str(check_state_value(deep))


def test_classes_are_looked_up_never_imported() -> None:
    """A model or enum class whose module is not imported raises; the module stays unimported."""
    for tag in ("model", "enum"):
        payload = {"$t": tag, "cls": "xml.dom.minidom:Document", "v": {}}
        with pytest.raises(SerializationError, match=r"xml\.dom\.minidom:Document is not"):
            value_from_json(payload)
    assert "xml.dom.minidom" not in sys.modules
    # A module's __getattr__ (fanflow.stores imports on first use) is never called.
    assert find_class("fanflow.stores:SqliteStore") in (
        None,
        sys.modules["fanflow.stores"].__dict__.get("SqliteStore"),
    )


def test_a_class_of_the_wrong_kind_is_refused() -> None:
    """A stored model name that names a non-model class is refused."""
    with pytest.raises(SerializationError, match="is not a BaseModel class"):
        value_from_json({"$t": "model", "cls": "builtins:dict", "v": {}})


def test_loose_reading_gives_placeholders() -> None:
    """With loose=True, unknown events, models and enums come back as placeholders."""
    row = through_text(record_to_row(sample(K.STATE_CHANGED, "r1", 2)))
    row["event"] = '{"type": "gone:Ghost", "data": {"n": 1}}'
    row["data"] = json.dumps({"path": "p", "value": {"$t": "model", "cls": "gone:M", "v": {}}})
    record = row_to_record(row, loose=True)
    assert isinstance(record.event, UnloadedEvent) and record.event.stored_type == "gone:Ghost"
    assert record.event["n"] == 1
    assert isinstance(record.data[1], Unloaded) and repr(record.data[1]) == "<gone:M {}>"


def test_unjournaled_values_mark_the_run_not_resumable() -> None:
    """A state change of an Unjournaled value round-trips and makes not_resumable say why."""
    records = [
        sample(K.RUN_STARTED, "r1", 1),
        Record("r1", 2, K.STATE_CHANGED, 1.0, data=("db", Unjournaled("a sqlite3.Connection"))),
    ]
    again = [row_to_record(through_text(record_to_row(r))) for r in records]
    assert again[1].data == ("db", Unjournaled("a sqlite3.Connection"))
    reason = not_resumable(again)
    assert reason is not None and "state db held a sqlite3.Connection" in reason
    assert "Resource" in reason and not_resumable(again[:1]) is None


@pytest.mark.parametrize(
    ("seqs", "message"),
    [
        ([1, 2, 4], "record 3 is missing"),
        ([2, 3], "record 1 is missing"),
        ([1, 1], "record 2 comes twice"),
    ],
)
def test_check_history_finds_gaps(seqs: list[int], message: str) -> None:
    """A gap, a cut beginning or a repeat names the run and the sequence number."""
    records = [sample(K.RUN_STARTED if s == 1 else K.STREAMED, "r1", s) for s in seqs]
    with pytest.raises(StoreError, match=f"run r1: {message}"):
        check_history("r1", records)
    check_history("r1", [sample(K.RUN_STARTED, "r1", 1), sample(K.STREAMED, "r1", 2)])
