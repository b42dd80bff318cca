"""Serializers: how values in a context's state are turned into strings and back.

`JsonSerializer` (the default) writes JSON. A pydantic model, an event
included, is written with its class name so it comes back as the same class:
``{"__is_pydantic": true, "value": {...}, "qualified_name": "module.Class"}``
(the layout LlamaIndex Workflows writes, so saved contexts read in both).
Reading a class name never imports a module: events resolve through the
registry of defined event classes, other classes only from modules already
imported, or from ``JsonSerializer(allowed_types=[...])``.

`PickleSerializer` falls back to pickle for what JSON cannot hold. It is an
explicit opt-in for trusted data only (unpickling runs code), and fanflow
never uses it for run records or durable stores, which are always JSON.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
import pickle
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from fanflow.errors import SerializationError
from fanflow.events import Event, find_loaded, lookup_type

__all__ = ["BaseSerializer", "JsonSerializer", "PickleSerializer"]


class BaseSerializer(ABC):
    """Turns any value into a string and back."""

    @abstractmethod
    def serialize(self, value: Any) -> str:
        """Return `value` as a string."""

    @abstractmethod
    def deserialize(self, value: str) -> Any:
        """Return the value a `serialize` call turned into `value`."""


def qualified_name(cls: type) -> str:
    """Return ``module.Qualname``, the name a class is written under."""
    return f"{cls.__module__}.{cls.__qualname__}"


class JsonSerializer(BaseSerializer):
    """Writes values as JSON; pydantic models (events too) keep their class.

    Dicts and lists are walked; other values must be JSON types. With
    `allowed_types`, only those classes (and event classes) are rebuilt; a
    string entry names a class to import by its ``module.Qualname``.
    """

    def __init__(self, *, allowed_types: Iterable[type[Any] | str] | None = None) -> None:
        self._allowed: dict[str, type[Any] | None] | None = None
        if allowed_types is not None:
            self._allowed = {}
            for entry in allowed_types:
                if isinstance(entry, str):
                    self._allowed[entry] = None
                elif isinstance(entry, type):
                    self._allowed[qualified_name(entry)] = entry
                else:
                    raise TypeError(f"allowed_types takes classes or names, got {entry!r}")

    def serialize_value(self, value: Any) -> Any:
        """Return `value` as JSON-ready data, tagging pydantic models with their class."""
        if isinstance(value, BaseModel):
            return {
                "__is_pydantic": True,
                "value": value.model_dump(mode="json"),
                "qualified_name": qualified_name(type(value)),
            }
        if isinstance(value, dict):
            return {key: self.serialize_value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.serialize_value(item) for item in value]
        return value

    def serialize(self, value: Any) -> str:
        """Return `value` as a JSON string; raise `SerializationError` if it cannot be."""
        try:
            return json.dumps(self.serialize_value(value))
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"cannot write {type(value).__name__} value {value!r:.80} as JSON: {exc}"
            ) from exc

    def deserialize_value(self, data: Any) -> Any:
        """Return the value `serialize_value` turned into `data`."""
        if isinstance(data, dict):
            if data.get("__is_pydantic") and data.get("qualified_name"):
                model = self.resolve_class(data["qualified_name"])
                try:
                    return model.model_validate(data["value"])
                except ValidationError as exc:
                    raise SerializationError(
                        f"stored {data['qualified_name']} does not validate: {exc}"
                    ) from exc
            return {key: self.deserialize_value(item) for key, item in data.items()}
        if isinstance(data, list):
            return [self.deserialize_value(item) for item in data]
        return data

    def deserialize(self, value: str) -> Any:
        """Return the value a `serialize` call turned into the JSON string `value`."""
        try:
            data = json.loads(value)
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"not JSON written by JsonSerializer: {value!r:.80}") from exc
        return self.deserialize_value(data)

    def resolve_class(self, name: str) -> type[Any]:
        """Return the pydantic model class written as `name` (``module.Qualname``)."""
        found = self._find(name)
        if not (isinstance(found, type) and issubclass(found, BaseModel)):
            raise SerializationError(
                f"cannot rebuild {name}: no such pydantic class is loaded; import its module "
                f"first or pass JsonSerializer(allowed_types=[...]) naming it"
            )
        return found

    def _find(self, name: str) -> Any:
        module, _, qualname = name.rpartition(".")
        event = lookup_type(f"{module}:{qualname}") if "<locals>" not in name else None
        if event is None:
            event = _event_by_dotted_name(name)
        if event is not None:
            return event
        if self._allowed is not None:
            if name not in self._allowed:
                raise SerializationError(
                    f"cannot rebuild {name}: it is not in the serializer's allowed_types"
                )
            allowed = self._allowed[name]
            return allowed if allowed is not None else _import(name)
        return find_loaded(name)


class PickleSerializer(JsonSerializer):
    """Writes JSON when it can and base64-encoded pickle otherwise. Trusted data only.

    Unpickling runs code chosen by whoever wrote the data, so use it only
    for state you wrote yourself; fanflow never reads run records with it.
    """

    def serialize(self, value: Any) -> str:
        """Return `value` as JSON, or as base64 pickle if JSON cannot hold it."""
        try:
            return super().serialize(value)
        except SerializationError:
            return base64.b64encode(pickle.dumps(value)).decode("ascii")

    def deserialize(self, value: str) -> Any:
        """Return the value `serialize` wrote: JSON first, else unpickled."""
        try:
            return super().deserialize(value)
        except SerializationError:
            pass
        try:
            return pickle.loads(base64.b64decode(value, validate=True))
        except (binascii.Error, pickle.UnpicklingError, ValueError) as exc:
            raise SerializationError(f"neither JSON nor pickle: {value!r:.80}") from exc


def _event_by_dotted_name(name: str) -> type[Event] | None:
    """Return the event class whose ``module.Qualname`` is `name` (qualnames may contain dots)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        found = lookup_type(f"{'.'.join(parts[:cut])}:{'.'.join(parts[cut:])}")
        if found is not None:
            return found
    return None


def _import(name: str) -> Any:
    """Import the module of an explicitly allowed class name and return the class."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        return find_loaded(name)
    return None
