"""The public namespace: a sorted, complete `__all__`, `fanflow.events` and `fanflow.errors`."""

import importlib
import types
from importlib.resources import files

import pytest

import fanflow
import fanflow.errors
import fanflow.events

# Modules whose public names users reach through `fanflow`.
MODULES = [
    "fanflow.clock",
    "fanflow.context",
    "fanflow.context.serializers",
    "fanflow.context.state_store",
    "fanflow.decorators",
    "fanflow.errors",
    "fanflow.events",
    "fanflow.graph",
    "fanflow.handler",
    "fanflow.resource",
    "fanflow.retry",
    "fanflow.retry_policy",
    "fanflow.step",
    "fanflow.testing",
    "fanflow.stores",
    "fanflow.stores.memory",
    "fanflow.validation",
    "fanflow.workflow",
    "fanflow._runtime.records",
    "fanflow._runtime.state",
]

# Names those modules export to the layers above them, not to users. A new
# public name must be added to `fanflow.__all__` or, deliberately, here.
LAYER_ONLY = {
    "DictLikeModel",  # base of Event and DictState
    "RecordSink",  # the write half of Store
    "Timer",  # what Clock.call_later returns
    "build_graph",  # Workflow.graph() is the public way
    "find_problems",  # Workflow.problems() is the public way
    "get_spec",  # Workflow.step_specs() is the public way
    "validate",  # Workflow() and run() validate
    "InMemoryStateStore",  # the reference's name for StateStore, in fanflow.context.state_store
    "ResourceDescriptor",  # the protocol Resource and ResourceConfig share
    "resolve_resources",  # the engine makes a step's resources
    "resource_dependencies",  # cycle check used by resolve_resources
    "resource_problems",  # Workflow.validate() is the public way
}

# Names users import from their own module, as in the reference, and not from
# `fanflow`: the composable retry parts (``retry_policy`` would clash with
# the module `fanflow.retry_policy`) and the test runner.
MODULE_ONLY = {
    "fanflow.retry_policy": {
        name
        for name in importlib.import_module("fanflow.retry_policy").__all__
        if name[0].islower() or name in {"RetryCondition", "StopCondition", "WaitStrategy"}
    },
    "fanflow.testing": {"WorkflowTestResult", "WorkflowTestRunner"},
}

# What the tutorial, the design and the issue name as importable from `fanflow`.
REQUIRED = [
    "Context",
    "ConstantDelayRetryPolicy",
    "Event",
    "ExponentialBackoffRetryPolicy",
    "FanflowError",
    "HumanResponseEvent",
    "InputRequiredEvent",
    "MemoryStore",
    "MockClock",
    "Record",
    "RecordKind",
    "StartEvent",
    "StartEventError",
    "StateError",
    "StepOutputError",
    "StepTimeoutError",
    "StopEvent",
    "UnroutableEventError",
    "Workflow",
    "WorkflowCancelledByUser",
    "WorkflowConfigurationError",
    "WorkflowHandler",
    "WorkflowRuntimeError",
    "WorkflowStuckError",
    "WorkflowTimeoutError",
    "WorkflowValidationError",
    "step",
]


def test_all_is_sorted():
    """fanflow.__all__ is sorted (case-sensitive, as ruff sorts it) and has no duplicates."""
    assert fanflow.__all__ == sorted(set(fanflow.__all__))


def test_every_name_in_all_exists():
    """Each name in fanflow.__all__ is an attribute of the package."""
    missing = [name for name in fanflow.__all__ if not hasattr(fanflow, name)]

    assert missing == []


def test_every_public_attribute_is_in_all():
    """Every public, non-module attribute of fanflow is listed in __all__."""
    public = {
        name
        for name, value in vars(fanflow).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }

    assert public - set(fanflow.__all__) == set()


@pytest.mark.parametrize("module_name", MODULES)
def test_module_public_names_are_exported_at_top_level(module_name):
    """Each public name of a fanflow module is in fanflow.__all__ (or deliberately layer-only)."""
    module = importlib.import_module(module_name)
    unexported = (
        set(module.__all__)
        - set(fanflow.__all__)
        - LAYER_ONLY
        - MODULE_ONLY.get(module_name, set())
    )

    assert unexported == set()
    for name in set(module.__all__) & set(fanflow.__all__):
        assert getattr(fanflow, name) is getattr(module, name)


@pytest.mark.parametrize("name", REQUIRED)
def test_required_name_is_exported(name):
    """The names users are promised are in fanflow.__all__."""
    assert name in fanflow.__all__


def test_events_module_holds_the_event_classes():
    """fanflow.events offers the event classes, the same objects as the top level."""
    for name in ["Event", "StartEvent", "StopEvent", "InputRequiredEvent", "HumanResponseEvent"]:
        assert getattr(fanflow.events, name) is getattr(fanflow, name)


def test_errors_module_holds_every_error():
    """fanflow.errors.__all__ lists every exception class defined there."""
    defined = {
        name
        for name, value in vars(fanflow.errors).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }

    assert set(fanflow.errors.__all__) == defined


@pytest.mark.parametrize(
    ("error", "parent"),
    [
        ("WorkflowValidationError", "FanflowError"),
        ("WorkflowConfigurationError", "WorkflowValidationError"),
        ("WorkflowRuntimeError", "FanflowError"),
        ("WorkflowStuckError", "WorkflowRuntimeError"),
        ("UnroutableEventError", "WorkflowRuntimeError"),
        ("StepOutputError", "WorkflowRuntimeError"),
        ("WorkflowTimeoutError", "FanflowError"),
        ("StepTimeoutError", "WorkflowTimeoutError"),
        ("WorkflowCancelledByUser", "FanflowError"),
        ("StartEventError", "FanflowError"),
        ("StateError", "FanflowError"),
    ],
)
def test_error_tree(error, parent):
    """Each error sits where the errors module's tree puts it, all under FanflowError."""
    assert issubclass(getattr(fanflow.errors, error), getattr(fanflow.errors, parent))


def test_timeout_error_is_a_builtin_timeout_error():
    """WorkflowTimeoutError is also a TimeoutError, so generic handlers catch it."""
    assert issubclass(fanflow.WorkflowTimeoutError, TimeoutError)


def test_package_is_typed():
    """fanflow ships a py.typed marker for type checkers."""
    assert files("fanflow").joinpath("py.typed").is_file()
