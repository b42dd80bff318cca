"""The ``@step`` decorator and `StepSpec`, the frozen description of a step.

``@step`` reads a function's annotations once, when the class is defined:
which event types it accepts (the parameter annotated with an Event type),
which it may emit (the return annotation), and where the context goes.
A wrong signature fails right there, naming the function.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, TypeVar, Union, overload

from fanflow.errors import WorkflowValidationError
from fanflow.events import Event
from fanflow.resource import ResourceParam, resource_of
from fanflow.retry import RetryPolicy

__all__ = ["StepSpec", "get_spec", "step"]

F = TypeVar("F", bound=Callable[..., Any])

# Set on a decorated function; `Workflow` collects steps by looking for it.
SPEC_ATTR = "__fanflow_step__"
# Set on `Context`; lets this layer recognise a context parameter without
# importing the context module (which sits above it).
CONTEXT_MARKER = "__fanflow_context__"


@dataclass(frozen=True)
class StepSpec:
    """Everything the engine knows about one step, read from its definition."""

    name: str
    fn: Callable[..., Any]
    accepts: tuple[type[Event], ...]
    returns: tuple[type[Event], ...]
    ctx_position: int | None  # index of the context among (ctx, ev) args, None if absent
    num_workers: int = 4
    retry_policy: RetryPolicy | None = None
    timeout: float | None = None
    is_method: bool = True
    state_type: type[Any] | None = None  # from a `ctx: Context[MyState]` annotation
    is_async: bool = True  # False: a plain ``def`` step, which runs in a thread
    executor: Any = None  # where the body runs (see fanflow.executor); None: the workflow's
    # Parameters annotated ``Annotated[T, Resource(...)]``: (name, descriptor, T),
    # made by fanflow.resource.resolve_resources and passed by keyword.
    resources: tuple[ResourceParam, ...] = ()
    # A @catch_error step: it takes StepFailedEvent for the steps in `for_steps`
    # (None: every step), at most `max_recoveries` times per run.
    catches_errors: bool = False
    for_steps: tuple[str, ...] | None = None
    max_recoveries: int = 1
    event_name: str = "ev"  # the event parameter's name

    # The names LlamaIndex Workflows' step config uses (``fn._step_config``).
    @property
    def accepted_events(self) -> list[type[Event]]:
        """Return the accepted event types as a list."""
        return list(self.accepts)

    @property
    def return_types(self) -> list[type[Event]]:
        """Return the emitted event types as a list."""
        return list(self.returns)

    def describe(self) -> str:
        """Return ``name(accepts) -> returns`` for messages and drawings."""
        acc = " | ".join(t.__name__ for t in self.accepts)
        ret = " | ".join(t.__name__ for t in self.returns) or "None"
        return f"{self.name}({acc}) -> {ret}"


def get_spec(fn: object) -> StepSpec | None:
    """Return the `StepSpec` attached to a decorated function, if any."""
    spec = getattr(fn, SPEC_ATTR, None)
    return spec if isinstance(spec, StepSpec) else None


@overload
def step(fn: F, /) -> F: ...


@overload
def step(
    *,
    workflow: type[Any] | None = None,
    num_workers: int = 4,
    retry_policy: RetryPolicy | None = None,
    timeout: float | None = None,
    executor: Any = None,
) -> Callable[[F], F]: ...


def step(
    fn: F | None = None,
    /,
    *,
    workflow: type[Any] | None = None,
    num_workers: int = 4,
    retry_policy: RetryPolicy | None = None,
    timeout: float | None = None,
    executor: Any = None,
) -> F | Callable[[F], F]:
    """Mark a function as a workflow step.

    Use it bare (``@step``) or with settings: ``num_workers`` caps concurrent
    invocations of this step in one run, ``retry_policy`` re-runs it after a
    failure, ``timeout`` bounds each invocation in seconds, ``executor``
    chooses where its body runs (see `fanflow.executor`). An ``async def``
    step runs in the event loop; a plain ``def`` step runs in a thread. A
    free function joins a workflow with ``@step(workflow=MyFlow)``.
    """
    caller = sys._getframe(1)
    # Annotations may name classes local to the function that defines the
    # workflow (common in tests and notebooks); remember where to look.
    localns = {**caller.f_back.f_locals, **caller.f_locals} if caller.f_back else caller.f_locals

    def decorate(func: F) -> F:
        spec = build_spec(
            func,
            localns=localns,
            num_workers=num_workers,
            retry_policy=retry_policy,
            timeout=timeout,
            executor=executor,
        )
        if workflow is None and not spec.is_method and _is_free_function(func):
            raise WorkflowValidationError(
                f"To decorate {spec.name} please pass a workflow class to the @step decorator. "
                f"A function outside a Workflow class joins one with @step(workflow=MyFlow) "
                f"or MyFlow.add_step({spec.name})."
            )
        setattr(func, SPEC_ATTR, spec)
        func._step_config = spec  # type: ignore[attr-defined]  # the reference's name for it
        if workflow is not None:
            workflow.add_step(func)
        return func

    return decorate(fn) if fn is not None else decorate


@overload
def catch_error(fn: F, /) -> F: ...


@overload
def catch_error(
    *, for_steps: list[str] | None = None, max_recoveries: int = 1
) -> Callable[[F], F]: ...


def catch_error(
    fn: F | None = None,
    /,
    *,
    for_steps: list[str] | None = None,
    max_recoveries: int = 1,
) -> F | Callable[[F], F]:
    """Mark a step that handles other steps' failures: ``ev: StepFailedEvent``.

    When a step raises and its retry policy gives up, the run goes on with a
    `StepFailedEvent` sent to this step instead of failing. `for_steps`
    limits it to the named steps (a scoped handler wins over an unscoped
    one); `max_recoveries` caps how often it is entered per run. A failure
    of the handler itself ends the run.
    """
    if isinstance(max_recoveries, bool) or not isinstance(max_recoveries, int):
        raise WorkflowValidationError(
            f"catch_error: max_recoveries must be an int, got {max_recoveries!r}"
        )
    if max_recoveries < 1:
        raise WorkflowValidationError(
            f"catch_error: max_recoveries must be >= 1, got {max_recoveries}"
        )
    caller = sys._getframe(1)
    localns = {**caller.f_back.f_locals, **caller.f_locals} if caller.f_back else caller.f_locals

    def decorate(func: F) -> F:
        spec = build_spec(func, localns=localns)
        failed = [t for t in spec.accepts if t.__name__ == "StepFailedEvent"]
        if not failed or len(spec.accepts) != 1:
            raise WorkflowValidationError(
                f"@catch_error step {spec.name!r} must accept StepFailedEvent "
                f"(ev: StepFailedEvent), not {' | '.join(t.__name__ for t in spec.accepts)}"
            )
        spec = replace(
            spec,
            catches_errors=True,
            for_steps=tuple(for_steps) if for_steps is not None else None,
            max_recoveries=max_recoveries,
        )
        setattr(func, SPEC_ATTR, spec)
        func._step_config = spec  # type: ignore[attr-defined]  # the reference's name for it
        return func

    return decorate(fn) if fn is not None else decorate


def build_spec(
    fn: Callable[..., Any],
    *,
    localns: dict[str, Any] | None = None,
    num_workers: int = 4,
    retry_policy: RetryPolicy | None = None,
    timeout: float | None = None,
    executor: Any = None,
) -> StepSpec:
    """Read `fn`'s signature into a `StepSpec`, or raise naming what is wrong."""
    name = getattr(fn, "__name__", repr(fn))
    where = f"step {name!r} ({_location(fn)})"
    if not callable(fn) or inspect.isclass(fn):
        raise WorkflowValidationError(f"{where}: @step decorates a function, got {fn!r}.")
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise WorkflowValidationError(
            f"{where} is a generator; a step returns an event (use ctx.send_event for several)."
        )
    _check_settings(where, num_workers, retry_policy, timeout)
    if executor is not None and not callable(getattr(executor, "run", None)):
        raise WorkflowValidationError(
            f"{where}: executor must have a run(call) method (see fanflow.executor), "
            f"got {type(executor).__name__}."
        )
    hints = _resolve_hints(fn, where, localns)
    params = list(inspect.signature(fn).parameters.values())
    # A method's first parameter is the unannotated 'self'; a free function
    # (attached with @step(workflow=...) or add_step) starts with ctx or ev.
    is_method = bool(params) and params[0].name not in hints and params[0].name not in _CTX_NAMES
    if is_method:
        params = params[1:]
    resources = tuple(r for p in params if (r := resource_of(p.name, hints.get(p.name))))
    taken = {name for name, _, _ in resources}
    params = [p for p in params if p.name not in taken]
    hints = {name: _without_metadata(hint) for name, hint in hints.items()}
    accepts, ctx_position = _read_params(params, hints, where)
    state_type = None
    if ctx_position is not None:
        state_args = typing.get_args(hints.get(params[ctx_position].name))
        state_type = state_args[0] if state_args else None
    if "return" not in hints:
        raise WorkflowValidationError(
            f"{where} has no return annotation; annotate the events it emits, "
            "e.g. '-> StopEvent' or '-> MyEvent | None'."
        )
    returns = _event_types(hints["return"], where, "return annotation", allow_none=True)
    return StepSpec(
        name=name,
        fn=fn,
        accepts=accepts,
        returns=returns,
        ctx_position=ctx_position,
        num_workers=num_workers,
        retry_policy=retry_policy,
        timeout=timeout,
        is_method=is_method,
        state_type=state_type,
        is_async=inspect.iscoroutinefunction(fn),
        executor=executor,
        resources=resources,
        event_name=next(
            (p.name for i, p in enumerate(params) if i != ctx_position and p.name in hints),
            "ev",
        ),
    )


def _location(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return getattr(fn, "__qualname__", "?")
    return f"{fn.__qualname__} at {code.co_filename}:{code.co_firstlineno}"


def _check_settings(
    where: str, num_workers: int, retry_policy: RetryPolicy | None, timeout: float | None
) -> None:
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise WorkflowValidationError(
            f"{where}: num_workers must be an integer greater than 0, got {num_workers!r}."
        )
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise WorkflowValidationError(
            f"{where}: timeout must be None or > 0 seconds, got {timeout!r}."
        )
    if retry_policy is not None and not callable(getattr(retry_policy, "next", None)):
        raise WorkflowValidationError(
            f"{where}: retry_policy must have a next(elapsed_time, attempts, error) method, "
            f"got {type(retry_policy).__name__}."
        )


def _resolve_hints(
    fn: Callable[..., Any], where: str, localns: dict[str, Any] | None
) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, localns=localns, include_extras=True)
    except NameError as exc:
        raise WorkflowValidationError(
            f"{where}: cannot resolve an annotation ({exc}); "
            "define the event class before the step."
        ) from None


def _read_params(
    params: list[inspect.Parameter], hints: dict[str, Any], where: str
) -> tuple[tuple[type[Event], ...], int | None]:
    accepts: tuple[type[Event], ...] | None = None
    ctx_position: int | None = None
    for index, param in enumerate(params):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise WorkflowValidationError(f"{where}: *args and **kwargs are not allowed in a step.")
        annotation = hints.get(param.name)
        if _is_context(annotation, param.name):
            ctx_position = index
        elif annotation is None:
            raise WorkflowValidationError(
                f"{where}: parameter {param.name!r} has no annotation; annotate the event "
                "parameter with an Event type, e.g. 'ev: MyEvent'."
            )
        elif accepts is None:
            accepts = _event_types(annotation, where, f"parameter {param.name!r}")
        else:
            raise WorkflowValidationError(
                f"{where}: parameter {param.name!r} is one too many; a step takes one event "
                "parameter, optionally a Context, and resources annotated "
                "'Annotated[T, Resource(factory)]'."
            )
    if accepts is None or not accepts:
        raise WorkflowValidationError(
            f"{where} needs a parameter annotated with an Event type, e.g. 'ev: StartEvent'."
        )
    if len(params) > 2:
        raise WorkflowValidationError(f"{where} takes at most two parameters (ctx, ev).")
    return accepts, ctx_position


_CTX_NAMES = ("ctx", "context")


def _without_metadata(hint: Any) -> Any:
    """Return ``T`` for ``Annotated[T, ...]``, else `hint` itself."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def _is_free_function(fn: Callable[..., Any]) -> bool:
    """Return whether `fn` is defined outside a class body (module level or in a function)."""
    parts = getattr(fn, "__qualname__", "").split(".")
    return len(parts) == 1 or parts[-2] == "<locals>"


def _is_context(annotation: Any, name: str) -> bool:
    if annotation is None:
        return name in _CTX_NAMES
    origin = typing.get_origin(annotation) or annotation
    return bool(getattr(origin, CONTEXT_MARKER, False))


def _event_types(
    annotation: Any, where: str, what: str, *, allow_none: bool = False
) -> tuple[type[Event], ...]:
    members = _union_members(annotation)
    found: list[type[Event]] = []
    for member in members:
        if member is type(None) and allow_none:
            continue
        if not (isinstance(member, type) and issubclass(member, Event)):
            raise WorkflowValidationError(
                f"{where}: {what} names {_type_name(member)}, which is not an Event subclass."
            )
        if member not in found:
            found.append(member)
    return tuple(found)


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if annotation is None:
        return (type(None),)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _type_name(obj: Any) -> str:
    return obj.__name__ if isinstance(obj, type) else repr(obj)
