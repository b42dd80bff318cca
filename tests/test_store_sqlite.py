"""SqliteStore: the store contract on a file, plus WAL, migrations, crashes and threads."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from store_contract import K, StoreContract, sample

from fanflow import Record, StartEvent
from fanflow.errors import SchemaVersionError, StoreError
from fanflow.serialize import SCHEMA_VERSION
from fanflow.stores import SqliteStore, Store
from fanflow.stores import sqlite as sqlite_module


class SqliteBackend:
    """Stores on one SQLite file; tampering goes through a plain sqlite3 connection."""

    durable = True
    checks_dead_holders = True

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self) -> Store:
        return SqliteStore(self.path)

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(sql, params)
        conn.close()

    def set_schema_version(self, version: int | str) -> None:
        self._execute(
            "UPDATE fanflow_meta SET value = ? WHERE key = 'schema_version'", (str(version),)
        )

    def corrupt(self, run_id: str, seq: int, column: str, text: str | None) -> None:
        sql = f"UPDATE fanflow_records SET {column} = ? WHERE run_id = ? AND seq = ?"
        self._execute(sql, (text, run_id, seq))

    def delete(self, run_id: str, seq: int) -> None:
        self._execute("DELETE FROM fanflow_records WHERE run_id = ? AND seq = ?", (run_id, seq))

    def expire(self, store: Store, run_id: str) -> None:
        self._execute("UPDATE fanflow_leases SET expires_at = 0 WHERE run_id = ?", (run_id,))

    def spec(self) -> dict[str, str]:
        return {"sqlite": str(self.path)}


class TestSqliteStore(StoreContract):
    """The contract, against SqliteStore."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> SqliteBackend:
        return SqliteBackend(tmp_path / "runs.db")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


def tables(path: Path) -> dict[str, list[str]]:
    """Return the fanflow tables of the file at `path` and their columns."""
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        found = {n: [c[1] for c in conn.execute(f"PRAGMA table_info({n})")] for n in names}
    conn.close()
    return found


def test_opens_in_wal_mode_with_normal_sync(path: Path) -> None:
    """The file is in WAL mode and the store's connection syncs at NORMAL."""
    with SqliteStore(path) as store:
        assert store._connection().execute("PRAGMA synchronous").fetchone() == (1,)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_synchronous_full_syncs_every_commit(path: Path) -> None:
    """SqliteStore(synchronous="full") sets the connection to FULL and still writes and reads."""
    with SqliteStore(path, synchronous="full") as store:
        assert store.synchronous == "FULL"
        assert store._connection().execute("PRAGMA synchronous").fetchone() == (2,)
        store.write(run_records("r1"))
        assert [r.seq for r in store.records("r1")] == [1, 2]


def test_unknown_synchronous_level_is_refused(path: Path) -> None:
    """A synchronous level other than NORMAL or FULL raises ValueError naming both."""
    with pytest.raises(ValueError, match=r"NORMAL, FULL.*'OFF'"):
        SqliteStore(path, synchronous="OFF")
    assert not path.exists()


def test_creates_the_tables_and_records_the_schema_version(path: Path) -> None:
    """A new file gets the four fanflow tables and the current schema version."""
    SqliteStore(path).close()
    assert tables(path) == {
        "fanflow_meta": ["key", "value"],
        "fanflow_records": [
            *("run_id", "seq", "kind", "at", "step", "invocation", "event_id"),
            *("event", "data", "error"),
        ],
        "fanflow_runs": ["run_id", "workflow", "source", "status", "started_at", "finished_at"],
        "fanflow_leases": ["run_id", "holder", "expires_at", "epoch", "info", "locked"],
    }
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM fanflow_meta").fetchall() == [(str(SCHEMA_VERSION),)]
    conn.close()


def test_last_migration_is_the_current_schema_version() -> None:
    """The migration steps end at serialize.SCHEMA_VERSION."""
    assert sqlite_module.MIGRATIONS[-1][0] == SCHEMA_VERSION


def test_older_schema_is_migrated_step_by_step(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file at the current version runs the later steps on open and records the new one."""
    with SqliteStore(path) as store:
        store.write([sample(K.RUN_STARTED, "r1", 1)])
    step = (SCHEMA_VERSION + 1, ("ALTER TABLE fanflow_runs ADD COLUMN note TEXT",))
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", (*sqlite_module.MIGRATIONS, step))
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with SqliteStore(path) as store:
        assert [r.seq for r in store.records("r1")] == [1]
    assert "note" in tables(path)["fanflow_runs"]
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT value FROM fanflow_meta").fetchall()
        assert found == [(str(SCHEMA_VERSION + 1),)]
    conn.close()


def version_1(path: Path) -> None:
    """Make a file with the tables of schema version 1 and one run in it."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE fanflow_meta (key TEXT PRIMARY KEY, value TEXT)")
        for statement in sqlite_module.MIGRATIONS[0][1]:
            conn.execute(statement)
        conn.execute("INSERT INTO fanflow_meta VALUES ('schema_version', '1')")
        conn.execute(
            "INSERT INTO fanflow_records (run_id, seq, kind, at, data) VALUES (?, ?, ?, ?, ?)",
            ("r1", 1, "run_started", 1.0, '{"workflow": "Old", "source": null}'),
        )
        conn.execute("INSERT INTO fanflow_runs VALUES ('r1', 'Old', NULL, 'running', 1.0, NULL)")
        conn.execute("INSERT INTO fanflow_leases VALUES ('r1', 'h:1:t', 0)")
    conn.close()


def test_version_1_is_migrated_and_its_runs_read(path: Path) -> None:
    """A version-1 file gains the lease columns; its records still read."""
    version_1(path)
    with SqliteStore(path) as store:
        assert store.records("r1")[0].data == {"workflow": "Old", "source": None}
        store.acquire_lease("r1", "aaaa1111", 60)
    assert tables(path)["fanflow_leases"][3:] == ["epoch", "info", "locked"]


def test_readonly_store_reads_without_migrating(path: Path) -> None:
    """readonly=True reads a version-1 file as it is and refuses to write."""
    version_1(path)
    before = path.read_bytes()
    with SqliteStore(path, readonly=True) as store:
        assert [i.run_id for i in store.list_runs()] == ["r1"]
        assert store.records("r1")[0].kind is K.RUN_STARTED
        with pytest.raises(StoreError, match="read-only"):
            store.write([sample(K.EVENT_EMITTED, "r1", 2)])
    assert path.read_bytes() == before


def test_readonly_store_falls_back_to_immutable(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where SQLite cannot open a WAL file read-only (a read-only folder), it reads it as is."""
    with SqliteStore(path) as store:
        store.write(run_records("r1"))
    real = sqlite3.connect

    def refuse_mode_ro(database: str, *args: object, **kwargs: object) -> sqlite3.Connection:
        if "mode=ro" in database:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(database, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_module.sqlite3, "connect", refuse_mode_ro)
    with SqliteStore(path, readonly=True) as store:
        assert [r.seq for r in store.records("r1")] == [1, 2]


def run_records(run_id: str) -> list[Record]:
    """Return the first two records of a run."""
    return [sample(K.RUN_STARTED, run_id, 1), sample(K.EVENT_EMITTED, run_id, 2)]


def test_newer_schema_error_names_the_file(path: Path) -> None:
    """SchemaVersionError names the database file and says to upgrade."""
    SqliteStore(path).close()
    SqliteBackend(path).set_schema_version(SCHEMA_VERSION + 5)
    with pytest.raises(SchemaVersionError, match=rf"{path}.*upgrade fanflow"):
        SqliteStore(path)


def test_the_runs_table_keeps_the_workflow_source(path: Path) -> None:
    """RUN_STARTED's source (module:Class or file:Class) is kept for resuming."""
    with SqliteStore(path) as store:
        store.write([sample(K.RUN_STARTED, "r1", 1)])
        rows = store._connection().execute("SELECT workflow, source FROM fanflow_runs").fetchall()
    assert rows == [("Flow", "tests.flows:Flow")]


def test_a_committed_batch_survives_sigkill(path: Path) -> None:
    """Records written before the process is killed with SIGKILL are in the file afterwards."""
    script = f"""
import os, signal
from fanflow import Record, RecordKind, StartEvent
from fanflow.stores import SqliteStore
store = SqliteStore({str(path)!r})
store.write([Record("r1", 1, RecordKind.RUN_STARTED, 1.0, data="Flow")])
store.write([Record("r1", seq, RecordKind.EVENT_EMITTED, 1.0, event_id=seq,
                    event=StartEvent(n=seq)) for seq in range(2, 51)])
os.kill(os.getpid(), signal.SIGKILL)
"""
    child = subprocess.run([sys.executable, "-c", script], check=False)
    assert child.returncode == -9
    with SqliteStore(path) as store:
        assert [r.event for r in store.records("r1")][-1] == StartEvent(n=50)


def test_threads_share_one_store(path: Path) -> None:
    """Batches written from several threads at once are all kept."""
    with SqliteStore(path) as store:

        def write(run_id: str) -> None:
            store.write([sample(K.RUN_STARTED, run_id, 1)])
            for seq in range(2, 42, 4):
                store.write([sample(K.EVENT_EMITTED, run_id, seq + i) for i in range(4)])

        threads = [threading.Thread(target=write, args=(f"r{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [len(store.records(f"r{n}")) for n in range(4)] == [41] * 4


def test_empty_batch_writes_nothing(path: Path) -> None:
    """write([]) is allowed and keeps nothing."""
    with SqliteStore(path) as store:
        store.write([])
        assert store.run_ids() == []


def test_closed_store_says_so(path: Path) -> None:
    """Using a closed store raises StoreError naming it; closing again is harmless."""
    store = SqliteStore(path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match=r"SqliteStore\(.*runs.db'\) is closed"):
        store.write([sample(K.RUN_STARTED, "r1", 1)])


def test_unopenable_file_is_a_store_error_naming_it(tmp_path: Path) -> None:
    """A path in a missing folder raises StoreError naming the path."""
    missing = tmp_path / "no" / "such" / "runs.db"
    with pytest.raises(StoreError, match=f"cannot open the SQLite store {missing}"):
        SqliteStore(missing)


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    """A file that is not SQLite raises StoreError naming it."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        SqliteStore(junk)
