"""Journaled values: JSON that gives each value back with its type, never pickle.

JSON's own types are stored as they are; ``datetime``, ``date``, ``time``,
``timedelta``, ``Decimal``, ``UUID``, ``bytes``, ``set``, ``frozenset``,
``tuple``, enums, pydantic models, events and dicts with keys other than
strings are stored as ``{"$t": tag, "v": ...}`` (``"cls"`` naming the class
of an enum, model or event). A class comes back only if its module is
already imported (looked up in ``sys.modules`` by module and qualified
name): nothing is ever imported because stored data names it. Anything else
is refused when written, so a type is never silently changed.
"""

from __future__ import annotations

import base64
import binascii
import enum
import sys
import uuid
import weakref
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from types import ModuleType
from typing import Any

from pydantic import BaseModel, PrivateAttr, ValidationError

from fanflow.errors import SerializationError
from fanflow.events import Event, lookup_type, type_name

__all__ = [
    "MAX_DEPTH",
    "Malformed",
    "Refused",
    "Unjournaled",
    "Unloaded",
    "UnloadedEvent",
    "advice",
    "check_event",
    "check_state_value",
    "event_fields",
    "find_class",
    "make_event",
    "tag",
    "value_from_json",
    "value_to_json",
]

MAX_DEPTH = 100  # levels of nesting a journaled value may have
TAG = "$t"


# ---------------------------------------------------------------- placeholders


class Unjournaled:
    """Stands in a STATE_CHANGED record for a value that cannot be journaled with its type.

    A run whose records hold one cannot be resumed (`not_resumable`).
    """

    __slots__ = ("description",)

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return f"Unjournaled({self.description!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unjournaled) and other.description == self.description

    def __hash__(self) -> int:
        return hash(self.description)


class Unloaded:
    """A model or enum value whose class is not imported, read for display only."""

    __slots__ = ("type_name", "value")

    def __init__(self, type_name: str, value: Any) -> None:
        self.type_name = type_name
        self.value = value

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.value!r}>"


class UnloadedEvent(Event):
    """An event whose type is not imported, read for display only; its fields are extras."""

    _type_name: str = PrivateAttr(default="?")

    @property
    def stored_type(self) -> str:
        """Return the name the event's type was stored under."""
        return self._type_name


# ---------------------------------------------------------------- values to JSON


class Refused(Exception):
    """A value that cannot be journaled with its type; `where` is its path inside."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
        self.where: list[str] = []

    def inside(self, step: str) -> Refused:
        self.where.insert(0, step)
        return self

    def describe(self) -> str:
        path = "".join(self.where)
        return f"{self.what}{f' at {path}' if path else ''}"


_reachable: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def _class_name(cls: type) -> str:
    name = _reachable.get(cls)
    if name is None:
        name = f"{cls.__module__}:{cls.__qualname__}"
        if find_class(name) is not cls:
            raise Refused(f"a {name}, whose class cannot be found again by that name")
        _reachable[cls] = name
    return name


def find_class(name: str) -> type | None:
    """Return the class ``module:Qualname`` if its module is imported, else None.

    Reads module and class dictionaries only: nothing is imported and no
    module ``__getattr__`` runs, whatever `name` says.
    """
    module_name, _, qualname = name.partition(":")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if not isinstance(found, (ModuleType, type)):
            return None
        found = found.__dict__.get(part)
    return found if isinstance(found, type) and qualname else None


def event_fields(model: BaseModel, depth: int) -> dict[str, Any]:
    out = {}
    extra = model.__pydantic_extra__ or {}
    for name, value in (*model.__dict__.items(), *extra.items()):
        try:
            out[name] = _tag(value, depth + 1)
        except Refused as exc:
            raise exc.inside(f".{name}") from None
    return out


def _items(values: Any, depth: int) -> list[Any]:
    out = []
    for index, value in enumerate(values):
        try:
            out.append(_tag(value, depth + 1))
        except Refused as exc:
            raise exc.inside(f"[{index}]") from None
    return out


def _dict(value: dict[Any, Any], depth: int) -> Any:
    if TAG not in value and all(type(key) is str for key in value):
        out = {}
        for key, item in value.items():
            try:
                out[key] = _tag(item, depth + 1)
            except Refused as exc:
                raise exc.inside(f"[{key!r}]") from None
        return out
    pairs = []
    for key, item in value.items():
        try:
            pairs.append([_tag(key, depth + 1), _tag(item, depth + 1)])
        except Refused as exc:
            raise exc.inside(f"[{key!r}]") from None
    return {TAG: "dict", "v": pairs}


def _tagged(tag: str, convert: Callable[[Any], Any]) -> Callable[[Any, int], Any]:
    return lambda value, depth: {TAG: tag, "v": convert(value)}


_ENCODERS: dict[type, Callable[[Any, int], Any]] = {
    list: _items,
    dict: _dict,
    tuple: lambda v, d: {TAG: "tuple", "v": _items(v, d)},
    set: lambda v, d: {TAG: "set", "v": _items(v, d)},
    frozenset: lambda v, d: {TAG: "frozenset", "v": _items(v, d)},
    datetime: _tagged("datetime", datetime.isoformat),
    date: _tagged("date", date.isoformat),
    time: _tagged("time", time.isoformat),
    timedelta: _tagged("timedelta", lambda v: [v.days, v.seconds, v.microseconds]),
    Decimal: _tagged("decimal", str),
    uuid.UUID: _tagged("uuid", str),
    bytes: _tagged("bytes", lambda v: base64.b64encode(v).decode("ascii")),
    Unjournaled: _tagged("unjournaled", lambda v: v.description),
}
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _tag(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if depth >= MAX_DEPTH:
        raise Refused(f"a value nested more than {MAX_DEPTH} levels deep")
    encode = _ENCODERS.get(kind)
    if encode is not None:
        return encode(value, depth)
    if isinstance(value, enum.Enum):
        return {TAG: "enum", "cls": _class_name(kind), "v": _tag(value.value, depth + 1)}
    if isinstance(value, Event):
        name = type_name(kind)
        if lookup_type(name) is not kind:
            raise Refused(f"a {name}, whose event type cannot be found again by that name")
        return {TAG: "event", "cls": name, "v": event_fields(value, depth)}
    if isinstance(value, BaseModel):
        return {TAG: "model", "cls": _class_name(kind), "v": event_fields(value, depth)}
    raise Refused(f"a {kind.__module__}.{kind.__qualname__}")


def tag(value: Any) -> Any:
    """Return `value` as JSON-ready data, or raise `Refused` (no message built: the fast path)."""
    return _tag(value, 0)


def value_to_json(value: Any, what: str = "value") -> Any:
    """Return `value` as JSON-ready data that `value_from_json` turns back into it.

    Raises `SerializationError` naming `what` if it cannot come back with its type.
    """
    try:
        return _tag(value, 0)
    except Refused as exc:
        raise SerializationError(f"{what} cannot be journaled: {advice(exc)}") from None


def advice(exc: Refused) -> str:
    return (
        f"{exc.describe()} would not come back as itself; durable runs keep JSON values, "
        "datetime, date, time, timedelta, Decimal, UUID, bytes, set, frozenset, tuple, enums, "
        "pydantic models and events, with their types"
    )


def check_event(event: Event) -> None:
    """Raise `SerializationError` naming the field and its type if `event` cannot be journaled."""
    name = type(event).__name__
    extra = event.__pydantic_extra__ or {}
    for field, value in (*event.__dict__.items(), *extra.items()):
        try:
            _tag(value, 1)
        except Refused as exc:
            raise SerializationError(
                f"event {name}: field {field!r} holds {advice(exc.inside(f'.{field}'))}"
            ) from None


def check_state_value(value: Any) -> str | None:
    """Return None if `value` can be journaled with its type, else what cannot be."""
    try:
        _tag(value, 0)
    except Refused as exc:
        return exc.describe()
    return None


# ---------------------------------------------------------------- JSON to values


class Malformed(Exception):
    """Stored data that is not what fanflow writes."""


def _decode_list(value: Any, depth: int, loose: bool) -> list[Any]:
    if type(value) is not list:
        raise Malformed(f"expected a list, got {type(value).__name__}")
    return [_untag(item, depth + 1, loose) for item in value]


def _decode_dict(value: Any, depth: int, loose: bool) -> dict[Any, Any]:
    out = {}
    for pair in _decode_list(value, depth, loose):
        if type(pair) is not list or len(pair) != 2:
            raise Malformed("a dict's items must be [key, value] pairs")
        try:
            out[pair[0]] = pair[1]
        except TypeError:
            raise Malformed(f"unhashable dict key {pair[0]!r:.40}") from None
    return out


def _decode_str(convert: Callable[[str], Any]) -> Callable[[Any, int, bool], Any]:
    def decode(value: Any, depth: int, loose: bool) -> Any:
        if type(value) is not str:
            raise Malformed(f"expected a string, got {type(value).__name__}")
        try:
            return convert(value)
        except (ValueError, InvalidOperation, binascii.Error) as exc:
            raise Malformed(str(exc) or type(exc).__name__) from None

    return decode


def _decode_timedelta(value: Any, depth: int, loose: bool) -> timedelta:
    if type(value) is not list or len(value) != 3 or any(type(p) is not int for p in value):
        raise Malformed("a timedelta is [days, seconds, microseconds]")
    try:
        return timedelta(*value)
    except OverflowError as exc:
        raise Malformed(str(exc)) from None


def _hashables(kind: type[Any]) -> Callable[[Any, int, bool], Any]:
    def decode(value: Any, depth: int, loose: bool) -> Any:
        items = _decode_list(value, depth, loose)
        try:
            return kind(items)
        except TypeError:
            raise Malformed(f"unhashable item in a {kind.__name__}") from None

    return decode


def _decode_enum(payload: dict[str, Any], depth: int, loose: bool) -> Any:
    name, value = payload.get("cls"), _untag(payload.get("v"), depth + 1, loose)
    cls = _stored_class(name, enum.Enum, loose)
    if cls is None:
        return Unloaded(str(name), value)
    try:
        return cls(value)
    except ValueError as exc:
        raise Malformed(str(exc)) from None


def _decode_model(payload: dict[str, Any], depth: int, loose: bool) -> Any:
    name, data = payload.get("cls"), payload.get("v")
    if type(data) is not dict:
        raise Malformed(f"the fields of {name!r:.80} are not an object")
    fields = {str(k): _untag(v, depth + 1, loose) for k, v in data.items()}
    if payload[TAG] == "event":
        return make_event(name, fields, loose)
    cls = _stored_class(name, BaseModel, loose)
    if cls is None:
        return Unloaded(str(name), fields)
    return _validate(cls, fields, str(name))


def _stored_class(name: Any, base: type, loose: bool) -> Any:
    if type(name) is not str or ":" not in name:
        raise Malformed(f"bad class name {name!r:.80}")
    cls = find_class(name)
    if cls is not None and issubclass(cls, base):
        return cls
    if loose:
        return None
    raise SerializationError(
        f"{name} is not a {base.__name__} class this process has imported; import the "
        "module that defines it (the workflow's code) before loading the run"
    )


def _validate(cls: type[BaseModel], fields: dict[str, Any], name: str) -> Any:
    try:
        return cls.model_validate(fields, by_name=True)
    except ValidationError as exc:
        raise SerializationError(f"{name} does not validate: {exc}") from None
    except RecursionError:
        raise Malformed("nested too deeply") from None


def make_event(name: Any, fields: dict[str, Any], loose: bool) -> Event:
    if type(name) is not str:
        raise Malformed(f"bad event type {name!r:.80}")
    event_type = lookup_type(name)
    if event_type is not None and event_type is not UnloadedEvent:
        return _validate(event_type, fields, name)  # type: ignore[no-any-return]
    if loose:
        placeholder = UnloadedEvent.model_construct(**fields)
        placeholder._type_name = name
        return placeholder
    raise SerializationError(
        f"unknown event type {name!r}; import the module that defines it (and its workflow) "
        "before loading the run"
    )


_DECODERS: dict[str, Callable[[Any, int, bool], Any]] = {
    "tuple": lambda v, d, loose: tuple(_decode_list(v, d, loose)),
    "set": _hashables(set),
    "frozenset": _hashables(frozenset),
    "dict": _decode_dict,
    "datetime": _decode_str(datetime.fromisoformat),
    "date": _decode_str(date.fromisoformat),
    "time": _decode_str(time.fromisoformat),
    "timedelta": _decode_timedelta,
    "decimal": _decode_str(Decimal),
    "uuid": _decode_str(uuid.UUID),
    "bytes": _decode_str(lambda v: base64.b64decode(v, validate=True)),
    "unjournaled": _decode_str(Unjournaled),
}
_WITH_CLASS = {"enum": _decode_enum, "model": _decode_model, "event": _decode_model}


def _untag(value: Any, depth: int, loose: bool) -> Any:
    kind = type(value)
    if kind is list:
        if depth >= MAX_DEPTH * 3:
            raise Malformed("nested too deeply")
        return [_untag(item, depth + 1, loose) for item in value]
    if kind is not dict:
        return value
    if depth >= MAX_DEPTH * 3:
        raise Malformed("nested too deeply")
    tag = value.get(TAG)
    if tag is None:
        return {key: _untag(item, depth + 1, loose) for key, item in value.items()}
    with_class = _WITH_CLASS.get(tag) if type(tag) is str else None
    if with_class is not None:
        return with_class(value, depth, loose)
    decode = _DECODERS.get(tag) if type(tag) is str else None
    if decode is None or set(value) != {TAG, "v"}:
        raise Malformed(f"unknown value tag {tag!r:.40}")
    return decode(value["v"], depth + 1, loose)


def value_from_json(data: Any, where: str = "value", *, loose: bool = False) -> Any:
    """Rebuild a value from `value_to_json` output; `where` names it in errors.

    With `loose`, values of classes this process has not imported come back
    as `Unloaded` (and events as `UnloadedEvent`) instead of raising.
    """
    try:
        return _untag(data, 0, loose)
    except Malformed as exc:
        raise SerializationError(f"{where}: malformed value ({exc})") from None
    except SerializationError as exc:
        raise SerializationError(f"{where}: {exc}") from None
