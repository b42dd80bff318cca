"""fanflow.context.state_store: InMemoryStateStore on its own, saving and restoring state."""

import pydantic
import pytest

from fanflow import ContextSerdeError, Event, JsonSerializer, StateStore
from fanflow.context.state_store import DictState, InMemoryStateStore


class Base(pydantic.BaseModel):
    name: str = ""


class Child(Base):
    count: int = 0


class Note(Event):
    text: str


def test_in_memory_state_store_is_fanflows_state_store():
    """InMemoryStateStore is the reference's name for StateStore, the same class."""
    assert InMemoryStateStore is StateStore


async def test_store_works_outside_a_run():
    """A store built by hand reads, writes, edits and clears without a run."""
    store = InMemoryStateStore(DictState())
    await store.set("user.name", "Ada")
    async with store.edit_state() as state:
        state.visits = 1

    assert await store.get("user.name") == "Ada" and await store.get("visits") == 1
    await store.clear()
    assert await store.get("visits", default=None) is None


async def test_dict_state_saves_each_key_as_text():
    """to_dict writes a DictState key by key, each value as a serializer string."""
    store = InMemoryStateStore(DictState())
    await store.set("count", 2)

    saved = store.to_dict(JsonSerializer())

    assert saved["state_data"] == {"_data": {"count": "2"}}
    assert saved["state_type"] == "DictState"


async def test_dict_state_round_trips_models_and_events():
    """from_dict gives back a DictState whose values keep their classes."""
    store = InMemoryStateStore(DictState())
    await store.set("note", Note(text="hi"))

    back = InMemoryStateStore.from_dict(store.to_dict(JsonSerializer()), JsonSerializer())

    assert await back.get("note") == Note(text="hi")


async def test_typed_state_round_trips():
    """A typed state comes back as its own model."""
    store = InMemoryStateStore(Child(name="n", count=3))

    back = InMemoryStateStore.from_dict(store.to_dict(JsonSerializer()), JsonSerializer())

    assert await back.get_state() == Child(name="n", count=3)


def test_empty_payload_restores_an_empty_dict_state():
    """from_dict of an empty payload is a fresh DictState store."""
    store = InMemoryStateStore.from_dict({}, JsonSerializer())

    assert store.state_type is DictState


def test_unreadable_payload_raises_context_serde_error():
    """A payload that is neither layout raises ContextSerdeError."""
    with pytest.raises(ContextSerdeError):
        InMemoryStateStore.from_dict({"state_data": "not json"}, JsonSerializer())


def test_unserializable_value_raises_context_serde_error():
    """Saving a value JSON cannot hold raises ContextSerdeError naming the state."""
    store = InMemoryStateStore(DictState(_data={"s": {1, 2}}))

    with pytest.raises(ContextSerdeError, match="DictState"):
        store.to_dict(JsonSerializer())


async def test_set_state_with_a_parent_model_keeps_the_child_fields():
    """set_state(parent instance) replaces the parent's fields and keeps the rest."""
    store = InMemoryStateStore(Child(name="a", count=5))

    await store.set_state(Base(name="b"))

    assert await store.get_state() == Child(name="b", count=5)


async def test_dict_state_takes_its_keys_as_data():
    """DictState(_data={...}) starts with those keys."""
    store = InMemoryStateStore(DictState(_data={"k": 1}))

    assert await store.get("k") == 1
