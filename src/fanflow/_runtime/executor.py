"""Executors: where a step's body runs.

The engine hands each invocation to an executor as a `StepCall` and awaits
what it returns. The default runs an ``async def`` body in the event loop
and a plain ``def`` body in a thread. `@step(executor=...)` and
``Workflow(executor=...)`` take any object with a ``run(call)`` method
returning an awaitable, so a distributed executor plugs in without any
change to the engine.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from fanflow._runtime.pools import shared_pool
from fanflow.events import Event
from fanflow.step import StepSpec

__all__ = ["DefaultExecutor", "Executor", "StepCall", "ThreadExecutor"]

THREADS = 64  # threads shared by the plain `def` steps of every run in the process


class StepCall:
    """One invocation to run: ``call()`` runs the step body with its arguments."""

    __slots__ = ("attempt", "ctx", "event", "fn", "invocation", "kwargs", "run_id", "spec")

    def __init__(
        self,
        spec: StepSpec,
        fn: Callable[..., Any],
        ctx: Any,
        event: Event,
        kwargs: dict[str, Any],
        run_id: str,
        invocation: int,
        attempt: int,
    ) -> None:
        self.spec = spec  # the step's definition (name, function, settings)
        self.fn = fn  # the bound body: fn(ctx, event, **kwargs)
        self.ctx = ctx
        self.event = event
        self.kwargs = kwargs  # resources to inject
        self.run_id = run_id
        self.invocation = invocation
        self.attempt = attempt

    def __call__(self) -> Any:
        return self.fn(self.ctx, self.event, **self.kwargs)

    def __repr__(self) -> str:
        return (
            f"<StepCall {self.spec.name} run={self.run_id} invocation={self.invocation} "
            f"attempt={self.attempt}>"
        )


@runtime_checkable
class Executor(Protocol):
    """Runs step bodies; ``run`` returns an awaitable of what the step returned."""

    def run(self, call: StepCall) -> Awaitable[Any]:
        """Start `call` and return an awaitable of its result (an Event or None)."""


class ThreadExecutor:
    """Run each body in a thread (an ``async def`` body gets an event loop of its own there).

    The step's context variables are copied into the thread. `pool` defaults
    to a pool shared by the process; a step's ``num_workers`` bounds how many
    of its invocations run at once.
    """

    def __init__(self, pool: ThreadPoolExecutor | None = None) -> None:
        self.pool = pool

    def run(self, call: StepCall) -> Awaitable[Any]:
        """Run `call` in a thread."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        target = _in_new_loop if call.spec.is_async else _plain
        return loop.run_in_executor(
            self.pool or shared_pool("step", THREADS), context.run, target, call
        )


def _plain(call: StepCall) -> Any:
    return call()


def _in_new_loop(call: StepCall) -> Any:
    return asyncio.run(call())


class DefaultExecutor(ThreadExecutor):
    """``async def`` bodies in the event loop, plain ``def`` bodies in a thread."""

    def run(self, call: StepCall) -> Awaitable[Any]:
        """Run an async body in the loop, a plain one in a thread."""
        if call.spec.is_async:
            result: Awaitable[Any] = call()
            return result
        return super().run(call)


DEFAULT = DefaultExecutor()
