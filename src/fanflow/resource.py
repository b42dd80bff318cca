"""Resources: values a step receives by declaring them, made by a factory you name.

A step parameter annotated ``Annotated[T, Resource(factory)]`` receives what
``factory()`` returns; the engine makes it before the invocation::

    def get_db() -> Database:
        return Database.connect("sqlite://")

    class Flow(Workflow):
        @step
        async def save(
            self, ev: StartEvent, db: Annotated[Database, Resource(get_db)]
        ) -> StopEvent: ...

- A factory may be ``async def``, and may itself take resources
  (``def get_repo(db: Annotated[Database, Resource(get_db)])``). A cycle
  among factories raises ``ValueError`` naming the chain.
- With ``cache=True`` (the default) one value is made per workflow instance
  and shared by all its steps and runs; with ``cache=False`` a value is made
  for each invocation (once per invocation even if several resources need it).
- ``Annotated[Model, ResourceConfig("config.json", path_selector="a.b")]``
  gives a pydantic model validated from a JSON file (read when first needed,
  then cached).

`ResourceManager` holds one workflow instance's cached values;
`resolve_resources` makes the values of one invocation.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

__all__ = [
    "Resource",
    "ResourceConfig",
    "ResourceDescriptor",
    "ResourceManager",
    "resolve_resources",
    "resource_dependencies",
    "resource_problems",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# (parameter name, descriptor, annotated type): one resource parameter of a step or factory.
ResourceParam = tuple[str, "ResourceDescriptor", Any]


@runtime_checkable
class ResourceDescriptor(Protocol):
    """What a resource marker in ``Annotated[T, ...]`` provides: a name, a cache flag, a maker."""

    @property
    def name(self) -> str:
        """Return the key the value is cached under."""
        ...

    @property
    def cache(self) -> bool:
        """Return whether one value is shared per workflow instance."""
        ...

    def dependencies(self) -> list[ResourceParam]:
        """Return the resources this one needs, as (parameter, descriptor, type)."""
        ...

    async def make(self, annotated: Any, needs: dict[str, Any]) -> Any:
        """Return a new value, given the values of its `dependencies`."""
        ...


class Resource(Generic[T]):
    """Marks a parameter as a resource made by `factory` (sync or async).

    `cache` (default True) shares one value per workflow instance.
    """

    def __init__(self, factory: Callable[..., T | Awaitable[T]], cache: bool = True) -> None:
        if not callable(factory):
            raise TypeError(f"Resource() needs a callable factory, got {factory!r}")
        self.factory = factory
        self.cache = cache
        self.name: str = getattr(factory, "__qualname__", type(factory).__name__)
        self._is_async = inspect.iscoroutinefunction(factory)

    def dependencies(self) -> list[ResourceParam]:
        """Return the factory's own resource parameters."""
        try:
            hints = typing.get_type_hints(self.factory, include_extras=True)
        except (NameError, TypeError):
            hints = getattr(self.factory, "__annotations__", {})
        params = inspect.signature(self.factory).parameters
        return [found for name in params if (found := resource_of(name, hints.get(name)))]

    async def make(self, annotated: Any, needs: dict[str, Any]) -> T:
        """Call the factory with its resources, awaiting it if it is async."""
        value = self.factory(**needs)
        if inspect.isawaitable(value):
            return await value
        return value

    async def call(self, manager: ResourceManager) -> T:
        """Make a value now, resolving the factory's resources through `manager`."""
        values = await resolve_resources(tuple(self.dependencies()), manager)
        return await self.make(None, values)

    def __repr__(self) -> str:
        return f"Resource({self.name}{'' if self.cache else ', cache=False'})"


class ResourceConfig(Generic[M]):
    """Marks a parameter as a pydantic model read from the JSON file `config_file`.

    `path_selector` (``"a.b"``) picks a nested object. The model class is
    the annotated type unless `cls_factory` is set. The file is read when
    the value is first needed, so it need not exist when the workflow is
    defined; the value is then cached per workflow instance.
    """

    def __init__(
        self,
        config_file: str,
        path_selector: str | None = None,
        label: str | None = None,
        description: str | None = None,
    ) -> None:
        if Path(config_file).suffix != ".json":
            raise ValueError(f"ResourceConfig reads JSON files only, got {config_file!r}")
        self._given_file = config_file
        self.path_selector = path_selector
        self.label = label
        self.description = description
        self.cls_factory: type[M] | None = None

    @property
    def name(self) -> str:
        """Return the file name plus the path selector: the key the value is cached under."""
        suffix = f".{self.path_selector}" if self.path_selector is not None else ""
        return self._given_file + suffix

    @property
    def cache(self) -> bool:
        """Return True: a config value is read once per workflow instance."""
        return True

    @property
    def config_file(self) -> str:
        """Return the absolute path of the file; FileNotFoundError if it does not exist."""
        path = Path(self._given_file)
        if not path.is_file():
            raise FileNotFoundError(f"No such file: {self._given_file}")
        return str(path.resolve())

    def dependencies(self) -> list[ResourceParam]:
        """Return no dependencies: a config is read from its file alone."""
        return []

    def call(self) -> M:
        """Read the file and return the selected object validated by `cls_factory`."""
        if self.cls_factory is None:
            raise ValueError("Class factory should be set to a BaseModel subclass before calling")
        return self.cls_factory.model_validate(self._read())

    async def make(self, annotated: Any, needs: dict[str, Any]) -> M:
        """Return the config validated as the annotated model (or `cls_factory`)."""
        if self.cls_factory is None and isinstance(annotated, type):
            if not issubclass(annotated, BaseModel):
                raise TypeError(
                    f"ResourceConfig({self._given_file!r}) needs a pydantic model annotation, "
                    f"got {annotated.__name__}"
                )
            self.cls_factory = annotated  # type: ignore[assignment]
        return self.call()

    def _read(self) -> dict[str, Any]:
        with open(self.config_file) as file:
            data: Any = json.load(file)
        walked = ""
        for key in (self.path_selector or "").split(".") if self.path_selector else []:
            walked = f"{walked}.{key}" if walked else key
            data = data.get(key) if isinstance(data, dict) else None
            if not isinstance(data, dict):
                raise ValueError(
                    f"Expected dictionary for configuration from {self.config_file} "
                    f"at path {walked}, got: {type(data).__name__}"
                )
        if not isinstance(data, dict):
            raise ValueError(f"{self.config_file} holds {type(data).__name__}, not an object")
        return data

    def __repr__(self) -> str:
        return f"ResourceConfig({self.name!r})"


class ResourceManager:
    """The cached resource values of one workflow instance, shared by all its runs."""

    def __init__(self) -> None:
        self.resources: dict[str, Any] = {}
        self._making: dict[str, asyncio.Future[Any]] = {}

    async def set(self, name: str, value: Any) -> None:
        """Put `value` in the cache under `name`."""
        self.resources[name] = value

    def get_all(self) -> dict[str, Any]:
        """Return the cached values by name."""
        return self.resources

    async def get(self, descriptor: ResourceDescriptor, annotated: Any = None) -> Any:
        """Return the value of `descriptor`, from the cache if it is cached."""
        return (await resolve_resources((("value", descriptor, annotated),), self))["value"]

    async def get_or_make(
        self, descriptor: ResourceDescriptor, make: Callable[[], Awaitable[Any]]
    ) -> Any:
        name = descriptor.name
        if name in self.resources:
            return self.resources[name]
        pending = self._making.get(name)
        if pending is not None:  # another invocation is making it: share its value
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._making[name] = future
        try:
            value = await make()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; waiters re-raise it
            raise
        finally:
            del self._making[name]
        self.resources[name] = value
        future.set_result(value)
        return value


def resource_of(name: str, annotation: Any) -> ResourceParam | None:
    """Return ``(name, descriptor, type)`` if `annotation` is ``Annotated[T, <resource>]``."""
    if typing.get_origin(annotation) is not Annotated:
        return None
    annotated, *markers = typing.get_args(annotation)
    for marker in markers:
        if isinstance(marker, ResourceDescriptor):
            return (name, marker, annotated)
    return None


def resource_dependencies(params: tuple[ResourceParam, ...]) -> None:
    """Raise ValueError if the factories behind `params` depend on each other in a cycle."""

    def visit(descriptor: ResourceDescriptor, chain: tuple[str, ...]) -> None:
        if descriptor.name in chain:
            path = " -> ".join((*chain, descriptor.name))
            raise ValueError(f"Circular resource dependency detected: {path}")
        for _, needed, _ in descriptor.dependencies():
            visit(needed, (*chain, descriptor.name))

    for _, descriptor, _ in params:
        visit(descriptor, ())


async def resolve_resources(
    params: tuple[ResourceParam, ...], manager: ResourceManager
) -> dict[str, Any]:
    """Return the value of each resource parameter in `params`, by parameter name.

    Cached resources come from (or go into) `manager`; an uncached one is
    made once per call, however many resources need it. Raises ValueError
    for a dependency cycle before making anything.
    """
    resource_dependencies(params)
    uncached: dict[str, Any] = {}

    async def value_of(descriptor: ResourceDescriptor, annotated: Any) -> Any:
        async def make() -> Any:
            needs = {
                name: await value_of(needed, kind)
                for name, needed, kind in descriptor.dependencies()
            }
            return await descriptor.make(annotated, needs)

        if descriptor.cache:
            return await manager.get_or_make(descriptor, make)
        if descriptor.name not in uncached:
            uncached[descriptor.name] = await make()
        return uncached[descriptor.name]

    return {name: await value_of(descriptor, kind) for name, descriptor, kind in params}


def resource_problems(
    steps: Iterable[tuple[str, tuple[ResourceParam, ...]]],
    *,
    configs: bool = True,
    factories: bool = False,
) -> list[str]:
    """Return one sentence per resource of `steps` that cannot be made.

    `steps` gives each step's name and resource parameters. With `configs`,
    every `ResourceConfig` (direct or behind a factory) is read and
    validated; with `factories`, every resource is made once, in a fresh
    `ResourceManager` on an event loop of its own.
    """
    problems = []
    for step_name, params in steps:
        for name, descriptor, annotated in params:
            where = f"step {step_name!r}, parameter {name!r}"
            try:
                resource_dependencies(((name, descriptor, annotated),))
                if configs:
                    _check_configs(descriptor, annotated, ())
                if factories:
                    _run_apart(
                        resolve_resources(((name, descriptor, annotated),), ResourceManager())
                    )
            except Exception as exc:
                problems.append(f"{where}: {exc}")
    return problems


def _check_configs(descriptor: ResourceDescriptor, annotated: Any, chain: tuple[str, ...]) -> None:
    chain = (*chain, descriptor.name)
    if isinstance(descriptor, ResourceConfig):
        model = descriptor.cls_factory or annotated
        try:
            model.model_validate(descriptor._read())
        except Exception as exc:
            raise ValueError(f"{' -> '.join(chain)}: {exc}") from exc
    for _, needed, kind in descriptor.dependencies():
        _check_configs(needed, kind, chain)


def _run_apart(work: Coroutine[Any, Any, Any]) -> Any:
    """Run `work` to completion on a new event loop (in a thread if one is running here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()
