"""Leases: the rules the durable stores share, holders' liveness locks, and `Lease` renewal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fanflow._runtime.lease import Lease, new_holder
from fanflow.errors import LeaseError, StoreError
from fanflow.stores import MemoryStore, SqliteStore
from fanflow.stores._lease import HolderLocks, LeaseRow, blocking_holder, lease_error

ALIVE = lambda holder: True  # noqa: E731
DEAD = lambda holder: False  # noqa: E731


def row(holder: str, expires_at: float, locked: bool = True) -> LeaseRow:
    return LeaseRow(holder, 1, expires_at, "host:12", locked)


def test_holders_are_random_tokens() -> None:
    """A holder is 32 hex digits, new every time; no host or pid in it."""
    first, second = new_holder(), new_holder()
    assert first != second and len(first) == 32 and int(first, 16) >= 0


def test_blocking_holder_rules() -> None:
    """Only another holder's unexpired lease, whose liveness lock is held or absent, blocks."""
    assert blocking_holder(None, "me", 10.0, ALIVE) is None
    assert blocking_holder(row("", 99.0), "me", 10.0, ALIVE) is None  # released
    assert blocking_holder(row("me", 20.0), "me", 10.0, ALIVE) is None
    assert blocking_holder(row("you", 10.0), "me", 10.0, ALIVE) is None  # expired
    assert blocking_holder(row("you", 99.0), "me", 10.0, DEAD) is None  # its process is gone
    assert blocking_holder(row("you", 99.0), "me", 10.0, ALIVE) == row("you", 99.0)
    unlocked = row("you", 99.0, locked=False)  # no liveness lock: ttl only
    assert blocking_holder(unlocked, "me", 10.0, DEAD) == unlocked


def test_lease_error_names_run_holder_and_time_left() -> None:
    """The LeaseError says which run, who holds it (host:pid, lease token) and for how long."""
    message = str(lease_error("r7", row("abcdef0123", 13.04), 10.0))
    assert message.startswith("run r7 is held by host:12 (lease abcdef01) for 3.0 s more")


# ---------------------------------------------------------------- liveness locks

HOLD = """
import sys, time
from fanflow.stores._lease import HolderLocks
assert HolderLocks(sys.argv[1]).hold(sys.argv[2])
print("held", flush=True)
time.sleep(60)
"""


def test_a_holders_lock_lives_and_dies_with_its_process(tmp_path: Path) -> None:
    """Another process's held lock means alive; once SIGKILLed, dead (its file is cleaned up)."""
    db, holder = str(tmp_path / "runs.db"), new_holder()
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, db, holder], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        locks = HolderLocks(db)
        assert locks.alive(holder)
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    assert not locks.alive(holder)
    assert os.listdir(locks.folder) == []


def test_locks_of_two_stores_in_one_process_see_each_other(tmp_path: Path) -> None:
    """A lock held through one HolderLocks is alive for another on the same file; drop frees it."""
    holder = new_holder()
    mine, other = HolderLocks(str(tmp_path / "runs.db")), HolderLocks(str(tmp_path / "runs.db"))
    assert mine.hold(holder) and mine.holds(holder)
    assert other.alive(holder)
    mine.drop(holder)
    assert not other.alive(holder)


def test_holders_that_are_not_tokens_are_never_judged_dead(tmp_path: Path) -> None:
    """A holder name that is not a token (an old host:pid:token one) lapses by ttl only."""
    locks = HolderLocks(str(tmp_path / "runs.db"))
    assert not locks.hold("host:1:ab")
    assert locks.alive("host:1:ab")


# ---------------------------------------------------------------- Lease


class Steps:
    """A sleep that returns only when the test lets it, and a clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._go: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self._go.get()
        self.now += seconds

    async def tick(self) -> None:
        """Let the renewal task wake once and run until it sleeps again."""
        self._go.put_nowait(None)
        for _ in range(5):
            await asyncio.sleep(0)


class FlakyStore(MemoryStore):
    """A MemoryStore whose acquire_lease can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[BaseException] = []
        self.calls = 0

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        super().acquire_lease(run_id, holder, ttl)


def make_lease(store: Any, steps: Steps, lost: list[BaseException], ttl: float = 3.0) -> Lease:
    return Lease(
        store, "r1", ttl=ttl, on_lost=lost.append, sleep=steps.sleep, clock=lambda: steps.now
    )


async def test_lease_renews_in_a_task_with_jitter() -> None:
    """After take(), a task renews every ttl/3 less up to 20%; release() stops it."""
    store, steps, lost = FlakyStore(), Steps(), []
    lease = make_lease(store, steps, lost)
    lease.take()
    await asyncio.sleep(0)
    for _ in range(3):
        await steps.tick()
    assert store.calls == 4 and lost == []
    assert all(0.8 <= s <= 1.0 for s in steps.sleeps)
    lease.release()
    await asyncio.sleep(0)
    store.acquire_lease("r1", "someone else", 3.0)


async def test_losing_the_lease_calls_on_lost_once() -> None:
    """A renewal that finds the run taken over calls on_lost once with the LeaseError."""
    store, steps, lost = FlakyStore(), Steps(), []
    lease = make_lease(store, steps, lost)
    lease.take()
    await asyncio.sleep(0)
    store.failures.append(LeaseError("run r1 is held by someone else"))
    await steps.tick()
    assert [str(e) for e in lost] == ["run r1 is held by someone else"]
    assert lease.lost is lost[0]
    await steps.tick()  # the task has ended: nothing more happens
    assert len(lost) == 1 and store.calls == 2
    lease.release()


async def test_failed_renewals_are_retried_until_the_ttl_runs_out() -> None:
    """A store error is retried every ttl/12; when the ttl is spent the lease is lost."""
    store, steps, lost = FlakyStore(), Steps(), []
    lease = make_lease(store, steps, lost, ttl=3.0)
    lease.take()
    await asyncio.sleep(0)
    store.failures.extend(StoreError("database is locked") for _ in range(100))
    await steps.tick()  # ~1 s: fails, retries soon
    assert lost == [] and steps.sleeps[-1] == pytest.approx(0.25, rel=0.21)
    store.failures.clear()
    await steps.tick()  # recovers
    assert lost == [] and steps.sleeps[-1] >= 0.8
    store.failures.extend(StoreError("database is locked") for _ in range(100))
    while not lost:
        await steps.tick()
    assert steps.now >= 3.0 and "could not be renewed within its ttl of 3.0 s" in str(lost[0])
    assert isinstance(lost[0].__cause__, StoreError)
    lease.release()


async def test_lease_on_sqlite_takes_renews_and_releases(tmp_path: Path) -> None:
    """A Lease on SqliteStore keeps another holder out until released; its epoch is kept."""
    with SqliteStore(tmp_path / "runs.db") as store, SqliteStore(tmp_path / "runs.db") as other:
        lease = Lease(store, "r1", ttl=2.0)
        lease.take()
        assert lease.epoch == 1
        lease.renew()
        with pytest.raises(LeaseError, match=r"held by \S+:\d+ \(lease"):
            other.acquire_lease("r1", new_holder(), 2.0)
        await lease.aclose()
        other.acquire_lease("r1", new_holder(), 2.0)


def test_ttl_must_be_positive() -> None:
    """A lease with a ttl of 0 or less is refused."""
    with pytest.raises(ValueError, match="ttl"):
        Lease(MemoryStore(), "r1", ttl=0)
