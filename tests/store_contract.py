"""The behaviour every store shares, run against MemoryStore, SqliteStore and PostgresStore.

A test module subclasses `StoreContract` and provides a ``backend`` fixture:
a `Backend` that opens stores on one location and, for durable stores,
tampers with it the way a crash, a bug or a newer fanflow would.

Run as a program (``python tests/store_contract.py SPEC``), this module
drives a `Relay` run on the store that the JSON `SPEC` names, for the
test in which another process writes what a subscriber follows.
"""

from __future__ import annotations

import asyncio
import enum
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest
from pydantic import BaseModel

from fanflow import Context, Event, Record, RecordKind, StartEvent, StopEvent, Workflow, step
from fanflow.errors import LeaseError, SchemaVersionError, SerializationError, StoreError
from fanflow.serialize import SCHEMA_VERSION, RecordedError
from fanflow.stores import Store

K = RecordKind
T0 = 1_700_000_000.0  # wall-clock seconds, like a durable run's record times
PATIENCE = 10.0  # real seconds a subscriber may take to see a commit before the test fails


class Job(Event):
    n: int


class Answer(Event):
    text: str = ""


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: int


def typed_values() -> dict[str, Any]:
    """Return one value of each type that must come back from a store with its type."""
    return {
        "datetime": datetime(2024, 6, 11, 9, 30, 5, 123456, tzinfo=timezone.utc),
        "naive": datetime(2024, 6, 11, 9, 30),
        "date": date(2024, 6, 11),
        "decimal": Decimal("1.10"),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "bytes": b"\x00\xffraw",
        "set": {1, 2, 3},
        "tuple": (1, "a", (2, 3)),
        "enum": Color.BLUE,
        "model": Point(x=1, y=2),
        "int_keys": {1: "one", 2: [Point(x=3, y=4)]},
        "nested": [{"when": date(2020, 1, 1), "tags": frozenset({"a"})}],
        "dollar": {"$t": "not a tag"},
    }


class Backend(Protocol):
    """Opens stores on one location and, if durable, edits it behind their back."""

    durable: bool  # records survive close/reopen; the tampering methods work
    checks_dead_holders: bool  # a lease whose holder's process is gone lapses at once

    def open(self) -> Store:
        """Return a new store on the backend's location."""

    def set_schema_version(self, version: int | str) -> None:
        """Record `version` as the location's schema version."""

    def corrupt(self, run_id: str, seq: int, column: str, text: str | None) -> None:
        """Overwrite one column of one stored record with raw `text`."""

    def delete(self, run_id: str, seq: int) -> None:
        """Delete one stored record."""

    def expire(self, store: Store, run_id: str) -> None:
        """Make the lease on `run_id` expire now, as if its ttl had run out."""

    def spec(self) -> dict[str, str]:
        """Return how another process opens a store here (`open_spec`)."""


def open_spec(spec: dict[str, str]) -> Store:
    """Open the store a `Backend.spec` names: ``{"sqlite": path}`` or ``{"postgres": dsn, ...}``."""
    from fanflow.stores import PostgresStore, SqliteStore

    if "sqlite" in spec:
        return SqliteStore(spec["sqlite"])
    return PostgresStore(spec["postgres"], table_prefix=spec["prefix"])


class Relay(Workflow):
    """Starts, then holds its run until a line arrives on stdin, which is its result."""

    @step
    async def begin(self, ev: StartEvent) -> Job:
        return Job(n=1)

    @step
    async def hold(self, ctx: Context, ev: Job) -> StopEvent:
        print(json.dumps({"run_id": ctx.run_id}), flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        return StopEvent(result=line.strip())


async def _relay(spec: dict[str, str]) -> None:
    store = open_spec(spec)
    try:
        await Relay(store=store, durability="sync", timeout=60).run()
    finally:
        store.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Return once `condition()` holds; fail the test if it does not within `PATIENCE`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"{what} did not happen within {PATIENCE} s")
        await asyncio.sleep(0.002)


async def next_record(records: AsyncIterator[Record]) -> Record:
    """Return the subscriber's next record; fail the test if none comes within `PATIENCE`."""
    try:
        return await asyncio.wait_for(anext(records), PATIENCE)
    except TimeoutError:
        pytest.fail(f"no record reached the subscriber within {PATIENCE} s")


def reader(records: AsyncIterator[Record], into: list[Record]) -> Awaitable[None]:
    """Start a task that appends each record of `records` to `into` until they end."""

    async def read() -> None:
        async for record in records:
            into.append(record)

    return asyncio.ensure_future(read())


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
    if kind is K.WAIT_RESOLVED:
        return base._replace(step="ask", invocation=3, event_id=4)
    if kind is K.COLLECT_ADDED:
        return base._replace(step="work", invocation=2, event_id=4, data="buffer")
    if kind is K.COLLECTED:
        return base._replace(step="work", invocation=2, data=("buffer", [3, 4]))
    if kind is K.STREAMED:
        return base._replace(step="work", invocation=2, event=Answer(text="out"))
    if kind is K.STATE_CHANGED:
        value = {"counts": {"a": 1}, "seen": [1, 2.5, None, "é"], "ok": True}
        return base._replace(step="work", invocation=2, data=("memo", value))
    if kind is K.RUN_FINISHED:
        stop = StopEvent(result={"total": 6, "items": [1, 2, 3]})
        return base._replace(event_id=9, event=stop, data="ok")
    return base._replace(step="work", invocation=2)


def history(run_id: str, *kinds: RecordKind) -> list[Record]:
    """Return a run's records: RUN_STARTED at seq 1, then a sample of each of `kinds`."""
    return [sample(kind, run_id, seq) for seq, kind in enumerate((K.RUN_STARTED, *kinds), 1)]


def run(run_id: str, status: str | None, started: float, workflow: Any = "Flow") -> list[Record]:
    """Return the records of a small run that started at `started` and ended with `status`."""
    records = [
        Record(run_id, 1, K.RUN_STARTED, started, event=StartEvent(), data=workflow),
        Record(run_id, 2, K.EVENT_EMITTED, started + 0.5, event_id=1, event=Job(n=1)),
    ]
    if status is not None:
        records.append(Record(run_id, 3, K.RUN_FINISHED, started + 2.0, data=status))
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


def assert_same_types(got: Any, want: Any) -> None:
    """Assert that `got` equals `want` with the same type at every level."""
    assert type(got) is type(want), (got, want)
    assert got == want
    if isinstance(want, dict):
        for key in want:
            assert_same_types(got[key], want[key])
    elif isinstance(want, (list, tuple)):
        for a, b in zip(got, want, strict=True):
            assert_same_types(a, b)


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
        written = [sample(kind, "r1", seq) for seq, kind in enumerate(RecordKind, 1)]
        store.write(written)
        assert_same(store.records("r1"), written)

    def test_event_extra_fields_come_back(self, store: Store) -> None:
        """An event's undeclared fields are kept with its declared ones."""
        store.write(history("r1", K.EVENT_EMITTED))
        event = store.records("r1")[1].event
        assert isinstance(event, Job)
        assert (event.n, event["note"], event["tags"]) == (2, "an extra field", ["a", "b"])

    def test_stop_event_result_comes_back(self, store: Store) -> None:
        """The StopEvent of RUN_FINISHED comes back with its result."""
        store.write(history("r1", K.RUN_FINISHED))
        event = store.records("r1")[1].event
        assert isinstance(event, StopEvent)
        assert event.result == {"total": 6, "items": [1, 2, 3]}

    def test_state_change_comes_back_as_path_and_value(self, store: Store) -> None:
        """STATE_CHANGED data comes back as a (path, value) tuple, whole-state changes too."""
        records = history("r1", K.STATE_CHANGED)
        records.append(Record("r1", 3, K.STATE_CHANGED, T0, data=(None, {"n": 1})))
        store.write(records)
        changes = [r.data for r in store.records("r1")[1:]]
        assert changes == [("memo", records[1].data[1]), (None, {"n": 1})]

    def test_typed_values_come_back_with_their_types(self, store: Store) -> None:
        """datetime, Decimal, UUID, bytes, set, tuple, enums, models, int keys keep their types."""
        values = typed_values()
        records = history("r1")
        records.append(
            Record("r1", 2, K.STATE_CHANGED, T0, step="s", invocation=1, data=("v", values))
        )
        records.append(Record("r1", 3, K.EVENT_EMITTED, T0, event_id=1, event=Job(n=1, **values)))
        records.append(
            Record(
                "r1", 4, K.RUN_FINISHED, T0, event_id=1, event=StopEvent(result=values), data="ok"
            )
        )
        store.write(records)
        state, emitted, finished = store.records("r1")[1:]
        assert_same_types(state.data[1], values)
        assert emitted.event is not None and finished.event is not None
        assert_same_types({k: emitted.event[k] for k in values}, values)
        assert_same_types(finished.event.result, values)

    def test_error_comes_back_with_its_type_and_message(self, store: Store) -> None:
        """A step's error comes back naming its type, with its message."""
        store.write(history("r1", K.STEP_FAILED))
        error = store.records("r1")[1].error
        assert "boom" in str(error) and "ValueError" in repr(error)

    def test_batches_of_two_runs_keep_each_runs_order(self, store: Store) -> None:
        """Interleaved batches of two runs come back per run, in seq order."""
        a = history("a", *[K.EVENT_EMITTED] * 5)
        b = history("b", *[K.EVENT_EMITTED] * 3)
        for batch in (a[:2], b[:3], a[2:5], b[3:], a[5:]):
            store.write(batch)
        assert [r.seq for r in store.records("a")] == list(range(1, 7))
        assert [r.seq for r in store.records("b")] == list(range(1, 5))

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

    def test_second_holder_gets_a_lease_error(self, store: Store) -> None:
        """A run leased to one holder cannot be taken by another; the error says for how long."""
        store.acquire_lease("r1", "aaaa1111", 60)
        with pytest.raises(LeaseError, match=r"run r1 is held by .* for \d+\.\d s"):
            store.acquire_lease("r1", "bbbb2222", 60)

    def test_holder_renews_its_own_lease(self, store: Store) -> None:
        """Acquiring a lease one holds already renews it."""
        store.acquire_lease("r1", "aaaa1111", 60)
        store.acquire_lease("r1", "aaaa1111", 60)

    def test_released_lease_can_be_taken(self, store: Store) -> None:
        """After release_lease another holder may take the run."""
        store.acquire_lease("r1", "aaaa1111", 60)
        store.release_lease("r1", "aaaa1111")
        store.acquire_lease("r1", "bbbb2222", 60)

    def test_release_by_another_holder_does_nothing(self, store: Store) -> None:
        """release_lease by a holder that does not hold the run leaves the lease in place."""
        store.acquire_lease("r1", "aaaa1111", 60)
        store.release_lease("r1", "bbbb2222")
        store.release_lease("r2", "bbbb2222")
        with pytest.raises(LeaseError):
            store.acquire_lease("r1", "bbbb2222", 60)

    def test_leases_are_per_run(self, store: Store) -> None:
        """Holding one run does not keep anyone from another."""
        store.acquire_lease("r1", "aaaa1111", 60)
        store.acquire_lease("r2", "bbbb2222", 60)

    def test_lease_expires_after_its_ttl(self, backend: Backend, store: Store) -> None:
        """A lease nobody renews lapses after its ttl."""
        store.acquire_lease("r1", "aaaa1111", 60)
        backend.expire(store, "r1")
        store.acquire_lease("r1", "bbbb2222", 60)

    # ------------------------------------------------------------ leases of durable stores

    def test_lease_of_a_holder_that_is_gone_is_taken_over_at_once(self, durable: Backend) -> None:
        """A holder whose liveness lock is gone (its store closed, as in death) is passed over."""
        first, second = durable.open(), durable.open()
        try:
            first.acquire_lease("r1", "aaaa1111", 60)
            with pytest.raises(LeaseError):
                second.acquire_lease("r1", "bbbb2222", 60)
            first.close()
            second.acquire_lease("r1", "bbbb2222", 60)
        finally:
            second.close()

    def test_records_persist_after_close_and_reopen(self, durable: Backend) -> None:
        """Records, the run listing and leases written before close are there after reopening."""
        written = [sample(kind, "r1", seq) for seq, kind in enumerate(RecordKind, 1)]
        first = durable.open()
        first.write(written)
        first.close()
        second = durable.open()
        try:
            assert_same(second.records("r1"), written)
            assert [(i.run_id, i.status) for i in second.list_runs()] == [("r1", "ok")]
        finally:
            second.close()

    def test_two_stores_on_one_location_share_leases(self, durable: Backend) -> None:
        """A lease taken through one store (process) keeps out a holder using another."""
        first, second = durable.open(), durable.open()
        try:
            first.acquire_lease("r1", "aaaa1111", 60)
            with pytest.raises(LeaseError, match=r"held by \S+:\d+ \(lease aaaa1111\)"):
                second.acquire_lease("r1", "bbbb2222", 60)
        finally:
            first.close()
            second.close()

    def test_a_holder_that_lost_its_lease_cannot_write(self, durable: Backend) -> None:
        """After a takeover the old holder's writes and renewals raise LeaseError; nothing lands."""
        old, new = durable.open(), durable.open()
        try:
            old.acquire_lease("r1", "aaaa1111", 60)
            old.write(history("r1"))
            durable.expire(old, "r1")  # as if stopped past its ttl
            new.acquire_lease("r1", "bbbb2222", 60)
            with pytest.raises(LeaseError, match="r1: this process no longer holds"):
                old.write([sample(K.EVENT_EMITTED, "r1", 2)])
            with pytest.raises(LeaseError, match="taken over by"):
                old.acquire_lease("r1", "aaaa1111", 60)
            new.write([sample(K.EVENT_EMITTED, "r1", 2)])
            assert [r.seq for r in new.records("r1")] == [1, 2]
        finally:
            old.close()
            new.close()

    def test_takeover_raises_the_epoch(self, durable: Backend) -> None:
        """Each new holder of a run gets a higher epoch (fencing token); renewals keep it."""
        store = durable.open()
        try:
            store.acquire_lease("r1", "aaaa1111", 60)
            first = store.lease_epoch("r1")  # type: ignore[attr-defined]
            store.acquire_lease("r1", "aaaa1111", 60)
            assert store.lease_epoch("r1") == first  # type: ignore[attr-defined]
            store.release_lease("r1", "aaaa1111")
            store.acquire_lease("r1", "bbbb2222", 60)
            assert store.lease_epoch("r1") == first + 1  # type: ignore[attr-defined]
        finally:
            store.close()

    def test_no_writes_after_release_or_under_anothers_lease(self, durable: Backend) -> None:
        """A store writes a run only under its own lease, or when nobody holds one."""
        mine, other = durable.open(), durable.open()
        try:
            other.acquire_lease("r1", "bbbb2222", 60)
            with pytest.raises(LeaseError, match="has not taken its lease"):
                mine.write(history("r1"))
            other.write(history("r1"))
            other.release_lease("r1", "bbbb2222")
            with pytest.raises(LeaseError, match="released"):
                other.write([sample(K.EVENT_EMITTED, "r1", 2)])
            mine.write([sample(K.EVENT_EMITTED, "r1", 2)])  # nobody holds it now
        finally:
            mine.close()
            other.close()

    def test_a_record_already_stored_is_a_lease_error(self, durable: Backend) -> None:
        """A second writer of the same seq (lost race) gets LeaseError, not a constraint error."""
        first, second = durable.open(), durable.open()
        try:
            first.write(history("r1", K.EVENT_EMITTED))
            with pytest.raises(LeaseError, match="record 2 is already stored"):
                second.write([sample(K.EVENT_EMITTED, "r1", 2)])
        finally:
            first.close()
            second.close()

    def test_a_batch_that_leaves_a_gap_is_refused(self, durable: Backend, store: Store) -> None:
        """Records must follow the last one stored; a gap raises StoreError naming the seqs."""
        store.write(history("r1"))
        with pytest.raises(StoreError, match=r"records 2\.\.3 are missing"):
            store.write([sample(K.EVENT_EMITTED, "r1", 4)])

    def test_failed_batch_keeps_none_of_its_records(self, durable: Backend, store: Store) -> None:
        """A batch that cannot be committed raises StoreError and leaves nothing behind."""
        store.write(history("r1"))
        clash = [sample(K.EVENT_EMITTED, "r1", 2), sample(K.EVENT_EMITTED, "r1", 1)]
        with pytest.raises(StoreError, match="r1"):
            store.write(clash)
        assert [r.seq for r in store.records("r1")] == [1]

    # ------------------------------------------------------------ untrusted databases

    def test_newer_schema_is_refused_naming_both_versions(self, durable: Backend) -> None:
        """A location written by a newer fanflow raises SchemaVersionError with both versions."""
        durable.open().close()
        durable.set_schema_version(SCHEMA_VERSION + 1)
        pattern = rf"schema version {SCHEMA_VERSION + 1}.*up to version {SCHEMA_VERSION}"
        with pytest.raises(SchemaVersionError, match=pattern):
            durable.open()

    def test_non_numeric_schema_is_refused_like_a_newer_one(self, durable: Backend) -> None:
        """A schema version that is not a number raises the same SchemaVersionError."""
        durable.open().close()
        durable.set_schema_version("2b")
        with pytest.raises(SchemaVersionError, match=r"schema version '2b'.*upgrade fanflow"):
            durable.open()

    @pytest.mark.parametrize(
        ("column", "text", "problem"),
        [
            ("data", '{"path": "memo"', "malformed record"),
            ("data", "[" * 200_000 + "]" * 200_000, "malformed record"),
            ("data", '{"path": "m", "value": ' + '{"a": ' * 5000 + "1" + "}" * 5001, "malformed"),
            ("data", None, "malformed record"),
            ("data", '{"path": "m", "value": {"$t": "pickle", "v": "x"}}', "unknown value tag"),
            ("kind", "no_such_kind", "malformed record"),
            ("data", '{"path": "m", "value": ' + "[" * 500 + "]" * 500 + "}", "too deeply"),
            ("kind", "step_started", "step_started without"),
            ("error", '{"type": 1}', "malformed record"),
        ],
    )
    def test_malformed_row_names_the_run_and_record(
        self, durable: Backend, store: Store, column: str, text: str | None, problem: str
    ) -> None:
        """A broken row raises SerializationError naming run and record, never RecursionError."""
        store.write(history("r1", K.STATE_CHANGED))
        durable.corrupt("r1", 2, column, text)
        with pytest.raises(SerializationError, match=rf"run r1 record 2.*{problem}"):
            store.records("r1")

    def test_unknown_event_type_names_the_run_and_record(
        self, durable: Backend, store: Store
    ) -> None:
        """A record of an event type nobody defined raises SerializationError saying so."""
        store.write(history("r1", K.EVENT_EMITTED))
        durable.corrupt("r1", 2, "event", '{"type": "gone.module:Vanished", "data": {}}')
        with pytest.raises(SerializationError, match=r"run r1 record 2.*gone.module:Vanished"):
            store.records("r1")

    def test_a_class_named_by_a_row_is_never_imported(self, durable: Backend, store: Store) -> None:
        """A model class whose module is not imported is refused, not imported."""
        store.write(history("r1", K.STATE_CHANGED))
        value = '{"$t": "model", "cls": "json.tool:main", "v": {}}'
        durable.corrupt("r1", 2, "data", f'{{"path": "m", "value": {value}}}')
        assert "json.tool" not in sys.modules
        with pytest.raises(SerializationError, match=r"run r1 record 2.*json\.tool:main is not"):
            store.records("r1")
        assert "json.tool" not in sys.modules

    @pytest.mark.parametrize("seq", [1, 2])
    def test_a_gap_or_a_cut_history_names_the_run_and_seq(
        self, durable: Backend, store: Store, seq: int
    ) -> None:
        """A missing record (the first one, or one in the middle) raises StoreError naming it."""
        store.write(history("r1", K.EVENT_EMITTED, K.EVENT_EMITTED))
        durable.delete("r1", seq)
        with pytest.raises(StoreError, match=rf"run r1: record {seq} is missing"):
            store.records("r1")

    # ------------------------------------------------------------ following a run

    async def test_subscribe_gives_stored_then_live_records_and_ends(self, store: Store) -> None:
        """A subscriber gets the records so far, then each batch written; RUN_FINISHED ends it."""
        written = history("r1", *[K.EVENT_EMITTED] * 4, K.RUN_FINISHED)
        store.write(written[:2])
        got: list[Record] = []
        task = reader(store.subscribe("r1"), got)  # type: ignore[attr-defined]
        await until(lambda: len(got) == 2, "reading the stored records")
        for batch in (written[2:3], written[3:5], written[5:]):
            store.write(batch)
            last = batch[-1].seq
            await until(lambda last=last: len(got) == last, f"seeing record {last}")
        await asyncio.wait_for(task, PATIENCE)
        assert_same(got, written)

    async def test_subscribe_from_a_seq_and_to_a_finished_run(self, store: Store) -> None:
        """after=N skips the first N records; a finished run's iteration ends by itself."""
        written = history("r1", *[K.EVENT_EMITTED] * 3, K.RUN_FINISHED)
        store.write(written)
        subscribe = store.subscribe  # type: ignore[attr-defined]
        assert [r.seq async for r in subscribe("r1")] == [1, 2, 3, 4, 5]
        assert [r.seq async for r in subscribe("r1", 3)] == [4, 5]
        assert [r.seq async for r in subscribe("r1", 5)] == []

    async def test_subscribe_to_an_unknown_run_is_a_key_error(self, store: Store) -> None:
        """Following a run with no records raises KeyError naming it."""
        with pytest.raises(KeyError, match="nope"):
            await anext(store.subscribe("nope"))  # type: ignore[attr-defined]

    async def test_several_subscribers_follow_one_run(self, store: Store) -> None:
        """Each of several subscribers gets every record, from where it started."""
        written = history("r1", *[K.EVENT_EMITTED] * 3, K.RUN_FINISHED)
        store.write(written[:1])
        full: list[Record] = []
        tail: list[Record] = []
        tasks = [
            reader(store.subscribe("r1"), full),  # type: ignore[attr-defined]
            reader(store.subscribe("r1", 2), tail),  # type: ignore[attr-defined]
        ]
        await until(lambda: len(full) == 1, "reading the first record")
        store.write(written[1:])
        await asyncio.wait_for(asyncio.gather(*tasks), PATIENCE)
        assert [r.seq for r in full] == [1, 2, 3, 4, 5]
        assert [r.seq for r in tail] == [3, 4, 5], [r.seq for r in tail]

    async def test_a_slow_subscriber_still_gets_every_record(self, store: Store) -> None:
        """A subscriber that reads nothing while 2,000 records are written gets them all after."""
        store.write(history("r1"))
        records = store.subscribe("r1")  # type: ignore[attr-defined]
        assert (await next_record(records)).seq == 1
        for start in range(2, 2002, 500):
            store.write([sample(K.EVENT_EMITTED, "r1", seq) for seq in range(start, start + 500)])
        store.write([sample(K.RUN_FINISHED, "r1", 2002)])
        seqs = [record.seq async for record in records]
        assert seqs == list(range(2, 2003))

    async def test_subscriber_follows_a_run_another_process_drives(
        self, durable: Backend, tmp_path: Path
    ) -> None:
        """A subprocess drives a run; the subscriber sees its records as it commits them."""
        spec = json.dumps(durable.spec())
        child = subprocess.Popen(
            [sys.executable, __file__, spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        store = durable.open()
        try:
            assert child.stdin is not None and child.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), PATIENCE * 3)
            run_id = json.loads(line)["run_id"]
            records = store.subscribe(run_id)  # type: ignore[attr-defined]
            seen = [await next_record(records)]
            while seen[-1].kind is not K.STEP_STARTED or seen[-1].step != "hold":
                seen.append(await next_record(records))
            child.stdin.write("released\n")
            child.stdin.flush()
            seen += [record async for record in records]  # ends after RUN_FINISHED
            assert child.wait(PATIENCE) == 0
            assert (seen[-1].kind, seen[-1].data) == (K.RUN_FINISHED, "ok")
            stops = [r.event for r in seen if isinstance(r.event, StopEvent)]
            assert [stop.result for stop in stops] == ["released"]
            assert_same(seen, store.records(run_id))
        finally:
            store.close()
            if child.poll() is None:
                child.kill()
                child.wait()
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()


if __name__ == "__main__":
    # Imported as `store_contract`, so that events are stored under the names
    # the test process knows them by (store_contract:Job, not __main__:Job).
    import store_contract

    asyncio.run(store_contract._relay(json.loads(sys.argv[1])))
