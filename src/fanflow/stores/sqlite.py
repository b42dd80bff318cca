"""`SqliteStore`: run records in an SQLite file, the embedded durable default.

The file is opened in WAL mode with ``synchronous=NORMAL``: each `write`
batch is one transaction, and a committed batch survives the death of the
process (SIGKILL included), which is what resuming a run needs. An
operating-system crash or power loss may lose the last few commits; the
file itself stays consistent. ``synchronous="FULL"`` syncs the log at
every commit, so that a commit survives those too, for a price.

`subscribe` follows a run live, whichever process writes it: a
subscriber reads through a connection of its own, in a thread, and polls
``PRAGMA data_version`` (see `fanflow.stores._follow`).

Tables (created, and migrated from older versions, when opened for writing)::

    fanflow_meta     key, value                 schema_version
    fanflow_records  run_id, seq, kind, at, step, invocation, event_id,
                     event, data, error         JSON columns as text
    fanflow_runs     run_id, workflow, source, status, started_at, finished_at
    fanflow_leases   run_id, holder, expires_at, epoch, info, locked

Opened with ``readonly=True`` (``fanflow runs list`` and ``show``), the file
is only read: no migration, no WAL switch, and it works on a read-only file
in a read-only folder. Lease holders lock a file each in ``<db>-leases/``
(see `fanflow.stores._lease`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from fanflow._runtime.records import Record, RunInfo
from fanflow.errors import SchemaVersionError, StoreError
from fanflow.serialize import SCHEMA_VERSION
from fanflow.stores._follow import SqliteFeed, follow
from fanflow.stores._lease import (
    HolderLocks,
    LeaseRow,
    blocking_holder,
    check_fence,
    lease_error,
    process_info,
    seq_error,
)
from fanflow.stores._rows import COLUMNS, check_batch, encode, load, run_updates

__all__ = ["SYNCHRONOUS", "SqliteStore"]

# What ``PRAGMA synchronous`` may be set to, and what each keeps (WAL mode):
# NORMAL, a commit survives the process dying; FULL, also the OS crashing or
# the power failing (the log is synced at every commit).
SYNCHRONOUS = ("NORMAL", "FULL")

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
    (
        2,
        (
            "ALTER TABLE fanflow_leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE fanflow_leases ADD COLUMN info TEXT",
            "ALTER TABLE fanflow_leases ADD COLUMN locked INTEGER NOT NULL DEFAULT 0",
        ),
    ),
)

_INSERT = f"INSERT INTO fanflow_records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 10)})"
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM fanflow_records WHERE run_id = ? ORDER BY seq"
# What a write checks in its transaction: the last record stored and the lease.
_FENCE = """SELECT (SELECT max(seq) FROM fanflow_records WHERE run_id = ?1),
    l.holder, l.epoch, l.expires_at, l.info, l.locked
    FROM (SELECT 1) LEFT JOIN fanflow_leases AS l ON l.run_id = ?1"""
_RUN_STARTED = """INSERT INTO fanflow_runs (run_id, workflow, source, status, started_at)
    VALUES (?, ?, ?, 'running', ?) ON CONFLICT (run_id) DO UPDATE SET
    workflow = excluded.workflow, source = excluded.source, status = 'running',
    finished_at = NULL"""
_RUN_FINISHED = "UPDATE fanflow_runs SET status = ?, finished_at = ? WHERE run_id = ?"
_LIST = """SELECT run_id, workflow, status, started_at, finished_at FROM fanflow_runs
    WHERE ? IS NULL OR status = ? ORDER BY started_at DESC, rowid DESC LIMIT ?"""
_LEASE = "SELECT holder, epoch, expires_at, info, locked FROM fanflow_leases WHERE run_id = ?"
_TAKE = """INSERT OR REPLACE INTO fanflow_leases (run_id, holder, expires_at, epoch, info, locked)
    VALUES (?, ?, ?, ?, ?, ?)"""
_RELEASE = """UPDATE fanflow_leases SET holder = '', expires_at = 0, locked = 0
    WHERE run_id = ? AND holder = ?"""


class SqliteStore:
    """Keeps run records in the SQLite file at `path`; durable across process crashes.

    One connection per store, shared by threads under a lock. Several
    processes may open the same file (a writer waits up to `timeout`
    seconds for another's transaction); leases keep two of them from
    driving the same run. With `readonly`, the file is only read.
    `synchronous` is ``"NORMAL"`` (a commit survives the process dying) or
    ``"FULL"`` (it survives an OS crash or power loss too; each commit
    waits for the disk). Subscribers poll for changes every `poll_interval`
    seconds.
    """

    durable = True
    poll_interval = 0.005

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 10.0,
        readonly: bool = False,
        synchronous: str = "NORMAL",
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS)} (any case), "
                f"got {synchronous!r}"
            )
        self.path = os.fspath(path)
        self.readonly = readonly
        self.synchronous = synchronous.upper()
        self._timeout = timeout
        self._read_uri = ""  # how a subscriber opens the file
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._locks = HolderLocks(self.path)
        self._fences: dict[str, tuple[str, int]] = {}  # run id -> (holder, epoch) taken here
        self._empty = False  # read-only on a file without fanflow tables
        try:
            if readonly:
                self._open_readonly(timeout)
            else:
                self._open(timeout)
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _open(self, timeout: float) -> None:
        self._conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={self.synchronous}")
        # 16 MB of page cache (the default is 2 MB): a "batched" run hands over
        # thousands of records per loop turn, and a spilling cache costs ~30%.
        self._conn.execute("PRAGMA cache_size=-16000")
        _migrate(self._conn, self.path)

    def _open_readonly(self, timeout: float) -> None:
        uri = Path(self.path).resolve().as_uri()
        if not os.path.exists(self.path):
            raise StoreError(f"cannot open the SQLite store {self.path}: no such file")
        try:
            self._read_uri = f"{uri}?mode=ro"
            self._conn = _connect(self._read_uri, timeout)
            found = schema_version(self._conn, self.path)
        except sqlite3.OperationalError:
            # A WAL file in a read-only folder, whose -shm file nobody can
            # create: read it as a file that nobody is changing.
            if self._conn is not None:
                self._conn.close()
            self._read_uri = f"{uri}?immutable=1"
            self._conn = _connect(self._read_uri, timeout)
            found = schema_version(self._conn, self.path)
        _check_version(found, self.path)
        self._empty = found == 0

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    def _reader(self) -> sqlite3.Connection:
        if self._read_uri:
            return _connect(self._read_uri, self._timeout)
        return sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )

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

    def _writable(self) -> sqlite3.Connection:
        if self.readonly:
            raise StoreError(f"{self!r} was opened read-only")
        return self._connection()

    def write(self, records: Sequence[Record]) -> None:
        """Commit a batch of one run's records in one transaction, if this store may.

        The batch must continue the run's stored records, and the run's lease
        must still be the one this store took (if it took one); otherwise
        `LeaseError` (another process drives the run) or `StoreError`.
        """
        if not records:
            return
        run_id, first = check_batch(records)
        rows = [encode(record) for record in records]
        started, finished = run_updates(records)
        with self._lock:
            conn = self._writable()
            try:
                conn.execute("BEGIN IMMEDIATE")
                last, *lease = conn.execute(_FENCE, (run_id,)).fetchone()
                check_fence(run_id, self._fences.get(run_id), _to_lease(lease), time.time())
                if first != (last or 0) + 1:
                    raise seq_error(run_id, first, last)
                conn.executemany(_INSERT, rows)
                if started:
                    conn.executemany(_RUN_STARTED, started)
                if finished:
                    conn.executemany(_RUN_FINISHED, finished)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise StoreError(
                    f"{self!r}: cannot write {len(rows)} records of run {run_id} "
                    f"(seq {first}..{records[-1].seq}): {exc}"
                ) from exc
            except BaseException:
                _rollback(conn)
                raise

    def records(self, run_id: str, *, loose: bool = False) -> list[Record]:
        """Return the records of `run_id` in ``seq`` order; KeyError if there are none.

        A malformed row or a gap raises `StoreError` naming the run and the
        sequence number. With `loose`, events, models and enums whose types
        are not imported come back as placeholders (for display).
        """
        rows = [] if self._empty else self._query(_SELECT, (run_id,))
        if not rows:
            raise KeyError(f"no records for run {run_id!r} in {self.path}")
        return load(run_id, rows, loose=loose)

    def subscribe(
        self, run_id: str, after: int = 0, *, loose: bool = False
    ) -> AsyncIterator[Record]:
        """Iterate over `run_id`'s records with ``seq > after``: those stored, then live ones.

        Live records are those any process commits to the file later; the
        iteration ends after the run's RUN_FINISHED record. KeyError (when
        the first record is asked for) if the file holds no record of the
        run. The subscriber reads through a connection of its own, in a
        thread, a page at a time when it asks: a slow one holds no more
        than a page, and the store may be closed while it reads. `loose`
        as for `records`.
        """
        if self._empty:
            return _no_run(run_id, self.path)
        feed = SqliteFeed(self._reader, run_id, "fanflow_records", self.poll_interval, loose)
        return follow(run_id, after, feed, self.path)

    def run_ids(self) -> list[str]:
        """Return the ids of the runs held (those with a RUN_STARTED record), oldest first."""
        if self._empty:
            return []
        rows = self._query("SELECT run_id FROM fanflow_runs ORDER BY started_at, rowid", ())
        return [row[0] for row in rows]

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Return the runs held, newest first, optionally only those with `status`."""
        if self._empty:
            return []
        rows = self._query(_LIST, (status, status, -1 if limit is None else limit))
        return [RunInfo(*row) for row in rows]

    def workflow_source(self, run_id: str) -> str | None:
        """Return where run `run_id` recorded its workflow (``file.py:Class``), if it did."""
        if self._empty:
            return None
        rows = self._query("SELECT source FROM fanflow_runs WHERE run_id = ?", (run_id,))
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        """Take or renew `run_id` for `holder` for `ttl` seconds.

        `LeaseError` if another live holder has it, or if `holder` had it
        here and lost it since. Later writes of the run through this store
        are fenced by the lease's epoch (`lease_epoch`).
        """
        with self._lock:
            conn = self._writable()
            had_lock = self._locks.holds(holder)
            locked = self._locks.hold(holder)
            try:
                conn.execute("BEGIN IMMEDIATE")
                epoch = self._take(conn, run_id, holder, ttl, locked)
                conn.execute("COMMIT")
            except BaseException as exc:
                _rollback(conn)
                if not had_lock:
                    self._locks.drop(holder)
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(
                        f"{self!r}: cannot take the lease of run {run_id}: {exc}"
                    ) from exc
                raise
            self._fences[run_id] = (holder, epoch)

    def _take(
        self, conn: sqlite3.Connection, run_id: str, holder: str, ttl: float, locked: bool
    ) -> int:
        now = time.time()
        row = _lease_row(conn, run_id)
        if self._fences.get(run_id, ("",))[0] == holder:
            check_fence(run_id, self._fences[run_id], row, now)  # renewing: still ours?
        blocker = blocking_holder(row, holder, now, self._locks.alive)
        if blocker is not None:
            raise lease_error(run_id, blocker, now)
        same = row is not None and row.holder == holder
        epoch = row.epoch if same and row is not None else (row.epoch if row else 0) + 1
        conn.execute(_TAKE, (run_id, holder, now + ttl, epoch, process_info(), int(locked)))
        return epoch

    def lease_epoch(self, run_id: str) -> int | None:
        """Return the epoch of the lease this store took on `run_id` (its fencing token)."""
        fence = self._fences.get(run_id)
        return None if fence is None else fence[1]

    def release_lease(self, run_id: str, holder: str) -> None:
        """Give `run_id` back if `holder` holds it; the store writes no more of its records."""
        with self._lock:
            try:
                self._writable().execute(_RELEASE, (run_id, holder))
            except sqlite3.Error as exc:
                raise StoreError(f"{self!r}: cannot release run {run_id}: {exc}") from exc
            finally:
                self._locks.drop(holder)

    def close(self) -> None:
        """Close the file; writes already made are kept. Closing twice is harmless."""
        with self._lock:
            conn, self._conn = self._conn, None
            self._locks.close()
        if conn is not None:
            conn.close()

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self!r}: {exc}") from exc


async def _no_run(run_id: str, path: str) -> AsyncIterator[Record]:
    raise KeyError(f"no records for run {run_id!r} in {path}")
    yield  # an async generator that raises when first asked


def _connect(uri: str, timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(
        uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
    )


def _lease_row(conn: sqlite3.Connection, run_id: str) -> LeaseRow | None:
    row = conn.execute(_LEASE, (run_id,)).fetchone()
    return None if row is None else _to_lease(row)


def _to_lease(values: Sequence[Any]) -> LeaseRow | None:
    holder, epoch, expires_at, info, locked = values
    if holder is None:
        return None
    return LeaseRow(str(holder), int(epoch), float(expires_at), info, bool(locked))


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def schema_version(conn: sqlite3.Connection, path: str = "the database") -> int:
    """Return the schema version recorded in the database (0: no tables yet).

    A version that is not a number raises `SchemaVersionError`, as a newer one does.
    """
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fanflow_meta'"
    ).fetchone()
    if has_meta is None:
        return 0
    row = conn.execute("SELECT value FROM fanflow_meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        return 0
    text = str(row[0])
    if not text.isdigit():
        raise _version_error(path, repr(text))
    return int(text)


def _version_error(path: str, found: str) -> SchemaVersionError:
    return SchemaVersionError(
        f"{path} was written by a newer fanflow (schema version {found}; this "
        f"fanflow reads up to version {SCHEMA_VERSION}); upgrade fanflow to open it"
    )


def _check_version(found: int, path: str) -> None:
    if found > SCHEMA_VERSION:
        raise _version_error(path, str(found))


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS fanflow_meta (key TEXT PRIMARY KEY, value TEXT)")
        found = schema_version(conn, path)
        _check_version(found, path)
        before = found
        for version, statements in MIGRATIONS:
            if found < version <= SCHEMA_VERSION:
                for statement in statements:
                    conn.execute(statement)
                found = version
        if found != before:
            conn.execute(
                "INSERT OR REPLACE INTO fanflow_meta VALUES ('schema_version', ?)", (str(found),)
            )
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
