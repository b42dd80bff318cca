"""Instrumentation hooks: a listener hears what happens in a run as it happens.

Tracing, logging, ``verbose=True`` and the CLI's progress display are all
listeners. A listener's step calls run inside the invocation's own
context (`contextvars`), so a tracer can open a span in `step_started`
and the step's own code sees it as current; `run_started` runs in the
run's context, which every invocation's context is copied from.

A listener that raises is logged and otherwise ignored: observing a run
never changes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fanflow.events import Event, StepState, StepStateChanged

__all__ = ["Hooks", "InvocationInfo", "Listener", "RunIdentity", "add_listener", "remove_listener"]

log = logging.getLogger("fanflow")


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """Which run a run-level call is about."""

    run_id: str
    workflow: str
    resumed: bool = False
    # Kept with the run's RUN_STARTED record and given back on resume: a tracer
    # stores its trace context here (JSON values only).
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InvocationInfo:
    """Which step invocation a step-level call is about.

    `event_id` is the id of the event the invocation handles, `cause_id`
    the id of the event its emitter was handling (None for events from
    outside and the start event). `attempt` counts from 1; `worker`
    numbers the worker task running it, within its run.
    """

    run_id: str
    workflow: str
    step: str
    invocation: int
    attempt: int
    event_id: int
    event_type: type[Event]
    cause_id: int | None
    worker: int = 0


class Listener:
    """Base class for listeners: override the calls you need; the rest do nothing."""

    def run_started(self, run: RunIdentity) -> None:
        """A run started or resumed."""

    def run_finished(self, run: RunIdentity, status: str, error: BaseException | None) -> None:
        """A run ended with `status` (``ok``, ``failed``, ``timeout``, ``cancelled``, ...)."""

    def step_started(self, info: InvocationInfo) -> None:
        """An attempt of a step invocation begins (called in the invocation's context)."""

    def step_finished(self, info: InvocationInfo, output: Event | None, seconds: float) -> None:
        """An invocation returned `output` (None: no event)."""

    def step_failed(self, info: InvocationInfo, error: BaseException, seconds: float) -> None:
        """An attempt raised `error`; `step_retried` follows if it will run again."""

    def step_retried(self, info: InvocationInfo, delay: float) -> None:
        """The failed attempt `info` runs again after `delay` seconds."""

    def event_emitted(
        self, run_id: str, event_id: int, event: Event, by: InvocationInfo | None
    ) -> None:
        """`event` got id `event_id`; `by` is the invocation that emitted it (None: outside)."""


_GLOBAL: list[Listener] = []


def add_listener(listener: Listener) -> None:
    """Make `listener` hear every run started from now on, in this process."""
    if not isinstance(listener, Listener):
        raise TypeError(
            f"add_listener() takes a fanflow.hooks.Listener, got {type(listener).__name__}"
        )
    if listener not in _GLOBAL:
        _GLOBAL.append(listener)


def remove_listener(listener: Listener) -> None:
    """Stop `listener` hearing runs started from now on (no-op if it was not added)."""
    if listener in _GLOBAL:
        _GLOBAL.remove(listener)


class Hooks:
    """The listeners of one run, called safely."""

    __slots__ = ("emits", "failures", "listeners", "steps")

    def __init__(self, listeners: Sequence[Listener], *, with_global: bool = True) -> None:
        self.listeners: tuple[Listener, ...] = (
            (*_GLOBAL, *listeners) if with_global else tuple(listeners)
        )
        # Which calls anyone overrides: the engine skips building what nobody hears
        # (a logging listener that wants only failures costs no step its info).
        heard = frozenset().union(*map(_overrides, self.listeners))
        self.steps = not heard.isdisjoint(("step_started", "step_finished"))
        self.failures = self.steps or not heard.isdisjoint(("step_failed", "step_retried"))
        self.emits = "event_emitted" in heard

    @classmethod
    def for_run(cls, listeners: Sequence[Listener]) -> Hooks:
        """Return the hooks of a run with `listeners` (plus the global ones)."""
        if not listeners and not _GLOBAL:
            return _NONE  # shared: nothing to call, nothing to allocate
        return cls(listeners)

    def call(self, name: str, *args: object) -> None:
        """Call method `name` of every listener; log, never raise, what one raises."""
        for listener in self.listeners:
            try:
                getattr(listener, name)(*args)
            except Exception:
                log.exception("fanflow listener %r failed in %s", listener, name)


_OVERRIDES: dict[type[Listener], frozenset[str]] = {}


def _overrides(listener: Listener) -> frozenset[str]:
    """Return the calls `listener`'s class overrides (methods set on an instance are not seen)."""
    kind = type(listener)
    names = _OVERRIDES.get(kind)
    if names is None:
        calls = [name for name in vars(Listener) if not name.startswith("_")]
        names = _OVERRIDES[kind] = frozenset(
            name for name in calls if getattr(kind, name) is not getattr(Listener, name)
        )
    return names


_NONE = Hooks(())


class VerboseListener(Listener):
    """Print each step as it runs: what ``Workflow(verbose=True)`` shows."""

    def step_started(self, info: InvocationInfo) -> None:
        print(f"Running step {info.step}")

    def step_finished(self, info: InvocationInfo, output: Event | None, seconds: float) -> None:
        if output is None:
            print(f"Step {info.step} produced no event")
        else:
            print(f"Step {info.step} produced event {type(output).__name__}")


VERBOSE = VerboseListener()


class InternalEvents(Listener):
    """Put `StepStateChanged` events on a run's stream (``expose_internal=True``)."""

    def __init__(self, put: Callable[[Event], None]) -> None:
        self.put = put

    def step_started(self, info: InvocationInfo) -> None:
        self._changed(info, StepState.RUNNING, None)

    def step_finished(self, info: InvocationInfo, output: Event | None, seconds: float) -> None:
        self._changed(info, StepState.NOT_RUNNING, output)

    def step_failed(self, info: InvocationInfo, error: BaseException, seconds: float) -> None:
        self._changed(info, StepState.NOT_RUNNING, None)

    def _changed(self, info: InvocationInfo, state: StepState, output: Event | None) -> None:
        self.put(
            StepStateChanged(
                name=info.step,
                step_state=state,
                worker_id=str(info.worker),
                input_event_name=info.event_type.__name__,
                output_event_name=type(output).__name__ if output is not None else None,
            )
        )
