"""The run database of the ``fanflow`` command: which one ``--db`` names, and how runs use it.

``--db URL`` (default: ``$FANFLOW_DB``, else ``sqlite:///fanflow-runs.db`` in
the current folder) is opened with `fanflow.stores.open_store`. A run the
command drives writes through a `CachedStore`, which also keeps the records
in memory: progress is counted without reading the database back, and a
failed step's record holds the very exception the step raised.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from fanflow._runtime.records import Record, RecordKind, RunInfo, Store
from fanflow.errors import StoreError
from fanflow.events import Event, InputRequiredEvent
from fanflow.stores.postgres import PostgresStore
from fanflow.stores.sqlite import SqliteStore
from fanflow.stores.url import open_store

__all__ = [
    "DEFAULT_DB",
    "CachedStore",
    "NoDatabaseError",
    "db_option",
    "db_url",
    "follow_records",
    "loose_records",
    "open_db",
    "pending_requests",
    "pending_wait",
    "recorded_source",
    "shown_url",
]

DEFAULT_DB = "sqlite:///fanflow-runs.db"
_SQLITE = "sqlite:///"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_STARTED = RecordKind.RUN_STARTED


class NoDatabaseError(Exception):
    """``--db`` names an SQLite file that does not exist (nothing was ever run there)."""


def db_url(given: str | None) -> str:
    """Return the database URL to use: `given`, else ``$FANFLOW_DB``, else `DEFAULT_DB`."""
    return given or os.environ.get("FANFLOW_DB") or DEFAULT_DB


def db_option(url: str) -> str:
    """Return the ``--db URL`` a printed command needs to reach `url` ('' for the default)."""
    return "" if url == db_url(None) else f" --db {shown_url(url)}"


def shown_url(url: str) -> str:
    """Return `url` fit to print: a password in it is replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, _ = parts.netloc.rpartition("@")[0].partition(":")
    return urlunsplit(parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}"))


def open_db(url: str, *, must_exist: bool = False, readonly: bool = False) -> Store:
    """Open the store at `url`; with `must_exist`, an SQLite file that is missing is an error.

    (Opening a missing SQLite file would create an empty one: a command that
    only reads runs should say it looked in the wrong place instead.) With
    `readonly` the database is only read: nothing is created or migrated, and
    a read-only file in a read-only folder will do.
    """
    path = _sqlite_path(url)
    if must_exist and path is not None and not os.path.exists(path):
        raise NoDatabaseError(
            f"no run database at {os.path.abspath(path)}: no run was journaled there; "
            "start one with 'fanflow run', or pass --db URL (or set FANFLOW_DB)"
        )
    return open_store(url, readonly=readonly)


def _sqlite_path(url: str) -> str | None:
    if url.startswith(_SQLITE):
        return url[len(_SQLITE) :].partition("?")[0] or None
    if "://" not in url and url.lower().endswith(_SQLITE_SUFFIXES):
        return os.path.expanduser(url)
    return None


class CachedStore:
    """Writes through to `inner` and keeps, in memory, the records of the runs it touched.

    `source`, if given, replaces the ``source`` a RUN_STARTED record names
    (where ``fanflow runs resume`` finds the workflow again).
    """

    def __init__(self, inner: Store, *, source: str | None = None) -> None:
        self.inner = inner
        self.durable = bool(getattr(inner, "durable", False))
        self.source = source
        self._runs: dict[str, list[Record]] = {}
        self._holders: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return repr(self.inner)

    def write(self, records: Sequence[Record]) -> None:
        """Commit a batch to the inner store, then keep it."""
        if not records:
            return
        if self.source is not None:
            records = [self._with_source(r) if r.kind is _STARTED else r for r in records]
        self.inner.write(records)
        self._runs.setdefault(records[0].run_id, []).extend(records)

    def _with_source(self, record: Record) -> Record:
        data = record.data
        if not isinstance(data, dict):
            return record
        return record._replace(data={**data, "source": self.source})

    def records(self, run_id: str) -> list[Record]:
        """Return the records of `run_id`, read from the inner store once; KeyError if unknown."""
        kept = self._runs.get(run_id)
        if kept is None:
            kept = self._runs[run_id] = self.inner.records(run_id)
        return list(kept)

    def run_ids(self) -> list[str]:
        """Return the inner store's run ids, oldest first."""
        return self.inner.run_ids()

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Return the inner store's runs, newest first."""
        return self.inner.list_runs(status=status, limit=limit)

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        """Take the run's lease in the inner store; a new holder reads the records afresh."""
        self.inner.acquire_lease(run_id, holder, ttl)
        if (run_id, holder) not in self._holders:
            # Records read before the lease was taken may be stale: another
            # process may have appended until it gave the run up.
            self._holders.add((run_id, holder))
            self._runs.pop(run_id, None)

    def release_lease(self, run_id: str, holder: str) -> None:
        """Give the run's lease back in the inner store."""
        self.inner.release_lease(run_id, holder)

    def close(self) -> None:
        """Close the inner store."""
        self.inner.close()


def recorded_source(store: Store, run_id: str) -> str | None:
    """Return where run `run_id` recorded its workflow: ``/abs/file.py:Class`` or ``module:Class``.

    Read from the store's run table where it has one, else from the run's
    first record read without importing anything.
    """
    inner = store.inner if isinstance(store, CachedStore) else store
    if isinstance(inner, (SqliteStore, PostgresStore)):
        return inner.workflow_source(run_id)
    data = loose_records(inner, run_id)[0].data
    source = data.get("source") if isinstance(data, dict) else None
    return None if source is None else str(source)


def loose_records(store: Store, run_id: str) -> list[Record]:
    """Return the records of `run_id` without needing their types imported (for display).

    Events, models and enums whose classes are not imported come back as
    placeholders; nothing is imported because the database names it.
    """
    inner = store.inner if isinstance(store, CachedStore) else store
    if isinstance(inner, (SqliteStore, PostgresStore)):
        return inner.records(run_id, loose=True)
    return inner.records(run_id)  # a MemoryStore holds the objects themselves


def follow_records(store: Store, run_id: str, after: int = 0) -> AsyncIterator[Record]:
    """Follow `run_id`'s records with ``seq > after`` live, as `loose_records` reads them.

    The iteration ends after the run's RUN_FINISHED record. `StoreError`
    for a store that cannot be followed.
    """
    inner = store.inner if isinstance(store, CachedStore) else store
    if isinstance(inner, (SqliteStore, PostgresStore)):
        return inner.subscribe(run_id, after, loose=True)
    subscribe = getattr(inner, "subscribe", None)
    if subscribe is None:
        raise StoreError(f"{type(inner).__name__} cannot be followed live")
    records: AsyncIterator[Record] = subscribe(run_id, after)
    return records


def pending_requests(records: Sequence[Record]) -> list[Event]:
    """Return the input requests a resume of the run asks again, in the order it asks them.

    Those are the ``waiter_event`` of each wait of a step invocation that did
    not finish (the step runs again and waits again) and the
    InputRequiredEvents emitted after the last event from outside.
    """
    finished = {r.invocation for r in records if r.kind is RecordKind.STEP_FINISHED}
    outside = [r.event_id or 0 for r in records if _emitted(r) and r.invocation is None]
    last_outside = max(outside, default=0)
    asked: list[Event] = []
    for r in records:
        if r.event is None:
            continue
        if r.kind is RecordKind.WAIT_STARTED:
            again = r.invocation not in finished
        else:
            again = (
                _emitted(r)
                and isinstance(r.event, InputRequiredEvent)
                and (r.event_id or 0) > last_outside
            )
        if again:
            asked.append(r.event)
    return asked


def _emitted(record: Record) -> bool:
    return record.kind is RecordKind.EVENT_EMITTED


def pending_wait(records: Sequence[Record]) -> tuple[str, dict[str, object]] | None:
    """Return ``(event type name, requirements)`` of the last wait still open, or None."""
    finished = {r.invocation for r in records if r.kind is RecordKind.STEP_FINISHED}
    open_waits: dict[int | None, tuple[str, dict[str, object]]] = {}
    for r in records:
        if r.kind is RecordKind.WAIT_STARTED and isinstance(r.data, (tuple, list)):
            name, requirements = r.data
            open_waits[r.invocation] = (str(name), dict(requirements or {}))
        elif r.kind is RecordKind.WAIT_RESOLVED:
            open_waits.pop(r.invocation, None)
    still = [wait for invocation, wait in open_waits.items() if invocation not in finished]
    return still[-1] if still else None
