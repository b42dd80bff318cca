"""Events: the typed messages that steps accept, return and send.

An event is a pydantic model. Declared fields are validated; any extra
keyword is kept too and reads like a field (``ev.topic``), like a dict entry
(``ev["topic"]``) or with a default (``ev.get("topic", "none")``). As in
LlamaIndex Workflows, the mapping views (``keys()``, ``values()``,
``items()``, ``len()``, iteration, ``to_dict()``) cover the extra keywords,
which ``ev._data`` holds; ``ev["name"]``, ``get`` and ``in`` also see the
declared fields.

Besides the events steps exchange, this module defines the events the engine
itself puts on the stream: `StepStateChanged` (with
``stream_events(expose_internal=True)``), and the StopEvent subclasses that end
the stream of a run that failed, timed out or was cancelled.
"""

from __future__ import annotations

import builtins
import sys
import weakref
from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from fanflow.errors import UnreconstructedException

__all__ = [
    "DictLikeModel",
    "Event",
    "HumanResponseEvent",
    "InputRequiredEvent",
    "InternalDispatchEvent",
    "StartEvent",
    "StepFailedEvent",
    "StepState",
    "StepStateChanged",
    "StopEvent",
    "UnhandledEvent",
    "WorkflowCancelledEvent",
    "WorkflowFailedEvent",
    "WorkflowIdleEvent",
    "WorkflowTimedOutEvent",
]


class DictLikeModel(BaseModel):
    """A pydantic model that keeps extra keywords and reads like a dict too."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True, defer_build=True)

    def __init__(self, **params: Any) -> None:
        if not self.__private_attributes__ and "_data" not in params:
            super().__init__(**params)  # the common case: one event per step hop
            return
        # Private attributes (``_name: T = PrivateAttr()``) may be given as
        # keywords, and ``_data=`` gives the extras as one dict.
        private = {k: params.pop(k) for k in list(params) if k in self.__private_attributes__}
        params.update(params.pop("_data", None) or {})
        super().__init__(**params)
        for name, value in private.items():
            setattr(self, name, value)

    @property
    def _data(self) -> dict[str, Any]:
        """Return the extra keywords, as a live dict."""
        extra = self.__pydantic_extra__
        if extra is None:  # only for models that forbid extras
            return {}
        return extra

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
        # Iterate like a mapping (over the extra keys), as the dict-style access suggests.
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> KeysView[str]:
        """Return the names of the extra keywords."""
        return self._data.keys()

    def values(self) -> ValuesView[Any]:
        """Return the values of the extra keywords."""
        return self._data.values()

    def items(self) -> ItemsView[str, Any]:
        """Return ``(name, value)`` pairs of the extra keywords."""
        return self._data.items()

    def to_dict(self) -> dict[str, Any]:
        """Return the extra keywords as a plain dict (``model_dump()`` has the fields too)."""
        return dict(self._data)

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
    A ``result`` of None is left out of dumps and ``repr``.
    """

    result: Any = None

    def __init__(self, result: Any = None, /, **data: Any) -> None:
        # `StopEvent("done")` works as well as `StopEvent(result="done")`.
        if "result" not in data:
            data["result"] = result
        super().__init__(**data)

    @model_serializer(mode="wrap")
    def _dump_without_empty_result(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("result", 0) is None:
            del data["result"]
        return data

    def __str__(self) -> str:
        return str(self.result)

    def __repr__(self) -> str:
        shown = {**self._data, **self.model_dump()}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


class InputRequiredEvent(Event):
    """Asks the caller for input; written to the event stream.

    The caller answers with ``handler.ctx.send_event(HumanResponseEvent(...))``.
    """


class HumanResponseEvent(Event):
    """An answer from outside the run, sent with ``handler.ctx.send_event``."""


# ------------------------------------------------------------------ engine events


def _dump_exception(error: BaseException) -> dict[str, str]:
    kind = type(error)
    return {
        "exception_type": f"{kind.__module__}.{kind.__qualname__}",
        "exception_message": str(error),
    }


def _load_exception(data: Any) -> BaseException:
    """Rebuild an exception from its dump, importing nothing.

    Builtin types and types of modules already imported are rebuilt as
    ``cls(message)``; anything else becomes `UnreconstructedException`.
    """
    if isinstance(data, BaseException):
        return data
    try:
        name, message = data["exception_type"], data["exception_message"]
    except (TypeError, KeyError):
        raise ValueError(
            "an exception is stored as {'exception_type': ..., 'exception_message': ...}"
        ) from None
    kind = find_loaded(name)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except Exception:  # a constructor that needs more than the message
            pass
    return UnreconstructedException(message, original_type=name)


def find_loaded(name: str) -> Any:
    """Return the object named ``module.Qualname`` if its module is already imported, or None.

    Nothing is imported: a stored name must not be able to load code.
    """
    if name.startswith("builtins."):
        return getattr(builtins, name.removeprefix("builtins."), None)
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is not None:
            found: Any = module
            for attr in parts[cut:]:
                found = getattr(found, attr, None)
            return found
    return None


def _dump_event(event: Event) -> dict[str, Any]:
    return {"type": type_name(type(event)), "data": event.model_dump(mode="json")}


def _load_event(data: Any) -> Event:
    if isinstance(data, Event):
        return data
    try:
        name, fields = data["type"], data["data"]
    except (TypeError, KeyError):
        raise ValueError("an event is stored as {'type': 'module:Class', 'data': {...}}") from None
    event_type = lookup_type(name)
    if event_type is None:
        raise ValueError(f"no event class {name!r} is defined in this process")
    return event_type.model_validate(fields)


# An exception field: dumped as its type name and message, rebuilt without imports.
ExceptionField = Annotated[
    Exception, PlainSerializer(_dump_exception), PlainValidator(_load_exception)
]
# An event field of any Event subclass: dumped with its type name.
EventField = Annotated[Event, PlainSerializer(_dump_event), PlainValidator(_load_event)]


class WorkflowTimedOutEvent(StopEvent):
    """Ends the stream of a run that exceeded its timeout; ``await handler`` then raises.

    `active_steps` names the steps that were still running.
    """

    timeout: float
    active_steps: list[str]


class WorkflowCancelledEvent(StopEvent):
    """Ends the stream of a run stopped by ``handler.cancel_run()``; ``await handler`` raises."""


class WorkflowFailedEvent(StopEvent):
    """Ends the stream of a run that failed; ``await handler`` then raises `exception`.

    `step_name` is the step whose error ended the run; `attempts` and
    `elapsed_seconds` say how long it was retried (None when the failure is
    not a step's, e.g. a stuck run).
    """

    step_name: str
    exception: ExceptionField
    attempts: int | None = None
    elapsed_seconds: float | None = None


class StepFailedEvent(Event):
    """What a ``@catch_error`` step receives when a step has used up its retries.

    `input_event` is the event the failed step was handling, `exception`
    its last error, `failed_at` a timezone-aware UTC time.
    """

    step_name: str
    input_event: EventField
    exception: ExceptionField
    attempts: int
    elapsed_seconds: float
    failed_at: datetime


class InternalDispatchEvent(Event):
    """Base of the events the engine streams about itself (``expose_internal=True``)."""


class StepState(Enum):
    """Where one invocation of a step stands."""

    PREPARING = "preparing"  # queued, waiting for a free worker
    RUNNING = "running"
    NOT_RUNNING = "not_running"  # finished, however it ended


class StepStateChanged(InternalDispatchEvent):
    """A step invocation started or finished, on which worker, from and to which event."""

    name: str = Field(description="the step's name")
    step_state: StepState = Field(description="where the invocation stands now")
    worker_id: str = Field(description="which of the step's workers runs it")
    input_event_name: str = Field(description="the type name of the event it handles")
    output_event_name: str | None = Field(
        default=None, description="the type name of the event it returned, if any"
    )


class WorkflowIdleEvent(InternalDispatchEvent):
    """The run is waiting for input from outside, with no step running or queued."""


class UnhandledEvent(InternalDispatchEvent):
    """An event sent into the run that no step or wait took."""

    event_type: str = Field(description="the event's class name")
    qualified_name: str = Field(description="the event's ``module:Qualname``")
    step_name: str | None = Field(default=None, description="the step it was addressed to")
    idle: bool = Field(description="whether the run is idle after it")


# The type of an event class, as LlamaIndex Workflows names it.
EventType = type[Event]
