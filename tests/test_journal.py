"""When records reach the store, and what happens when they cannot (fanflow._runtime.journal)."""

from __future__ import annotations

import asyncio

import pytest

from fanflow import (
    Context,
    SerializationError,
    SqliteStore,
    StartEvent,
    StopEvent,
    StoreError,
    Workflow,
    step,
)
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


class BrokenStore(SqliteStore):
    """A store whose disk fails on the second batch."""

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


async def test_a_store_that_fails_to_write_fails_the_run_naming_the_store(tmp_path):
    """An I/O error from the store ends the run with a StoreError naming run and store."""
    BrokenStore.writes = 0
    store = BrokenStore(tmp_path / "runs.db")
    handler = OpaqueState(store=store).run()  # first batch fine, second fails
    with pytest.raises(StoreError, match="BrokenStore failed: OSError"):
        await asyncio.wait_for(handler, 5)
    store.close()


def test_an_unknown_durability_is_refused():
    """durability must be sync, batched or exit."""
    with pytest.raises(ValueError, match="sync, batched, exit"):
        OpaqueResult(durability="sometimes")  # type: ignore[arg-type]
