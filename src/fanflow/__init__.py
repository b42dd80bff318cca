"""fanflow: event-driven async workflows with typed events and concurrent steps.

    from fanflow import Workflow, step, Context, Event, StartEvent, StopEvent

Every public name is importable from here; `fanflow.events` and
`fanflow.errors` hold the event classes and the exception tree.
"""

import typing as _typing

from fanflow._runtime.records import Record, RecordKind, RunInfo, Store
from fanflow._runtime.state import DictState, StateStore
from fanflow.clock import Clock, MockClock, SystemClock
from fanflow.context import Context
from fanflow.errors import (
    FanflowError,
    LeaseError,
    SchemaVersionError,
    SerializationError,
    StartEventError,
    StateError,
    StepOutputError,
    StepTimeoutError,
    StoreError,
    UnroutableEventError,
    WorkflowCancelledByUser,
    WorkflowConfigurationError,
    WorkflowRuntimeError,
    WorkflowStuckError,
    WorkflowTimeoutError,
    WorkflowValidationError,
)
from fanflow.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)
from fanflow.graph import StepGraph
from fanflow.handler import WorkflowHandler
from fanflow.retry import (
    ConstantDelayRetryPolicy,
    ExponentialBackoffRetryPolicy,
    RetryInfo,
    RetryPolicy,
)
from fanflow.step import StepSpec, step
from fanflow.stores.memory import MemoryStore
from fanflow.workflow import Workflow

if _typing.TYPE_CHECKING:
    from fanflow.drawing import (
        draw_all_possible_flows,
        draw_execution,
        draw_most_recent_execution,
        to_dot,
        to_html,
        to_mermaid,
    )

__version__ = "0.1.0"

# Drawing is loaded on first use: most programs never draw, and it is a
# sizeable part of `import fanflow`.
_DRAWING = frozenset(
    {
        "draw_all_possible_flows",
        "draw_execution",
        "draw_most_recent_execution",
        "to_dot",
        "to_html",
        "to_mermaid",
    }
)


def __getattr__(name: str) -> _typing.Any:
    if name in _DRAWING:
        import fanflow.drawing

        return getattr(fanflow.drawing, name)
    raise AttributeError(f"module 'fanflow' has no attribute {name!r}")

__all__ = [
    "Clock",
    "ConstantDelayRetryPolicy",
    "Context",
    "DictState",
    "Event",
    "ExponentialBackoffRetryPolicy",
    "FanflowError",
    "HumanResponseEvent",
    "InputRequiredEvent",
    "LeaseError",
    "MemoryStore",
    "MockClock",
    "Record",
    "RecordKind",
    "RetryInfo",
    "RetryPolicy",
    "RunInfo",
    "SchemaVersionError",
    "SerializationError",
    "StartEvent",
    "StartEventError",
    "StateError",
    "StateStore",
    "StepGraph",
    "StepOutputError",
    "StepSpec",
    "StepTimeoutError",
    "StopEvent",
    "Store",
    "StoreError",
    "SystemClock",
    "UnroutableEventError",
    "Workflow",
    "WorkflowCancelledByUser",
    "WorkflowConfigurationError",
    "WorkflowHandler",
    "WorkflowRuntimeError",
    "WorkflowStuckError",
    "WorkflowTimeoutError",
    "WorkflowValidationError",
    "draw_all_possible_flows",
    "draw_execution",
    "draw_most_recent_execution",
    "step",
    "to_dot",
    "to_html",
    "to_mermaid",
]
