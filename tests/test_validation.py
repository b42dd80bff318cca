"""Graph validation: messages name the step, the event type and the fix."""

import pytest

from fanflow import (
    Context,
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowConfigurationError,
    step,
)


class MidEvent(Event):
    pass


class OrphanEvent(Event):
    pass


class NeverSentEvent(Event):
    pass


class OtherStart(StartEvent):
    pass


def test_missing_start_consumer_fails_at_construction():
    """A workflow with no step accepting StartEvent fails when instantiated, saying what to add."""

    class NoStart(Workflow):
        @step
        async def finish(self, ev: MidEvent) -> StopEvent:
            return StopEvent()

    with pytest.raises(
        WorkflowConfigurationError,
        match=r"NoStart has no step that accepts StartEvent; add a step with a parameter "
        r"'ev: StartEvent'",
    ):
        NoStart()


def test_missing_stop_producer_fails_at_construction():
    """A workflow with no step returning StopEvent fails when instantiated, saying what to do."""

    class NoStop(Workflow):
        @step
        async def start(self, ev: StartEvent) -> None:
            return None

    with pytest.raises(
        WorkflowConfigurationError,
        match=r"NoStop has no step that returns StopEvent; annotate the final step '-> StopEvent'",
    ):
        NoStop()


def test_step_accepting_stop_event_fails_naming_the_step():
    """A step that accepts StopEvent can never run; the error names it."""

    class AcceptsStop(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

        @step
        async def after(self, ev: StopEvent) -> StopEvent:
            return ev

    with pytest.raises(
        WorkflowConfigurationError,
        match=r"step 'after' accepts StopEvent, but a StopEvent ends the run",
    ):
        AcceptsStop()


def test_several_start_event_types_fail():
    """Two steps accepting different StartEvent types fail: a run has one start event."""

    class TwoStarts(Workflow):
        @step
        async def first(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

        @step
        async def second(self, ev: OtherStart) -> StopEvent:
            return StopEvent()

    with pytest.raises(WorkflowConfigurationError, match=r"several start events.*OtherStart"):
        TwoStarts()


class ProducedNotConsumed(Workflow):
    @step
    async def start(self, ev: StartEvent) -> OrphanEvent | StopEvent:
        return StopEvent()


class ConsumedNotProduced(Workflow):
    @step
    async def start(self, ev: StartEvent) -> StopEvent:
        return StopEvent()

    @step
    async def handle(self, ev: NeverSentEvent) -> StopEvent:
        return StopEvent()


async def test_event_produced_but_never_consumed_fails_when_run_is_called():
    """An event nobody accepts fails wf.run() synchronously, naming event, producer and fix."""
    flow = ProducedNotConsumed()

    with pytest.raises(
        WorkflowConfigurationError,
        match=r"OrphanEvent is produced by step 'start' but no step accepts it; "
        r"add a step with 'ev: OrphanEvent'",
    ):
        flow.run()


async def test_event_consumed_but_never_produced_fails_when_run_is_called():
    """An event no step produces fails wf.run() synchronously, naming event, consumer and fix."""
    flow = ConsumedNotProduced()

    with pytest.raises(
        WorkflowConfigurationError,
        match=r"NeverSentEvent is accepted by step 'handle' but no step produces it; "
        r"add it to a step's return annotation",
    ):
        flow.run()


def test_human_in_the_loop_events_are_exempt():
    """InputRequiredEvent may go unconsumed and HumanResponseEvent unproduced."""

    class AskFlow(Workflow):
        @step
        async def ask(self, ev: StartEvent) -> InputRequiredEvent:
            return InputRequiredEvent(prefix="?")

        @step
        async def answer(self, ev: HumanResponseEvent) -> StopEvent:
            return StopEvent()

    assert AskFlow.problems() == []


def test_every_problem_is_reported_at_once():
    """problems() lists each problem, so one fix round is enough."""

    class Broken(Workflow):
        @step
        async def start(self, ev: StartEvent) -> OrphanEvent:
            return OrphanEvent()

        @step
        async def handle(self, ev: NeverSentEvent) -> MidEvent:
            return MidEvent()

    problems = Broken.problems()

    assert len(problems) == 4
    assert any("no step that returns StopEvent" in p for p in problems)
    assert any(p.startswith("OrphanEvent is produced by step 'start'") for p in problems)
    assert any(p.startswith("MidEvent is produced by step 'handle'") for p in problems)
    assert any(p.startswith("NeverSentEvent is accepted by step 'handle'") for p in problems)


async def test_run_error_lists_every_graph_problem():
    """The error raised by run() carries every problem, one per line."""

    class Broken(Workflow):
        @step
        async def start(self, ev: StartEvent) -> OrphanEvent | StopEvent:
            return StopEvent()

        @step
        async def handle(self, ev: NeverSentEvent) -> StopEvent:
            return StopEvent()

    with pytest.raises(WorkflowConfigurationError) as caught:
        Broken().run()

    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert "OrphanEvent" in lines[0] and "NeverSentEvent" in lines[1]


async def test_disable_validation_skips_the_graph_checks(finish):
    """With disable_validation=True an under-annotated workflow constructs and runs."""

    class Loose(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> None:
            ctx.send_event(MidEvent())

        @step
        async def handle(self, ev: MidEvent) -> OrphanEvent:
            return StopEvent(result="ran anyway")

    with pytest.raises(WorkflowConfigurationError):
        Loose()
    assert await finish(Loose(disable_validation=True).run()) == "ran anyway"


def test_a_step_that_only_feeds_itself_is_unreachable():
    """A step whose event only it emits cannot be reached, and validation names it."""

    class Loop(Event):
        pass

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

        @step
        async def spin(self, ev: Loop) -> Loop:
            return Loop()

    problems = Flow.problems()

    assert problems == [
        "step 'spin' cannot be reached from StartEvent: it accepts Loop, which only step "
        "'spin' emits, and no path from the start leads there; emit Loop from a reachable "
        "step or remove the step."
    ]


def test_validate_raises_what_the_first_run_would():
    """Workflow.validate() raises the same WorkflowConfigurationError as the first run()."""

    class Loop(Event):
        pass

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

        @step
        async def spin(self, ev: Loop) -> Loop:
            return Loop()

    with pytest.raises(WorkflowConfigurationError, match="step 'spin' cannot be reached"):
        Flow().validate()
