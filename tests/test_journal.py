"""When records reach the store, and what happens when they cannot (fanflow._runtime.journal)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from fanflow import (
    Context,
    Event,
    LeaseError,
    RecordKind,
    SerializationError,
    SqliteStore,
    StartEvent,
    StopEvent,
    Workflow,
    step,
)
from fanflow.errors import JournalInterrupted
from fanflow.serialize import not_resumable

LEVELS = ["sync", "batched", "exit"]


class Opaque:
    """Not JSON: a durable store cannot keep it."""


class OpaqueResult(Workflow):
    @step
    async def only(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=Opaque())


class OpaqueState(Workflow):
    @step
    async def only(self, ctx: Context, ev: StartEvent) -> StopEvent:
        await ctx.store.set("thing", Opaque())
        await asyncio.sleep(0)
        return StopEvent(result="done")


class Tick(Event):
    n: int


class Counting(Workflow):
    """Three steps in a row, each in its own loop turn (so each in its own batch)."""

    @step
    async def start(self, ev: StartEvent) -> Tick:
        return Tick(n=1)

    @step
    async def tick(self, ev: Tick) -> Tick | StopEvent:
        await asyncio.sleep(0)
        return Tick(n=ev.n + 1) if ev.n < 3 else StopEvent(result=ev.n)


class BrokenStore(SqliteStore):
    """A store whose disk fails on the second batch, once."""

    writes = 0

    def write(self, records):  # type: ignore[no-untyped-def]
        BrokenStore.writes += 1
        if BrokenStore.writes == 2:
            raise OSError("disk full")
        super().write(records)


@pytest.mark.parametrize("durability", LEVELS)
async def test_a_result_the_store_cannot_keep_fails_the_run(tmp_path, durability):
    """A StopEvent result that is not JSON fails the run with SerializationError, no hang."""
    with SqliteStore(tmp_path / "runs.db") as store:
        handler = OpaqueResult(store=store, durability=durability).run()
        with pytest.raises(SerializationError):
            await asyncio.wait_for(handler, 5)


@pytest.mark.parametrize("durability", LEVELS)
async def test_a_state_value_the_store_cannot_keep_warns_and_blocks_resume(
    tmp_path, durability, caplog
):
    """The run goes on with one warning naming the key; a resume of it says why it cannot."""
    with SqliteStore(tmp_path / "runs.db") as store:
        handler = OpaqueState(store=store, durability=durability).run()
        assert await asyncio.wait_for(handler, 5) == "done"
        warnings = [r.getMessage() for r in caplog.records if r.name == "fanflow"]
        assert len(warnings) == 1
        assert "state thing" in warnings[0] and "Resource" in warnings[0]
        reason = not_resumable(store.records(handler.run_id))
        assert reason is not None and "thing" in reason


async def test_a_write_that_fails_once_is_retried_and_nothing_is_lost(tmp_path):
    """A transient store error (a full disk that frees up) is retried; the records are whole."""
    BrokenStore.writes = 0
    store = BrokenStore(tmp_path / "runs.db")
    handler = Counting(store=store).run()  # first batch fine, second fails once
    assert await asyncio.wait_for(handler, 10) == 3
    records = store.records(handler.run_id)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert records[-1].kind is RecordKind.RUN_FINISHED
    store.close()


class DownStore(SqliteStore):
    """A store that fails every write from the second on, until `up` is set."""

    writes = 0
    up = False

    def write(self, records):  # type: ignore[no-untyped-def]
        DownStore.writes += 1
        if DownStore.writes >= 2 and not DownStore.up:
            raise OSError("disk full")
        super().write(records)


async def test_a_store_down_past_the_limit_interrupts_the_run_and_resume_finishes_it(tmp_path):
    """Past store_retry_limit the run is interrupted, not failed; resumed, it gives the result."""
    DownStore.writes, DownStore.up = 0, False
    store = DownStore(tmp_path / "runs.db")
    handler = Counting(store=store, store_retry_limit=0.2).run()
    with pytest.raises(JournalInterrupted, match=r"interrupted.*resume"):
        await asyncio.wait_for(handler, 10)
    assert store.list_runs()[0].status == "running"  # no RUN_FINISHED over a gap

    DownStore.up = True
    resumed = Counting(store=store).resume(handler.run_id)
    assert await asyncio.wait_for(resumed, 10) == 3
    store.close()


def test_an_unknown_durability_is_refused():
    """durability must be sync, batched or exit."""
    with pytest.raises(ValueError, match="sync, batched, exit"):
        OpaqueResult(durability="sometimes")  # type: ignore[arg-type]


class StallingStore(SqliteStore):
    """A store whose writes block (a lock held elsewhere) until `release` is set."""

    release: threading.Event

    def write(self, records):  # type: ignore[no-untyped-def]
        self.release.wait(10)
        super().write(records)


class Quick(Workflow):
    @step
    async def start(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result="quick")


async def test_a_stalled_store_stalls_only_its_own_runs(tmp_path):
    """While a durable store's write hangs, an in-memory run on the same loop finishes."""
    store = StallingStore(tmp_path / "runs.db")
    store.release = threading.Event()
    durable = Counting(store=store).run()
    assert await asyncio.wait_for(Quick().run(), 5) == "quick"
    assert not durable.done()
    store.release.set()
    assert await asyncio.wait_for(durable, 10) == 3
    store.close()


class OutageStore(SqliteStore):
    """A store that fails every write from the second on until `until` (monotonic time)."""

    writes = 0
    until = 0.0

    def write(self, records):  # type: ignore[no-untyped-def]
        OutageStore.writes += 1
        if OutageStore.writes >= 2 and time.monotonic() < OutageStore.until:
            raise OSError("connection reset")
        super().write(records)


class Slowly(Workflow):
    """Three steps of 50 ms each: well inside the 0.4 s timeout."""

    @step
    async def start(self, ev: StartEvent) -> Tick:
        return Tick(n=1)

    @step
    async def tick(self, ev: Tick) -> Tick | StopEvent:
        await asyncio.sleep(0.05)
        return Tick(n=ev.n + 1) if ev.n < 3 else StopEvent(result=ev.n)


async def test_time_waiting_for_the_store_does_not_count_toward_the_timeout(tmp_path):
    """A 0.8 s store outage inside a 0.4 s timeout: the run is held, then finishes."""
    OutageStore.writes, OutageStore.until = 0, time.monotonic() + 0.8
    store = OutageStore(tmp_path / "runs.db")
    handler = Slowly(store=store, timeout=0.4).run()
    assert await asyncio.wait_for(handler, 10) == 3
    records = store.records(handler.run_id)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    store.close()


class TakenOver(SqliteStore):
    """A store that another process has taken the run from, after the first batch."""

    writes = 0

    def write(self, records):  # type: ignore[no-untyped-def]
        TakenOver.writes += 1
        if TakenOver.writes >= 2:
            raise LeaseError("run is held by another process (epoch 2)")
        super().write(records)


async def test_a_lease_lost_at_a_write_stops_the_run_at_once(tmp_path):
    """A LeaseError from the store is not retried: the handler fails with it at once."""
    TakenOver.writes = 0
    store = TakenOver(tmp_path / "runs.db")
    handler = Slowly(store=store).run()
    with pytest.raises(LeaseError, match="another process"):
        await asyncio.wait_for(handler, 10)
    assert TakenOver.writes == 2
    assert store.list_runs()[0].status == "running"  # no RUN_FINISHED written over it
    store.close()
