"""`@step`: signatures read once, settings checked, wrong definitions fail at class definition."""

import pydantic
import pytest

from fanflow import (
    Context,
    Event,
    StartEvent,
    StepSpec,
    StopEvent,
    Workflow,
    WorkflowValidationError,
    step,
)
from fanflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed


class MidEvent(Event):
    value: int = 0


class OtherEvent(Event):
    pass


class Counter(pydantic.BaseModel):
    count: int = 0


def spec_of(flow: type[Workflow], name: str) -> StepSpec:
    """Return the spec of step `name` of `flow`."""
    (spec,) = [s for s in flow.step_specs() if s.name == name]
    return spec


def test_bare_step_reads_types_and_default_settings():
    """Bare @step reads accepted and returned types; num_workers defaults to 4, no retry/timeout."""

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

    spec = spec_of(Flow, "start")
    assert (spec.accepts, spec.returns) == ((StartEvent,), (StopEvent,))
    assert (spec.num_workers, spec.retry_policy, spec.timeout) == (4, None, None)


def test_step_with_settings_keeps_them():
    """@step(num_workers=, retry_policy=, timeout=) stores each setting on the spec."""
    policy = retry_policy(wait=wait_fixed(1), stop=stop_after_attempt(2))

    class Flow(Workflow):
        @step(num_workers=2, retry_policy=policy, timeout=3.5)
        async def start(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

    spec = spec_of(Flow, "start")
    assert (spec.num_workers, spec.retry_policy, spec.timeout) == (2, policy, 3.5)


def test_step_returns_the_function_itself():
    """@step marks the function and returns it unchanged, so it stays callable."""

    class Flow(Workflow):
        pass

    async def start(ev: StartEvent) -> StopEvent:
        return StopEvent()

    assert step(workflow=Flow)(start) is start


def test_bare_step_on_a_free_function_says_to_name_the_workflow():
    """@step without workflow= on a function outside a class fails, naming the fix."""

    async def start(ev: StartEvent) -> StopEvent:
        return StopEvent()

    with pytest.raises(WorkflowValidationError, match=r"To decorate start .*workflow=MyFlow"):
        step(start)


def test_union_annotations_list_every_type_and_drop_none():
    """A union parameter accepts each member; `| None` in the return is not an event type."""

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent | MidEvent) -> OtherEvent | StopEvent | None:
            return None

    spec = spec_of(Flow, "start")
    assert spec.accepts == (StartEvent, MidEvent)
    assert spec.returns == (OtherEvent, StopEvent)


def test_typed_context_annotation_sets_the_state_type():
    """`ctx: Context[MyState]` records MyState as the step's state type."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context[Counter], ev: StartEvent) -> StopEvent:
            return StopEvent()

    assert spec_of(Flow, "start").state_type is Counter


async def test_step_without_context_runs(finish):
    """A step may take only the event, no context."""

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result=ev.topic)

    assert await finish(Flow().run(topic="no ctx")) == "no ctx"


async def test_context_may_come_after_the_event(finish):
    """A step written `(self, ev, ctx)` receives the event and the context in place."""

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent, ctx: Context) -> StopEvent:
            await ctx.store.set("seen", ev.topic)
            return StopEvent(result=await ctx.store.get("seen"))

    assert await finish(Flow().run(topic="swapped")) == "swapped"


async def test_unannotated_ctx_parameter_is_the_context(finish):
    """A parameter named `ctx` without annotation is taken as the context."""

    class Flow(Workflow):
        @step
        async def start(self, ctx, ev: StartEvent) -> StopEvent:
            return StopEvent(result=isinstance(ctx, Context))

    assert await finish(Flow().run()) is True


def test_missing_event_annotation_fails_naming_the_function():
    """An unannotated event parameter fails when the class is defined, naming step and parameter."""
    with pytest.raises(WorkflowValidationError, match=r"'pick'.*parameter 'ev' has no annotation"):

        class Flow(Workflow):
            @step
            async def pick(self, ctx: Context, ev) -> StopEvent:
                return StopEvent()


def test_non_event_annotation_fails_naming_the_type():
    """An event parameter annotated with a non-Event type fails, naming step and type."""
    with pytest.raises(WorkflowValidationError, match=r"'pick'.*names str.*not an Event"):

        class Flow(Workflow):
            @step
            async def pick(self, ctx: Context, ev: str) -> StopEvent:
                return StopEvent()


def test_extra_parameter_fails_naming_it():
    """A third parameter fails, naming the step and the extra parameter."""
    with pytest.raises(WorkflowValidationError, match=r"'pick'.*parameter 'limit' is one too many"):

        class Flow(Workflow):
            @step
            async def pick(self, ctx: Context, ev: StartEvent, limit: int) -> StopEvent:
                return StopEvent()


def test_var_args_fail():
    """*args in a step fails at definition."""
    with pytest.raises(WorkflowValidationError, match=r"'pick'.*\*args and \*\*kwargs"):

        class Flow(Workflow):
            @step
            async def pick(self, ev: StartEvent, *rest: Event) -> StopEvent:
                return StopEvent()


def test_plain_def_step_is_marked_to_run_in_a_thread():
    """A step defined with plain `def` is accepted, and its spec says it is not async."""

    class Flow(Workflow):
        @step
        def pick(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

    assert Flow._step_specs["pick"].is_async is False


def test_generator_step_fails_naming_it():
    """A generator function is refused as a step, naming it and what to do instead."""
    with pytest.raises(WorkflowValidationError, match=r"'pick'.*is a generator.*send_event"):

        class Flow(Workflow):
            @step
            async def pick(self, ev: StartEvent) -> StopEvent:  # type: ignore[misc]
                yield StopEvent()


def test_missing_return_annotation_fails_with_an_example():
    """A step without return annotation fails, naming the step and showing the fix."""
    with pytest.raises(
        WorkflowValidationError, match=r"'pick'.*no return annotation.*-> StopEvent"
    ):

        class Flow(Workflow):
            @step
            async def pick(self, ev: StartEvent):
                return StopEvent()


def test_non_event_return_annotation_fails():
    """A return annotation naming a non-Event type fails, naming that type."""
    with pytest.raises(WorkflowValidationError, match=r"'pick'.*return annotation names int"):

        class Flow(Workflow):
            @step
            async def pick(self, ev: StartEvent) -> int:
                return 1


def test_missing_event_parameter_fails():
    """A step that takes only a context fails: it must accept an event."""
    with pytest.raises(WorkflowValidationError, match=r"'pick' .*needs a parameter annotated"):

        class Flow(Workflow):
            @step
            async def pick(self, ctx: Context) -> StopEvent:
                return StopEvent()


def test_unresolvable_annotation_fails_naming_the_step():
    """An annotation naming an undefined class fails with the step's name, not a NameError."""
    with pytest.raises(WorkflowValidationError, match=r"'pick'.*cannot resolve.*NotDefinedYet"):

        class Flow(Workflow):
            @step
            async def pick(self, ev: "NotDefinedYet") -> StopEvent:  # noqa: F821
                return StopEvent()


@pytest.mark.parametrize("workers", [0, -1, True, 2.5])
def test_invalid_num_workers_fails_at_decoration(workers):
    """num_workers must be an int >= 1; the error names the step and the value."""
    with pytest.raises(WorkflowValidationError, match=rf"'pick'.*num_workers.*{workers!r}"):

        @step(num_workers=workers)
        async def pick(ev: StartEvent) -> StopEvent:
            return StopEvent()


@pytest.mark.parametrize("timeout", [0, -5])
def test_non_positive_timeout_fails_at_decoration(timeout):
    """A step timeout must be None or positive."""
    with pytest.raises(WorkflowValidationError, match=r"'pick'.*timeout must be None or > 0"):

        @step(timeout=timeout)
        async def pick(ev: StartEvent) -> StopEvent:
            return StopEvent()


def test_retry_policy_without_next_fails_at_decoration():
    """A retry policy must have next(); anything else fails naming its type."""
    with pytest.raises(WorkflowValidationError, match=r"'pick'.*retry_policy.*got float"):

        @step(retry_policy=3.0)
        async def pick(ev: StartEvent) -> StopEvent:
            return StopEvent()


async def test_free_function_joins_a_workflow_with_step_workflow(finish):
    """@step(workflow=MyFlow) adds a free function as a step of MyFlow."""

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> MidEvent:
            return MidEvent(value=ev.n)

    @step(workflow=Flow)
    async def double(ctx: Context, ev: MidEvent) -> StopEvent:
        return StopEvent(result=ev.value * 2)

    assert [s.name for s in Flow.step_specs()] == ["start", "double"]
    assert await finish(Flow().run(n=21)) == 42


async def test_add_step_attaches_an_undecorated_function(finish):
    """MyFlow.add_step(fn) reads fn's annotations and adds it as a step."""

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> MidEvent:
            return MidEvent(value=ev.n)

    async def negate(ev: MidEvent) -> StopEvent:
        return StopEvent(result=-ev.value)

    Flow.add_step(negate)

    assert await finish(Flow().run(n=5)) == -5


def test_add_step_on_the_base_class_fails():
    """Workflow.add_step() refuses: steps belong to a subclass."""

    async def lone(ev: StartEvent) -> StopEvent:
        return StopEvent()

    with pytest.raises(WorkflowValidationError, match="Workflow subclass"):
        Workflow.add_step(lone)


def test_add_step_leaves_the_parent_class_alone():
    """A step added to a subclass is not added to its parent."""

    class Base(Workflow):
        @step
        async def start(self, ev: StartEvent) -> MidEvent:
            return MidEvent()

    class Child(Base):
        pass

    async def finish_mid(ev: MidEvent) -> StopEvent:
        return StopEvent()

    Child.add_step(finish_mid)

    assert [s.name for s in Base.step_specs()] == ["start"]
    assert [s.name for s in Child.step_specs()] == ["start", "finish_mid"]


def test_step_spec_describe_reads_like_a_signature():
    """StepSpec.describe() gives `name(accepts) -> returns` for messages."""

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent | MidEvent) -> StopEvent | None:
            return None

    assert spec_of(Flow, "start").describe() == "start(StartEvent | MidEvent) -> StopEvent"


def test_step_config_and_step_functions_use_the_reference_names():
    """fn._step_config (accepted_events, event_name, return_types) and _step_functions exist."""

    class Named(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

    config = Named.start._step_config  # type: ignore[attr-defined]
    assert (config.accepted_events, config.event_name, config.return_types) == (
        [StartEvent],
        "ev",
        [StopEvent],
    )
    assert Named._step_functions == {"start": Named.start}
