"""The behaviour every store shares, run against MemoryStore, SqliteStore and PostgresStore.

A test module subclasses `StoreContract` and provides a ``backend`` fixture:
a `Backend` that opens stores on one location and, for durable stores,
tampers with it the way a crash, a bug or a newer fanflow would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from fanflow import Event, Record, RecordKind, StartEvent, StopEvent
from fanflow.errors import LeaseError, SchemaVersionError, SerializationError, StoreError
from fanflow.serialize import SCHEMA_VERSION, RecordedError
from fanflow.stores import Store

K = RecordKind
HOST = os.uname().nodename  # as in the engine's lease holder names
T0 = 1_700_000_000.0  # wall-clock seconds, like a durable run's record times


class Job(Event):
    n: int


class Answer(Event):
    text: str = ""


class Backend(Protocol):
    """Opens stores on one location and, if durable, edits it behind their back."""

    durable: bool  # records survive close/reopen; the tampering methods work
    checks_dead_holders: bool  # a lease of a dead process on this host lapses at once

    def open(self) -> Store:
        """Return a new store on the backend's location."""

    def set_schema_version(self, version: int) -> None:
        """Record `version` as the location's schema version."""

    def corrupt(self, run_id: str, seq: int, column: str, text: str | None) -> None:
        """Overwrite one column of one stored record with raw `text`."""


def sample(kind: RecordKind, run_id: str, seq: int, at: float | None = None) -> Record:
    """Return a typical record of `kind` (any kind the engine has, known here or not)."""
    at = T0 + seq if at is None else at
    base = Record(run_id, seq, kind, at)
    if kind is K.RUN_STARTED:
        info = {"workflow": "Flow", "source": "tests.flows:Flow", "timeout": None}
        return base._replace(event=StartEvent(topic="x", n=2), data=info)
    if kind is K.EVENT_EMITTED:
        event = Job(n=seq, note="an extra field", tags=["a", "b"])
        return base._replace(step="start", invocation=1, event_id=seq, event=event)
    if kind is K.STEP_STARTED:
        return base._replace(step="work", invocation=2, event_id=1, data=1)
    if kind is K.STEP_FINISHED:
        return base._replace(step="work", invocation=2, event_id=5, data=0.25)
    if kind is K.STEP_FAILED:
        return base._replace(step="work", invocation=2, data=0.5, error=ValueError("boom"))
    if kind is K.WAIT_STARTED:
        return base._replace(step="ask", invocation=3, data=(f"{__name__}:Answer", {"id": 3}))
    if kind is K.STATE_CHANGED:
        value = {"counts": {"a": 1}, "seen": [1, 2.5, None, "é"], "ok": True}
        return base._replace(step="work", invocation=2, data=("memo", value))
    if kind is K.RUN_FINISHED:
        stop = StopEvent(result={"total": 6, "items": [1, 2, 3]})
        return base._replace(event_id=9, event=stop, data="ok")
    return base._replace(step="work", invocation=2)


def run(run_id: str, status: str | None, started: float, workflow: Any = "Flow") -> list[Record]:
    """Return the records of a small run that started at `started` and ended with `status`."""
    records = [
        Record(run_id, 0, K.RUN_STARTED, started, event=StartEvent(), data=workflow),
        Record(run_id, 1, K.EVENT_EMITTED, started + 0.5, event_id=1, event=Job(n=1)),
    ]
    if status is not None:
        records.append(Record(run_id, 2, K.RUN_FINISHED, started + 2.0, data=status))
    return records


def assert_same(loaded: list[Record], written: list[Record]) -> None:
    """Assert that `loaded` are `written` as a store gives them back.

    Durable stores give errors back as `RecordedError`; memory keeps the originals.
    """
    assert [r._replace(error=None) for r in loaded] == [r._replace(error=None) for r in written]
    for got, want in zip(loaded, written, strict=True):
        if want.error is None or got.error is want.error:
            assert got.error is want.error
        else:
            assert isinstance(got.error, RecordedError)
            assert got.error.type_name == f"builtins.{type(want.error).__qualname__}"
            assert str(got.error) == str(want.error)


def dead_pid() -> int:
    """Return the pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class StoreContract:
    """Tests every store passes; subclasses supply the ``backend`` fixture."""

    @pytest.fixture
    def store(self, backend: Backend) -> Iterator[Store]:
        opened = backend.open()
        yield opened
        opened.close()

    @pytest.fixture
    def durable(self, backend: Backend) -> Backend:
        if not backend.durable:
            pytest.skip("this store keeps nothing beyond the process")
        return backend

    # ------------------------------------------------------------ records

    def test_every_kind_round_trips(self, store: Store) -> None:
        """A record of each kind comes back equal, in seq order."""
        written = [sample(kind, "r1", seq) for seq, kind in enumerate(RecordKind)]
        store.write(written)
        assert_same(store.records("r1"), written)

    def test_event_extra_fields_come_back(self, store: Store) -> None:
        """An event's undeclared fields are kept with its declared ones."""
        store.write([sample(K.EVENT_EMITTED, "r1", 0)])
        event = store.records("r1")[0].event
        assert isinstance(event, Job)
        assert (event.n, event["note"], event["tags"]) == (0, "an extra field", ["a", "b"])

    def test_stop_event_result_comes_back(self, store: Store) -> None:
        """The StopEvent of RUN_FINISHED comes back with its result."""
        store.write([sample(K.RUN_FINISHED, "r1", 0)])
        event = store.records("r1")[0].event
        assert isinstance(event, StopEvent)
        assert event.result == {"total": 6, "items": [1, 2, 3]}

    def test_state_change_comes_back_as_path_and_value(self, store: Store) -> None:
        """STATE_CHANGED data comes back as a (path, value) tuple, whole-state changes too."""
        whole = Record("r1", 1, K.STATE_CHANGED, T0, data=(None, {"n": 1}))
        store.write([sample(K.STATE_CHANGED, "r1", 0), whole])
        changes = [r.data for r in store.records("r1")]
        assert changes == [("memo", sample(K.STATE_CHANGED, "r1", 0).data[1]), (None, {"n": 1})]

    def test_error_comes_back_with_its_type_and_message(self, store: Store) -> None:
        """A step's error comes back naming its type, with its message."""
        store.write([sample(K.STEP_FAILED, "r1", 0)])
        error = store.records("r1")[0].error
        assert "boom" in str(error) and "ValueError" in repr(error)

    def test_batches_of_two_runs_keep_each_runs_order(self, store: Store) -> None:
        """Interleaved batches of two runs come back per run, in seq order."""
        a = [sample(K.EVENT_EMITTED, "a", seq) for seq in range(6)]
        b = [sample(K.EVENT_EMITTED, "b", seq) for seq in range(4)]
        for batch in (a[:2], b[:3], a[2:5], b[3:], a[5:]):
            store.write(batch)
        assert [r.seq for r in store.records("a")] == list(range(6))
        assert [r.seq for r in store.records("b")] == list(range(4))

    def test_unknown_run_is_a_key_error_naming_it(self, store: Store) -> None:
        """Asking for a run with no records raises KeyError naming the run."""
        with pytest.raises(KeyError, match="nope"):
            store.records("nope")

    # ------------------------------------------------------------ run listing

    def test_run_ids_are_oldest_first(self, store: Store) -> None:
        """run_ids() lists the runs in the order they started."""
        for index, run_id in enumerate(["x", "a", "m"]):
            store.write(run(run_id, None, T0 + index))
        assert store.run_ids() == ["x", "a", "m"]

    def test_list_runs_is_newest_first_with_status_and_times(self, store: Store) -> None:
        """list_runs() gives each run's workflow, status and times, newest first."""
        store.write(run("old", "ok", T0))
        store.write(run("mid", "failed", T0 + 10))
        store.write(run("new", None, T0 + 20))
        infos = store.list_runs()
        assert [(i.run_id, i.status) for i in infos] == [
            ("new", "running"),
            ("mid", "failed"),
            ("old", "ok"),
        ]
        assert (infos[0].started_at, infos[0].finished_at, infos[0].duration) == (
            T0 + 20,
            None,
            None,
        )
        assert (infos[2].workflow, infos[2].started_at, infos[2].duration) == ("Flow", T0, 2.0)

    def test_list_runs_filters_by_status_and_limits(self, store: Store) -> None:
        """list_runs(status=..., limit=...) keeps the newest runs with that status."""
        for index, status in enumerate(["ok", "cancelled", "ok", "timeout", "ok"]):
            store.write(run(f"r{index}", status, T0 + index))
        assert [i.run_id for i in store.list_runs(status="ok")] == ["r4", "r2", "r0"]
        assert [i.run_id for i in store.list_runs(status="ok", limit=2)] == ["r4", "r2"]
        assert [i.run_id for i in store.list_runs(limit=1)] == ["r4"]
        assert store.list_runs(status="failed") == []

    def test_list_runs_reads_the_workflow_from_dict_or_string(self, store: Store) -> None:
        """The workflow's name comes from RUN_STARTED data, a dict or a plain string."""
        store.write(run("d", None, T0, workflow={"workflow": "Fan", "source": "m.py:Fan"}))
        store.write(run("s", None, T0 + 1, workflow="Plain"))
        assert {i.run_id: i.workflow for i in store.list_runs()} == {"d": "Fan", "s": "Plain"}

    def test_finishing_in_a_later_batch_updates_the_listing(self, store: Store) -> None:
        """A run listed as running shows its status once RUN_FINISHED is written."""
        records = run("r", "failed", T0)
        store.write(records[:2])
        assert store.list_runs()[0].status == "running"
        store.write(records[2:])
        assert (store.list_runs()[0].status, store.list_runs()[0].finished_at) == ("failed", T0 + 2)

    # ------------------------------------------------------------ leases

    def test_second_holder_gets_a_lease_error_naming_the_first(self, store: Store) -> None:
        """A run leased to one holder cannot be taken by another; the error names both."""
        store.acquire_lease("r1", "hostA:1:first", 60)
        with pytest.raises(LeaseError, match=r"run r1 is held by hostA:1:first for \d+\.\d s"):
            store.acquire_lease("r1", "hostB:2:second", 60)

    def test_holder_renews_its_own_lease(self, store: Store) -> None:
        """Acquiring a lease one holds already renews it."""
        store.acquire_lease("r1", "hostA:1:first", 60)
        store.acquire_lease("r1", "hostA:1:first", 60)

    def test_released_lease_can_be_taken(self, store: Store) -> None:
        """After release_lease another holder may take the run."""
        store.acquire_lease("r1", "hostA:1:first", 60)
        store.release_lease("r1", "hostA:1:first")
        store.acquire_lease("r1", "hostB:2:second", 60)

    def test_release_by_another_holder_does_nothing(self, store: Store) -> None:
        """release_lease by a holder that does not hold the run leaves the lease in place."""
        store.acquire_lease("r1", "hostA:1:first", 60)
        store.release_lease("r1", "hostB:2:second")
        store.release_lease("r2", "hostB:2:second")
        with pytest.raises(LeaseError):
            store.acquire_lease("r1", "hostB:2:second", 60)

    def test_leases_are_per_run(self, store: Store) -> None:
        """Holding one run does not keep anyone from another."""
        store.acquire_lease("r1", "hostA:1:first", 60)
        store.acquire_lease("r2", "hostB:2:second", 60)

    def test_lease_expires_after_its_ttl(self, store: Store) -> None:
        """A lease nobody renews lapses after its ttl."""
        store.acquire_lease("r1", "hostA:1:first", 0.01)
        time.sleep(0.03)
        store.acquire_lease("r1", "hostB:2:second", 60)

    def test_lease_of_a_dead_process_on_this_host_is_taken_over(
        self, backend: Backend, store: Store
    ) -> None:
        """A lease whose holder's process on this host has exited lapses before its ttl."""
        if not backend.checks_dead_holders:
            pytest.skip("this store's leases lapse by ttl only")
        store.acquire_lease("r1", f"{HOST}:{dead_pid()}:gone", 60)
        store.acquire_lease("r1", "hostB:2:second", 60)

    def test_lease_of_a_live_process_on_this_host_holds(self, store: Store) -> None:
        """A lease held by a running process on this host (this one) keeps others out."""
        store.acquire_lease("r1", f"{HOST}:{os.getpid()}:me", 60)
        with pytest.raises(LeaseError):
            store.acquire_lease("r1", "hostB:2:second", 60)

    # ------------------------------------------------------------ durability

    def test_records_persist_after_close_and_reopen(self, durable: Backend) -> None:
        """Records, the run listing and leases written before close are there after reopening."""
        written = [sample(kind, "r1", seq) for seq, kind in enumerate(RecordKind)]
        first = durable.open()
        first.write(written)
        first.acquire_lease("r1", "hostA:1:first", 60)
        first.close()
        second = durable.open()
        try:
            assert_same(second.records("r1"), written)
            assert [(i.run_id, i.status) for i in second.list_runs()] == [("r1", "ok")]
            with pytest.raises(LeaseError, match="hostA:1:first"):
                second.acquire_lease("r1", "hostB:2:second", 60)
        finally:
            second.close()

    def test_two_stores_on_one_location_share_leases(self, durable: Backend) -> None:
        """A lease taken through one store (process) keeps out a holder using another."""
        first, second = durable.open(), durable.open()
        try:
            first.acquire_lease("r1", "hostA:1:first", 60)
            with pytest.raises(LeaseError, match="hostA:1:first"):
                second.acquire_lease("r1", "hostB:2:second", 60)
        finally:
            first.close()
            second.close()

    def test_failed_batch_keeps_none_of_its_records(self, durable: Backend, store: Store) -> None:
        """A batch that cannot be committed raises StoreError and leaves nothing behind."""
        store.write([sample(K.RUN_STARTED, "r1", 0)])
        clash = [sample(K.EVENT_EMITTED, "r1", 1), sample(K.EVENT_EMITTED, "r1", 0)]
        with pytest.raises(StoreError, match="r1"):
            store.write(clash)
        assert [r.seq for r in store.records("r1")] == [0]

    def test_newer_schema_is_refused_naming_both_versions(self, durable: Backend) -> None:
        """A location written by a newer fanflow raises SchemaVersionError with both versions."""
        durable.open().close()
        durable.set_schema_version(SCHEMA_VERSION + 1)
        pattern = rf"schema version {SCHEMA_VERSION + 1}.*up to version {SCHEMA_VERSION}"
        with pytest.raises(SchemaVersionError, match=pattern):
            durable.open()

    def test_malformed_row_names_the_run_and_record(self, durable: Backend, store: Store) -> None:
        """A record whose JSON is broken raises SerializationError naming run and record."""
        store.write([sample(K.RUN_STARTED, "r1", 0), sample(K.STATE_CHANGED, "r1", 1)])
        durable.corrupt("r1", 1, "data", '{"path": "memo"')
        with pytest.raises(SerializationError, match=re.escape("run r1 record 1")):
            store.records("r1")

    def test_unknown_event_type_names_the_run_and_record(
        self, durable: Backend, store: Store
    ) -> None:
        """A record of an event type nobody defined raises SerializationError saying so."""
        store.write([sample(K.EVENT_EMITTED, "r1", 0)])
        durable.corrupt("r1", 0, "event", '{"type": "gone.module:Vanished", "data": {}}')
        with pytest.raises(SerializationError, match=r"run r1 record 0.*gone.module:Vanished"):
            store.records("r1")
