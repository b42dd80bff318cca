"""fanflow.worker.Limit: caps on concurrency and rate held across worker processes.

Three ``fanflow worker`` processes (four runs at a time each) share one
PostgreSQL database; every invocation of the limited step appends its
start and end to a log file, from which the tests check that the limit
held. Skipped, saying why, without asyncpg or a server.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from test_worker import db, spawn_worker, sql, stop, wait_for  # noqa: F401 (db is a fixture)

from fanflow import PostgresStore, StartEvent, StopEvent, Workflow, step
from fanflow.worker import Limit, LimitError, close_limits, limited, parse_rate

API = Limit("api", concurrency=2, rate="8/s")
RUNS = 24
CALL = 0.15  # seconds a limited call takes


class Call(StartEvent):
    n: int = 0
    log: str = ""


class Limited(Workflow):
    @step(executor=limited(API))
    async def call(self, ev: Call) -> StopEvent:
        started = time.time()
        await asyncio.sleep(CALL)
        with open(ev.log, "a") as log:  # one short append per call: lines never interleave
            log.write(f"{os.getpid()} {started} {time.time()}\n")
        return StopEvent(result=ev.n)


def test_a_limit_holds_across_three_worker_processes(db: str, tmp_path: Path) -> None:  # noqa: F811
    """No more than 2 calls at once, nor 8 starts in a second, across 3 workers."""
    log = tmp_path / "calls.log"

    async def submit_all() -> None:
        with PostgresStore(db) as store:
            for n in range(RUNS):
                await Limited().submit(store=store, n=n, log=str(log))

    asyncio.run(submit_all())
    workers = [spawn_worker(db, "Limited", module=Path(__file__).name) for _ in range(3)]
    try:
        done = "SELECT count(*) FROM fanflow_queue WHERE state = 'done'"
        wait_for(lambda: sql(db, done)[0][0] == RUNS, "every run")
    finally:
        for process in workers:
            stop(process)
    calls = [line.split() for line in log.read_text().splitlines()]
    assert len(calls) == RUNS
    assert len({pid for pid, _, _ in calls}) > 1  # the calls were spread over processes
    spans = sorted((float(start), float(end)) for _, start, end in calls)
    assert max_overlap(spans) == 2  # reached, never passed
    starts = [start for start, _ in spans]
    # Starts are logged a moment after the limit admits them; a window a
    # little under the period allows for that moment's jitter.
    assert max(sum(1 for t in starts if s <= t < s + 0.95) for s in starts) <= 8


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """Return the most spans open at one moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = now = 0
    for _, change in edges:
        now += change
        most = max(most, now)
    return most


async def test_a_limit_without_a_database_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A limited step outside a worker, with no db and no $FANFLOW_DB, fails saying why."""
    monkeypatch.delenv("FANFLOW_DB", raising=False)
    with pytest.raises(LimitError, match="run it in a fanflow worker"):
        await Limited().run(n=1, log=os.devnull)


async def test_a_limit_outside_a_worker_uses_its_db(db: str, tmp_path: Path) -> None:  # noqa: F811
    """Limit(db=...) holds in a plain run too."""
    log = tmp_path / "calls.log"

    class Local(Workflow):
        @step(executor=limited(Limit("local", concurrency=1, db=db)))
        async def call(self, ev: Call) -> StopEvent:
            return StopEvent(result=ev.n)

    assert await Local().run(n=5, log=str(log)) == 5
    await close_limits()


def test_rates_are_parsed_or_refused() -> None:
    """'10/s', '100/min', '5/2s' and (n, seconds) parse; anything else is a LimitError."""
    assert parse_rate("10/s") == (10, 1.0)
    assert parse_rate("100/min") == (100, 60.0)
    assert parse_rate("5/2s") == (5, 2.0)
    assert parse_rate((3, 0.5)) == (3, 0.5)
    for bad in ("10", "0/s", "ten/s", "5/fortnight"):
        with pytest.raises(LimitError):
            parse_rate(bad)
    with pytest.raises(LimitError, match="needs concurrency=, rate= or both"):
        Limit("nothing")
