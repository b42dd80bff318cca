"""`PostgresStore`: run records in PostgreSQL, through asyncpg (``fanflow[postgres]``).

`write` is called synchronously on the caller's event loop, so asyncpg runs
on a private event loop in a daemon thread and each call blocks until its
transaction is committed: a batch is durable when `write` returns. Tables
and semantics are those of `fanflow.stores.sqlite` (JSON columns as text),
under a configurable name prefix; leases are taken under a transaction-level
advisory lock and timed by the server's clock. A lease holder also holds a
session advisory lock of its own while it holds the lease: the server drops
it when the holder's connection dies, which tells other processes, on any
host, that the holder is gone. ``readonly=True`` reads without migrating.

`subscribe` follows a run live: each write NOTIFYs the channel
``{prefix}_records`` with its run id, in its transaction; a subscriber
LISTENs on a connection of its own, on its own event loop, reads the new
rows when notified, and polls every `poll_interval` seconds in case a
notification was missed (see `fanflow.stores._follow`).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

from fanflow._runtime.records import Record, RunInfo
from fanflow.errors import FanflowError, SchemaVersionError, StoreError
from fanflow.serialize import SCHEMA_VERSION
from fanflow.stores._follow import PostgresFeed, follow
from fanflow.stores._lease import (
    LeaseRow,
    blocking_holder,
    check_fence,
    lease_error,
    process_info,
    seq_error,
)
from fanflow.stores._rows import COLUMNS, Row, check_batch, encode, load, run_updates

__all__ = ["PostgresStore"]

P = ParamSpec("P")
T = TypeVar("T")

# As in `fanflow.stores.sqlite.MIGRATIONS`; ``{p}`` is the table prefix.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE {p}_records (
                run_id TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL, step TEXT, invocation BIGINT, event_id BIGINT,
                event TEXT, data TEXT, error TEXT,
                PRIMARY KEY (run_id, seq))""",
            """CREATE TABLE {p}_runs (
                run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, source TEXT,
                status TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL,
                finished_at DOUBLE PRECISION)""",
            "CREATE INDEX {p}_runs_started ON {p}_runs (started_at)",
            """CREATE TABLE {p}_leases (
                run_id TEXT PRIMARY KEY, holder TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL)""",
        ),
    ),
    (
        2,
        (
            "ALTER TABLE {p}_leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE {p}_leases ADD COLUMN info TEXT",
            "ALTER TABLE {p}_leases ADD COLUMN locked BOOLEAN NOT NULL DEFAULT false",
        ),
    ),
)

_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_INSTALL = "pip install 'fanflow[postgres]'"


class _Sql:
    """The statements of one table prefix."""

    def __init__(self, p: str) -> None:
        self.prefix = p
        marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        self.insert = f"INSERT INTO {p}_records ({', '.join(COLUMNS)}) VALUES ({marks})"
        self.select = f"SELECT {', '.join(COLUMNS)} FROM {p}_records WHERE run_id = $1 ORDER BY seq"
        self.started = f"""INSERT INTO {p}_runs (run_id, workflow, source, status, started_at)
            VALUES ($1, $2, $3, 'running', $4) ON CONFLICT (run_id) DO UPDATE SET
            workflow = excluded.workflow, source = excluded.source, status = 'running',
            finished_at = NULL"""
        self.finished = f"UPDATE {p}_runs SET status = $1, finished_at = $2 WHERE run_id = $3"
        self.run_ids = f"SELECT run_id FROM {p}_runs ORDER BY started_at, run_id"
        self.list = f"""SELECT run_id, workflow, status, started_at, finished_at FROM {p}_runs
            WHERE $1::text IS NULL OR status = $1
            ORDER BY started_at DESC, run_id DESC LIMIT $2"""
        lease = "holder, epoch, expires_at, info, locked"
        now = "extract(epoch FROM clock_timestamp())::float8"
        self.lease = f"""SELECT {now}, l.* FROM (SELECT 1) AS one
            LEFT JOIN (SELECT {lease} FROM {p}_leases WHERE run_id = $1 FOR UPDATE) AS l ON true"""
        self.channel = f"{p}_records"
        # What a write checks, in its transaction: the lease (kept from changing
        # until the write commits) and the last record stored. It also tells
        # the subscribers of the run, once (and if) the transaction commits.
        self.fence = f"""SELECT {now}, (SELECT max(seq) FROM {p}_records WHERE run_id = $1), l.*,
            pg_notify('{self.channel}', $1) AS notified
            FROM (SELECT 1) AS one LEFT JOIN LATERAL
            (SELECT {lease} FROM {p}_leases WHERE run_id = $1 FOR SHARE) AS l ON true"""
        self.take = f"""INSERT INTO {p}_leases (run_id, holder, expires_at, epoch, info, locked)
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO UPDATE SET
            holder = excluded.holder, expires_at = excluded.expires_at, epoch = excluded.epoch,
            info = excluded.info, locked = excluded.locked"""
        self.release = f"""UPDATE {p}_leases SET holder = '', expires_at = 0, locked = false
            WHERE run_id = $1 AND holder = $2"""
        self.source = f"SELECT source FROM {p}_runs WHERE run_id = $1"


class PostgresStore:
    """Keeps run records in the PostgreSQL database at `dsn`; durable, shared by hosts.

    Tables are named ``{table_prefix}_records`` and so on (default
    ``fanflow_``). Needs asyncpg: ``pip install 'fanflow[postgres]'``.
    With `readonly`, the tables are only read (and not created or migrated).
    """

    durable = True
    poll_interval = 1.0  # seconds between a subscriber's polls, should a notification be lost

    def __init__(
        self,
        dsn: str,
        *,
        table_prefix: str = "fanflow",
        timeout: float = 30.0,
        readonly: bool = False,
    ) -> None:
        asyncpg = _load_asyncpg()
        if not _PREFIX.fullmatch(table_prefix):
            raise ValueError(f"table_prefix must match {_PREFIX.pattern}, got {table_prefix!r}")
        self.dsn = dsn
        self.readonly = readonly
        self._sql = _Sql(table_prefix)
        self._timeout = timeout
        self._connect = asyncpg.connect
        self._unique_violation = asyncpg.UniqueViolationError
        self._conn: Any = None
        self._closed = False
        self._empty = False
        self._lock = threading.Lock()
        self._fences: dict[str, tuple[str, int]] = {}  # run id -> (holder, epoch) taken here
        self._held: set[str] = set()  # holders whose liveness lock this connection holds
        self._held_on: Any = None  # the connection that holds them
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fanflow-postgres", daemon=True
        )
        self._thread.start()
        try:
            self._run(self._check_version if readonly else self._migrate)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({_redact(self.dsn)!r}, table_prefix={self._sql.prefix!r})"

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, fn: Callable[P, Coroutine[Any, Any, T]], *args: P.args, **kw: P.kwargs) -> T:
        with self._lock:
            if self._closed:
                raise StoreError(f"{self!r} is closed")
            future = asyncio.run_coroutine_threadsafe(fn(*args, **kw), self._loop)
            try:
                return future.result()
            except FanflowError:
                raise
            except Exception as exc:
                raise StoreError(f"{self!r}: {type(exc).__name__}: {exc}") from exc

    def _writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self!r} was opened read-only")

    async def _connection(self) -> Any:
        # Reconnect once the server dropped us (a restart, an idle timeout).
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect(
                self.dsn, timeout=self._timeout, command_timeout=self._timeout
            )
        return self._conn

    def write(self, records: Sequence[Record]) -> None:
        """Commit a batch of one run's records in one transaction, if this store may.

        The batch must continue the run's stored records, and the run's lease
        must still be the one this store took (if it took one); otherwise
        `LeaseError` (another process drives the run) or `StoreError`.
        """
        if records:
            self._writable()
            run_id, first = check_batch(records)
            rows = [encode(record) for record in records]
            self._run(self._write, run_id, first, rows, *run_updates(records))

    async def _write(
        self, run_id: str, first: int, rows: list[Row], started: list[Row], finished: list[Row]
    ) -> None:
        conn = await self._connection()
        async with conn.transaction():
            now, last, *lease, _ = await conn.fetchrow(self._sql.fence, run_id)
            check_fence(run_id, self._fences.get(run_id), _lease_row(lease), now)
            if first != (last or 0) + 1:
                raise seq_error(run_id, first, last)
            try:
                await conn.executemany(self._sql.insert, rows)
            except self._unique_violation:
                raise seq_error(run_id, first, first) from None  # a writer in parallel
            if started:
                await conn.executemany(self._sql.started, started)
            if finished:
                await conn.executemany(self._sql.finished, finished)

    def records(self, run_id: str, *, loose: bool = False) -> list[Record]:
        """Return the records of `run_id` in ``seq`` order; KeyError if there are none.

        A malformed row or a gap raises `StoreError` naming the run and the
        sequence number. With `loose`, events, models and enums whose types
        are not imported come back as placeholders (for display).
        """
        rows = [] if self._empty else self._run(self._fetch, self._sql.select, run_id)
        if not rows:
            raise KeyError(f"no records for run {run_id!r} in {self!r}")
        return load(run_id, [tuple(row) for row in rows], loose=loose)

    def subscribe(
        self, run_id: str, after: int = 0, *, loose: bool = False
    ) -> AsyncIterator[Record]:
        """Iterate over `run_id`'s records with ``seq > after``: those stored, then live ones.

        Live records are those any process commits later; the iteration ends
        after the run's RUN_FINISHED record. KeyError (when the first record
        is asked for) if the database holds no record of the run. The
        subscriber LISTENs and reads on an asyncpg connection of its own, on
        the caller's event loop, a page at a time when it asks: a slow one
        holds no more than a page, and the store may be closed while it
        reads. `loose` as for `records`.
        """
        if self._empty:
            return _no_run(run_id, repr(self))
        feed = PostgresFeed(
            self._subscriber,
            run_id,
            f"{self._sql.prefix}_records",
            self._sql.channel,
            self.poll_interval,
            loose,
        )
        return follow(run_id, after, feed, repr(self))

    async def _subscriber(self) -> Any:
        return await self._connect(self.dsn, timeout=self._timeout, command_timeout=self._timeout)

    def run_ids(self) -> list[str]:
        """Return the ids of the runs held (those with a RUN_STARTED record), oldest first."""
        if self._empty:
            return []
        return [row[0] for row in self._run(self._fetch, self._sql.run_ids)]

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Return the runs held, newest first, optionally only those with `status`."""
        if self._empty:
            return []
        rows = self._run(self._fetch, self._sql.list, status, limit)
        return [RunInfo(*row) for row in rows]

    def workflow_source(self, run_id: str) -> str | None:
        """Return where run `run_id` recorded its workflow (``file.py:Class``), if it did."""
        if self._empty:
            return None
        rows = self._run(self._fetch, self._sql.source, run_id)
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        conn = await self._connection()
        return list(await conn.fetch(sql, *args))

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        """Take or renew `run_id` for `holder` for `ttl` seconds.

        `LeaseError` if another live holder has it, or if `holder` had it
        here and lost it since. Later writes of the run through this store
        are fenced by the lease's epoch (`lease_epoch`).
        """
        self._writable()
        epoch = self._run(self._acquire, run_id, holder, ttl)
        self._fences[run_id] = (holder, epoch)

    async def _acquire(self, run_id: str, holder: str, ttl: float) -> int:
        conn = await self._connection()
        await self._relock(conn)
        had_lock = holder in self._held
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", self._key("lease", run_id))
                now, *lease = await conn.fetchrow(self._sql.lease, run_id)
                row = _lease_row(lease)
                if self._fences.get(run_id, ("",))[0] == holder:
                    check_fence(run_id, self._fences[run_id], row, now)  # renewing: still ours?
                alive = row is not None and await self._alive(conn, row.holder)
                blocker = blocking_holder(row, holder, now, lambda _: alive)
                if blocker is not None:
                    raise lease_error(run_id, blocker, now)
                same = row is not None and row.holder == holder
                epoch = row.epoch if same and row is not None else (row.epoch if row else 0) + 1
                locked = await self._hold(conn, holder)
                await conn.execute(
                    self._sql.take, run_id, holder, now + ttl, epoch, process_info(), locked
                )
        except BaseException:
            if not had_lock:
                await self._unhold(conn, holder)
            raise
        return int(epoch)

    def _key(self, kind: str, name: str) -> int:
        return _lock_key(f"{self._sql.prefix}:{kind}:{name}")

    async def _hold(self, conn: Any, holder: str) -> bool:
        if holder not in self._held:
            key = self._key("holder", holder)
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                return False
            self._held.add(holder)
            self._held_on = conn
        return True

    async def _unhold(self, conn: Any, holder: str) -> None:
        if holder in self._held:
            self._held.discard(holder)
            if not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1)", self._key("holder", holder))

    async def _relock(self, conn: Any) -> None:
        # A new connection (the old one dropped) holds none of our liveness locks.
        if self._held and self._held_on is not conn:
            held, self._held = self._held, set()
            for holder in held:
                await self._hold(conn, holder)

    async def _alive(self, conn: Any, holder: str) -> bool:
        """Return whether `holder`'s liveness lock is held (by this store or anyone)."""
        if not holder or holder in self._held:
            return True
        key = self._key("holder", holder)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return True
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
        return False

    def lease_epoch(self, run_id: str) -> int | None:
        """Return the epoch of the lease this store took on `run_id` (its fencing token)."""
        fence = self._fences.get(run_id)
        return None if fence is None else fence[1]

    def release_lease(self, run_id: str, holder: str) -> None:
        """Give `run_id` back if `holder` holds it; the store writes no more of its records."""
        self._writable()
        self._run(self._release, run_id, holder)

    async def _release(self, run_id: str, holder: str) -> None:
        conn = await self._connection()
        try:
            await conn.execute(self._sql.release, run_id, holder)
        finally:
            await self._unhold(conn, holder)

    def close(self) -> None:
        """Close the connection and stop the thread; closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._conn is not None:
                closing = asyncio.run_coroutine_threadsafe(self._conn.close(), self._loop)
                try:
                    closing.result(timeout=self._timeout)
                except Exception:  # the server is gone: nothing left to release
                    self._conn.terminate()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=self._timeout)
            if not self._thread.is_alive():
                self._loop.close()

    async def _version(self, conn: Any) -> int | None:
        p = self._sql.prefix
        if await conn.fetchval("SELECT to_regclass($1)", f"{p}_meta") is None:
            return None
        value = await conn.fetchval(f"SELECT value FROM {p}_meta WHERE key = 'schema_version'")
        if value is None:
            return 0
        if not str(value).isdigit():
            raise self._version_error(repr(str(value)))
        found = int(value)
        if found > SCHEMA_VERSION:
            raise self._version_error(str(found))
        return found

    def _version_error(self, found: str) -> SchemaVersionError:
        return SchemaVersionError(
            f"{_redact(self.dsn)} (tables {self._sql.prefix}_*) was written by a newer fanflow "
            f"(schema version {found}; this fanflow reads up to version "
            f"{SCHEMA_VERSION}); upgrade fanflow to open it"
        )

    async def _check_version(self) -> None:
        found = await self._version(await self._connection())
        self._empty = not found

    async def _migrate(self) -> None:
        conn = await self._connection()
        p = self._sql.prefix
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(f"{p}:schema"))
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {p}_meta (key TEXT PRIMARY KEY, value TEXT)"
            )
            found = before = await self._version(conn) or 0
            for version, statements in MIGRATIONS:
                if found < version <= SCHEMA_VERSION:
                    for statement in statements:
                        await conn.execute(statement.format(p=p))
                    found = version
            if found != before:
                await conn.execute(
                    f"INSERT INTO {p}_meta VALUES ('schema_version', $1) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    str(found),
                )


async def _no_run(run_id: str, where: str) -> AsyncIterator[Record]:
    raise KeyError(f"no records for run {run_id!r} in {where}")
    yield  # an async generator that raises when first asked


def _lease_row(values: Sequence[Any]) -> LeaseRow | None:
    holder, epoch, expires_at, info, locked = values
    if holder is None:
        return None
    return LeaseRow(str(holder), int(epoch), float(expires_at), info, bool(locked))


def _load_asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError:
        raise StoreError(
            f"PostgresStore needs asyncpg, which is not installed; install it with:\n    {_INSTALL}"
        ) from None
    return asyncpg


def _lock_key(name: str) -> int:
    """Return a 64-bit advisory-lock key for `name`."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _redact(dsn: str) -> str:
    """Return `dsn` with its password, if any, replaced by ``***``."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
