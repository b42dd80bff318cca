"""Exceptions raised by fanflow.

Every error fanflow raises derives from `FanflowError`, so one ``except``
clause catches them all. Errors raised *by your steps* are never wrapped:
they reach ``await handler`` as the same object.

    FanflowError
    ├── WorkflowValidationError       the workflow's definition is wrong
    │   ├── StateTypeError                steps' state types are unrelated (also a ValueError)
    │   └── WorkflowConfigurationError    the step graph is inconsistent
    ├── WorkflowRuntimeError          a run went wrong while running
    │   ├── WorkflowStuckError            nothing can make progress
    │   ├── UnroutableEventError          no step accepts an event
    │   ├── StepOutputError               a step returned a non-Event
    │   ├── StartEventError               ``run(**kwargs)`` does not fit the StartEvent
    │   ├── ContextStateError             a Context method used at the wrong time
    │   └── WorkflowStepDoesNotExistError ``send_event(step=...)`` names no step
    ├── WorkflowTimeoutError          a run (or one step) took too long
    │   └── StepTimeoutError              one step invocation took too long
    ├── WorkflowCancelledByUser       ``handler.cancel_run()`` ended the run
    ├── StateError                    ``ctx.store`` was asked for a missing path
    ├── UnreconstructedException      a stored exception whose type cannot be rebuilt
    └── StoreError                    a durable store cannot do what was asked
        ├── SerializationError            a record, event or value does not (de)serialize
        │   └── ContextSerdeError             a Context or its state does not (de)serialize
        ├── SchemaVersionError            the database was written by a newer fanflow
        ├── JournalInterrupted            the store stayed down; the run can be resumed
        └── LeaseError                    another process holds the run
"""

from __future__ import annotations

__all__ = [
    "ContextSerdeError",
    "ContextStateError",
    "FanflowError",
    "JournalInterrupted",
    "LeaseError",
    "SchemaVersionError",
    "SerializationError",
    "StartEventError",
    "StateError",
    "StateTypeError",
    "StepOutputError",
    "StepTimeoutError",
    "StoreError",
    "UnreconstructedException",
    "UnroutableEventError",
    "WorkflowCancelledByUser",
    "WorkflowConfigurationError",
    "WorkflowRuntimeError",
    "WorkflowStepDoesNotExistError",
    "WorkflowStuckError",
    "WorkflowTimeoutError",
    "WorkflowValidationError",
]


class FanflowError(Exception):
    """Base class of every error fanflow raises itself."""


class WorkflowValidationError(FanflowError):
    """The workflow's definition is wrong: a step signature, annotation or setting."""


class StateTypeError(WorkflowValidationError, ValueError):
    """The steps declare state types that are not in one inheritance chain."""


class WorkflowConfigurationError(WorkflowValidationError):
    """The step graph is inconsistent: an event nobody consumes, no StopEvent, ..."""


class WorkflowRuntimeError(FanflowError):
    """A run went wrong while running (not an exception raised by a step)."""


class WorkflowStuckError(WorkflowRuntimeError):
    """Nothing is running, nothing is queued and nobody waits for input."""


class UnroutableEventError(WorkflowRuntimeError):
    """An event was emitted that no step accepts."""


class StepOutputError(WorkflowRuntimeError):
    """A step returned something that is not an Event (or None)."""


class ContextStateError(WorkflowRuntimeError):
    """A Context method was used at the wrong time: outside a run or step, or during one."""


class WorkflowStepDoesNotExistError(WorkflowRuntimeError):
    """``send_event(ev, step=...)`` named a step the workflow does not have."""


class WorkflowTimeoutError(FanflowError, TimeoutError):
    """The run exceeded its ``timeout``."""


class StepTimeoutError(WorkflowTimeoutError):
    """One step invocation exceeded the step's ``timeout``."""


class WorkflowCancelledByUser(FanflowError):
    """The run was cancelled with ``handler.cancel_run()``."""


class StartEventError(WorkflowRuntimeError, TypeError):
    """The arguments given to ``run()`` do not build the workflow's StartEvent."""


class StateError(FanflowError, KeyError, ValueError):
    """A state path does not exist (and no default was given)."""

    def __str__(self) -> str:
        # KeyError quotes its argument; a sentence reads better unquoted.
        return str(self.args[0]) if self.args else ""


class StoreError(FanflowError):
    """A store could not keep or give back run records."""


class SerializationError(StoreError):
    """A record, event or value could not be turned into JSON or back; names what failed."""


class ContextSerdeError(SerializationError):
    """A Context, or the state it carries, could not be saved or restored."""


class SchemaVersionError(StoreError):
    """The database was written by a newer fanflow than this one."""


class JournalInterrupted(StoreError):
    """The store kept failing past the retry limit; the run stopped, and can be resumed."""


class LeaseError(StoreError):
    """Another process holds the run; the message names the holder."""


class UnreconstructedException(FanflowError):
    """Stands in for a stored exception whose type could not be rebuilt.

    ``str(exc)`` is the original message; `original_type` names the type
    (``module.Qualname``) that was stored.
    """

    def __init__(self, message: str, *, original_type: str | None = None) -> None:
        super().__init__(message)
        self.original_type = original_type

    def __repr__(self) -> str:
        return f"UnreconstructedException({self.args[0]!r}, original_type={self.original_type!r})"
