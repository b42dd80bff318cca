"""Crash and resume in real processes: SIGKILL at 50 chosen moments per store, then resume.

tests/crash_child.py runs `LoopFlow` (fan-out, two consumers per result,
collect, a loop of rounds, state) on a durable store and SIGKILLs itself
around the N-th batch of records it hands to the store; N, the kill point
(before the batch, after its commit, or inside its transaction) and the
durability level come from ``random.Random(SEED)``. Each killed run is
resumed in a fresh process, which may be killed again, until it ends. Then
its records must show no event lost and no recorded step completion run
twice, and its result, state, events and stream must equal those of an
uninterrupted run. The in-process version, resuming from every record
prefix, is test_resume.py. FANFLOW_CRASH_SEED=N explores other moments.

Fresh processes are forked from a zygote that has already imported fanflow
(see crash_child.py), so 50 kills cost seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from crash_child import LoopFlow
from resume_flows import AskFlow

from fanflow import (
    HumanResponseEvent,
    InputRequiredEvent,
    MemoryStore,
    Record,
    RecordKind,
    StopEvent,
)
from fanflow.errors import LeaseError
from fanflow.events import type_name
from fanflow.stores import PostgresStore, Store, open_store

K = RecordKind
SEED = int(os.environ.get("FANFLOW_CRASH_SEED", "20240611"))
KILLS = 50  # per store
# "exit" keeps nothing of a killed run to resume. Fewer sync children: each of
# their records is a commit (about 5 ms on PostgreSQL under load).
DURABILITIES = ("sync", "batched")
DURABILITY_WEIGHTS = (1, 2)
CHILDREN_PER_RUN = 60  # a run needing more processes than this is not making progress
CHILD = Path(__file__).with_name("crash_child.py")
DSN = os.environ.get("FANFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PG_TABLES = ("meta", "records", "runs", "leases")


# ---------------------------------------------------------------- stores


@dataclass
class Backend:
    """Where the children keep their runs, and the kill points it supports."""

    url: str
    table_prefix: str | None
    kill_points: tuple[str, ...]

    def open(self) -> Store:
        if self.table_prefix:
            return PostgresStore(self.url, table_prefix=self.table_prefix)
        return open_store(self.url)

    def args(self) -> list[str]:
        prefix = ["--table-prefix", self.table_prefix] if self.table_prefix else []
        return ["--db", self.url, *prefix]


def pg_sql(statement: str) -> None:
    """Run one statement on a connection of its own (in a thread: a loop may be running)."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(DSN, timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """An SQLite file in tmp_path, or PostgreSQL tables of this test's own (dropped after)."""
    if request.param == "sqlite":
        yield Backend(f"sqlite:///{tmp_path / 'runs.db'}", None, ("before", "after", "commit"))
        return
    pytest.importorskip(
        "asyncpg", reason="asyncpg is not installed (pip install 'fanflow[postgres]')"
    )
    try:
        pg_sql("SELECT 1")
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable at {DSN}: {type(exc).__name__}: {exc}")
    prefix = f"ffcrash_{uuid.uuid4().hex[:10]}"
    yield Backend(DSN, prefix, ("before", "after"))
    pg_sql(f"DROP TABLE IF EXISTS {', '.join(f'{prefix}_{t}' for t in PG_TABLES)}")


# ---------------------------------------------------------------- child processes


@dataclass
class Exit:
    """How one child process ended and what it printed."""

    pid: int
    lines: list[dict[str, Any]]
    signal: int | None
    exit: int | None

    def get(self, key: str) -> Any:
        """Return the value of `key` in the first line that has it, else None."""
        return next((line[key] for line in self.lines if key in line), None)

    @property
    def killed(self) -> bool:
        return self.signal == signal.SIGKILL


class Zygote:
    """A ``crash_child.py --zygote`` process: forks one fresh child per command."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), "--zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, **command: Any) -> Exit:
        """Run `command` in a fresh child and return how it ended."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            pytest.fail(f"the zygote died (exit {self.proc.wait()}); see its stderr above")
        return Exit(**json.loads(reply))

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """One zygote for the module's crash runs."""
    server = Zygote()
    yield server
    server.close()


class Child:
    """A standalone ``crash_child.py`` process whose output is read line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), *args], stdout=subprocess.PIPE, text=True
        )

    def read(self) -> dict[str, Any]:
        """Return the next JSON line the child prints."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail(f"child {self.proc.pid} ended (exit {self.proc.wait()}) without output")
        data: dict[str, Any] = json.loads(line)
        assert "error" not in data, data["error"]
        return data

    def kill(self) -> None:
        """SIGKILL the child and reap it."""
        self.proc.kill()
        assert self.proc.wait() == -signal.SIGKILL
        assert self.proc.stdout is not None
        self.proc.stdout.close()


# ---------------------------------------------------------------- the uninterrupted run


class CountingStore(MemoryStore):
    """A MemoryStore that counts the batches written to it."""

    def __init__(self) -> None:
        super().__init__(max_runs=None)
        self.batches = 0

    def write(self, records: Sequence[Record]) -> None:
        self.batches += 1
        super().write(records)


@dataclass
class Outcome:
    """What a run ended with, and what its records add up to."""

    result: Any
    state: dict[str, Any]
    emitted: Counter[tuple[str, str]]  # (event type, its data as JSON) of every emitted event
    streamed: int
    batches: dict[str, int] = field(default_factory=dict)  # durability -> batches written


def summary(records: list[Record]) -> tuple[Counter[tuple[str, str]], int]:
    """Return the emitted events (type and data, any order) and the count of streamed ones."""
    emitted = Counter(
        (type_name(type(r.event)), r.event.model_dump_json())
        for r in records
        if r.kind is K.EVENT_EMITTED and r.event is not None
    )
    return emitted, sum(r.kind is K.STREAMED for r in records)


async def uninterrupted() -> Outcome:
    """Run LoopFlow to the end in this process, once per durability level."""
    outcome = None
    batches = {}
    for durability in DURABILITIES:
        store = CountingStore()
        handler = LoopFlow(store=store, durability=durability).run(seed=2)
        result = await handler
        state = (await handler.ctx.store.get_state()).model_dump()
        batches[durability] = store.batches
        if outcome is None:
            outcome = Outcome(result, state, *summary(store.records(handler.run_id)))
    assert outcome is not None
    outcome.batches = batches
    return outcome


# ---------------------------------------------------------------- checks


def consumers(record: Record) -> list[str]:
    """Return the steps that must consume the event of an EVENT_EMITTED `record`."""
    if record.data:  # sent to one step
        return [record.data]
    return [s.name for s in LoopFlow.step_specs() if type(record.event) in s.accepts]


EFFECTS = {K.EVENT_EMITTED, K.STREAMED, K.STATE_CHANGED, K.COLLECT_ADDED, K.COLLECTED}


@dataclass
class Steps:
    """What the records say about step invocations, per (step, input event id)."""

    finished: Counter[tuple[str | None, int | None]] = field(default_factory=Counter)
    acted: set[tuple[str | None, int | None]] = field(default_factory=set)
    stop_seq: int | None = None  # the StopEvent's EVENT_EMITTED record
    problems: list[str] = field(default_factory=list)


def steps(records: list[Record]) -> Steps:
    """Count completions; flag a completion recorded twice or an input started after one."""
    found = Steps()
    inputs: dict[int | None, tuple[str | None, int | None]] = {}
    for r in records:
        if r.kind is K.STEP_STARTED:
            key = inputs[r.invocation] = (r.step, r.event_id)
            if found.finished[key]:
                found.problems.append(f"record {r.seq}: {r.step} started on #{r.event_id} again")
        elif r.kind is K.STEP_FINISHED:
            key = inputs.get(r.invocation, (None, None))
            found.finished[key] += 1
            if found.finished[key] == 2:
                found.problems.append(f"record {r.seq}: {key[0]} finished #{key[1]} twice")
        elif r.kind in EFFECTS and r.invocation in inputs:
            found.acted.add(inputs[r.invocation])
        if r.kind is K.EVENT_EMITTED and isinstance(r.event, StopEvent) and not found.stop_seq:
            found.stop_seq = r.seq
    return found


def audit(records: list[Record]) -> list[str]:
    """Return what the records show went wrong: events lost, completions run twice.

    An event emitted before the StopEvent is lost unless each step that
    accepts it finished an invocation on it or recorded what one did (an
    event emitted or streamed, a state change, a collect): an invocation
    killed after its effects were committed but before its STEP_FINISHED may
    be rerun, or overtaken by the end of the run, without harm.
    """
    found = steps(records)
    problems = found.problems
    for r in records:
        after_stop = found.stop_seq is not None and r.seq > found.stop_seq
        if r.kind is not K.EVENT_EMITTED or after_stop:
            continue
        for step in consumers(r):
            key = (step, r.event_id)
            if not found.finished[key] and key not in found.acted:
                problems.append(f"#{r.event_id} ({type(r.event).__name__}) lost for {step}")
    ends = [r for r in records if r.kind is K.RUN_FINISHED]
    if len(ends) != 1 or ends[0] is not records[-1] or ends[0].data != "ok":
        problems.append(f"run ends: {[(r.seq, r.data) for r in ends]} of {len(records)} records")
    return problems


async def check_run(store: Store, run_id: str, final: Exit, expected: Outcome) -> None:
    """Assert that run `run_id`, killed and resumed, ended as the uninterrupted run did."""
    assert final.get("result") == expected.result, f"run {run_id}"
    assert final.get("state") == expected.state, f"run {run_id}"
    records = store.records(run_id)
    assert audit(records) == [], f"run {run_id}"
    emitted, streamed = summary(records)
    assert emitted == expected.emitted, f"run {run_id}: events lost or duplicated"
    assert streamed == expected.streamed, f"run {run_id}: stream events lost or duplicated"
    replay = LoopFlow(store=store).resume(run_id)  # finished: the recorded outcome, not rerun
    assert await replay == expected.result
    assert (await replay.ctx.store.get_state()).model_dump() == expected.state


# ---------------------------------------------------------------- tests


def recorded(store: Store, run_id: str | None) -> bool:
    """Return whether `store` holds any record of `run_id`."""
    try:
        return run_id is not None and bool(store.records(run_id))
    except KeyError:
        return False


@dataclass
class Tally:
    """What a crash campaign did."""

    kills: Counter[str] = field(default_factory=Counter)  # by kill point
    kills_per_run: Counter[str | None] = field(default_factory=Counter)
    runs: int = 0
    children: int = 0


def next_command(
    rng: random.Random, backend: Backend, expected: Outcome, run_id: str | None, kill: bool
) -> dict[str, Any]:
    """Return the next child's command: start or resume, and when to die if `kill`."""
    durability = rng.choices(DURABILITIES, DURABILITY_WEIGHTS)[0]
    command = {
        "db": backend.url,
        "table_prefix": backend.table_prefix,
        "seed": 2,
        "durability": durability,
        "run_id": run_id,
    }
    if kill:
        command["kill_at"] = rng.choice(backend.kill_points)
        # Log-uniform over the batches of a whole run: as many kills in the
        # first few batches of a process (right after a resume, the delicate
        # part) as in the rest, and late ones too.
        command["kill_after"] = round(expected.batches[durability] ** rng.random())
    return command


async def crash_and_resume(zygote: Zygote, backend: Backend, expected: Outcome) -> Tally:
    """Kill runs KILLS times in all, resume each until it ends, and check how it ended."""
    rng = random.Random(SEED)
    tally = Tally()
    run_id = None
    with contextlib.closing(backend.open()) as store:
        while run_id is not None or tally.kills.total() < KILLS:
            command = next_command(rng, backend, expected, run_id, tally.kills.total() < KILLS)
            child = zygote.run(**command)
            tally.children += 1
            assert tally.children < CHILDREN_PER_RUN * (tally.runs + 1), "no progress"
            if child.killed:
                tally.kills[command["kill_at"]] += 1
                # Killed before its first commit, a new run leaves nothing: start another.
                run_id = child.get("run_id") if recorded(store, child.get("run_id")) else None
                tally.kills_per_run[run_id] += 1
                continue
            assert child.exit == 0, child.get("error") or child
            await check_run(store, child.get("run_id"), child, expected)
            run_id, tally.runs = None, tally.runs + 1
    return tally


async def test_sigkill_at_50_moments_and_resume_give_the_uninterrupted_outcome(
    zygote: Zygote, backend: Backend
) -> None:
    """Runs SIGKILLed 50 times and resumed end with the same result, state and events."""
    tally = await crash_and_resume(zygote, backend, await uninterrupted())
    assert tally.kills.total() == KILLS
    assert set(tally.kills) == set(backend.kill_points), tally.kills
    assert max(tally.kills_per_run.values()) > 1, "no run was killed again after a resume"


async def test_each_kill_point_keeps_what_it_says(zygote: Zygote, backend: Backend) -> None:
    """A kill before a batch or inside its transaction loses it; after its commit, keeps it."""
    kept = {}
    store = backend.open()
    try:
        for point in backend.kill_points:
            child = zygote.run(
                db=backend.url,
                table_prefix=backend.table_prefix,
                durability="batched",
                kill_after=2,
                kill_at=point,
            )
            assert child.killed, child
            kept[point] = len(store.records(child.get("run_id")))
    finally:
        store.close()
    assert kept["after"] > kept["before"] > 0
    assert kept.get("commit", kept["before"]) == kept["before"]


async def test_one_process_at_a_time_and_a_killed_holder_is_taken_over(
    backend: Backend, receive: Any
) -> None:
    """A second resumer gets LeaseError naming the holder; a SIGKILLed holder's lease is taken."""
    first = Child(*backend.args(), "--ask")
    run_id = first.read()["run_id"]
    assert first.read() == {"waiting": True}
    first.kill()  # holding its lease

    second = Child(*backend.args(), "--ask", "--run-id", run_id)
    assert second.read() == {"run_id": run_id, "pid": second.proc.pid}
    assert second.read() == {"waiting": True}  # it took the dead process's lease over
    store = backend.open()
    try:
        holder = rf"{re.escape(socket.gethostname())}:{second.proc.pid} \(lease [0-9a-f]{{8}}\)"
        with pytest.raises(LeaseError, match=rf"run {run_id} is held by {holder} for"):
            AskFlow(store=store).resume(run_id)
        second.kill()

        handler = AskFlow(store=store).resume(run_id)
        asked = await receive(handler.stream_events())
        assert isinstance(asked, InputRequiredEvent)
        handler.ctx.send_event(HumanResponseEvent(response="Ada"))
        assert await asyncio.wait_for(handler, 10) == "hello Ada"
    finally:
        store.close()


HOLDER = """
import asyncio, json, sys
from fanflow import Record, RecordKind, StartEvent
from fanflow._runtime.lease import Lease
from fanflow.errors import LeaseError
sys.path.insert(0, sys.argv[1])
from crash_child import open_db

async def main(url, prefix, run_id):
    store = open_db(url, prefix or None)
    loop = asyncio.get_running_loop()
    lost = loop.create_future()
    lease = Lease(store, run_id, ttl=1.0, on_lost=lambda e: lost.set_result(str(e)))
    lease.take()
    store.write([Record(run_id, 1, RecordKind.RUN_STARTED, 1.0, data="W")])
    print(json.dumps({"holder": lease.holder}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # stopped and continued meanwhile
    try:
        emitted = Record(run_id, 2, RecordKind.STREAMED, 2.0, event=StartEvent())
        store.write([emitted])
        wrote = "written"
    except LeaseError as exc:
        wrote = str(exc)
    print(json.dumps({"write": wrote, "lost": await asyncio.wait_for(lost, 10)}), flush=True)
    lease.release()
    store.close()

asyncio.run(main(*sys.argv[2:]))
"""


def lease_expiry(backend: Backend, run_id: str) -> tuple[float, float]:
    """Return ``(expires_at, now)`` of the lease on `run_id`, by the store's own clock."""
    if backend.table_prefix is None:
        with contextlib.closing(sqlite3.connect(backend.url.removeprefix("sqlite:///"))) as conn:
            row = conn.execute(
                "SELECT expires_at FROM fanflow_leases WHERE run_id = ?", (run_id,)
            ).fetchone()
        return float(row[0]), time.time()
    import asyncpg

    async def go() -> tuple[float, float]:
        conn = await asyncpg.connect(DSN, timeout=5)
        try:
            row = await conn.fetchrow(
                f"SELECT expires_at, extract(epoch FROM clock_timestamp())::float8 "
                f"FROM {backend.table_prefix}_leases WHERE run_id = $1",
                run_id,
            )
        finally:
            await conn.close()
        return float(row[0]), float(row[1])

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_a_holder_stopped_past_its_ttl_cannot_append(backend: Backend) -> None:
    """A holder SIGSTOPped past its 1 s ttl and taken over cannot write once continued."""
    run_id = uuid.uuid4().hex
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER,
            str(CHILD.parent),
            backend.url,
            backend.table_prefix or "",
            run_id,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        json.loads(child.stdout.readline())
        os.kill(child.pid, signal.SIGSTOP)
        expires_at, now = lease_expiry(backend, run_id)
        while now <= expires_at:  # wait for the store's clock to pass the expiry: no guessing
            time.sleep(max(expires_at - now, 0.01))
            expires_at, now = lease_expiry(backend, run_id)
        with contextlib.closing(backend.open()) as store:
            store.acquire_lease(run_id, "feedface" * 4, 60)  # the stopped holder's ttl is spent
            os.kill(child.pid, signal.SIGCONT)
            child.stdin.write("go\n")
            child.stdin.flush()
            report = json.loads(child.stdout.readline())
            assert "no longer holds the run's lease" in report["write"]
            assert "lease feedface" in report["write"]
            assert f"run {run_id}" in report["lost"]
            assert [r.seq for r in store.records(run_id)] == [1]
    finally:
        os.kill(child.pid, signal.SIGCONT)
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()
