"""Run state behind `ctx.store`: dotted paths, typed state, serialised edits, reuse across runs."""

import asyncio

import pydantic
import pytest

from fanflow import (
    Context,
    DictState,
    Event,
    FanflowError,
    StartEvent,
    StateError,
    StateTypeError,
    StopEvent,
    Workflow,
    WorkflowValidationError,
    step,
)


class User(pydantic.BaseModel):
    name: str = ""


class AppState(pydantic.BaseModel):
    count: int = 0
    user: User = User()
    tags: list[str] = []


class Tick(Event):
    pass


class Minimal(Workflow):
    @step
    async def start(self, ev: StartEvent) -> StopEvent:
        return StopEvent()


class Typed(Workflow):
    @step
    async def start(self, ctx: Context[AppState], ev: StartEvent) -> StopEvent:
        async with ctx.store.edit_state() as state:
            state.count += 1
        return StopEvent(result=await ctx.store.get("count"))


def fresh_store():
    """Return the state store of a new context of a free-form workflow."""
    return Context(Minimal()).store


async def test_set_creates_missing_levels_of_a_dotted_path():
    """set('user.name', v) creates the 'user' level; get reads either level back."""
    store = fresh_store()
    await store.set("user.name", "Ada")

    assert await store.get("user.name") == "Ada"
    assert await store.get("user") == {"name": "Ada"}


async def test_get_missing_path_returns_the_default():
    """get(path, default=...) returns the default when the path does not exist."""
    assert await fresh_store().get("user.name", default="anonymous") == "anonymous"


async def test_get_missing_path_without_default_names_the_path():
    """get() of a missing path raises StateError naming the path and the missing part."""
    store = fresh_store()
    await store.set("user.id", 7)

    with pytest.raises(
        StateError, match=r"state path 'user.name' does not exist: user has no 'name'"
    ):
        await store.get("user.name")


def test_state_error_is_a_key_error_and_a_fanflow_error():
    """StateError can be caught as KeyError or as FanflowError."""
    assert issubclass(StateError, KeyError) and issubclass(StateError, FanflowError)


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a."])
async def test_malformed_path_fails(path):
    """An empty path or an empty part is rejected with StateError quoting the path."""
    with pytest.raises(StateError, match="non-empty dotted string"):
        await fresh_store().set(path, 1)


async def test_set_inside_a_scalar_fails_naming_the_path():
    """Setting below a plain value fails with StateError instead of corrupting it."""
    store = fresh_store()
    await store.set("count", 3)

    with pytest.raises(StateError, match=r"cannot set state path 'count.limit'"):
        await store.set("count.limit", 1)


async def test_list_items_are_reachable_by_index():
    """A numeric part indexes into a list, for get and set."""
    store = fresh_store()
    await store.set("tags", ["a", "b"])
    await store.set("tags.1", "B")

    assert await store.get("tags.1") == "B"
    assert await store.get("tags.5", default=None) is None


async def test_free_form_state_is_a_dict_state():
    """A workflow without a state type gets a DictState."""
    assert isinstance(await fresh_store().get_state(), DictState)


async def test_get_state_returns_a_copy():
    """Mutating the result of get_state() does not change the stored state."""
    store = fresh_store()
    await store.set("tags", ["a"])
    copy = await store.get_state()
    copy.tags.append("b")

    assert await store.get("tags") == ["a"]


async def test_typed_state_is_an_instance_of_the_declared_model(finish):
    """With `Context[AppState]`, the store holds an AppState built from its defaults."""
    flow = Typed()
    ctx = Context(flow)

    assert await finish(flow.run(ctx=ctx)) == 1
    state = await ctx.store.get_state()
    assert isinstance(state, AppState) and state.count == 1


async def test_typed_state_dotted_path_reaches_nested_models():
    """set('user.name') on typed state writes the nested model's field."""
    store = Context(Typed()).store
    await store.set("user.name", "Ada")

    assert (await store.get_state()).user.name == "Ada"


async def test_typed_state_missing_field_names_the_path():
    """get() of a field the model does not have raises StateError naming it."""
    with pytest.raises(StateError, match=r"'user.email' does not exist: user has no 'email'"):
        await Context(Typed()).store.get("user.email")


async def test_set_state_rejects_another_type():
    """set_state() with a different model type fails naming both types."""
    with pytest.raises(StateError, match=r"needs a AppState, got DictState"):
        await Context(Typed()).store.set_state(DictState())


async def test_clear_resets_to_defaults():
    """clear() puts back a fresh default state."""
    store = Context(Typed()).store
    await store.set("count", 5)
    await store.clear()

    assert await store.get("count") == 0


async def test_edit_state_serialises_concurrent_edits(finish):
    """Concurrent read-modify-write inside edit_state() loses no update; one editor at a time."""
    editors = {"now": 0, "peak": 0}

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Tick:
            for _ in range(4):
                ctx.send_event(Tick())

        @step(num_workers=4)
        async def bump(self, ctx: Context[AppState], ev: Tick) -> StopEvent | None:
            async with ctx.store.edit_state() as state:
                editors["now"] += 1
                editors["peak"] = max(editors["peak"], editors["now"])
                seen = state.count
                await asyncio.sleep(0)  # let the other workers try to edit meanwhile
                state.count = seen + 1
                editors["now"] -= 1
            done = ctx.collect_events(ev, [Tick] * 4)
            return None if done is None else StopEvent(result=await ctx.store.get("count"))

    assert await finish(Flow().run()) == 4
    assert editors["peak"] == 1


async def test_context_keeps_state_across_runs(finish):
    """A Context(wf) passed to several run(ctx=ctx) calls keeps its state between them."""
    flow = Typed()
    ctx = Context(flow)

    results = [await finish(flow.run(ctx=ctx)) for _ in range(3)]

    assert results == [1, 2, 3]


async def test_each_run_starts_with_fresh_state(finish):
    """Runs without a shared Context do not see each other's state."""
    flow = Typed()

    assert [await finish(flow.run()) for _ in range(2)] == [1, 1]


async def test_state_set_before_the_run_is_seen_by_steps(finish):
    """State written on a Context before run(ctx=ctx) is visible to the steps."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            return StopEvent(result=await ctx.store.get("config.mode"))

    flow = Flow()
    ctx = Context(flow)
    await ctx.store.set("config.mode", "fast")

    assert await finish(flow.run(ctx=ctx)) == "fast"


async def test_missing_path_in_a_step_fails_the_run_naming_the_path(finish):
    """A step reading a path nobody set ends the run with StateError naming the path."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            return StopEvent(result=await ctx.store.get("results.final"))

    with pytest.raises(StateError, match=r"'results.final' does not exist: the state has no"):
        await finish(Flow().run())


async def test_steps_with_unrelated_state_types_fail_when_run():
    """Unrelated Context[...] state types fail on the first run (a ValueError), naming both."""

    class Other(pydantic.BaseModel):
        x: int = 0

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context[AppState], ev: StartEvent) -> Tick:
            return Tick()

        @step
        async def finish(self, ctx: Context[Other], ev: Tick) -> StopEvent:
            return StopEvent()

    flow = Flow()  # like the reference: the state types are checked when it first runs
    with pytest.raises(StateTypeError, match=r"\(AppState, Other\) are not in a compatible"):
        await flow.run()
    assert issubclass(StateTypeError, ValueError)


async def test_state_types_along_one_inheritance_chain_use_the_most_derived():
    """A base step's Context[Base] and a child step's Context[Child] share one Child state."""

    class Child(AppState):
        extra: int = 0

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context[AppState], ev: StartEvent) -> Tick:
            await ctx.store.set("count", 2)
            return Tick()

        @step
        async def finish(self, ctx: Context[Child], ev: Tick) -> StopEvent:
            await ctx.store.set("extra", 3)
            return StopEvent(result=await ctx.store.get_state())

    state = await Flow().run()
    assert isinstance(state, Child)
    assert (state.count, state.extra) == (2, 3)


def test_state_type_without_defaults_fails_at_construction():
    """A state model that cannot be built without arguments fails, asking for defaults."""

    class Strict(pydantic.BaseModel):
        required: int

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context[Strict], ev: StartEvent) -> StopEvent:
            return StopEvent()

    with pytest.raises(WorkflowValidationError, match=r"state type Strict must build"):
        Flow()


async def test_keys_named_like_dict_methods_are_kept_in_the_state():
    """'values', 'items', 'keys' are ordinary state keys: set, read and dumped."""
    from fanflow import DictState, StateStore

    store = StateStore(DictState())
    await store.set("values.r0", 1)
    await store.set("items", 2)
    assert await store.get("values.r0") == 1
    assert (await store.get_state()).model_dump() == {"values": {"r0": 1}, "items": 2}
