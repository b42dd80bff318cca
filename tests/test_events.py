"""Events: typed fields, extras readable like attributes and dict entries."""

from datetime import datetime, timezone

import pydantic
import pytest

from fanflow import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StateError,
    StopEvent,
    UnreconstructedException,
)
from fanflow.events import (
    InternalDispatchEvent,
    StepFailedEvent,
    StepState,
    StepStateChanged,
    WorkflowCancelledEvent,
    WorkflowFailedEvent,
    WorkflowTimedOutEvent,
)


class Greeting(Event):
    name: str
    excited: bool = False


def test_declared_fields_are_validated():
    """A declared field rejects a value of the wrong type."""
    with pytest.raises(pydantic.ValidationError, match="name"):
        Greeting(name=["not", "a", "string"])


def test_extra_keywords_read_as_attributes():
    """An undeclared keyword is kept and reads like a field."""
    ev = Event(topic="weather", count=3)

    assert (ev.topic, ev.count) == ("weather", 3)


def test_get_returns_field_extra_or_default():
    """`ev.get(k, default)` reads fields and extras and falls back to the default."""
    ev = Greeting(name="Ada", mood="happy")

    assert ev.get("name") == "Ada"
    assert ev.get("mood") == "happy"
    assert ev.get("missing", "none") == "none"
    assert ev.get("missing") is None


def test_getitem_reads_fields_and_extras():
    """`ev[k]` reads declared fields and extras alike."""
    ev = Greeting(name="Ada", mood="happy")

    assert (ev["name"], ev["excited"], ev["mood"]) == ("Ada", False, "happy")


def test_getitem_missing_key_raises_keyerror_naming_key():
    """`ev[k]` for an unknown key raises KeyError naming the event and the key."""
    with pytest.raises(KeyError, match=r"Greeting has no field 'mood'"):
        Greeting(name="Ada")["mood"]


def test_setitem_adds_an_extra():
    """`ev[k] = v` stores a value readable as an attribute."""
    ev = Event()
    ev["topic"] = "news"

    assert ev.topic == "news"


def test_in_sees_fields_and_extras():
    """`in` finds declared fields and extras alike."""
    ev = Greeting(name="Ada", mood="happy")

    assert "mood" in ev and "name" in ev and "other" not in ev


def test_mapping_views_cover_the_extras():
    """keys(), values(), items(), len() and iteration cover the extras, as in the reference."""
    ev = Greeting(name="Ada", mood="happy", tone="warm")

    assert list(ev.keys()) == ["mood", "tone"] == list(ev)
    assert list(ev.values()) == ["happy", "warm"]
    assert dict(ev.items()) == {"mood": "happy", "tone": "warm"}
    assert len(ev) == 2


def test_to_dict_returns_the_extras_and_model_dump_everything():
    """to_dict() returns the extras; model_dump() has the declared fields too."""
    ev = Greeting(name="Ada", mood="happy")

    assert ev.to_dict() == {"mood": "happy"}
    assert ev.model_dump() == {"name": "Ada", "excited": False, "mood": "happy"}


def test_data_is_the_live_dict_of_extras():
    """ev._data holds the extras; setting an unknown attribute adds one."""
    ev = Greeting(name="Ada")
    ev.mood = "calm"

    assert ev._data == {"mood": "calm"}
    del ev._data["mood"]
    assert "mood" not in ev


def test_private_attributes_can_be_given_as_keywords():
    """A PrivateAttr given as a keyword is set, not kept as an extra."""

    class Secretive(Event):
        _token: str = pydantic.PrivateAttr(default="")

    ev = Secretive(_token="t", shown=1)

    assert ev._token == "t"
    assert ev.to_dict() == {"shown": 1}


def test_stop_event_dump_and_repr_leave_out_an_empty_result():
    """A StopEvent subclass without a result dumps and prints only its own fields."""

    class Done(StopEvent):
        answer: int

    assert Done(answer=42).model_dump() == {"answer": 42}
    assert repr(Done(answer=42)) == "Done(answer=42)"
    assert repr(StopEvent(result=1, note="n")) == "StopEvent(note='n', result=1)"


def test_event_without_fields_is_truthy():
    """An event with no fields is still truthy (so `if ev:` means 'is there an event')."""
    assert bool(Event())


def test_start_event_keeps_keywords_as_attributes():
    """A plain StartEvent keeps any keyword, as run(**kwargs) relies on."""
    ev = StartEvent(query="What is fanflow?", limit=2)

    assert (ev.query, ev.limit) == ("What is fanflow?", 2)


def test_stop_event_result_defaults_to_none():
    """StopEvent() carries result None."""
    assert StopEvent().result is None


def test_stop_event_result_is_kept_as_the_same_object():
    """StopEvent keeps its result object as given, not a copy."""
    payload = {"rows": [1, 2, 3]}

    assert StopEvent(result=payload).result is payload


def test_human_in_the_loop_events_take_extras():
    """InputRequiredEvent and HumanResponseEvent carry free-form fields."""
    question = InputRequiredEvent(prefix="Your name? ")
    answer = HumanResponseEvent(response="Ada")

    assert question.prefix == "Your name? "
    assert answer.response == "Ada"
    assert issubclass(InputRequiredEvent, Event) and issubclass(HumanResponseEvent, Event)


def test_events_compare_by_value():
    """Two events of one type with equal fields are equal."""
    assert Greeting(name="Ada") == Greeting(name="Ada")
    assert Greeting(name="Ada") != Greeting(name="Bob")


def test_stop_event_takes_its_result_positionally_and_prints_it():
    """StopEvent("done") is StopEvent(result="done"); str() of it is its result, as in the seed."""
    stop = StopEvent("done")
    assert stop.result == "done"
    assert str(stop) == "done"


# ------------------------------------------------------------------ engine events


def test_end_of_run_events_are_stop_events():
    """The failed, timed-out and cancelled end-of-stream events are StopEvent subclasses."""
    for cls in (WorkflowFailedEvent, WorkflowTimedOutEvent, WorkflowCancelledEvent):
        assert issubclass(cls, StopEvent)


def test_failed_event_dumps_its_exception_as_type_and_message():
    """WorkflowFailedEvent.exception dumps as its qualified type name and message."""
    ev = WorkflowFailedEvent(step_name="s", exception=KeyError("k"), attempts=2)

    assert ev.model_dump()["exception"] == {
        "exception_type": "builtins.KeyError",
        "exception_message": "'k'",
    }


def test_failed_event_rebuilds_a_loaded_exception_type():
    """An exception of a loaded module comes back as its own type with its message."""
    ev = WorkflowFailedEvent(step_name="s", exception=StateError("gone"))

    back = WorkflowFailedEvent.model_validate(ev.model_dump())

    assert type(back.exception) is StateError and str(back.exception) == "gone"


def test_unknown_exception_type_becomes_unreconstructed_exception():
    """A stored exception type that is not loaded is not imported: it becomes a stand-in."""
    data = {"exception_type": "nowhere.module.Boom", "exception_message": "boom"}

    back = WorkflowFailedEvent.model_validate({"step_name": "s", "exception": data})

    assert isinstance(back.exception, UnreconstructedException)
    assert str(back.exception) == "boom" and back.exception.original_type == "nowhere.module.Boom"


def test_step_failed_event_keeps_its_input_event_type_through_a_dump():
    """StepFailedEvent.input_event round-trips as its own event subclass."""
    failed_at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ev = StepFailedEvent(
        step_name="s",
        input_event=Greeting(name="Ada"),
        exception=ValueError("v"),
        attempts=3,
        elapsed_seconds=1.5,
        failed_at=failed_at,
    )

    back = StepFailedEvent.model_validate(ev.model_dump(mode="json"))

    assert back.input_event == Greeting(name="Ada") and back.failed_at == failed_at


def test_step_state_changed_carries_the_reference_fields():
    """StepStateChanged is an internal event with name, state, worker and event names."""
    ev = StepStateChanged(
        name="s", step_state=StepState.RUNNING, worker_id="w1", input_event_name="StartEvent"
    )

    assert isinstance(ev, InternalDispatchEvent)
    assert ev.output_event_name is None and StepState.RUNNING.value == "running"
