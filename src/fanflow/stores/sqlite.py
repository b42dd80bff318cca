"""`SqliteStore`: run records in an SQLite file, the embedded durable default.

The file is opened in WAL mode with ``synchronous=NORMAL``: each `write`
batch is one transaction, and a committed batch survives the death of the
process (SIGKILL included), which is what resuming a run needs. An
operating-system crash or power loss may lose the last few commits; the
file itself stays consistent.

Tables (created, and migrated from older versions, on open)::

    fanflow_meta     key, value                 schema_version
    fanflow_records  run_id, seq, kind, at, step, invocation, event_id,
                     event, data, error         JSON columns as text
    fanflow_runs     run_id, workflow, source, status, started_at, finished_at
    fanflow_leases   run_id, holder, expires_at
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from fanflow._runtime.records import Record, RunInfo
from fanflow.errors import SchemaVersionError, StoreError
from fanflow.serialize import SCHEMA_VERSION
from fanflow.stores._lease import blocking_holder, lease_error
from fanflow.stores._rows import COLUMNS, decode, encode, run_updates

__all__ = ["SqliteStore"]

# Each step brings the tables from the version before it to its own, in the
# same transaction as the version bump. A change of layout appends a step;
# the last step's version is `SCHEMA_VERSION`. Records are WITHOUT ROWID:
# one b-tree keyed by (run_id, seq) instead of a table and an index, which
# makes `write` about a third cheaper.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE fanflow_records (
                run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
                at REAL NOT NULL, step TEXT, invocation INTEGER, event_id INTEGER,
                event TEXT, data TEXT, error TEXT,
                PRIMARY KEY (run_id, seq)) WITHOUT ROWID""",
            """CREATE TABLE fanflow_runs (
                run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, source TEXT,
                status TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL)""",
            "CREATE INDEX fanflow_runs_started ON fanflow_runs (started_at)",
            """CREATE TABLE fanflow_leases (
                run_id TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL)""",
        ),
    ),
)

_INSERT = f"INSERT INTO fanflow_records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 10)})"
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM fanflow_records WHERE run_id = ? ORDER BY seq"
_RUN_STARTED = """INSERT INTO fanflow_runs (run_id, workflow, source, status, started_at)
    VALUES (?, ?, ?, 'running', ?) ON CONFLICT (run_id) DO UPDATE SET
    workflow = excluded.workflow, source = excluded.source, status = 'running',
    finished_at = NULL"""
_RUN_FINISHED = "UPDATE fanflow_runs SET status = ?, finished_at = ? WHERE run_id = ?"
_LIST = """SELECT run_id, workflow, status, started_at, finished_at FROM fanflow_runs
    WHERE ? IS NULL OR status = ? ORDER BY started_at DESC, rowid DESC LIMIT ?"""


class SqliteStore:
    """Keeps run records in the SQLite file at `path`; durable across process crashes.

    One connection per store, shared by threads under a lock. Several
    processes may open the same file (a writer waits up to `timeout`
    seconds for another's transaction); leases keep two of them from
    resuming the same run.
    """

    durable = True

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # 16 MB of page cache (the default is 2 MB): a "batched" run hands over
            # thousands of records per loop turn, and a spilling cache costs ~30%.
            self._conn.execute("PRAGMA cache_size=-16000")
            _migrate(self._conn, self.path)
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self!r} is closed")
        return self._conn

    def write(self, records: Sequence[Record]) -> None:
        """Commit a batch of one run's records in one transaction."""
        if not records:
            return
        rows = [encode(record) for record in records]
        started, finished = run_updates(records)
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, rows)
                if started:
                    conn.executemany(_RUN_STARTED, started)
                if finished:
                    conn.executemany(_RUN_FINISHED, finished)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise StoreError(
                    f"{self!r}: cannot write {len(rows)} records of run {records[0].run_id} "
                    f"(seq {records[0].seq}..{records[-1].seq}): {exc}"
                ) from exc

    def records(self, run_id: str) -> list[Record]:
        """Return the records of `run_id` in ``seq`` order; KeyError if there are none."""
        rows = self._query(_SELECT, (run_id,))
        if not rows:
            raise KeyError(f"no records for run {run_id!r} in {self.path}")
        return [decode(row) for row in rows]

    def run_ids(self) -> list[str]:
        """Return the ids of the runs held (those with a RUN_STARTED record), oldest first."""
        rows = self._query("SELECT run_id FROM fanflow_runs ORDER BY started_at, rowid", ())
        return [row[0] for row in rows]

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Return the runs held, newest first, optionally only those with `status`."""
        rows = self._query(_LIST, (status, status, -1 if limit is None else limit))
        return [RunInfo(*row) for row in rows]

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        """Take or renew `run_id` for `holder` for `ttl` seconds; `LeaseError` if held."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                now = time.time()
                row = conn.execute(
                    "SELECT holder, expires_at FROM fanflow_leases WHERE run_id = ?", (run_id,)
                ).fetchone()
                blocker = blocking_holder(row, holder, now)
                if blocker is not None:
                    raise lease_error(run_id, blocker)
                conn.execute(
                    "INSERT OR REPLACE INTO fanflow_leases VALUES (?, ?, ?)",
                    (run_id, holder, now + ttl),
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise StoreError(f"{self!r}: cannot take the lease of run {run_id}: {exc}") from exc
            except BaseException:
                _rollback(conn)
                raise

    def release_lease(self, run_id: str, holder: str) -> None:
        """Give `run_id` back if `holder` holds it."""
        with self._lock:
            try:
                self._connection().execute(
                    "DELETE FROM fanflow_leases WHERE run_id = ? AND holder = ?", (run_id, holder)
                )
            except sqlite3.Error as exc:
                raise StoreError(f"{self!r}: cannot release run {run_id}: {exc}") from exc

    def close(self) -> None:
        """Close the file; writes already made are kept. Closing twice is harmless."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self!r}: {exc}") from exc


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the schema version recorded in the database (0: no tables yet)."""
    row = conn.execute("SELECT value FROM fanflow_meta WHERE key = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS fanflow_meta (key TEXT PRIMARY KEY, value TEXT)")
        found = schema_version(conn)
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{path} was written by a newer fanflow (schema version {found}; this "
                f"fanflow reads up to version {SCHEMA_VERSION}); upgrade fanflow to open it"
            )
        for version, statements in MIGRATIONS:
            if found < version <= SCHEMA_VERSION:
                for statement in statements:
                    conn.execute(statement)
                found = version
        conn.execute(
            "INSERT OR REPLACE INTO fanflow_meta VALUES ('schema_version', ?)", (str(found),)
        )
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
