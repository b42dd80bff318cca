"""`PostgresStore`: run records in PostgreSQL, through asyncpg (``fanflow[postgres]``).

`write` is called synchronously on the caller's event loop, so asyncpg runs
on a private event loop in a daemon thread and each call blocks until its
transaction is committed: a batch is durable when `write` returns. Tables
and semantics are those of `fanflow.stores.sqlite` (JSON columns as text),
under a configurable name prefix; leases are taken under a transaction-level
advisory lock and timed by the server's clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

from fanflow._runtime.records import Record, RunInfo
from fanflow.errors import FanflowError, SchemaVersionError, StoreError
from fanflow.serialize import SCHEMA_VERSION
from fanflow.stores._lease import blocking_holder, lease_error
from fanflow.stores._rows import COLUMNS, Row, decode, encode, run_updates

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
        self.lease = f"""SELECT extract(epoch FROM clock_timestamp())::float8, l.holder,
            l.expires_at FROM (SELECT 1) AS one LEFT JOIN {p}_leases AS l ON l.run_id = $1"""
        self.take = f"""INSERT INTO {p}_leases (run_id, holder, expires_at) VALUES ($1, $2, $3)
            ON CONFLICT (run_id) DO UPDATE SET holder = excluded.holder,
            expires_at = excluded.expires_at"""
        self.release = f"DELETE FROM {p}_leases WHERE run_id = $1 AND holder = $2"


class PostgresStore:
    """Keeps run records in the PostgreSQL database at `dsn`; durable, shared by hosts.

    Tables are named ``{table_prefix}_records`` and so on (default
    ``fanflow_``). Needs asyncpg: ``pip install 'fanflow[postgres]'``.
    """

    durable = True

    def __init__(self, dsn: str, *, table_prefix: str = "fanflow", timeout: float = 30.0) -> None:
        asyncpg = _load_asyncpg()
        if not _PREFIX.fullmatch(table_prefix):
            raise ValueError(f"table_prefix must match {_PREFIX.pattern}, got {table_prefix!r}")
        self.dsn = dsn
        self._sql = _Sql(table_prefix)
        self._timeout = timeout
        self._connect = asyncpg.connect
        self._conn: Any = None
        self._closed = False
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fanflow-postgres", daemon=True
        )
        self._thread.start()
        try:
            self._run(self._migrate)
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

    async def _connection(self) -> Any:
        # Reconnect once the server dropped us (a restart, an idle timeout).
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect(
                self.dsn, timeout=self._timeout, command_timeout=self._timeout
            )
        return self._conn

    def write(self, records: Sequence[Record]) -> None:
        """Commit a batch of one run's records in one transaction."""
        if records:
            rows = [encode(record) for record in records]
            self._run(self._write, rows, *run_updates(records))

    async def _write(self, rows: list[Row], started: list[Row], finished: list[Row]) -> None:
        conn = await self._connection()
        async with conn.transaction():
            await conn.executemany(self._sql.insert, rows)
            if started:
                await conn.executemany(self._sql.started, started)
            if finished:
                await conn.executemany(self._sql.finished, finished)

    def records(self, run_id: str) -> list[Record]:
        """Return the records of `run_id` in ``seq`` order; KeyError if there are none."""
        rows = self._run(self._fetch, self._sql.select, run_id)
        if not rows:
            raise KeyError(f"no records for run {run_id!r} in {self!r}")
        return [decode(tuple(row)) for row in rows]

    def run_ids(self) -> list[str]:
        """Return the ids of the runs held (those with a RUN_STARTED record), oldest first."""
        return [row[0] for row in self._run(self._fetch, self._sql.run_ids)]

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Return the runs held, newest first, optionally only those with `status`."""
        rows = self._run(self._fetch, self._sql.list, status, limit)
        return [RunInfo(*row) for row in rows]

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        conn = await self._connection()
        return list(await conn.fetch(sql, *args))

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        """Take or renew `run_id` for `holder` for `ttl` seconds; `LeaseError` if held."""
        self._run(self._acquire, run_id, holder, ttl)

    async def _acquire(self, run_id: str, holder: str, ttl: float) -> None:
        conn = await self._connection()
        async with conn.transaction():
            key = _lock_key(f"{self._sql.prefix}:lease:{run_id}")
            await conn.execute("SELECT pg_advisory_xact_lock($1)", key)
            now, other, expires_at = await conn.fetchrow(self._sql.lease, run_id)
            current = None if other is None else (other, expires_at)
            blocker = blocking_holder(current, holder, now)
            if blocker is not None:
                raise lease_error(run_id, blocker)
            await conn.execute(self._sql.take, run_id, holder, now + ttl)

    def release_lease(self, run_id: str, holder: str) -> None:
        """Give `run_id` back if `holder` holds it."""
        self._run(self._execute, self._sql.release, run_id, holder)

    async def _execute(self, sql: str, *args: object) -> None:
        conn = await self._connection()
        await conn.execute(sql, *args)

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

    async def _migrate(self) -> None:
        conn = await self._connection()
        p = self._sql.prefix
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(f"{p}:schema"))
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {p}_meta (key TEXT PRIMARY KEY, value TEXT)"
            )
            value = await conn.fetchval(f"SELECT value FROM {p}_meta WHERE key = 'schema_version'")
            found = 0 if value is None else int(value)
            if found > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{_redact(self.dsn)} (tables {p}_*) was written by a newer fanflow "
                    f"(schema version {found}; this fanflow reads up to version "
                    f"{SCHEMA_VERSION}); upgrade fanflow to open it"
                )
            for version, statements in MIGRATIONS:
                if found < version <= SCHEMA_VERSION:
                    for statement in statements:
                        await conn.execute(statement.format(p=p))
                    found = version
            await conn.execute(
                f"INSERT INTO {p}_meta VALUES ('schema_version', $1) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                str(found),
            )


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
