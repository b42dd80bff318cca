"""Events: the typed messages that steps accept, return and send.

An event is a pydantic model. Declared fields are validated; any extra
keyword is kept too and reads like a field (``ev.topic``), like a dict entry
(``ev["topic"]``) or with a default (``ev.get("topic", "none")``).
"""

from __future__ import annotations

import weakref
from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "DictLikeModel",
    "Event",
    "HumanResponseEvent",
    "InputRequiredEvent",
    "StartEvent",
    "StopEvent",
]


class DictLikeModel(BaseModel):
    """A pydantic model that keeps extra keywords and reads like a dict too."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True, defer_build=True)

    def _fields(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        if self.__pydantic_extra__:
            data.update(self.__pydantic_extra__)
        return data

    def get(self, key: str, default: Any = None) -> Any:
        """Return the field or extra value `key`, or `default` when absent."""
        return self._fields().get(key, default)

    def __getitem__(self, key: str) -> Any:
        try:
            return self._fields()[key]
        except KeyError:
            raise KeyError(f"{type(self).__name__} has no field {key!r}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        if key in type(self).model_fields or self.__pydantic_extra__ is None:
            setattr(self, key, value)
        else:
            # An extra key may share a method's name ("values", "items"): keep
            # it with the extras, where dumps and `get` find it.
            self.__pydantic_extra__[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._fields()

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # Iterate like a mapping (over keys), as the dict-style access suggests.
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def keys(self) -> KeysView[str]:
        """Return the names of all fields and extras."""
        return self._fields().keys()

    def values(self) -> ValuesView[Any]:
        """Return the values of all fields and extras."""
        return self._fields().values()

    def items(self) -> ItemsView[str, Any]:
        """Return ``(name, value)`` pairs of all fields and extras."""
        return self._fields().items()

    def to_dict(self) -> dict[str, Any]:
        """Return the event's fields and extras as a plain dict."""
        return self.model_dump()

    def __bool__(self) -> bool:
        # A model with no fields is still a value, never falsy.
        return True


class Event(DictLikeModel):
    """Base class of every event; subclass it and declare typed fields."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # Every event type is loadable by name, so stored runs can be resumed.
        _registry[type_name(cls)] = cls


_registry: weakref.WeakValueDictionary[str, type[Event]] = weakref.WeakValueDictionary()


def type_name(event_type: type[Event]) -> str:
    """Return the name an event type is stored under: ``module:Qualname``."""
    return f"{event_type.__module__}:{event_type.__qualname__}"


def lookup_type(name: str) -> type[Event] | None:
    """Return the event type stored under `name`, or None if none is defined.

    A script's events live in ``__main__`` in one process and under the
    file's module name in another, so a unique match on the qualified name
    is accepted too.
    """
    found = _registry.get(name)
    if found is not None:
        return found
    qualname = name.partition(":")[2]
    matches = {t for key, t in list(_registry.items()) if key.partition(":")[2] == qualname}
    return matches.pop() if len(matches) == 1 else None


class StartEvent(Event):
    """Starts a run; ``run(**kwargs)`` becomes its fields.

    Subclass it with typed fields to validate a workflow's inputs.
    """


class StopEvent(Event):
    """Ends a run. ``await handler`` returns ``result``.

    A subclass is returned as the event itself, so typed fields reach the caller.
    """

    result: Any = None

    def __init__(self, result: Any = None, /, **data: Any) -> None:
        # `StopEvent("done")` works as well as `StopEvent(result="done")`.
        if "result" not in data:
            data["result"] = result
        super().__init__(**data)

    def __str__(self) -> str:
        return str(self.result)


class InputRequiredEvent(Event):
    """Asks the caller for input; written to the event stream.

    The caller answers with ``handler.ctx.send_event(HumanResponseEvent(...))``.
    """


class HumanResponseEvent(Event):
    """An answer from outside the run, sent with ``handler.ctx.send_event``."""
