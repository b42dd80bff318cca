"""`RayExecutor`: step bodies as Ray tasks, on a local Ray or a cluster (``fanflow[ray]``).

    from fanflow.ray import RayExecutor

    class Embed(Workflow):
        @step(executor=RayExecutor(num_cpus=1))
        def embed(self, ev: Chunk) -> Vector:  # plain or async def
            return Vector(values=model(ev.text))

What travels: the step's function and the workflow class go by Ray's own
serialization (by reference when their module can be imported on the
cluster, as it must be for the event types anyway); the event goes as its
JSON (`fanflow.serialize.event_to_json`), and so does the event the step
returns. The workflow *instance* never travels.

A step on Ray is **pure**: it takes its event and returns one event or
None. Its ``self`` is a bare instance of the workflow class (made without
``__init__``: class attributes and methods work, instance attributes do
not), and its ``ctx`` answers only ``ctx.run_id``; any other use
(``send_event``, ``store``, ``collect_events``, ``write_event_to_stream``,
``wait_for_event``) raises `RemoteContextError` naming the step. Steps
that need the run's context run in the loop, around the pure ones.

A step's timeout (or the run's end) cancels its Ray task. An error raised
on Ray comes back as its own type when that type can be rebuilt here from
its arguments (else `RemoteStepError`), with the remote traceback as its
``__cause__`` (`RemoteTraceback`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Awaitable
from typing import Any

from fanflow._runtime.executor import StepCall
from fanflow.errors import FanflowError, WorkflowRuntimeError
from fanflow.events import Event
from fanflow.serialize import event_from_json, event_to_json

__all__ = ["RayExecutor", "RayUnavailableError", "RemoteContextError", "RemoteStepError"]

INSTALL = "pip install 'fanflow[ray]'"


class RayUnavailableError(FanflowError):
    """Ray is not installed, or the cluster cannot be reached."""


class RemoteContextError(WorkflowRuntimeError):
    """A step running on Ray used its context, which stays with the run."""


class RemoteStepError(FanflowError):
    """An error raised on Ray whose type cannot be rebuilt here; `type_name` names it."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


class RemoteTraceback(Exception):
    """The traceback of an error raised on Ray (set as that error's ``__cause__``)."""

    def __str__(self) -> str:
        return f"\n\nthe step raised on Ray:\n\n{self.args[0]}"


class RayExecutor:
    """Run step bodies as Ray tasks; `options` go to ``.options()`` (``num_cpus``, ...).

    `address` is the cluster's (``"auto"``, ``"ray://head:10001"``; None: a
    local Ray), used by ``ray.init`` unless Ray is initialised already;
    `init` holds more ``ray.init`` arguments.
    """

    def __init__(
        self, address: str | None = None, *, init: dict[str, Any] | None = None, **options: Any
    ) -> None:
        self.address = address
        self.init = dict(init or {})
        self.options = options
        self._remote: Any = None

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r})"

    def run(self, call: StepCall) -> Awaitable[Any]:
        """Run `call` on Ray; cancelling the awaitable cancels the Ray task."""
        return self._run(call)

    async def _run(self, call: StepCall) -> Any:
        ray = _ray()
        ref = self.submit(call)
        try:
            payload = await ref
        except asyncio.CancelledError:
            ray.cancel(ref, force=True)  # a plain task ignores a polite cancel in C code
            raise
        return _unpack(payload, call.spec.name)

    def submit(self, call: StepCall) -> Any:
        """Start `call` as a Ray task and return its ``ObjectRef``."""
        if call.kwargs:
            raise WorkflowRuntimeError(
                f"step {call.spec.name!r} runs on Ray and asks for resources "
                f"({', '.join(call.kwargs)}), which stay in this process; make them in the step"
            )
        spec = call.spec
        owner = _owner_class(call) if spec.is_method else None
        event = json.dumps(event_to_json(call.event))
        return self._task().remote(
            spec.fn, owner, spec.ctx_position, spec.is_async, event, call.run_id, spec.name
        )

    def _task(self) -> Any:
        if self._remote is None:
            ray = _ray()
            if not ray.is_initialized():
                _connect(ray, self.address, self.init)
            task = ray.remote(_invoke)
            self._remote = task.options(**self.options) if self.options else task
        return self._remote


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            f"RayExecutor needs Ray, which is not installed; install it with:\n    {INSTALL}"
        ) from None
    return ray


def _connect(ray: Any, address: str | None, init: dict[str, Any]) -> None:
    try:
        ray.init(address=address, **init)
    except Exception as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise RayUnavailableError(
            f"cannot start or reach {where}: {type(exc).__name__}: {exc}; start a cluster with "
            "'ray start --head' and pass its address (RayExecutor(address='auto') on its "
            "machines, 'ray://HEAD:10001' from elsewhere), or address=None for a local Ray"
        ) from exc


def _owner_class(call: StepCall) -> type | None:
    """Return the class of the workflow whose step `call` runs."""
    owner = getattr(call.fn, "__self__", None)
    for cell in getattr(call.fn, "__closure__", None) or ():
        owner = owner or getattr(cell.cell_contents, "__self__", None)
    return None if owner is None else type(owner)


# ---------------------------------------------------------------- on Ray


class _RemoteContext:
    """The `ctx` of a step on Ray: its run id, and a clear error for everything else."""

    def __init__(self, run_id: str, step: str) -> None:
        self.run_id = run_id
        self._step = step

    def __getattr__(self, name: str) -> Any:
        raise RemoteContextError(
            f"step {self._step!r} runs on Ray (fanflow.ray.RayExecutor), where ctx.{name} is "
            "not available: a step on Ray takes its event and returns one event (or None). "
            "Keep ctx calls in steps that run in the loop"
        )


def _invoke(
    fn: Any,
    owner: type | None,
    ctx_position: int | None,
    is_async: bool,
    event_json: str,
    run_id: str,
    step: str,
) -> dict[str, Any]:
    """Run one step body on Ray; return ``{"event": ...}`` or ``{"error": ...}`` as JSON data."""
    try:
        event = event_from_json(json.loads(event_json), f"step {step!r} on Ray")
        ctx = _RemoteContext(run_id, step)
        args: list[Any] = [event]
        if ctx_position is not None:
            args.insert(ctx_position, ctx)
        if owner is not None:
            args.insert(0, object.__new__(owner))  # a bare instance: no __init__
        result = asyncio.run(fn(*args)) if is_async else fn(*args)
        if result is not None and not isinstance(result, Event):
            raise TypeError(f"step {step!r} returned {type(result).__name__}, not an event")
        return {"event": None if result is None else event_to_json(result)}
    except Exception as exc:
        return {"error": _error_data(exc)}


def _error_data(exc: BaseException) -> dict[str, Any]:
    args: Any = list(exc.args)
    try:
        json.dumps(args)
    except (TypeError, ValueError):
        args = None
    kind = type(exc)
    return {
        "type": f"{kind.__module__}:{kind.__qualname__}",
        "args": args,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


# ---------------------------------------------------------------- back here


def _unpack(payload: dict[str, Any], step: str) -> Event | None:
    error = payload.get("error")
    if error is not None:
        raise _rebuild(error)
    event = payload.get("event")
    return None if event is None else event_from_json(event, f"step {step!r}'s result from Ray")


def _rebuild(error: dict[str, Any]) -> BaseException:
    """Return the error raised on Ray: its own type if it can be made here from its args."""
    module, _, qualname = str(error["type"]).partition(":")
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    rebuilt: BaseException | None = None
    if isinstance(found, type) and issubclass(found, Exception) and error["args"] is not None:
        try:
            rebuilt = found(*error["args"])
        except Exception:
            rebuilt = None
    if rebuilt is None:
        rebuilt = RemoteStepError(str(error["type"]), str(error["message"]))
    rebuilt.__cause__ = RemoteTraceback(str(error["traceback"]))
    return rebuilt
