"""The run state behind ``ctx.store``: dotted-path reads and writes, typed models.

State outlives a single run when the same `Context` is passed to several
``run(ctx=ctx)`` calls. Every write is reported to `on_change`, which the run
turns into a STATE_CHANGED record. ``to_dict(serializer)`` and
``StateStore.from_dict(data, serializer)`` save and restore a store in the
layout LlamaIndex Workflows uses for its ``InMemoryStateStore``.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from fanflow.errors import ContextSerdeError, StateError
from fanflow.events import DictLikeModel

__all__ = ["DictState", "StateStore"]

StateT = TypeVar("StateT", bound=BaseModel)
_MISSING: Any = object()


class Serializer(Protocol):
    """What `StateStore.to_dict` and `from_dict` need (see fanflow.context.serializers)."""

    def serialize(self, value: Any) -> str: ...

    def deserialize(self, value: str) -> Any: ...


class DictState(DictLikeModel):
    """The state of a workflow that declares no state type: free-form keys.

    Keys read as attributes (``state.count``) and items (``state["count"]``);
    ``state._data`` is the dict that holds them.
    """


class StateStore(Generic[StateT]):
    """Holds one run's (or one context's) state; reached as ``ctx.store``."""

    def __init__(self, state: StateT) -> None:
        self._state = state
        self._lock = asyncio.Lock()
        self.on_change: Callable[[str | None, Any], None] | None = None

    @property
    def state_type(self) -> type[StateT]:
        """Return the state's model class."""
        return type(self._state)

    async def get(self, path: str, default: Any = _MISSING) -> Any:
        """Return the value at dotted `path` (``"user.name"``), or `default`.

        Without a default a missing path raises `StateError` naming the part
        that is missing.
        """
        node: Any = self._state
        for depth, part in enumerate(_split(path)):
            found, node = _child(node, part)
            if not found:
                if default is not _MISSING:
                    return default
                where = ".".join(_split(path)[:depth]) or "the state"
                raise StateError(
                    f"state path {path!r} does not exist: {where} has no {part!r}; "
                    "set it first or pass default=..."
                )
        return node

    async def set(self, path: str, value: Any) -> None:
        """Store `value` at dotted `path`, creating missing dict levels."""
        self._set(path, value)
        self._changed(path, value)

    def _set(self, path: str, value: Any) -> None:
        parts = _split(path)
        node: Any = self._state
        for part in parts[:-1]:
            found, child = _child(node, part)
            if not found:
                child = {}
                _assign(node, part, child, path)
            node = child
        _assign(node, parts[-1], value, path)

    async def get_state(self) -> StateT:
        """Return a deep copy of the whole state."""
        return self._state.model_copy(deep=True)

    async def set_state(self, state: StateT) -> None:
        """Replace the whole state with `state`, an instance of the state type.

        An instance of a parent class of the state type (a step typed with a
        base workflow's state) replaces only the fields that class declares.
        """
        if not isinstance(state, self.state_type):
            if not (isinstance(state, BaseModel) and issubclass(self.state_type, type(state))):
                raise StateError(
                    f"set_state() needs a {self.state_type.__name__}, got "
                    f"{type(state).__name__}: the state must be of type "
                    f"{self.state_type.__name__} or a parent class of it"
                )
            merged = self._state.model_copy(deep=True)
            for name in type(state).model_fields:
                setattr(merged, name, getattr(state, name))
            state = merged
        self._state = state
        self._changed(None, state)

    async def clear(self) -> None:
        """Reset the state to a fresh default instance of its type."""
        self._state = self.state_type()
        self._changed(None, self._state)

    @asynccontextmanager
    async def edit_state(self) -> AsyncIterator[StateT]:
        """Lock the state and yield it for in-place edits; concurrent edits queue."""
        async with self._lock:
            yield self._state
            self._changed(None, self._state)

    def restore(self, path: str | None, value: Any) -> None:
        """Apply a recorded change without recording it again (resuming a run)."""
        if path is not None:
            self._set(path, value)
        elif isinstance(value, self.state_type):
            self._state = value.model_copy(deep=True)
        else:
            self._state = self.state_type.model_validate(value)

    def snapshot(self) -> StateT:
        """Return a deep copy of the state without waiting (for records and tests)."""
        return self._state.model_copy(deep=True)

    def to_dict(self, serializer: Serializer) -> dict[str, Any]:
        """Return the state as JSON-ready data, values written by `serializer`.

        A `DictState` is written key by key (``{"_data": {key: text}}``), a
        typed state as one string; `from_dict` reads either back.
        """
        state = self._state
        data: Any
        try:
            if isinstance(state, DictState):
                data = {"_data": {k: serializer.serialize(v) for k, v in state.items()}}
            else:
                data = serializer.serialize(state)
        except Exception as exc:
            raise ContextSerdeError(f"cannot save the {type(state).__name__} state: {exc}") from exc
        return {
            "store_type": "in_memory",
            "state_type": type(state).__name__,
            "state_module": type(state).__module__,
            "state_data": data,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], serializer: Serializer) -> StateStore[Any]:
        """Return a store holding the state `to_dict` saved in `data`."""
        if not data or data.get("state_data") is None:
            return cls(DictState())  # type: ignore[arg-type]
        if not isinstance(data, dict) or data.get("store_type", "in_memory") != "in_memory":
            raise ContextSerdeError(f"not a state saved by StateStore.to_dict(): {data!r:.80}")
        return cls(_load_state(data["state_data"], serializer))

    def _changed(self, path: str | None, value: Any) -> None:
        if self.on_change is not None:
            self.on_change(path, copy.deepcopy(value))


def _load_state(saved: Any, serializer: Serializer) -> Any:
    """Return the state model that `StateStore.to_dict` wrote as `saved`."""
    try:
        if isinstance(saved, dict) and isinstance(saved.get("_data"), dict):
            return DictState.model_validate(
                {k: serializer.deserialize(v) for k, v in saved["_data"].items()}
            )
        state = serializer.deserialize(saved) if isinstance(saved, str) else None
    except Exception as exc:
        raise ContextSerdeError(f"cannot restore the saved state: {exc}") from exc
    if not isinstance(state, BaseModel):
        raise ContextSerdeError(
            f"saved state is neither a DictState nor a pydantic model: {saved!r:.80}"
        )
    return state


def _split(path: str) -> list[str]:
    if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
        raise StateError(f"a state path is a non-empty dotted string like 'a.b', got {path!r}")
    return path.split(".")


def _child(node: Any, part: str) -> tuple[bool, Any]:
    if isinstance(node, DictLikeModel):
        return (part in node), node.get(part)
    if isinstance(node, BaseModel):
        return (hasattr(node, part)), getattr(node, part, None)
    if isinstance(node, MutableMapping):
        return (part in node), node.get(part)
    if isinstance(node, list) and part.lstrip("-").isdigit():
        index = int(part)
        inside = -len(node) <= index < len(node)
        return inside, (node[index] if inside else None)
    return False, None


def _assign(node: Any, part: str, value: Any, path: str) -> None:
    try:
        if isinstance(node, DictLikeModel):
            node[part] = value
        elif isinstance(node, BaseModel):
            setattr(node, part, value)
        elif isinstance(node, MutableMapping):
            node[part] = value
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            node[int(part)] = value
        else:
            raise StateError(
                f"cannot set state path {path!r}: {part!r} is inside a {type(node).__name__}"
            )
    except (ValidationError, ValueError, IndexError) as exc:
        raise StateError(f"cannot set state path {path!r}: {exc}") from exc
