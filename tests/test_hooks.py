"""Instrumentation hooks: what a listener hears, with which identity, in which context."""

import logging
from contextvars import ContextVar

import pytest

from fanflow import (
    Event,
    MockClock,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowValidationError,
    step,
)
from fanflow.hooks import InvocationInfo, Listener, RunIdentity, add_listener, remove_listener
from fanflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed


class Middle(Event):
    pass


class Recorder(Listener):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def run_started(self, run: RunIdentity) -> None:
        self.calls.append(("run_started", run.workflow))

    def run_finished(self, run: RunIdentity, status: str, error: BaseException | None) -> None:
        self.calls.append(("run_finished", status))

    def step_started(self, info: InvocationInfo) -> None:
        self.calls.append(("step_started", info.step, info.attempt))

    def step_finished(self, info: InvocationInfo, output: Event | None, seconds: float) -> None:
        self.calls.append(("step_finished", info.step, type(output).__name__))

    def step_failed(self, info: InvocationInfo, error: BaseException, seconds: float) -> None:
        self.calls.append(("step_failed", info.step, str(error)))

    def step_retried(self, info: InvocationInfo, delay: float) -> None:
        self.calls.append(("step_retried", info.step, delay))

    def event_emitted(self, run_id: str, event_id: int, event: Event, by) -> None:
        self.calls.append(("event_emitted", type(event).__name__, by.step if by else None))


class Twice(Workflow):
    failures = 1

    @step
    async def start(self, ev: StartEvent) -> Middle:
        return Middle()

    @step(retry_policy=retry_policy(wait=wait_fixed(2), stop=stop_after_attempt(2)))
    async def middle(self, ev: Middle) -> StopEvent:
        if self.failures:
            self.failures -= 1
            raise ValueError("once")
        return StopEvent(result="ok")


async def test_a_listener_hears_the_run_steps_retries_and_events_in_order(finish):
    """Every call arrives once, in the order things happened."""
    recorder = Recorder()
    flow = Twice(listeners=[recorder], clock=MockClock(autojump=True))
    assert await finish(flow.run()) == "ok"
    assert recorder.calls == [
        ("run_started", "test_hooks.Twice"),
        ("event_emitted", "StartEvent", None),
        ("step_started", "start", 1),
        ("step_finished", "start", "Middle"),
        ("event_emitted", "Middle", "start"),
        ("step_started", "middle", 1),
        ("step_failed", "middle", "once"),
        ("step_retried", "middle", 2.0),
        ("step_started", "middle", 2),
        ("step_finished", "middle", "StopEvent"),
        ("event_emitted", "StopEvent", "middle"),
        ("run_finished", "ok"),
    ]


class Identities(Listener):
    def __init__(self) -> None:
        self.started: list[InvocationInfo] = []
        self.emitted: dict[int, int | None] = {}

    def step_started(self, info: InvocationInfo) -> None:
        self.started.append(info)

    def event_emitted(self, run_id: str, event_id: int, event: Event, by) -> None:
        self.emitted[event_id] = by.event_id if by else None


async def test_each_invocation_carries_its_identity_and_cause(finish):
    """run id, step, attempt, event id, and the id of the event that caused it."""
    listener = Identities()
    flow = Twice(listeners=[listener], clock=MockClock(autojump=True))
    handler = flow.run()
    await finish(handler)
    start, middle, retry = listener.started
    assert {i.run_id for i in listener.started} == {handler.run_id}
    assert (start.step, start.event_type, start.cause_id) == ("start", StartEvent, None)
    assert middle.step == "middle" and middle.event_type is Middle
    assert middle.cause_id == start.event_id == listener.emitted[middle.event_id]
    assert (retry.invocation, retry.attempt) == (middle.invocation, 2)


span: ContextVar[str] = ContextVar("span", default="none")


class Spans(Listener):
    """Sets a context variable when a step starts, as a tracer sets its current span."""

    def run_started(self, run: RunIdentity) -> None:
        span.set(f"run {run.run_id[:4]}")

    def step_started(self, info: InvocationInfo) -> None:
        span.set(f"step {info.step}")


class SeesSpan(Workflow):
    @step
    async def start(self, ev: StartEvent) -> Middle:
        return Middle()

    @step
    async def middle(self, ev: Middle) -> StopEvent:
        return StopEvent(result=span.get())


async def test_step_calls_run_inside_the_invocations_own_context(finish):
    """What a listener sets in step_started is current in the step's body, and in no other."""
    assert await finish(SeesSpan(listeners=[Spans()]).run()) == "step middle"
    assert span.get() == "none"


async def test_a_global_listener_hears_every_workflow(finish):
    """add_listener() covers runs of every workflow until remove_listener()."""
    recorder = Recorder()
    add_listener(recorder)
    try:
        await finish(SeesSpan().run())
    finally:
        remove_listener(recorder)
    await finish(SeesSpan().run())
    assert [c for c in recorder.calls if c[0] == "run_started"] == [
        ("run_started", "test_hooks.SeesSpan")
    ]


class Broken(Listener):
    def step_started(self, info: InvocationInfo) -> None:
        raise RuntimeError("listener bug")


async def test_a_failing_listener_is_logged_and_the_run_goes_on(finish, caplog):
    """A listener's exception never reaches the run."""
    with caplog.at_level(logging.ERROR, logger="fanflow"):
        assert await finish(SeesSpan(listeners=[Broken()]).run()) == "none"
    assert any("listener" in r.getMessage() for r in caplog.records)


async def test_verbose_prints_through_the_hooks(finish, capsys):
    """verbose=True prints the seed's lines."""
    await finish(SeesSpan(verbose=True).run())
    assert capsys.readouterr().out.splitlines() == [
        "Running step start",
        "Step start produced event Middle",
        "Running step middle",
        "Step middle produced event StopEvent",
    ]


def test_only_listeners_are_accepted():
    """Workflow(listeners=...) and add_listener() refuse other objects."""
    with pytest.raises(WorkflowValidationError, match="Listener"):
        SeesSpan(listeners=[object()])
    with pytest.raises(TypeError, match="Listener"):
        add_listener(object())  # type: ignore[arg-type]
