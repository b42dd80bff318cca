"""fanflow: event-driven async workflows with typed events and concurrent steps.

    from fanflow import Workflow, step, Context, Event, StartEvent, StopEvent

Every public name is importable from here; `fanflow.events` and
`fanflow.errors` hold the event classes and the exception tree.
"""

import importlib as _importlib
import typing as _typing

from fanflow._logging import install as _install_logging
from fanflow._runtime.records import Record, RecordKind, RunInfo, Store
from fanflow._runtime.state import DictState, StateStore
from fanflow.clock import Clock, MockClock, SystemClock
from fanflow.context import Context
from fanflow.context.serializers import BaseSerializer, JsonSerializer, PickleSerializer
from fanflow.errors import (
    ContextSerdeError,
    ContextStateError,
    FanflowError,
    JournalInterrupted,
    LeaseError,
    SchemaVersionError,
    SerializationError,
    StartEventError,
    StateError,
    StateTypeError,
    StepOutputError,
    StepTimeoutError,
    StoreError,
    UnreconstructedException,
    UnroutableEventError,
    WorkflowCancelledByUser,
    WorkflowConfigurationError,
    WorkflowRuntimeError,
    WorkflowStepDoesNotExistError,
    WorkflowStuckError,
    WorkflowTimeoutError,
    WorkflowValidationError,
)
from fanflow.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    InternalDispatchEvent,
    StartEvent,
    StepFailedEvent,
    StepState,
    StepStateChanged,
    StopEvent,
    UnhandledEvent,
    WorkflowCancelledEvent,
    WorkflowFailedEvent,
    WorkflowIdleEvent,
    WorkflowTimedOutEvent,
)
from fanflow.graph import StepGraph
from fanflow.handler import WorkflowHandler
from fanflow.resource import Resource, ResourceConfig, ResourceManager
from fanflow.retry import (
    ConstantDelayRetryPolicy,
    ExponentialBackoffRetryPolicy,
    RetryInfo,
    RetryPolicy,
)
from fanflow.step import StepSpec, catch_error, step
from fanflow.stores.memory import MemoryStore
from fanflow.workflow import Workflow

if _typing.TYPE_CHECKING:
    from fanflow.stores import PostgresStore, SqliteStore, open_store

if _typing.TYPE_CHECKING:
    from fanflow.drawing import (
        draw_all_possible_flows,
        draw_execution,
        draw_most_recent_execution,
        to_dot,
        to_html,
        to_mermaid,
    )

# Runs log under the "fanflow" logger (failures, retries, ends), printing
# nothing unless the application configures logging.
_install_logging()

__version__ = "0.1.0"

# Drawing and the durable stores are loaded on first use: most programs
# need neither, and they are a sizeable part of `import fanflow`.
_LAZY = {
    "draw_all_possible_flows": "fanflow.drawing",
    "draw_execution": "fanflow.drawing",
    "draw_most_recent_execution": "fanflow.drawing",
    "to_dot": "fanflow.drawing",
    "to_html": "fanflow.drawing",
    "to_mermaid": "fanflow.drawing",
    "PostgresStore": "fanflow.stores",
    "SqliteStore": "fanflow.stores",
    "open_store": "fanflow.stores",
}


def __getattr__(name: str) -> _typing.Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'fanflow' has no attribute {name!r}") from None
    return getattr(_importlib.import_module(module), name)


__all__ = [
    "BaseSerializer",
    "Clock",
    "ConstantDelayRetryPolicy",
    "Context",
    "ContextSerdeError",
    "ContextStateError",
    "DictState",
    "Event",
    "ExponentialBackoffRetryPolicy",
    "FanflowError",
    "HumanResponseEvent",
    "InputRequiredEvent",
    "InternalDispatchEvent",
    "JournalInterrupted",
    "JsonSerializer",
    "LeaseError",
    "MemoryStore",
    "MockClock",
    "PickleSerializer",
    "PostgresStore",
    "Record",
    "RecordKind",
    "Resource",
    "ResourceConfig",
    "ResourceManager",
    "RetryInfo",
    "RetryPolicy",
    "RunInfo",
    "SchemaVersionError",
    "SerializationError",
    "SqliteStore",
    "StartEvent",
    "StartEventError",
    "StateError",
    "StateStore",
    "StateTypeError",
    "StepFailedEvent",
    "StepGraph",
    "StepOutputError",
    "StepSpec",
    "StepState",
    "StepStateChanged",
    "StepTimeoutError",
    "StopEvent",
    "Store",
    "StoreError",
    "SystemClock",
    "UnhandledEvent",
    "UnreconstructedException",
    "UnroutableEventError",
    "Workflow",
    "WorkflowCancelledByUser",
    "WorkflowCancelledEvent",
    "WorkflowConfigurationError",
    "WorkflowFailedEvent",
    "WorkflowHandler",
    "WorkflowIdleEvent",
    "WorkflowRuntimeError",
    "WorkflowStepDoesNotExistError",
    "WorkflowStuckError",
    "WorkflowTimedOutEvent",
    "WorkflowTimeoutError",
    "WorkflowValidationError",
    "catch_error",
    "draw_all_possible_flows",
    "draw_execution",
    "draw_most_recent_execution",
    "open_store",
    "step",
    "to_dot",
    "to_html",
    "to_mermaid",
]
