"""Resources: Annotated step parameters, their factories, caching and checks."""

import asyncio
import json
from typing import Annotated

import pydantic
import pytest

from fanflow import StartEvent, StopEvent, Workflow, WorkflowValidationError, step
from fanflow._runtime.table import bind
from fanflow.resource import (
    Resource,
    ResourceConfig,
    ResourceManager,
    resolve_resources,
)


class Settings(pydantic.BaseModel):
    url: str


def test_step_spec_lists_resource_parameters():
    """@step keeps Annotated resource parameters apart from ctx and the event."""

    def get_n() -> int:
        return 1

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent, n: Annotated[int, Resource(get_n)]) -> StopEvent:
            return StopEvent(result=n)

    spec = Flow.step_specs()[0]

    assert spec.accepts == (StartEvent,)
    assert [(name, kind) for name, _, kind in spec.resources] == [("n", int)]


async def test_bound_step_takes_its_resources_by_keyword():
    """bind() gives call(ctx, event, **resources)."""

    def get_n() -> int:
        return 1

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent, n: Annotated[int, Resource(get_n)]) -> StopEvent:
            return StopEvent(result=n)

    flow = Flow()
    binding = bind(Flow.step_specs()[0], flow)

    assert (await binding.call(None, StartEvent(), n=5)).result == 5


async def test_async_factories_and_nested_resources_are_made():
    """An async factory's value is awaited; a factory may take another resource."""

    async def get_base() -> str:
        return "db"

    def get_repo(base: Annotated[str, Resource(get_base)]) -> str:
        return f"repo({base})"

    values = await resolve_resources((("repo", Resource(get_repo), str),), ResourceManager())

    assert values == {"repo": "repo(db)"}


async def test_cached_values_are_shared_through_the_manager():
    """A cached resource is made once per manager; an uncached one once per call."""
    made = []

    def get_thing() -> object:
        made.append(1)
        return object()

    manager = ResourceManager()
    cached, fresh = Resource(get_thing), Resource(get_thing, cache=False)
    first = await resolve_resources((("a", cached, object),), manager)
    second = await resolve_resources((("a", cached, object),), manager)
    await resolve_resources((("b", fresh, object), ("c", fresh, object)), manager)

    assert first["a"] is second["a"] and len(made) == 2


async def test_concurrent_invocations_share_one_cached_value():
    """Two invocations needing the same cached resource at once make it once."""
    made = []

    async def get_slow() -> int:
        made.append(1)
        await asyncio.sleep(0)
        return len(made)

    manager, resource = ResourceManager(), Resource(get_slow)
    one, two = await asyncio.gather(
        resolve_resources((("x", resource, int),), manager),
        resolve_resources((("x", resource, int),), manager),
    )

    assert one == two == {"x": 1}


async def test_a_dependency_cycle_is_named():
    """Factories that need each other raise ValueError naming the chain, making nothing."""

    def make_a(b: Annotated[int, "later"]) -> int:
        return 1

    def make_b(a: Annotated[int, "later"]) -> int:
        return 2

    res_a, res_b = Resource(make_a), Resource(make_b)
    make_a.__annotations__["b"] = Annotated[int, res_b]
    make_b.__annotations__["a"] = Annotated[int, res_a]

    with pytest.raises(ValueError, match=r"make_a -> .*make_b -> .*make_a"):
        await resolve_resources((("a", res_a, int),), ResourceManager())


async def test_resource_config_reads_a_model_from_json(tmp_path):
    """ResourceConfig validates the selected JSON object as the annotated model."""
    path = tmp_path / "conf.json"
    path.write_text(json.dumps({"db": {"url": "sqlite://"}}))
    config = ResourceConfig(str(path), path_selector="db")

    values = await resolve_resources((("s", config, Settings),), ResourceManager())

    assert values == {"s": Settings(url="sqlite://")}


def test_resource_config_names_a_missing_file_when_read(tmp_path):
    """A missing config file fails when read, not when declared."""
    config = ResourceConfig(str(tmp_path / "absent.json"))

    with pytest.raises(FileNotFoundError, match=r"absent\.json"):
        config.config_file  # noqa: B018


def test_resource_config_path_must_lead_to_an_object(tmp_path):
    """A path selector that does not reach an object names the path walked."""
    path = tmp_path / "conf.json"
    path.write_text(json.dumps({"a": {"b": [1]}}))
    config = ResourceConfig(str(path), path_selector="a.b")
    config.cls_factory = Settings

    with pytest.raises(ValueError, match=r"at path a\.b"):
        config.call()


def test_validate_reports_a_bad_config_naming_step_and_parameter(tmp_path):
    """Workflow.validate() reads ResourceConfig files and names the step and parameter."""
    path = tmp_path / "conf.json"
    path.write_text(json.dumps({}))

    class Flow(Workflow):
        @step
        async def start(
            self, ev: StartEvent, s: Annotated[Settings, ResourceConfig(str(path))]
        ) -> StopEvent:
            return StopEvent()

    with pytest.raises(WorkflowValidationError, match=r"(?s)step 'start', parameter 's'.*url"):
        Flow().validate()


def test_validate_makes_resources_only_when_asked():
    """validate(validate_resources=True) makes each resource once; the default makes none."""
    made = []

    def get_n() -> int:
        made.append(1)
        return 1

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent, n: Annotated[int, Resource(get_n)]) -> StopEvent:
            return StopEvent()

    flow = Flow()
    flow.validate()
    assert made == []
    flow.validate(validate_resources=True)
    assert made == [1]


async def test_a_run_injects_resources_made_once_per_workflow_instance():
    """Steps get their Annotated resources; a cached one is made once for all runs."""
    made: list[str] = []

    async def get_client() -> str:
        made.append("client")
        return "client"

    class Uses(Workflow):
        @step
        async def start(
            self, ev: StartEvent, client: Annotated[str, Resource(get_client)]
        ) -> StopEvent:
            return StopEvent(result=client)

    flow = Uses()
    assert [await flow.run(), await flow.run()] == ["client", "client"]
    assert made == ["client"]
    await Uses().run()
    assert made == ["client", "client"]


async def test_a_plain_def_step_gets_its_resources_in_its_thread():
    """Resources are made in the loop and passed to a plain def step running in a thread."""

    def get_name() -> str:
        return "from a resource"

    class Plain(Workflow):
        @step
        def start(self, ev: StartEvent, name: Annotated[str, Resource(get_name)]) -> StopEvent:
            return StopEvent(result=name)

    assert await Plain().run() == "from a resource"
