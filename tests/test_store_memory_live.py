"""MemoryStore: a cap on records per run, and following a run's records live."""

import asyncio
import logging

import pytest

from fanflow import (
    Context,
    Event,
    MemoryStore,
    RecordKind,
    StartEvent,
    StopEvent,
    StoreError,
    Workflow,
    step,
)
from fanflow._runtime import stream as stream_module


class Item(Event):
    n: int


class Fan(Workflow):
    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = n

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Item | None:
        for n in range(self.n):
            ctx.send_event(Item(n=n))
        return None

    @step
    async def join(self, ctx: Context, ev: Item) -> StopEvent | None:
        got = ctx.collect_events(ev, [Item] * self.n)
        return None if got is None else StopEvent(result=len(got))


async def test_a_run_keeps_at_most_max_records(finish):
    """Past the cap the oldest records go, and asking for the whole history says so."""
    store = MemoryStore(max_records=50)
    handler = Fan(100, store=store).run()
    assert await finish(handler) == 100

    with pytest.raises(StoreError, match=r"kept only its last 50 records.*max_records=50"):
        store.records(handler.run_id)
    with pytest.raises(StoreError, match="max_records"):
        handler.ctx.to_dict()
    assert store.list_runs()[0].status == "ok"


async def test_max_records_none_keeps_everything(finish):
    """MemoryStore(max_records=None) keeps every record."""
    store = MemoryStore(max_records=None)
    handler = Fan(100, store=store).run()
    await finish(handler)
    records = store.records(handler.run_id)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))


class Gated(Workflow):
    gate: asyncio.Event

    @step
    async def start(self, ev: StartEvent) -> Item:
        return Item(n=1)

    @step
    async def wait(self, ev: Item) -> StopEvent:
        await self.gate.wait()
        return StopEvent(result="done")


async def test_several_readers_follow_a_run_live_and_from_a_seq(finish, spin):
    """Each reader gets the records so far, then live ones, and ends after RUN_FINISHED."""
    flow = Gated()
    flow.gate = asyncio.Event()
    handler = flow.run()
    await spin()

    async def read(after: int) -> list[int]:
        return [r.seq async for r in handler.records(after=after)]

    readers = [asyncio.ensure_future(read(0)), asyncio.ensure_future(read(3))]
    await spin()
    assert not any(r.done() for r in readers)
    flow.gate.set()
    await finish(handler)
    full, tail = await asyncio.gather(*readers)
    records = flow.store.records(handler.run_id)
    assert full == [r.seq for r in records]
    assert tail == full[3:]
    assert records[-1].kind is RecordKind.RUN_FINISHED


async def test_a_reader_that_falls_too_far_behind_is_told(finish, spin):
    """A subscriber's queue is bounded by max_records; overflowing it raises StoreError."""
    store = MemoryStore(max_records=30)
    flow = Gated(store=store)
    flow.gate = asyncio.Event()
    handler = flow.run()
    reader = handler.records()
    assert (await anext(reader)).kind is RecordKind.RUN_STARTED

    for n in range(40):
        handler.ctx.write_event_to_stream(Item(n=n))
    await spin()
    with pytest.raises(StoreError, match="fell more than 30 records behind"):
        async for _ in reader:
            pass
    flow.gate.set()
    await finish(handler)


async def test_the_event_stream_drops_the_oldest_unread_events_past_its_limit(
    finish, monkeypatch, caplog
):
    """Nobody reads: the stream keeps the newest events and the StopEvent, and warns once."""
    monkeypatch.setattr(stream_module, "STREAM_LIMIT", 5)

    class Chatty(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            for n in range(20):
                ctx.write_event_to_stream(Item(n=n))
            return StopEvent(result="done")

    with caplog.at_level(logging.WARNING, logger="fanflow"):
        handler = Chatty().run()
        assert await finish(handler) == "done"
    events = [e async for e in handler.stream_events()]
    assert [e.n for e in events[:-1]] == [16, 17, 18, 19]
    assert isinstance(events[-1], StopEvent)
    assert sum("dropping the oldest" in r.getMessage() for r in caplog.records) == 1


async def test_a_store_opened_from_a_url_is_closed_with_its_run(tmp_path, monkeypatch):
    """run(store="sqlite:///...") opens the store for the run and closes it when it settles."""
    from fanflow.stores import SqliteStore

    closed: list[str] = []
    real_close = SqliteStore.close
    monkeypatch.setattr(SqliteStore, "close", lambda self: (closed.append("x"), real_close(self)))
    handler = Fan(3).run(store=f"sqlite:///{tmp_path / 'runs.db'}")
    assert await handler == 3
    assert closed == ["x"]
