"""Following a run's records in a database: the loop both SQL stores share.

A subscriber reads the rows it has not seen, a page at a time and only
when it asks for more, then waits for a sign that something was committed
(SQLite: ``PRAGMA data_version`` changed; PostgreSQL: a notification, or a
fallback poll). Nothing is pushed to it, so a slow subscriber costs no
memory: it is simply further behind in the table, and catches up at its
own pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from fanflow._runtime.records import Record, RecordKind
from fanflow.errors import StoreError
from fanflow.stores._rows import COLUMNS, decode

__all__ = ["PAGE", "Feed", "PostgresFeed", "SqliteFeed", "follow"]

T = TypeVar("T")

PAGE = 512  # records read at a time: what a subscriber holds at most
_FINISHED = RecordKind.RUN_FINISHED


class Feed(Protocol):
    """One subscriber's connection to the database, on the subscriber's event loop."""

    async def read(self, after: int) -> list[Record]:
        """Return up to `PAGE` of the run's records with ``seq > after``, in order."""

    async def last_kind(self) -> str | None:
        """Return the kind of the run's last stored record (None: the run has none)."""

    async def wait(self) -> None:
        """Return once something may have been committed since the last `read`."""

    async def close(self) -> None:
        """Let go of the connection."""


async def follow(run_id: str, after: int, feed: Feed, where: str) -> AsyncIterator[Record]:
    """Yield `run_id`'s records with ``seq > after`` from `feed`, ending after RUN_FINISHED.

    KeyError if the run has no records at all; `StoreError` if its records
    are not contiguous (a tampered database).
    """
    try:
        last = after
        records = await feed.read(last)
        if not records:
            kind = await feed.last_kind()
            if kind is None:
                raise KeyError(f"no records for run {run_id!r} in {where}")
            if kind == _FINISHED.value:
                # It may have finished since the read: read once more, to its end.
                records = await feed.read(last)
                if not records:
                    return
        while True:
            for record in records:
                if record.seq != last + 1:
                    raise StoreError(
                        f"run {run_id}: record {last + 1} is missing (the next stored record "
                        f"is {record.seq}); its history is not contiguous"
                    )
                last = record.seq
                yield record
                if record.kind is _FINISHED:
                    return
            if len(records) < PAGE:
                await feed.wait()
            records = await feed.read(last)
    finally:
        await feed.close()


class SqliteFeed:
    """Follows one run in an SQLite file through a connection of its own, used from a thread.

    ``PRAGMA data_version`` changes when another connection commits; it is
    read with each page, and polled every `interval` seconds while waiting.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        run_id: str,
        table: str,
        interval: float,
        loose: bool,
    ) -> None:
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._run_id = run_id
        self._select = (
            f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE run_id = ? AND seq > ? "
            f"ORDER BY seq LIMIT {PAGE}"
        )
        self._last = f"SELECT kind FROM {table} WHERE run_id = ? ORDER BY seq DESC LIMIT 1"
        self._interval = interval
        self._loose = loose
        self._version: int | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _data_version(self) -> int:
        return int(self._connection().execute("PRAGMA data_version").fetchone()[0])

    def _read(self, after: int) -> list[Record]:
        # The version first: a commit after it is either in this page or changes it.
        self._version = self._data_version()
        rows = self._connection().execute(self._select, (self._run_id, after)).fetchall()
        return [decode(row, loose=self._loose) for row in rows]

    def _last_kind(self) -> str | None:
        row = self._connection().execute(self._last, (self._run_id,)).fetchone()
        return None if row is None else str(row[0])

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"following run {self._run_id}: {exc}") from exc

    async def read(self, after: int) -> list[Record]:
        return await self._call(self._read, after)

    async def last_kind(self) -> str | None:
        return await self._call(self._last_kind)

    async def wait(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if await self._call(self._data_version) != self._version:
                return

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class PostgresFeed:
    """Follows one run in PostgreSQL: LISTEN on the tables' channel, and poll as a fallback.

    Every write NOTIFYs the channel with its run id in its transaction, so
    the notification arrives once the rows are committed. The connection
    is the subscriber's own, on the subscriber's event loop.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        run_id: str,
        table: str,
        channel: str,
        interval: float,
        loose: bool,
    ) -> None:
        self._connect = connect
        self._conn: Any = None
        self._run_id = run_id
        self._select = (
            f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE run_id = $1 AND seq > $2 "
            f"ORDER BY seq LIMIT {PAGE}"
        )
        self._last = f"SELECT kind FROM {table} WHERE run_id = $1 ORDER BY seq DESC LIMIT 1"
        self._channel = channel
        self._interval = interval
        self._loose = loose
        self._changed = asyncio.Event()

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if payload == self._run_id:
            self._changed.set()

    async def _connection(self) -> Any:
        if self._conn is None:
            conn = await self._connect()
            try:
                await conn.add_listener(self._channel, self._notified)
            except BaseException:
                conn.terminate()
                raise
            self._conn = conn
        return self._conn

    async def read(self, after: int) -> list[Record]:
        conn = await self._connection()
        self._changed.clear()  # before the query: a commit after it sets it again
        rows = await conn.fetch(self._select, self._run_id, after)
        return [decode(tuple(row), loose=self._loose) for row in rows]

    async def last_kind(self) -> str | None:
        conn = await self._connection()
        kind = await conn.fetchval(self._last, self._run_id)
        return None if kind is None else str(kind)

    async def wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), self._interval)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await asyncio.wait_for(conn.close(), 5.0)
        except BaseException:
            conn.terminate()
            raise
