"""Events: typed fields, extras readable like attributes and dict entries."""

import pydantic
import pytest

from fanflow import Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent


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


def test_mapping_views_cover_fields_and_extras():
    """`in`, keys(), values(), items() and len() see fields and extras."""
    ev = Greeting(name="Ada", mood="happy")

    assert "mood" in ev and "name" in ev and "other" not in ev
    assert list(ev.keys()) == ["name", "excited", "mood"]
    assert list(ev.values()) == ["Ada", False, "happy"]
    assert dict(ev.items()) == {"name": "Ada", "excited": False, "mood": "happy"}
    assert len(ev) == 3


def test_to_dict_includes_extras():
    """to_dict() returns fields and extras as a plain dict."""
    assert Greeting(name="Ada", mood="happy").to_dict() == {
        "name": "Ada",
        "excited": False,
        "mood": "happy",
    }


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
