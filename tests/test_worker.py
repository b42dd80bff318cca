"""fanflow.worker: the run queue on a PostgreSQL journal, and worker processes sharing it.

Each test uses a PostgreSQL database of its own (created and dropped here)
on ``postgresql://postgres@127.0.0.1:5432`` (or the server of
``FANFLOW_TEST_POSTGRES``). Worker processes load their workflows from this
file (``tests/test_worker.py:Chain``). Skipped, saying why, without asyncpg
or a server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fanflow import (
    Context,
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    PostgresStore,
    StartEvent,
    StopEvent,
    Workflow,
    step,
)
from fanflow.errors import SchemaVersionError, StoreError
from fanflow.worker import Worker, send_event

HERE = Path(__file__).resolve().parent
SERVER = os.environ.get("FANFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PATIENCE = 60.0  # seconds a wait for runs may take before the test calls it a hang


class Job(StartEvent):
    n: int = 0
    hops: int = 4
    delay: float = 0.01


class Hop(Event):
    n: int
    left: int
    delay: float


class Chain(Workflow):
    """`hops` steps in a row, each sleeping `delay`; the result is ``n * 2``."""

    @step
    async def begin(self, ev: Job) -> Hop:
        return Hop(n=ev.n, left=ev.hops, delay=ev.delay)

    @step
    async def hop(self, ev: Hop) -> Hop | StopEvent:
        await asyncio.sleep(ev.delay)
        if ev.left <= 1:
            return StopEvent(result=ev.n * 2)
        return Hop(n=ev.n, left=ev.left - 1, delay=ev.delay)


class Ask(Workflow):
    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
        answer = await ctx.wait_for_event(
            HumanResponseEvent, waiter_event=InputRequiredEvent(prefix="name?")
        )
        return StopEvent(result=f"hello {answer.response}")


def admin(statement: str, dsn: str = SERVER) -> list[Any]:
    """Run one statement on a connection of its own, in a thread (a loop may be running)."""
    import asyncpg

    async def go() -> list[Any]:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return [tuple(row) for row in await conn.fetch(statement)]
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


@pytest.fixture
def db() -> Iterator[str]:
    """Return the URL of a new, empty database, dropped after the test."""
    pytest.importorskip("asyncpg", reason="asyncpg is missing: pip install 'fanflow[postgres]'")
    try:
        admin("SELECT 1")
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable at {SERVER}: {type(exc).__name__}: {exc}")
    name = f"fanflow_worker_{os.urandom(4).hex()}"
    admin(f"CREATE DATABASE {name}")
    url = SERVER.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        admin(f"DROP DATABASE {name} WITH (FORCE)")


def sql(db: str, statement: str) -> list[Any]:
    return admin(statement, db)


async def serve_until(worker: Worker, handles: list[Any]) -> list[Any]:
    """Serve with `worker` until every handle's run has ended; return their results."""
    serving = asyncio.create_task(worker.serve(grace=5))
    try:
        return list(await asyncio.wait_for(asyncio.gather(*handles), PATIENCE))
    finally:
        worker.stop()
        await serving


def spawn_worker(
    db: str, *targets: str, ttl: float = 1.0, grace: float = 5.0, module: str = "test_worker.py"
) -> Any:
    """Start ``fanflow worker`` on `targets` (names in `module`) in a process of its own."""
    command = [sys.executable, "-m", "fanflow.cli", "worker"]
    command += [f"{HERE / module}:{target}" for target in targets]
    command += ["--db", db, "--concurrency", "4", "--lease-ttl", str(ttl), "--poll", "0.05"]
    command += ["--grace", str(grace)]
    return subprocess.Popen(command, cwd=HERE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Any, what: str, patience: float = PATIENCE) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {patience} s")
        time.sleep(0.05)


def stop(process: Any) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=PATIENCE)
    return str(err)


# ---------------------------------------------------------------- in one process


async def test_submitted_runs_are_run_by_a_worker(db: str) -> None:
    """Runs queued with wf.submit are claimed by a worker, and each handle gives its result."""
    handles = [await Chain().submit(store=db, n=n) for n in range(6)]
    assert {handle.status() for handle in handles} == {"queued"}
    worker = Worker([Chain()], db, concurrency=3, poll=0.02)
    assert await serve_until(worker, handles) == [n * 2 for n in range(6)]
    assert worker.finished == 6
    assert sql(db, "SELECT DISTINCT state FROM fanflow_queue") == [("done",)]


async def test_a_queued_run_is_in_the_journal_with_its_id(db: str) -> None:
    """A submitted run exists in the journal at once: listed as running, resumable by id."""
    handle = await Chain().submit(store=db, n=1)
    rows = sql(db, "SELECT run_id, workflow, status FROM fanflow_runs")
    assert rows == [(handle.run_id, Chain().workflow_name, "running")]
    handle.close()


async def test_an_outside_event_reaches_a_run_a_worker_drives(db: str) -> None:
    """send_event from anywhere is delivered to the run by the worker that holds it."""
    handle = await Ask().submit(store=db)
    worker = Worker([Ask()], db, poll=0.02)
    serving = asyncio.create_task(worker.serve(grace=1))
    try:
        await asyncio.wait_for(_claimed(worker, handle.run_id), PATIENCE)
        send_event(db, handle.run_id, HumanResponseEvent(response="Ada"))
        assert await asyncio.wait_for(handle.result(), PATIENCE) == "hello Ada"
    finally:
        worker.stop()
        await serving


async def _claimed(worker: Worker, run_id: str) -> None:
    while run_id not in worker.runs:
        await asyncio.sleep(0.02)


async def test_a_worker_leaves_runs_of_workflows_it_lacks(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A run of a workflow the worker does not have stays queued, and is logged once."""
    other = await Ask().submit(store=db)
    mine = await Chain().submit(store=db, n=2)
    worker = Worker([Chain()], db, poll=0.02)
    with caplog.at_level(logging.WARNING, "fanflow.worker"):
        assert await serve_until(worker, [mine]) == [4]  # many looks at the queue
    assert other.status() == "queued"
    lacking = [r for r in caplog.records if "left for other workers" in r.getMessage()]
    assert len(lacking) == 1 and repr(Ask().workflow_name) in lacking[0].getMessage()
    other.close()


async def test_a_newer_queue_schema_is_refused(db: str) -> None:
    """Queue tables from a newer fanflow raise SchemaVersionError naming both versions."""
    (await Chain().submit(store=db)).close()
    sql(db, "UPDATE fanflow_meta SET value = '99' WHERE key = 'queue_schema_version'")
    with pytest.raises(SchemaVersionError, match="queue schema version 99"):
        Worker([Chain()], db)


async def test_the_queue_needs_postgresql(tmp_path: Path) -> None:
    """Submitting to an SQLite store says the queue needs PostgreSQL."""
    with pytest.raises(StoreError, match="needs a PostgreSQL store"):
        await Chain().submit(store=f"sqlite:///{tmp_path / 'runs.db'}")


# ---------------------------------------------------------------- worker processes


def test_a_killed_workers_runs_are_taken_over_and_finish_once(db: str) -> None:
    """3 workers, 300 runs, one SIGKILLed midway: each run finishes exactly once, right."""
    runs = 300

    async def submit_all() -> list[str]:
        with PostgresStore(db) as store:
            return [(await Chain().submit(store=store, n=n)).run_id for n in range(runs)]

    ids = asyncio.run(submit_all())
    workers = [spawn_worker(db, "Chain", ttl=1.0) for _ in range(3)]
    try:
        done = "SELECT count(*) FROM fanflow_queue WHERE state = 'done'"
        wait_for(lambda: sql(db, done)[0][0] >= runs // 3, "a third of the runs")
        workers[0].kill()
        killed = time.monotonic()
        wait_for(lambda: sql(db, done)[0][0] == runs, "every run")
        assert time.monotonic() - killed < 1.0 + 10.0
    finally:
        for process in workers:
            stop(process)
    finished = sql(
        db,
        "SELECT run_id, count(*) FROM fanflow_records WHERE kind = 'run_finished' GROUP BY run_id",
    )
    assert sorted(finished) == sorted((run_id, 1) for run_id in ids)

    async def results() -> list[Any]:
        with PostgresStore(db) as store:
            return [await Chain().resume(run_id, store=store) for run_id in ids]

    assert asyncio.run(results()) == [n * 2 for n in range(runs)]


def test_sigterm_hands_unfinished_runs_back(db: str) -> None:
    """On SIGTERM a worker stops claiming, hands back what outlives the grace; others finish it."""

    async def submit_slow() -> str:
        handle = await Chain().submit(store=db, n=7, hops=2, delay=1.5)
        handle.close()
        return handle.run_id

    run_id = asyncio.run(submit_slow())
    first = spawn_worker(db, "Chain", grace=0.2)
    state = f"SELECT state, worker FROM fanflow_queue WHERE run_id = '{run_id}'"
    try:
        wait_for(lambda: sql(db, state)[0][0] == "claimed", "the run to be claimed")
        err = stop(first)
        assert first.returncode == 0, err
        assert sql(db, state) == [("queued", None)]
        assert "handed back" in err
    finally:
        stop(first)
    second = spawn_worker(db, "Chain")
    try:
        wait_for(lambda: sql(db, state)[0][0] == "done", "the run to finish")
    finally:
        stop(second)

    async def result() -> Any:
        return await Chain().resume(run_id, store=db)

    assert asyncio.run(result()) == 14


def test_fanflow_submit_prints_the_run_id_and_waits(db: str) -> None:
    """`fanflow submit --wait` prints the run id, then the result a worker computed."""
    worker = spawn_worker(db, "Chain")
    try:
        target = f"{HERE / 'test_worker.py'}:Chain"
        command = [sys.executable, "-m", "fanflow.cli", "submit", target, "--db", db]
        out = subprocess.run(
            [*command, "--arg", "n=21", "--wait"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=PATIENCE,
        )
    finally:
        stop(worker)
    assert out.returncode == 0, out.stderr
    run_id, result = out.stdout.splitlines()
    assert len(run_id) == 32 and result == "result: 42"
