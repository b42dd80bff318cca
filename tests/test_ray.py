"""fanflow.ray.RayExecutor: step bodies as Ray tasks, events as JSON, errors and timeouts.

One local Ray (2 CPUs) for the whole module: starting it takes seconds.
Skipped, saying why, when Ray is not installed (``pip install 'fanflow[ray]'``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanflow import Context, Event, StartEvent, StopEvent, Workflow, step
from fanflow.errors import StepTimeoutError, WorkflowRuntimeError
from fanflow.ray import (
    RayExecutor,
    RayUnavailableError,
    RemoteContextError,
    RemoteTraceback,
    _connect,
)

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'fanflow[ray]')")

HERE = Path(__file__).resolve().parent
RAY = RayExecutor()


class CapturingExecutor(RayExecutor):
    """A RayExecutor that keeps the ObjectRef of every task it starts."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[Any] = []

    def submit(self, call: Any) -> Any:
        ref = super().submit(call)
        self.refs.append(ref)
        return ref


SLOW = CapturingExecutor()


class Where(Event):
    pid: int
    label: str


class Remote(Workflow):
    suffix = "!"  # a class attribute: seen by `self` on Ray

    @step(executor=RAY)
    async def first(self, ev: StartEvent) -> Where:
        await asyncio.sleep(0)
        return Where(pid=os.getpid(), label=ev.text)

    @step(executor=RAY)
    def second(self, ev: Where) -> StopEvent:
        return StopEvent(result={"pids": [ev.pid, os.getpid()], "label": ev.label + self.suffix})


class UsesContext(Workflow):
    @step(executor=RAY)
    async def chatty(self, ctx: Context, ev: StartEvent) -> StopEvent:
        ctx.send_event(StartEvent())
        return StopEvent()


class Fails(Workflow):
    @step(executor=RAY)
    def broken(self, ev: StartEvent) -> StopEvent:
        raise ValueError(f"bad input {ev.n}")


class Sleeps(Workflow):
    @step(executor=SLOW, timeout=0.5)
    def sleepy(self, ev: StartEvent) -> StopEvent:
        time.sleep(60)
        return StopEvent()


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    """Start one local Ray for the module; its workers import this folder's modules."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(HERE), "RAY_USAGE_STATS_ENABLED": "0"}},
        )
        try:
            yield
        finally:
            ray.shutdown()


async def test_async_and_plain_steps_run_on_ray() -> None:
    """Both kinds of body run in Ray's worker processes; events come back as themselves."""
    result = await Remote().run(text="hi")
    assert result["label"] == "hi!"
    assert os.getpid() not in result["pids"]


async def test_a_step_on_ray_cannot_use_its_context() -> None:
    """ctx.send_event on Ray raises RemoteContextError naming the step and the call."""
    with pytest.raises(RemoteContextError, match=r"step 'chatty' runs on Ray.*ctx\.send_event"):
        await UsesContext().run()


async def test_an_error_comes_back_with_its_type_and_remote_traceback() -> None:
    """A ValueError raised on Ray is a ValueError here, its remote traceback as its cause."""
    with pytest.raises(ValueError, match="bad input 3") as caught:
        await Fails().run(n=3)
    cause = caught.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in broken" in str(cause) and 'raise ValueError(f"bad input' in str(cause)


async def test_a_step_timeout_cancels_the_ray_task() -> None:
    """The step's timeout fails the run and cancels its Ray task."""
    with pytest.raises(StepTimeoutError):
        await Sleeps().run()
    (ref,) = SLOW.refs
    with pytest.raises(ray.exceptions.TaskCancelledError):
        await asyncio.wait_for(ref, 30)


async def test_a_step_with_resources_is_refused() -> None:
    """Resources stay in the run's process: a step on Ray that asks for one is refused."""
    call = type("Call", (), {"kwargs": {"db": object()}, "spec": type("S", (), {"name": "s"})})
    with pytest.raises(WorkflowRuntimeError, match="asks for resources \\(db\\)"):
        RAY.submit(call)  # type: ignore[arg-type]


def test_an_unreachable_cluster_is_named_with_how_to_start_one() -> None:
    """ray.init failing names the address and says how to start Ray."""

    class NoCluster:
        @staticmethod
        def init(address: str | None, **kwargs: Any) -> None:
            raise ConnectionError("could not connect")

    with pytest.raises(RayUnavailableError, match=r"'ray://nowhere:10001'.*ray start --head"):
        _connect(NoCluster, "ray://nowhere:10001", {})
