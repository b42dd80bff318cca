"""`Workflow`: a class whose ``@step`` methods react to events.

Subclass it, decorate async methods with ``@step``, then ``await
MyFlow().run(**kwargs)``. Steps are collected when the class is defined;
the graph is checked when an instance is made and when it first runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sys
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import ValidationError

from fanflow._runtime.hooks import Listener
from fanflow._runtime.journal import RETRY_LIMIT, Durability, check_durability
from fanflow._runtime.records import RecordKind, Store
from fanflow._runtime.resume import restore_finished
from fanflow._runtime.run import Run
from fanflow._runtime.table import StepTable, bind
from fanflow.clock import Clock, SystemClock
from fanflow.context import Context
from fanflow.errors import (
    StartEventError,
    StateTypeError,
    WorkflowRuntimeError,
    WorkflowValidationError,
)
from fanflow.events import StartEvent
from fanflow.graph import StepGraph, build_graph
from fanflow.handler import WorkflowHandler
from fanflow.resource import ResourceManager, resolve_resources, resource_problems
from fanflow.serialize import not_resumable
from fanflow.step import StepSpec, build_spec, get_spec
from fanflow.stores.memory import MemoryStore
from fanflow.validation import find_problems, validate

__all__ = ["Workflow"]

_SYSTEM_CLOCK = SystemClock()
log = logging.getLogger("fanflow")


class Workflow:
    """Base class of workflows; see the module docstring.

    `timeout` bounds a whole run in seconds (None: no limit); `verbose`
    prints each step as it runs; `disable_validation` skips the graph
    checks. `clock` (default: the event loop's) and `store` (default: an
    in-memory `MemoryStore`, or a URL like ``sqlite:///runs.db``) are the
    run's time source and record sink; `durability` says when records reach
    a durable store. `num_concurrent_runs` caps this instance's runs in
    progress (the rest start as others end); `workflow_name` names its runs
    in records and listings (default: ``module.QualifiedClassName``).
    `executor` decides where step bodies run (default: ``async def`` in the
    loop, plain ``def`` in a thread; see `fanflow.executor`); `listeners`
    hear every run of this workflow (see `fanflow.hooks`). A durable store
    that fails to write is retried for `store_retry_limit` seconds, the run
    held meanwhile; past it the run stops as "interrupted", resumable once
    the store is back.
    """

    _step_specs: ClassVar[dict[str, StepSpec]] = {}
    # Step functions by name, under the name LlamaIndex Workflows uses.
    _step_functions: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        specs = dict(cls._step_specs)  # inherited steps (and steps added to the parent)
        for attr in cls.__dict__.values():
            spec = get_spec(attr)
            if spec is not None:
                specs[spec.name] = spec
        cls._step_specs = specs
        cls._step_functions = {name: spec.fn for name, spec in specs.items()}

    @classmethod
    def add_step(cls, fn: Callable[..., Any]) -> None:
        """Attach a free-function step ``async def f(ctx, ev: E) -> ...`` to this class."""
        spec = get_spec(fn) or build_spec(fn)
        if cls is Workflow:
            raise WorkflowValidationError("add_step() needs a Workflow subclass, not Workflow")
        cls._step_specs = {**cls._step_specs, spec.name: spec}
        cls._step_functions = {**cls._step_functions, spec.name: spec.fn}

    @classmethod
    def step_specs(cls) -> list[StepSpec]:
        """Return the specs of this workflow's steps, in definition order."""
        return list(cls._step_specs.values())

    @classmethod
    def graph(cls) -> StepGraph:
        """Return the static event -> step graph (used by validation and drawing)."""
        return build_graph(cls._step_specs.values())

    @classmethod
    def problems(cls) -> list[str]:
        """Return every problem validation finds in this workflow's graph."""
        return find_problems(cls.graph(), cls.__name__)

    def validate(
        self, validate_resource_configs: bool = True, validate_resources: bool = False
    ) -> bool:
        """Check the workflow now: raise what its first ``run()`` would raise, else return True.

        Also reads every `ResourceConfig` file (`validate_resource_configs`)
        and, with `validate_resources`, makes every resource once; a problem
        there raises `WorkflowValidationError` naming the step and parameter.
        """
        self._check()
        problems = resource_problems(
            ((spec.name, spec.resources) for spec in self.step_specs()),
            configs=validate_resource_configs,
            factories=validate_resources,
        )
        if problems:
            raise WorkflowValidationError("\n".join(problems))
        return True

    def __init__(
        self,
        timeout: float | None = 45.0,
        disable_validation: bool = False,
        verbose: bool = False,
        *,
        clock: Clock | None = None,
        store: Store | str | None = None,
        durability: Durability = "batched",
        num_concurrent_runs: int | None = None,
        workflow_name: str | None = None,
        executor: Any = None,
        listeners: list[Listener] | tuple[Listener, ...] = (),
        store_retry_limit: float = RETRY_LIMIT,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise WorkflowValidationError(f"Workflow timeout must be None or > 0, got {timeout!r}")
        if num_concurrent_runs is not None and num_concurrent_runs < 1:
            raise WorkflowValidationError(
                f"num_concurrent_runs must be None or >= 1, got {num_concurrent_runs!r}"
            )
        if executor is not None and not callable(getattr(executor, "run", None)):
            raise WorkflowValidationError(
                f"executor must have a run(call) method (see fanflow.executor), "
                f"got {type(executor).__name__}"
            )
        for listener in listeners:
            if not isinstance(listener, Listener):
                raise WorkflowValidationError(
                    f"listeners take fanflow.hooks.Listener objects, got {type(listener).__name__}"
                )
        if not (isinstance(store_retry_limit, (int, float)) and store_retry_limit >= 0):
            raise WorkflowValidationError(
                f"store_retry_limit must be a number of seconds >= 0, got {store_retry_limit!r}"
            )
        self.store_retry_limit = float(store_retry_limit)
        self.executor = executor
        self.listeners = tuple(listeners)
        # Cached Resource values of this instance, shared by all its runs.
        self.resource_manager = ResourceManager()
        self.num_concurrent_runs = num_concurrent_runs
        cls = type(self)
        # As in LlamaIndex Workflows: module plus qualified class name. A file
        # the CLI loads is imported under its stem, so every process agrees.
        self.workflow_name = workflow_name or f"{cls.__module__}.{cls.__qualname__}"
        self._active_runs = 0
        self._waiting_runs: deque[tuple[Run, StartEvent]] = deque()
        self.timeout = timeout
        self.verbose = verbose
        self.disable_validation = disable_validation
        self.clock: Clock = clock or _SYSTEM_CLOCK
        self.store: Store = _open(store) if store is not None else MemoryStore()
        self.durability = check_durability(durability)
        self._source = _source(type(self))
        specs = self.step_specs()
        self._table = StepTable(bind(spec, self) for spec in specs)
        self.state_type, self._state_problem = _state_type(type(self).__name__, specs)
        self._validated = disable_validation
        if not disable_validation:
            # Like the reference: a missing start or stop fails at construction,
            # the rest of the graph checks on the first run.
            validate(self._table.graph, type(self).__name__, ends_only=True)
        starts = self._table.graph.start_types
        self._start_type: type[StartEvent] = starts[0] if len(starts) == 1 else StartEvent

    def run(
        self,
        ctx: Context[Any] | None = None,
        start_event: StartEvent | None = None,
        *,
        store: Store | str | None = None,
        durability: Durability | None = None,
        **kwargs: Any,
    ) -> WorkflowHandler:
        """Start a run and return its handler; ``await`` it for the result.

        The keyword arguments build the StartEvent (validated against a typed
        StartEvent subclass); or pass `start_event` yourself. Pass `ctx` to
        continue with the state of an earlier run (or, for a context made by
        `Context.from_dict` during a run, to continue that run). `store` and
        `durability` override the workflow's for this run.
        """
        if not self._validated:
            self._check()
            self._validated = True
        loop = _running_loop("run")
        if ctx is not None and ctx._saved_records:
            records, ctx._saved_records = ctx._saved_records, None
            saved = MemoryStore(max_runs=None)
            saved.write(records)
            return self.resume(records[0].run_id, store=store or saved, ctx=ctx)
        event = self._start_event(start_event, kwargs)
        ctx = ctx if ctx is not None else Context(self)
        run = self._new_run(loop, ctx, os.urandom(16).hex(), store, durability)
        limit = self.num_concurrent_runs
        if limit is not None and self._active_runs >= limit:
            self._waiting_runs.append((run, event))  # starts when a running one ends
        else:
            self._launch(run, event)
        return run.future  # type: ignore[return-value]

    def _launch(self, run: Run, event: StartEvent) -> None:
        self._active_runs += 1
        run.on_end = self._run_ended
        try:
            run.start(event)
        except BaseException as error:
            # A run that cannot start (its lease is taken, its store is down)
            # fails its own handler; the runs queued behind it still start.
            run.fail(error)

    def _run_ended(self) -> None:
        self._active_runs -= 1
        while self._waiting_runs:
            run, event = self._waiting_runs.popleft()
            if run.outcome is None:  # not cancelled while it waited
                self._launch(run, event)
                return

    def resume(
        self,
        run_id: str,
        *,
        store: Store | str | None = None,
        ctx: Context[Any] | None = None,
        durability: Durability | None = None,
    ) -> WorkflowHandler:
        """Continue run `run_id` from its records in `store` (default: the workflow's).

        Steps whose completion was recorded do not run again; steps that were
        in flight run again from the top (at-least-once). A finished run
        returns a handler that is already done. Raises `LeaseError` if
        another live process is running it.
        """
        loop = _running_loop("resume")
        owned = isinstance(store, str)
        opened = _open(store) if store is not None else self.store
        try:
            records = opened.records(run_id)
        except KeyError:
            if owned:
                opened.close()
            raise WorkflowRuntimeError(f"no run {run_id!r} in {type(opened).__name__}") from None
        ctx = ctx if ctx is not None else Context(self)
        run = self._new_run(loop, ctx, run_id, opened, durability, owned=owned)
        store = opened
        if records and records[-1].kind is RecordKind.RUN_FINISHED:
            restore_finished(run, records)
            return run.future  # type: ignore[return-value]
        # Take the lease first, then read again: what another process wrote
        # before it gave the run up is then in the records.
        run.take_lease()
        records = store.records(run_id)
        reason = not_resumable(records)
        if reason is not None:
            run.release_lease()
            if owned:
                opened.close()
            raise WorkflowRuntimeError(f"run {run_id} cannot be resumed: {reason}")
        run.resume(records)
        return run.future  # type: ignore[return-value]

    async def submit(
        self, start_event: StartEvent | None = None, *, store: Store | str, **kwargs: Any
    ) -> Any:
        """Queue a run in PostgreSQL `store` for ``fanflow worker`` processes; return its handle.

        ``await`` the handle (a `fanflow.worker.QueuedRun`) for the result,
        which it follows through the journal. See ``docs/scale-out.md``.
        """
        # The worker layer sits above this one: loaded on first use, like the stores.
        from fanflow.worker.queue import submit

        return await submit(self, self._start_event(start_event, kwargs), store)

    def _new_run(
        self,
        loop: asyncio.AbstractEventLoop,
        ctx: Context[Any],
        run_id: str,
        store: Store | str | None,
        durability: Durability | None,
        *,
        owned: bool = False,
    ) -> Run:
        """Make a run; a store given as a URL is opened here, and closed by the run."""
        if isinstance(store, str):
            store, owned = _open(store), True
        run = Run(
            run_id=run_id,
            workflow_name=self.workflow_name,
            table=self._table,
            ctx=ctx,
            future=loop.create_future(),
            clock=self.clock,
            sink=store if store is not None else self.store,
            owns_sink=owned,
            timeout=self.timeout,
            verbose=self.verbose,
            source=self._source,
            durability=check_durability(durability) if durability else self.durability,
            listeners=self.listeners,
            executor=self.executor,
            resources=self._resolve_resources,
            retry_limit=self.store_retry_limit,
            context=contextvars.copy_context(),
        )
        run.future = WorkflowHandler(ctx, run, loop)
        ctx._attach(run)
        return run

    def _check(self) -> None:
        if self._state_problem is not None:
            raise StateTypeError(self._state_problem)
        validate(self._table.graph, type(self).__name__)

    async def _resolve_resources(self, params: tuple[Any, ...]) -> dict[str, Any]:
        return await resolve_resources(params, self.resource_manager)

    def _start_event(self, given: StartEvent | None, kwargs: dict[str, Any]) -> StartEvent:
        start_type = self._start_type
        if given is not None:
            if kwargs:
                raise StartEventError(
                    f"{type(self).__name__}.run(): pass either start_event or keyword "
                    f"arguments, not both (got {', '.join(kwargs)})"
                )
            if not isinstance(given, start_type):
                raise StartEventError(
                    f"{type(self).__name__}.run(start_event=...) needs a {start_type.__name__}, "
                    f"got {type(given).__name__}"
                )
            return given
        try:
            return start_type(**kwargs)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(input)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise StartEventError(
                f"{type(self).__name__}.run() arguments do not fit {start_type.__name__}: "
                f"{problems}"
            ) from None


def _open(store: Store | str) -> Store:
    """Return `store`, opening it first if it is a URL like ``sqlite:///runs.db``."""
    if not isinstance(store, str):
        return store
    # Loaded on first use, like drawing: keeps `import fanflow` fast.
    from fanflow.stores.url import open_store

    return open_store(store)


def _running_loop(what: str) -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise WorkflowRuntimeError(
            f"Workflow.{what}() needs a running event loop: call it inside 'async def' "
            "(result = await wf.run()) or wrap it with asyncio.run()"
        ) from None


def _source(cls: type) -> str:
    """Return where `cls` can be imported from: ``module:Class`` or ``/path/file.py:Class``."""
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" and path:
        return f"{os.path.abspath(path)}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def _state_type(workflow: str, specs: list[StepSpec]) -> tuple[type[Any] | None, str | None]:
    """Return the state type the steps agree on, or None, and the problem if they do not.

    Steps may declare types along one inheritance chain (a base workflow's
    steps ``Context[Base]``, a subclass's ``Context[Child]``): the most
    derived one is the run's state. Unrelated types are a problem, raised
    when the workflow first runs.
    """
    types = {spec.state_type for spec in specs if spec.state_type is not None}
    if not types:
        return None, None
    derived = [t for t in types if all(issubclass(t, other) for other in types)]
    if not derived:
        names = ", ".join(sorted(t.__name__ for t in types))
        return None, (
            f"{workflow}: the steps' state types ({names}) are not in a compatible "
            "inheritance hierarchy; use one Context[MyState] for all steps, or types where "
            "each is a subclass of the other"
        )
    state_type = derived[0]
    try:
        state_type()
    except (TypeError, ValidationError) as exc:
        raise WorkflowValidationError(
            f"{workflow}: state type {state_type.__name__} must build with no arguments "
            f"(give every field a default): {exc}"
        ) from None
    return state_type, None
