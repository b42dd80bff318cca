"""Lease rules shared by the durable stores: who holds a run, when a lease lapses, fencing.

A lease row names its holder by a random token (`fanflow._runtime.lease.new_holder`),
counts takeovers in ``epoch`` (the fencing token) and keeps ``host:pid`` in
``info`` for people to read. A lease keeps others out until it expires, or
until its holder is seen to be dead: a holder that holds a *liveness lock*
(``locked``: an OS file lock next to an SQLite file, a session advisory lock
on PostgreSQL) is dead once that lock is free, which the operating system or
the server ensures when its process or connection dies, in any PID
namespace. A holder without one lapses by its ttl only.

Every write checks, in its own transaction, that the lease row still names
the holder and epoch the store took it with (`check_fence`): a process that
lost its lease (stopped past its ttl, then continued) cannot append.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from typing import NamedTuple

from fanflow.errors import LeaseError, StoreError

__all__ = [
    "HolderLocks",
    "LeaseRow",
    "blocking_holder",
    "check_fence",
    "lease_error",
    "lost_error",
    "process_info",
    "seq_error",
]

_HOST = os.uname().nodename


def process_info() -> str:
    """Return ``host:pid`` of this process, shown to people as a lease holder."""
    return f"{_HOST}:{os.getpid()}"


class LeaseRow(NamedTuple):
    """A lease as stored: holder token ('' once released), epoch, expiry, info, locked."""

    holder: str
    epoch: int
    expires_at: float
    info: str | None
    locked: bool


def blocking_holder(
    current: LeaseRow | None, holder: str, now: float, alive: Callable[[str], bool]
) -> LeaseRow | None:
    """Return the lease row that keeps `holder` out of its run, or None.

    Nobody is kept out by no lease, a released or expired one, one's own, or
    one whose holder held a liveness lock that `alive` finds free.
    """
    if current is None or not current.holder or current.holder == holder:
        return None
    if current.expires_at <= now:
        return None
    if current.locked and not alive(current.holder):
        return None
    return current


def _who(row: LeaseRow) -> str:
    return f"{row.info or 'another process'} (lease {row.holder[:8]})"


def lease_error(run_id: str, row: LeaseRow, now: float) -> LeaseError:
    """Return the `LeaseError` for `run_id`, held by `row` until its expiry."""
    return LeaseError(
        f"run {run_id} is held by {_who(row)} for {max(row.expires_at - now, 0.0):.1f} s more; "
        "wait for that process to finish or for its lease to expire"
    )


def lost_error(run_id: str, row: LeaseRow | None) -> LeaseError:
    """Return the `LeaseError` of a holder whose lease on `run_id` was taken over or released."""
    now_held = "released" if row is None or not row.holder else f"taken over by {_who(row)}"
    return LeaseError(
        f"run {run_id}: this process no longer holds the run's lease (it was {now_held}); "
        "it stops driving the run, and nothing more it does is recorded"
    )


def check_fence(
    run_id: str, fence: tuple[str, int] | None, row: LeaseRow | None, now: float
) -> None:
    """Raise `LeaseError` unless a write to `run_id` under `fence` may go ahead.

    `fence` is ``(holder, epoch)`` of the lease this store took on the run,
    None if it took none: then the write is refused only while another
    holder's lease is in force.
    """
    if fence is not None:
        if row is None or (row.holder, row.epoch) != fence:
            raise lost_error(run_id, row)
    elif row is not None and row.holder and row.expires_at > now:
        raise LeaseError(
            f"run {run_id} is held by {_who(row)}; this store has not taken its lease, "
            "so it cannot write the run's records"
        )


def seq_error(run_id: str, first: int, last: int | None) -> StoreError:
    """Return the error of a batch of `run_id` starting at `first` after stored record `last`."""
    last = last or 0
    if first <= last:
        return LeaseError(
            f"run {run_id}: record {first} is already stored (the run has {last} records); "
            "another process is driving this run"
        )
    return StoreError(
        f"run {run_id}: cannot write record {first} after record {last}; records "
        f"{last + 1}..{first - 1} are missing"
    )


class HolderLocks:
    """Liveness locks of lease holders: one locked file per holder, beside an SQLite file.

    A holder locks its file (``flock``) before its lease row names it and
    keeps it locked while it holds the lease; the lock goes when its process
    dies. Another process that can lock the file knows that holder is dead.
    """

    def __init__(self, db_path: str) -> None:
        self.folder = f"{os.path.realpath(db_path)}-leases"
        self._held: dict[str, int] = {}

    def _path(self, holder: str) -> str | None:
        if not holder or not all(c in "0123456789abcdef" for c in holder):
            return None  # not a token this module made: no file to look at
        return os.path.join(self.folder, f"{holder}.lock")

    def hold(self, holder: str) -> bool:
        """Lock `holder`'s file for this process; False if locks cannot be made here."""
        if holder in self._held:
            return True
        path = self._path(holder)
        if path is None:
            return False
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._held[holder] = fd
        return True

    def holds(self, holder: str) -> bool:
        """Return whether this process holds `holder`'s lock."""
        return holder in self._held

    def drop(self, holder: str) -> None:
        """Unlock and remove `holder`'s file, if this process holds it."""
        fd = self._held.pop(holder, None)
        if fd is None:
            return
        path = self._path(holder)
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
        os.close(fd)

    def alive(self, holder: str) -> bool:
        """Return whether `holder`'s lock is held (by this process or another)."""
        if holder in self._held:
            return True
        path = self._path(holder)
        if path is None:
            return True  # cannot tell: its lease lapses by ttl
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        except OSError:
            return True
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # BlockingIOError: its holder lives
                return True
            with contextlib.suppress(OSError):
                os.unlink(path)  # a dead holder's file: nobody will lock it again
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        """Drop every lock this process holds."""
        for holder in list(self._held):
            self.drop(holder)
