"""@catch_error steps and the engine's internal stream events."""

import pytest

from fanflow import (
    Context,
    Event,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowValidationError,
    catch_error,
    step,
)
from fanflow.events import StepFailedEvent, StepState, StepStateChanged, WorkflowFailedEvent


class Again(Event):
    pass


class Recovers(Workflow):
    @step
    async def flaky(self, ev: StartEvent) -> StopEvent:
        raise RuntimeError("transient")

    @catch_error
    async def handler(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
        return StopEvent(result=(ev.step_name, str(ev.exception), ev.attempts))


async def test_a_catch_error_step_takes_over_when_a_step_gives_up(finish):
    """The failed step's error reaches the handler as a StepFailedEvent; its result ends the run."""
    assert await finish(Recovers().run()) == ("flaky", "transient", 1)


class HandlerFails(Workflow):
    @step
    async def flaky(self, ev: StartEvent) -> StopEvent:
        raise RuntimeError("primary")

    @catch_error
    async def handler(self, ev: StepFailedEvent) -> StopEvent:
        raise ValueError("handler failed")


async def test_a_failing_handler_ends_the_run_with_its_own_error(finish, drain):
    """The handler is not asked about its own failure; the stream names it."""
    handler = HandlerFails().run()
    events = await drain(handler.stream_events())
    with pytest.raises(ValueError, match="handler failed"):
        await finish(handler)
    assert [e.step_name for e in events if isinstance(e, WorkflowFailedEvent)] == ["handler"]


class Scoped(Workflow):
    def __init__(self, entries: list[str], **kwargs):
        super().__init__(**kwargs)
        self.entries = entries

    @step
    async def a(self, ev: StartEvent) -> Again:
        raise RuntimeError("a")

    @step
    async def b(self, ev: Again) -> StopEvent:
        raise RuntimeError("b")

    @catch_error(for_steps=["a"])
    async def for_a(self, ev: StepFailedEvent) -> Again:
        self.entries.append(f"for_a:{ev.step_name}")
        return Again()

    @catch_error
    async def for_any(self, ev: StepFailedEvent) -> StopEvent:
        self.entries.append(f"for_any:{ev.step_name}")
        return StopEvent(result="caught")


async def test_a_scoped_handler_wins_and_an_unscoped_one_takes_the_rest(finish):
    """a's failure goes to its scoped handler, b's to the handler for every step."""
    entries: list[str] = []
    assert await finish(Scoped(entries).run()) == "caught"
    assert entries == ["for_a:a", "for_any:b"]


class Loops(Workflow):
    @step
    async def a(self, ev: StartEvent | Again) -> StopEvent:
        raise RuntimeError("always")

    @catch_error(max_recoveries=2)
    async def retry(self, ev: StepFailedEvent) -> Again:
        return Again()


async def test_max_recoveries_caps_how_often_a_handler_is_entered(finish):
    """After max_recoveries entries the next failure ends the run."""
    with pytest.raises(RuntimeError, match="always"):
        await finish(Loops().run())


def test_a_catch_error_step_must_accept_step_failed_event():
    """Anything but ev: StepFailedEvent is refused, naming the step."""
    with pytest.raises(WorkflowValidationError, match="'bad' must accept StepFailedEvent"):

        class Bad(Workflow):
            @catch_error
            async def bad(self, ev: StartEvent) -> StopEvent:
                return StopEvent()


class Two(Workflow):
    @step
    async def first(self, ev: StartEvent) -> Again:
        return Again()

    @step
    async def second(self, ev: Again) -> StopEvent:
        return StopEvent(result="done")


async def test_expose_internal_streams_step_state_changes(finish, drain):
    """Each invocation streams RUNNING then NOT_RUNNING, with its worker and events."""
    handler = Two().run()
    events = await drain(handler.stream_events(expose_internal=True))
    await finish(handler)
    changes = [e for e in events if isinstance(e, StepStateChanged)]
    assert [(e.name, e.step_state) for e in changes] == [
        ("first", StepState.RUNNING),
        ("first", StepState.NOT_RUNNING),
        ("second", StepState.RUNNING),
        ("second", StepState.NOT_RUNNING),
    ]
    assert changes[1].output_event_name == "Again"
    assert isinstance(events[-1], StopEvent)


async def test_without_expose_internal_no_internal_events_are_streamed(finish, drain):
    """The default stream carries only what steps write and the StopEvent."""
    handler = Two().run()
    assert [type(e) for e in await drain(handler.stream_events())] == [StopEvent]
    await finish(handler)
