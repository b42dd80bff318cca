"""Run records: every run leaves an ordered account in the workflow's store."""

import asyncio

import pytest

from fanflow import (
    Context,
    Event,
    HumanResponseEvent,
    MemoryStore,
    MockClock,
    Record,
    RecordKind,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowCancelledByUser,
    WorkflowTimeoutError,
    step,
)
from fanflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed

K = RecordKind


class Job(Event):
    n: int


class Done(Event):
    n: int


class Chain(Workflow):
    @step
    async def start(self, ev: StartEvent) -> Job:
        return Job(n=ev.n)

    @step
    async def finish(self, ev: Job) -> StopEvent:
        return StopEvent(result=ev.n * 2)


class FanOut(Workflow):
    """Fans out three jobs, one by return; each step logs what it did."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.observed: list[tuple[str, str, list[Event]]] = []

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Job:
        sent = [Job(n=1), Job(n=2)]
        entry = ("start", type(ev).__name__, sent)
        self.observed.append(entry)
        for job in sent:
            ctx.send_event(job)
        sent.append(Job(n=3))
        return sent[-1]

    @step(num_workers=2)
    async def work(self, ctx: Context, ev: Job) -> Done:
        out: list[Event] = []
        self.observed.append(("work", type(ev).__name__, out))
        await asyncio.sleep(0)  # let the workers interleave
        out.append(Done(n=ev.n * 10))
        return out[-1]

    @step(num_workers=1)
    async def join(self, ctx: Context, ev: Done) -> StopEvent | None:
        out: list[Event] = []
        self.observed.append(("join", type(ev).__name__, out))
        done = ctx.collect_events(ev, [Done] * 3)
        if done is not None:
            out.append(StopEvent(result=sorted(d.n for d in done)))
            return out[-1]
        return None


def kinds(records: list[Record]) -> list[RecordKind]:
    """Return the kinds of `records` in order."""
    return [r.kind for r in records]


def rebuild_executions(records: list[Record]) -> list[tuple[str, str, list[Event]]]:
    """Rebuild (step, input event type, emitted events) per invocation from records alone."""
    events = {r.event_id: r.event for r in records if r.kind is K.EVENT_EMITTED}
    executions: dict[int, tuple[str, str, list[Event]]] = {}
    for r in records:
        if r.kind is K.STEP_STARTED and r.invocation not in executions:
            executions[r.invocation] = (r.step, type(events[r.event_id]).__name__, [])
        elif r.kind is K.EVENT_EMITTED and r.invocation is not None:
            executions[r.invocation][2].append(r.event)
    return list(executions.values())


def test_record_is_a_named_tuple_with_the_documented_fields():
    """Record's fields are run_id, seq, kind, at, step, invocation, event_id, event, data, error."""
    assert Record._fields == (
        "run_id",
        "seq",
        "kind",
        "at",
        "step",
        "invocation",
        "event_id",
        "event",
        "data",
        "error",
    )


def test_record_kinds_are_the_documented_ones():
    """RecordKind names every kind of thing a run records."""
    assert [k.name for k in RecordKind] == [
        "RUN_STARTED",
        "EVENT_EMITTED",
        "STEP_STARTED",
        "STEP_FINISHED",
        "STEP_FAILED",
        "WAIT_STARTED",
        "WAIT_RESOLVED",
        "COLLECT_ADDED",
        "COLLECTED",
        "STREAMED",
        "STATE_CHANGED",
        "RUN_RESUMED",
        "RUN_FINISHED",
    ]


async def test_a_run_records_every_step_in_order(finish):
    """A two-step run records start, each emission, each step start and finish, and the end."""
    flow = Chain()
    handler = flow.run(n=4)
    await finish(handler)

    records = flow.store.records(handler.run_id)

    assert kinds(records) == [
        K.RUN_STARTED,
        K.EVENT_EMITTED,
        K.STEP_STARTED,
        K.EVENT_EMITTED,
        K.STEP_FINISHED,
        K.STEP_STARTED,
        K.EVENT_EMITTED,
        K.STEP_FINISHED,
        K.RUN_FINISHED,
    ]
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert {r.run_id for r in records} == {handler.run_id}


async def test_records_link_steps_to_their_input_and_output_events(finish):
    """STEP_STARTED names the input event id and STEP_FINISHED the output event id."""
    flow = Chain()
    handler = flow.run(n=4)
    await finish(handler)
    records = flow.store.records(handler.run_id)
    events = {r.event_id: r.event for r in records if r.kind is K.EVENT_EMITTED}
    started = [(r.step, events[r.event_id]) for r in records if r.kind is K.STEP_STARTED]
    finished = [(r.step, events[r.event_id]) for r in records if r.kind is K.STEP_FINISHED]

    assert started == [("start", StartEvent(n=4)), ("finish", Job(n=4))]
    assert finished == [("start", Job(n=4)), ("finish", StopEvent(result=8))]


async def test_step_executions_can_be_rebuilt_from_records(finish):
    """Records alone give each invocation's step, input type and emitted events, as observed."""
    flow = FanOut()
    handler = flow.run()
    assert await finish(handler) == [10, 20, 30]

    rebuilt = rebuild_executions(flow.store.records(handler.run_id))

    assert rebuilt == flow.observed
    assert sorted(step for step, _, _ in rebuilt) == ["join"] * 3 + ["start"] + ["work"] * 3


async def test_outside_events_have_no_emitting_step(finish, spin):
    """The start event and events sent through handler.ctx are recorded with step None."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            answer = await ctx.wait_for_event(HumanResponseEvent, requirements={"ok": True})
            return StopEvent(result=answer.ok)

    flow = Flow()
    handler = flow.run()
    await spin()
    handler.ctx.send_event(HumanResponseEvent(ok=True))
    await finish(handler)

    emitted = [r for r in flow.store.records(handler.run_id) if r.kind is K.EVENT_EMITTED]
    assert [(type(r.event), r.step) for r in emitted] == [
        (StartEvent, None),
        (HumanResponseEvent, None),
        (StopEvent, "start"),
    ]


async def test_wait_started_records_the_awaited_type_and_requirements(finish, spin):
    """wait_for_event is recorded as WAIT_STARTED with the type name and requirements."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            await ctx.wait_for_event(HumanResponseEvent, requirements={"user": "ada"})
            return StopEvent()

    flow = Flow()
    handler = flow.run()
    await spin()
    handler.ctx.send_event(HumanResponseEvent(user="ada"))
    await finish(handler)

    (wait,) = [r for r in flow.store.records(handler.run_id) if r.kind is K.WAIT_STARTED]
    assert (wait.step, wait.data) == ("start", ("HumanResponseEvent", {"user": "ada"}))


async def test_state_changes_are_recorded_with_a_copy_of_the_value(finish):
    """Each state write is a STATE_CHANGED record holding (path, value) as it was then."""

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            tags = ["a"]
            await ctx.store.set("tags", tags)
            tags.append("b")
            await ctx.store.set("user.name", "Ada")
            return StopEvent()

    flow = Flow()
    handler = flow.run()
    await finish(handler)

    changes = [r.data for r in flow.store.records(handler.run_id) if r.kind is K.STATE_CHANGED]
    assert changes == [("tags", ["a"]), ("user.name", "Ada")]


async def test_failed_attempts_are_recorded_before_the_retry(finish):
    """A retried step records STEP_FAILED with the error, then STEP_STARTED for attempt 2."""
    error = RuntimeError("first try fails")

    class Flow(Workflow):
        @step(retry_policy=retry_policy(wait=wait_fixed(1), stop=stop_after_attempt(2)))
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            if ctx.retry_info().attempt == 1:
                raise error
            return StopEvent()

    flow = Flow(timeout=None, clock=MockClock(autojump=True))
    handler = flow.run()
    await finish(handler)

    steps = [
        (r.kind, r.data if r.kind is K.STEP_STARTED else r.error)
        for r in flow.store.records(handler.run_id)
        if r.step == "start" and r.kind is not K.EVENT_EMITTED
    ]
    assert steps[:3] == [(K.STEP_STARTED, 1), (K.STEP_FAILED, error), (K.STEP_STARTED, 2)]
    assert steps[3][0] is K.STEP_FINISHED


async def test_run_finished_records_ok(finish):
    """A successful run ends with RUN_FINISHED 'ok' and no error."""
    flow = Chain()
    handler = flow.run(n=1)
    await finish(handler)

    last = flow.store.records(handler.run_id)[-1]
    assert (last.kind, last.data, last.error) == (K.RUN_FINISHED, "ok", None)


async def test_run_finished_records_a_failure_with_its_error(finish):
    """A failed run ends with RUN_FINISHED 'failed' carrying the step's error."""
    error = ValueError("bad")

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            raise error

    flow = Flow()
    handler = flow.run()
    with pytest.raises(ValueError):
        await finish(handler)

    last = flow.store.records(handler.run_id)[-1]
    assert (last.kind, last.data, last.error) == (K.RUN_FINISHED, "failed", error)


@pytest.mark.parametrize(
    ("how", "error"), [("cancelled", WorkflowCancelledByUser), ("timeout", WorkflowTimeoutError)]
)
async def test_run_finished_records_cancel_and_timeout(how, error, finish, spin):
    """A cancelled run records 'cancelled', a timed-out run 'timeout'; nothing follows."""
    clock = MockClock()

    class Flow(Workflow):
        @step
        async def start(self, ev: StartEvent) -> StopEvent:
            await asyncio.Event().wait()
            return StopEvent()

    flow = Flow(timeout=5, clock=clock)
    handler = flow.run()
    await spin()
    if how == "cancelled":
        handler.cancel_run()
    else:
        clock.advance(5)
    with pytest.raises(error):
        await finish(handler)
    await spin()

    records = flow.store.records(handler.run_id)
    assert (records[-1].kind, records[-1].data) == (K.RUN_FINISHED, how)
    assert kinds(records).count(K.RUN_FINISHED) == 1


async def test_record_times_come_from_the_workflow_clock(finish):
    """Record `at` values are read from the injected clock."""
    flow = Chain(clock=MockClock(start=1000.0))
    handler = flow.run(n=1)
    await finish(handler)

    assert {r.at for r in flow.store.records(handler.run_id)} == {1000.0}


async def test_records_go_to_a_custom_store(finish):
    """A user-written Store (write, records, run_ids) receives every record of a run."""

    class ListStore:
        def __init__(self):
            self.appended: list[Record] = []

        def write(self, records):
            self.appended.extend(records)

        def append(self, record):  # the one-record form of write()
            self.appended.append(record)

        def records(self, run_id):
            return [r for r in self.appended if r.run_id == run_id]

        def run_ids(self):
            return list(dict.fromkeys(r.run_id for r in self.appended))

    store = ListStore()
    handler = Chain(store=store).run(n=1)
    await finish(handler)

    assert store.run_ids() == [handler.run_id]
    assert [r.seq for r in store.appended] == list(range(1, len(store.appended) + 1))
    assert kinds(store.appended)[0] is K.RUN_STARTED and kinds(store.appended)[-1] is K.RUN_FINISHED


# ------------------------------------------------------------------ MemoryStore


async def test_memory_store_keeps_the_last_max_runs_finished_runs(finish):
    """MemoryStore(max_runs=2) forgets the oldest finished run beyond two."""
    store = MemoryStore(max_runs=2)
    flow = Chain(store=store)
    handlers = [flow.run(n=n) for n in range(3)]
    for handler in handlers:
        await finish(handler)

    assert store.run_ids() == [h.run_id for h in handlers[1:]]
    with pytest.raises(KeyError, match=rf"no records for run '{handlers[0].run_id}'"):
        store.records(handlers[0].run_id)


def test_memory_store_unknown_run_raises_key_error():
    """records() of a run the store never saw raises KeyError naming it."""
    with pytest.raises(KeyError, match=r"no records for run 'nope' in this MemoryStore"):
        MemoryStore().records("nope")


def test_memory_store_rejects_zero_max_runs():
    """max_runs must be at least 1 (or None for no limit)."""
    with pytest.raises(ValueError, match="max_runs must be >= 1 or None"):
        MemoryStore(max_runs=0)


async def test_memory_store_records_returns_a_copy(finish):
    """Changing the list records() returns does not change the store."""
    flow = Chain()
    handler = flow.run(n=1)
    await finish(handler)

    flow.store.records(handler.run_id).clear()

    assert flow.store.records(handler.run_id)


async def test_a_send_to_an_unknown_step_records_nothing():
    """send_event(ev, step="nope") raises before the event is recorded as emitted."""
    from fanflow import (
        Context,
        Event,
        MemoryStore,
        StartEvent,
        StopEvent,
        Workflow,
        WorkflowRuntimeError,
        step,
    )

    class Ping(Event):
        pass

    class Flow(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Ping | StopEvent:
            try:
                ctx.send_event(Ping(), step="nope")
            except WorkflowRuntimeError as exc:
                return StopEvent(result=str(exc))
            return None

        @step
        async def pong(self, ev: Ping) -> None:
            return None

    store = MemoryStore()
    handler = Flow(store=store).run()
    assert "has no step 'nope'" in await handler
    emitted = [r.event for r in store.records(handler.run_id) if r.kind is K.EVENT_EMITTED]
    assert not any(isinstance(e, Ping) for e in emitted)
