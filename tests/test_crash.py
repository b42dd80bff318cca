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
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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


# ---------------------------------------------------------------- faults
#
# A fault breaks the store under a live run, after its third batch is
# committed: the run's writes fail and are retried, the run held meanwhile.
# Healed within the retry limit, the run goes on; broken past it, the run
# stops "interrupted" and a fresh process resumes it once the store works.
# Either way the run must end exactly as an uninterrupted one does.

PAUSE_AFTER = 3  # the batch after which the store breaks
SHORT_LIMIT = 1.0  # store_retry_limit (s) of runs whose fault outlasts it


class FaultChild:
    """A standalone ``crash_child.py`` that pauses after a batch until told to go on."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []

    def until(self, key: str) -> dict[str, Any]:
        """Return the next line that has `key`; the child's watchdog bounds the wait."""
        assert self.proc.stdout is not None
        while True:
            text = self.proc.stdout.readline()
            if not text:
                pytest.fail(f"child ended (exit {self.proc.wait()}) before printing {key!r}")
            line: dict[str, Any] = json.loads(text)
            self.lines.append(line)
            assert "error" not in line, line["error"]
            if key in line:
                return line

    def go(self) -> None:
        """Let the paused child go on."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def end(self) -> Exit:
        """Wait for the child to exit and return how it ended."""
        code = self.proc.wait(timeout=60)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        return Exit(self.proc.pid, self.lines, None, code)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.end()


@dataclass
class Fault:
    """How to break the store under a run, and mend it."""

    args: list[str]  # the store options of the run's process
    resume_args: list[str]  # those of the process that resumes it
    inject: Any  # () -> None
    heal: Any  # () -> None


async def run_through(fault: Fault, backend: Backend, outlasts: bool) -> None:
    """Break the store under a live run, mend it, and check the run ends as if unbroken."""
    expected = await uninterrupted()
    limit = SHORT_LIMIT if outlasts else 60.0
    # "sync": each step transition waits for its commit, so a run has many
    # batches and stands still while its store is broken.
    options = ["--pause-after", str(PAUSE_AFTER), "--store-retry-limit", str(limit)]
    options += ["--durability", "sync"]
    child = FaultChild(*fault.args, *options)
    healed = False
    try:
        run_id = child.until("run_id")["run_id"]
        child.until("paused")
        fault.inject()
        child.go()
        child.until("write_failed")
        if outlasts:
            child.until("interrupted")
        else:
            child.until("write_failed")  # failed again: retried while the fault lasts
        fault.heal()
        healed = True
        if not outlasts:
            child.until("result")
        final = child.end()
        assert final.exit == 0, final.lines
        if outlasts:
            again = FaultChild(*fault.resume_args, "--run-id", run_id)
            again.until("result")
            final = again.end()
    finally:
        if not healed:
            fault.heal()
        child.kill()
    with contextlib.closing(backend.open()) as store:
        statuses = [r.data for r in store.records(run_id) if r.kind is K.RUN_FINISHED]
        assert statuses == ["ok"]  # "interrupted" is not a RUN_FINISHED: the run was resumable
        await check_run(store, run_id, final, expected)


@pytest.mark.parametrize("outlasts", [False, True], ids=["healed", "outlasts-the-limit"])
async def test_an_sqlite_lock_held_past_the_timeout(tmp_path: Path, outlasts: bool) -> None:
    """Another connection holds the write lock: writes fail, are retried, and nothing is lost."""
    path = tmp_path / "runs.db"
    backend = Backend(f"sqlite:///{path}", None, ())
    holder = sqlite3.connect(path, isolation_level=None)

    def lock() -> None:
        holder.execute("BEGIN IMMEDIATE")

    def unlock() -> None:
        if holder.in_transaction:
            holder.execute("ROLLBACK")

    args = [*backend.args(), "--sqlite-timeout", "0.1"]
    try:
        await run_through(Fault(args, backend.args(), lock, unlock), backend, outlasts)
    finally:
        holder.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """Return a folder on a tmpfs of 8 MB of its own, or skip saying why there is none."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("outlasts", [False, True], ids=["healed", "outlasts-the-limit"])
async def test_a_full_disk(small_disk: Path, outlasts: bool) -> None:
    """The database's disk fills up: writes fail, are retried, and nothing is lost."""
    backend = Backend(f"sqlite:///{small_disk / 'runs.db'}", None, ())
    filler = small_disk / "filler"

    def fill() -> None:
        with open(filler, "wb") as out, contextlib.suppress(OSError):
            while True:  # until ENOSPC
                out.write(b"\0" * 65536)
                out.flush()

    def free() -> None:
        filler.unlink(missing_ok=True)

    await run_through(Fault(backend.args(), backend.args(), fill, free), backend, outlasts)


class Proxy:
    """A TCP proxy on 127.0.0.1 to a server, run on a loop in a thread, that can cut the line.

    `cut` closes every connection through it (the server sees its clients
    go) and stops listening (new connections are refused); `mend` listens
    again on the same port.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.links: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self._listen)

    def call(self, fn: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(10)

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.links |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self.links.discard(writer)
            writer.transport.abort()

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.links):
            writer.transport.abort()
        self.links.clear()

    def cut(self) -> None:
        self.call(self._cut)

    def mend(self) -> None:
        self.call(self._listen)

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.mark.parametrize("outlasts", [False, True], ids=["healed", "outlasts-the-limit"])
async def test_a_postgres_connection_cut_by_a_proxy(backend: Backend, outlasts: bool) -> None:
    """The line to PostgreSQL is cut and refused: writes fail, are retried, nothing is lost."""
    if backend.table_prefix is None:
        pytest.skip("a PostgreSQL fault")
    server = urlsplit(backend.url)
    proxy = Proxy(server.hostname or "127.0.0.1", server.port or 5432)
    try:
        via = urlunsplit(server._replace(netloc=f"{server.username}@127.0.0.1:{proxy.port}"))
        args = ["--db", via, "--table-prefix", backend.table_prefix]
        fault = Fault(args, backend.args(), proxy.cut, proxy.mend)
        await run_through(fault, backend, outlasts)
    finally:
        proxy.close()
