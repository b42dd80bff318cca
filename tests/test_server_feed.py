"""The server's feed: readers of a run this process writes are served from memory.

Under load every SSE client reads its run's records; reading them back from
the database for each one cost the server most of its loop time. These
tests pin that the feed answers from its in-memory tail when it holds a
run's whole history, and goes to the database only when it does not (a run
another process wrote, or one this process resumed part-way).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

pytest.importorskip("starlette")

from fanflow import StartEvent, StopEvent, Workflow, step
from fanflow._runtime.records import Record
from fanflow.server._feed import FeedStore
from fanflow.stores.memory import MemoryStore


class CountingStore(MemoryStore):
    """A memory store that counts how often its records are read."""

    def __init__(self) -> None:
        super().__init__(max_runs=None)
        self.reads = 0

    def records(self, run_id: str) -> list[Record]:
        self.reads += 1
        return super().records(run_id)


class Echo(Workflow):
    @step
    async def only(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result="done")


async def _run(feed: FeedStore) -> str:
    handler = Echo().run(store=feed)
    await handler
    return str(handler.run_id)


async def test_a_run_written_here_is_read_from_memory_from_any_point() -> None:
    inner = CountingStore()
    feed = FeedStore(inner)
    run_id = await _run(feed)
    everything = inner.records(run_id)
    inner.reads = 0

    assert [r.seq for r in feed.records(run_id)] == [r.seq for r in everything]
    for after in (-1, 0, 1, len(everything) - 1, len(everything)):
        got = feed.since(run_id, after)
        assert [r.seq for r in got] == [r.seq for r in everything if r.seq > after]
    assert inner.reads == 0


class Replica:
    """Another view of `store`'s database: reads go through (counted), writes are already there."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.reads = 0

    def write(self, records: Sequence[Record]) -> None:
        pass

    def records(self, run_id: str) -> list[Record]:
        self.reads += 1
        return self.store.records(run_id)


async def test_a_run_with_only_part_of_its_history_here_is_read_from_the_database() -> None:
    inner = MemoryStore()
    run_id = await _run(FeedStore(inner))
    everything = inner.records(run_id)

    # A process that resumed the run part-way holds only the records it wrote itself.
    replica = Replica(inner)
    feed = FeedStore(replica)  # type: ignore[arg-type]
    feed.write(everything[-2:])

    assert [r.seq for r in feed.records(run_id)] == [r.seq for r in everything]
    assert [r.seq for r in feed.since(run_id, 0)] == [r.seq for r in everything]
    assert replica.reads == 2
    late = everything[-2].seq - 1
    assert [r.seq for r in feed.since(run_id, late)] == [r.seq for r in everything[-2:]]
    assert replica.reads == 2  # the tail covers it
