"""Events on the wire: the envelope the HTTP API sends, and reading the events clients send.

An event goes out as ``{"value": {...fields}, "type": "ClassName", "types":
[parent Event classes], "qualified_name": "module.ClassName"}``. An event
comes in as such an envelope (``"data"`` is taken for ``"value"``), or, for
a start event, as its bare fields. The type is looked up by name among the
event types the workflow declares: a name is never imported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from fanflow.events import Event

__all__ = ["EventError", "envelope", "parse_event", "qualified_name"]


class EventError(ValueError):
    """A client sent an event that cannot be read; the message says why, in one line."""


def qualified_name(event_type: type[Event]) -> str:
    """Return ``module.ClassName``, the reference's name for `event_type`."""
    return f"{event_type.__module__}.{event_type.__name__}"


def envelope(event: Event, *, with_qualified_name: bool = True) -> dict[str, Any]:
    """Return the wire envelope of `event`."""
    cls = type(event)
    parents = [c.__name__ for c in cls.__mro__[1:] if c is not Event and _is_event(c)]
    try:
        value = event.model_dump(mode="json")
    except Exception:  # a field JSON cannot hold: show it as text rather than fail the stream
        value = {k: _plain(v) for k, v in event.model_dump().items()}
    return {
        "value": value,
        "qualified_name": qualified_name(cls) if with_qualified_name else None,
        "type": cls.__name__,
        "types": parents or None,
    }


def _is_event(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, Event)


def _plain(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def parse_event(
    payload: Any,
    registry: Mapping[str, type[Event]],
    *,
    bare: type[Event] | None = None,
    what: str = "event",
) -> Event:
    """Return the event `payload` describes, of a type in `registry` (class name -> type).

    With `bare`, a payload that is not an envelope is taken as the fields of
    that type. Raises `EventError` with one clear message.
    """
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise EventError(f"{what} is a string that is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise EventError(f"{what} must be a JSON object, got {type(payload).__name__}")
    is_envelope = "value" in payload or "data" in payload
    is_envelope = is_envelope or ("type" in payload and "qualified_name" in payload)
    if not is_envelope:
        if bare is None:
            raise EventError(
                f'{what} must be an envelope: {{"type": "ClassName", "value": {{...}}}}'
            )
        return _validate(bare, payload, what)
    value = payload.get("value", payload.get("data"))
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise EventError(f'{what} "value" must be a JSON object, got {type(value).__name__}')
    return _validate(_find_type(payload, registry, what), value, what)


def _find_type(
    payload: dict[str, Any], registry: Mapping[str, type[Event]], what: str
) -> type[Event]:
    name = payload.get("type")
    qualified = payload.get("qualified_name")
    if isinstance(name, str) and name in registry:
        return registry[name]
    if isinstance(qualified, str):
        for event_type in registry.values():
            if qualified_name(event_type) == qualified:
                return event_type
    given = name if isinstance(name, str) else qualified
    accepted = ", ".join(sorted(registry)) or "none"
    if not isinstance(given, str):
        raise EventError(f'{what} names no "type"; this workflow accepts: {accepted}')
    raise EventError(f"unknown {what} type {given!r}; this workflow accepts: {accepted}")


def _validate(event_type: type[Event], value: dict[str, Any], what: str) -> Event:
    try:
        return event_type.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(value)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise EventError(f"{what} {event_type.__name__} does not validate: {problems}") from None
