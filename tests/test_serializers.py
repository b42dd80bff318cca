"""JsonSerializer and PickleSerializer: values, models and events to text and back."""

import pydantic
import pytest

from fanflow import (
    Event,
    JsonSerializer,
    PickleSerializer,
    SerializationError,
    StopEvent,
    WorkflowFailedEvent,
)
from fanflow.context.serializers import BaseSerializer


class Note(Event):
    text: str


class Point(pydantic.BaseModel):
    x: int
    y: int


def test_json_round_trips_plain_values():
    """Dicts, lists and JSON scalars come back equal."""
    value = {"a": [1, 2.5, "s", None, True], "b": {}}

    assert JsonSerializer().deserialize(JsonSerializer().serialize(value)) == value


def test_json_keeps_the_class_of_events_and_extras():
    """An event comes back as its own class, with declared fields and extras."""
    serializer = JsonSerializer()

    back = serializer.deserialize(serializer.serialize(Note(text="hi", mood="calm")))

    assert type(back) is Note and back.text == "hi" and back._data == {"mood": "calm"}


def test_json_keeps_stop_event_subclasses_and_failures():
    """End-of-run events round-trip, the failure's exception included."""
    serializer = JsonSerializer()
    failed = WorkflowFailedEvent(step_name="s", exception=ValueError("bad"), attempts=2)

    back = serializer.deserialize(serializer.serialize([StopEvent(result=3), failed]))

    assert back[0].result == 3
    assert type(back[1].exception) is ValueError and str(back[1].exception) == "bad"


def test_json_rebuilds_a_loaded_pydantic_model_nested_in_a_dict():
    """A pydantic model inside a dict comes back as the model."""
    serializer = JsonSerializer()

    assert serializer.deserialize(serializer.serialize({"p": Point(x=1, y=2)})) == {
        "p": Point(x=1, y=2)
    }


def test_json_never_imports_a_module_named_in_the_data():
    """A class name from a module that is not loaded is refused, not imported."""
    text = '{"__is_pydantic": true, "value": {}, "qualified_name": "not_loaded_mod.Thing"}'

    with pytest.raises(SerializationError, match=r"not_loaded_mod\.Thing"):
        JsonSerializer().deserialize(text)


def test_json_allowed_types_limits_what_is_rebuilt():
    """With allowed_types, a loaded class that is not listed is refused."""
    text = JsonSerializer().serialize(Point(x=1, y=2))

    assert JsonSerializer(allowed_types=[Point]).deserialize(text) == Point(x=1, y=2)
    with pytest.raises(SerializationError, match="allowed_types"):
        JsonSerializer(allowed_types=[]).deserialize(text)


def test_json_refuses_a_value_json_cannot_hold():
    """A set is not JSON: SerializationError names its type."""
    with pytest.raises(SerializationError, match="set"):
        JsonSerializer().serialize({1, 2})


def test_pickle_serializer_falls_back_to_pickle_and_back():
    """PickleSerializer writes JSON when it can and pickle otherwise, and reads both."""
    serializer = PickleSerializer()

    assert serializer.serialize([1]) == "[1]"
    assert serializer.deserialize(serializer.serialize({1, 2})) == {1, 2}


def test_serializers_share_the_base_class():
    """Both serializers are BaseSerializers."""
    assert isinstance(JsonSerializer(), BaseSerializer)
    assert isinstance(PickleSerializer(), BaseSerializer)
