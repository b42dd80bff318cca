"""Input from outside: several open requests, parked events, queued runs, answers after a resume."""

import logging

import pytest

from fanflow import (
    Context,
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    LeaseError,
    MemoryStore,
    StartEvent,
    StopEvent,
    Workflow,
    step,
)


class Unrelated(Event):
    note: str = ""


class TwoQuestions(Workflow):
    """Asks two questions at once (no step consumes them); `answer` takes both answers."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> InputRequiredEvent | None:
        ctx.send_event(InputRequiredEvent(prefix="first?"))
        ctx.send_event(InputRequiredEvent(prefix="second?"))
        return None

    @step
    async def answer(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent | None:
        got = ctx.collect_events(ev, [HumanResponseEvent] * 2)
        return None if got is None else StopEvent(result=[e.response for e in got])


async def test_an_answer_to_one_request_leaves_the_other_open(finish, receive, spin):
    """With two requests open, one answer does not end the run as stuck; the second completes it."""
    handler = TwoQuestions().run()
    stream = handler.stream_events()
    assert (await receive(stream)).prefix == "first?"
    assert (await receive(stream)).prefix == "second?"

    handler.ctx.send_event(HumanResponseEvent(response="a"))
    await spin()
    assert not handler.done()

    handler.ctx.send_event(HumanResponseEvent(response="b"))
    assert await finish(handler) == ["a", "b"]


class WaitsTwice(Workflow):
    """Two steps wait at once, each for its own user's answer."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Unrelated | None:
        ctx.send_event(Unrelated(note="a"))
        ctx.send_event(Unrelated(note="b"))
        return None

    @step
    async def ask(self, ctx: Context, ev: Unrelated) -> StopEvent | None:
        answer = await ctx.wait_for_event(
            HumanResponseEvent,
            waiter_event=InputRequiredEvent(prefix=ev.note),
            requirements={"user": ev.note},
        )
        await ctx.store.set(ev.note, answer.response)
        done = [await ctx.store.get(user, default=None) for user in "ab"]
        return StopEvent(result=done) if None not in done else None


async def test_each_wait_is_answered_only_by_its_own_answer(finish, receive, spin):
    """Answering b's request completes b's wait only; a's stays open until its answer comes."""
    handler = WaitsTwice().run()
    stream = handler.stream_events()
    await receive(stream)
    await receive(stream)

    handler.ctx.send_event(HumanResponseEvent(response="for b", user="b"))
    await spin()
    assert not handler.done()
    assert await handler.ctx.store.get("a", default=None) is None

    handler.ctx.send_event(HumanResponseEvent(response="for a", user="a"))
    assert await finish(handler) == ["for a", "for b"]


class AsksThenWaits(Workflow):
    """Asks with an InputRequiredEvent no step consumes; the answer step then waits for a note."""

    @step
    async def start(self, ev: StartEvent) -> InputRequiredEvent:
        return InputRequiredEvent(prefix="name?")

    @step
    async def answer(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent:
        note = await ctx.wait_for_event(Unrelated)
        return StopEvent(result=f"{ev.response} {note.note}")


async def test_an_unwanted_outside_event_is_parked_not_fatal(finish, receive, spin, caplog):
    """An unwanted event does not end a waiting run: one warning, and a later wait gets it."""
    handler = AsksThenWaits().run()
    await receive(handler.stream_events())

    with caplog.at_level(logging.WARNING, logger="fanflow"):
        handler.ctx.send_event(Unrelated(note="parked"))
        await spin()
    assert not handler.done()
    warnings = [r.getMessage() for r in caplog.records if r.name == "fanflow"]
    assert len(warnings) == 1
    assert "Unrelated was sent from outside" in warnings[0]
    assert "InputRequiredEvent" in warnings[0]

    handler.ctx.send_event(HumanResponseEvent(response="Ada"))
    assert await finish(handler) == "Ada parked"


class Ask(Event):
    pass


class AsksInTurn(Workflow):
    """One step asks two questions in turn, waiting for each answer."""

    @step
    async def start(self, ev: StartEvent) -> Ask:
        return Ask()

    @step
    async def ask(self, ctx: Context, ev: Ask) -> StopEvent:
        first = await ctx.wait_for_event(
            HumanResponseEvent,
            waiter_event=InputRequiredEvent(prefix="first?"),
            requirements={"q": 1},
        )
        second = await ctx.wait_for_event(
            HumanResponseEvent,
            waiter_event=InputRequiredEvent(prefix="second?"),
            requirements={"q": 2},
        )
        return StopEvent(result=[first.response, second.response])


async def test_an_answered_request_is_not_asked_again_after_a_resume(finish, receive, drain):
    """The rerun after a resume streams only the still-open request, then finishes."""
    store = MemoryStore()
    handler = AsksInTurn(store=store).run()
    stream = handler.stream_events()
    assert (await receive(stream)).prefix == "first?"
    handler.ctx.send_event(HumanResponseEvent(response="one", q=1))
    assert (await receive(stream)).prefix == "second?"
    handler.detach()
    with pytest.raises(Exception, match="detached"):
        await finish(handler)

    resumed = AsksInTurn(store=store).resume(handler.run_id)
    stream = resumed.stream_events()
    assert (await receive(stream)).prefix == "second?"
    resumed.ctx.send_event(HumanResponseEvent(response="two", q=2))
    assert await finish(resumed) == ["one", "two"]
    assert [type(e).__name__ for e in await drain(stream)] == ["StopEvent"]


class Answer(Event):
    text: str


class WaitsForAnswer(Workflow):
    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
        answer = await ctx.wait_for_event(Answer)
        return StopEvent(result=answer.text)


async def test_events_sent_to_a_queued_run_wait_until_it_starts(finish, spin):
    """num_concurrent_runs holds a run back; what is sent to it meanwhile reaches it at start."""
    flow = WaitsForAnswer(num_concurrent_runs=1)
    first = flow.run()
    queued = flow.run()
    queued.ctx.send_event(Answer(text="early"))
    await spin()
    assert not queued.done()

    first.ctx.send_event(Answer(text="first"))
    assert await finish(first) == "first"
    assert await finish(queued) == "early"


class LeaseTaken(MemoryStore):
    """A durable-looking store whose lease is always someone else's."""

    durable = True

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        raise LeaseError(f"run {run_id} is held by someone else")


async def test_a_queued_run_that_cannot_start_fails_alone(finish):
    """Its own handler gets the error, and the run queued behind it still starts and ends."""
    flow = WaitsForAnswer(num_concurrent_runs=1)
    first = flow.run()
    broken = flow.run(store=LeaseTaken())
    third = flow.run()

    first.ctx.send_event(Answer(text="first"))
    assert await finish(first) == "first"
    with pytest.raises(LeaseError, match="someone else"):
        await finish(broken)
    third.ctx.send_event(Answer(text="third"))
    assert await finish(third) == "third"
