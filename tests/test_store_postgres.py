"""PostgresStore: the store contract on PostgreSQL, plus its thread, extra and errors.

Runs against ``postgresql://postgres@127.0.0.1:5432/test`` (or the DSN in
``FANFLOW_TEST_POSTGRES``); each test uses tables of its own prefix and
drops them. Skipped, saying why, where asyncpg or the server is missing.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from store_contract import K, StoreContract, sample

from fanflow.errors import LeaseError, SchemaVersionError, StoreError
from fanflow.serialize import SCHEMA_VERSION
from fanflow.stores import PostgresStore, Store
from fanflow.stores import postgres as postgres_module

DSN = os.environ.get("FANFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TABLES = ("meta", "records", "runs", "leases")


def sql(statement: str, *args: object) -> Any:
    """Run one statement on a connection of its own and return what it fetched."""
    import asyncpg

    async def go() -> Any:
        conn = await asyncpg.connect(DSN, timeout=5)
        try:
            return await conn.fetch(statement, *args)
        finally:
            await conn.close()

    # A thread of its own: the calling test may be running an event loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


@pytest.fixture(scope="module")
def server() -> str:
    """Return the DSN of a reachable server, or skip saying what is missing."""
    pytest.importorskip(
        "asyncpg", reason="asyncpg is not installed (pip install 'fanflow[postgres]')"
    )
    try:
        sql("SELECT 1")
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable at {DSN}: {type(exc).__name__}: {exc}")
    return DSN


@pytest.fixture
def prefix(server: str) -> Iterator[str]:
    """Return a table prefix of this test's own; its tables are dropped afterwards."""
    name = f"fftest_{uuid.uuid4().hex[:10]}"
    yield name
    sql(f"DROP TABLE IF EXISTS {', '.join(f'{name}_{t}' for t in TABLES)}")


class PostgresBackend:
    """Stores on one table prefix; tampering goes through a connection of its own."""

    durable = True
    checks_dead_holders = True

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def open(self) -> Store:
        return PostgresStore(DSN, table_prefix=self.prefix)

    def set_schema_version(self, version: int | str) -> None:
        sql(f"UPDATE {self.prefix}_meta SET value = $1 WHERE key = 'schema_version'", str(version))

    def corrupt(self, run_id: str, seq: int, column: str, text: str | None) -> None:
        statement = f"UPDATE {self.prefix}_records SET {column} = $1 WHERE run_id = $2 AND seq = $3"
        sql(statement, text, run_id, seq)

    def delete(self, run_id: str, seq: int) -> None:
        sql(f"DELETE FROM {self.prefix}_records WHERE run_id = $1 AND seq = $2", run_id, seq)

    def expire(self, store: Store, run_id: str) -> None:
        sql(f"UPDATE {self.prefix}_leases SET expires_at = 0 WHERE run_id = $1", run_id)

    def spec(self) -> dict[str, str]:
        return {"postgres": DSN, "prefix": self.prefix}


class TestPostgresStore(StoreContract):
    """The contract, against PostgresStore."""

    @pytest.fixture
    def backend(self, prefix: str) -> PostgresBackend:
        return PostgresBackend(prefix)


def test_missing_asyncpg_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without asyncpg, PostgresStore raises StoreError with the pip line to run."""
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(StoreError, match=r"\n    pip install 'fanflow\[postgres\]'$"):
        PostgresStore(DSN)


def test_bad_table_prefix_is_refused() -> None:
    """A table prefix that is not a plain lower-case identifier raises ValueError."""
    pytest.importorskip("asyncpg", reason="asyncpg is not installed")
    with pytest.raises(ValueError, match="table_prefix"):
        PostgresStore(DSN, table_prefix="x; DROP TABLE y")


def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    """A refused connection raises StoreError naming the DSN, its password masked."""
    pytest.importorskip("asyncpg", reason="asyncpg is not installed")
    threads = threading.active_count()
    with pytest.raises(StoreError, match=r"postgresql://u:\*\*\*@127\.0\.0\.1:1/x") as caught:
        PostgresStore("postgresql://u:secret@127.0.0.1:1/x", timeout=2)
    assert "secret" not in str(caught.value)
    assert threading.active_count() == threads


def test_tables_use_the_prefix(prefix: str) -> None:
    """The four tables are created under the prefix, with the schema version."""
    PostgresStore(DSN, table_prefix=prefix).close()
    rows = sql("SELECT tablename FROM pg_tables WHERE tablename LIKE $1", f"{prefix}_%")
    assert sorted(r[0] for r in rows) == sorted(f"{prefix}_{t}" for t in TABLES)
    assert sql(f"SELECT value FROM {prefix}_meta")[0][0] == str(SCHEMA_VERSION)


def test_last_migration_is_the_current_schema_version() -> None:
    """The migration steps end at serialize.SCHEMA_VERSION."""
    assert postgres_module.MIGRATIONS[-1][0] == SCHEMA_VERSION


def test_older_schema_is_migrated(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables at the current version run the later steps on open and record the new one."""
    PostgresStore(DSN, table_prefix=prefix).close()
    step = (SCHEMA_VERSION + 1, ("ALTER TABLE {p}_runs ADD COLUMN note TEXT",))
    monkeypatch.setattr(postgres_module, "MIGRATIONS", (*postgres_module.MIGRATIONS, step))
    monkeypatch.setattr(postgres_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    PostgresStore(DSN, table_prefix=prefix).close()
    assert sql(f"SELECT value FROM {prefix}_meta")[0][0] == str(SCHEMA_VERSION + 1)
    assert sql(f"SELECT note FROM {prefix}_runs") == []


def test_newer_schema_error_names_the_tables(prefix: str) -> None:
    """SchemaVersionError names the database and the table prefix."""
    backend = PostgresBackend(prefix)
    backend.open().close()
    backend.set_schema_version(SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionError, match=rf"127\.0\.0\.1:5432/test \(tables {prefix}_\*\)"):
        backend.open()


async def test_write_from_a_running_event_loop(prefix: str) -> None:
    """write() called on the caller's event loop commits before it returns."""
    with PostgresStore(DSN, table_prefix=prefix) as store:
        store.write([sample(K.RUN_STARTED, "r1", 1)])
        await asyncio.sleep(0)
        assert sql(f"SELECT seq FROM {prefix}_records")[0][0] == 1


def test_close_stops_the_thread(prefix: str) -> None:
    """close() ends the store's thread; using the store afterwards says it is closed."""
    store = PostgresStore(DSN, table_prefix=prefix)
    assert store._thread.is_alive()
    store.close()
    store.close()
    assert not store._thread.is_alive()
    with pytest.raises(StoreError, match="is closed"):
        store.run_ids()


def test_reconnects_after_the_server_drops_the_connection(prefix: str) -> None:
    """A connection the server closed is replaced on the next call."""
    with PostgresStore(DSN, table_prefix=prefix) as store:
        store.write([sample(K.RUN_STARTED, "r1", 1)])
        dropped = store._conn
        assert sql("SELECT pg_terminate_backend($1)", dropped.get_server_pid())[0][0] is True
        for _ in range(200):  # asyncpg notices on its own loop, within milliseconds
            if dropped.is_closed():
                break
            time.sleep(0.005)
        assert [r.seq for r in store.records("r1")] == [1]
        assert store._conn is not dropped


def test_a_dropped_connection_keeps_the_lease_it_holds(prefix: str) -> None:
    """After a reconnect, renewing retakes the holder's liveness lock; others stay out."""
    with PostgresStore(DSN, table_prefix=prefix) as store, PostgresBackend(prefix).open() as other:
        store.acquire_lease("r1", "aaaa1111", 60)
        sql("SELECT pg_terminate_backend($1)", store._conn.get_server_pid())
        for _ in range(200):
            if store._conn.is_closed():
                break
            time.sleep(0.005)
        store.acquire_lease("r1", "aaaa1111", 60)  # reconnects and locks again
        with pytest.raises(LeaseError, match="held by"):
            other.acquire_lease("r1", "bbbb2222", 60)


def test_readonly_store_reads_without_creating_tables(prefix: str) -> None:
    """readonly=True on a prefix with no tables lists nothing and creates nothing."""
    with PostgresStore(DSN, table_prefix=prefix, readonly=True) as store:
        assert store.list_runs() == [] and store.run_ids() == []
        with pytest.raises(StoreError, match="read-only"):
            store.acquire_lease("r1", "aaaa1111", 60)
    rows = sql("SELECT tablename FROM pg_tables WHERE tablename LIKE $1", f"{prefix}_%")
    assert rows == []
