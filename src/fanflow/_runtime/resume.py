"""Rebuild a run from its records and queue the work that was left undone.

Steps whose completion was recorded are not run again. An invocation that
started but has no STEP_FINISHED record (it was in flight when the process
died) runs again from the top: at-least-once. Its rerun does not repeat
what the first attempt already recorded: the events it emitted and the
events it streamed are matched in order and not sent twice, and a
``wait_for_event`` that was already answered returns that answer without
asking again. Queued events, collect buffers (as the last attempt of each
finished invocation left them), the state, unanswered input requests and
answers that arrived before a wait are all restored.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fanflow._runtime.frame import Replay
from fanflow._runtime.records import Record, RecordKind
from fanflow.errors import StoreError, WorkflowRuntimeError
from fanflow.events import Event, InputRequiredEvent, StopEvent

__all__ = ["restore", "restore_finished"]


class _History:
    """A run's records, indexed for resuming."""

    def __init__(self, run_id: str, records: list[Record]) -> None:
        self.run_id = run_id
        self.started: dict[int, tuple[str, int]] = {}  # invocation -> (step, input event id)
        self.last_attempt: dict[int, int] = {}  # invocation -> seq of its last STEP_STARTED
        self.finished: set[int] = set()
        self.events: dict[int, tuple[Event, int | None, str | None]] = {}  # id -> event, by, target
        self.emitted_by: dict[int, list[int]] = {}
        self.streamed_by: Counter[int] = Counter()
        self.waits: dict[int, list[str]] = {}  # invocation -> one entry per WAIT_STARTED
        self.resolved: dict[int, int] = {}  # event id -> invocation whose wait took it
        self.resolved_by: dict[int, list[int]] = {}  # invocation -> event ids its waits took
        self.collects: list[Record] = []
        self.states: list[Record] = []
        self.start_event = records[0].event
        for record in records:
            self._index(record)

    def _need(self, record: Record, *values: Any) -> None:
        if any(value is None for value in values):
            raise StoreError(
                f"run {self.run_id}: record seq {record.seq} ({record.kind.value}) lacks a "
                "field it must have; the journal is damaged"
            )

    def _index(self, r: Record) -> None:
        kind = r.kind
        if kind is RecordKind.EVENT_EMITTED:
            self._need(r, r.event_id, r.event)
            assert r.event_id is not None and r.event is not None
            self.events[r.event_id] = (r.event, r.invocation, r.data)
            if r.invocation is not None:
                self.emitted_by.setdefault(r.invocation, []).append(r.event_id)
        elif kind is RecordKind.STEP_STARTED:
            self._need(r, r.invocation, r.step, r.event_id)
            assert r.invocation is not None and r.step is not None and r.event_id is not None
            self.started[r.invocation] = (r.step, r.event_id)
            self.last_attempt[r.invocation] = r.seq
        elif kind is RecordKind.STEP_FINISHED:
            self._need(r, r.invocation)
            assert r.invocation is not None
            self.finished.add(r.invocation)
        elif kind is RecordKind.WAIT_STARTED:
            self._need(r, r.invocation)
            assert r.invocation is not None
            self.waits.setdefault(r.invocation, []).append("started")
        elif kind is RecordKind.WAIT_RESOLVED:
            self._need(r, r.event_id, r.invocation)
            assert r.event_id is not None and r.invocation is not None
            self.resolved[r.event_id] = r.invocation
            self.resolved_by.setdefault(r.invocation, []).append(r.event_id)
        elif kind is RecordKind.STREAMED and r.invocation is not None:
            self.streamed_by[r.invocation] += 1
        elif kind in (RecordKind.COLLECT_ADDED, RecordKind.COLLECTED):
            self.collects.append(r)
        elif kind is RecordKind.STATE_CHANGED:
            self.states.append(r)

    def done(self, invocation: int | None) -> bool:
        return invocation is not None and invocation in self.finished


def restore(run: Any, records: list[Record]) -> None:
    """Bring `run` (a `fanflow._runtime.run.Run`) to where `records` end; queue what is left."""
    history = _History(run.run_id, records)
    run.counters(max(history.events, default=0), max(history.started, default=0))
    _restore_state(run, history)
    _restore_buffers(run, history)
    _restore_replays(run, history)
    if not history.events and history.start_event is not None:
        run.emit(history.start_event, None)  # stopped before the start event was routed
    _requeue(run, history)


def _restore_state(run: Any, history: _History) -> None:
    store = run.ctx.store
    for record in history.states:
        path, value = record.data
        store.restore(path, value)


def _restore_buffers(run: Any, history: _History) -> None:
    collect = run.collect
    for r in history.collects:
        # Only finished invocations' changes, and only their last attempt's:
        # a failed attempt's changes were rolled back when it failed.
        invocation = r.invocation
        if invocation is None or invocation not in history.finished:
            continue
        if r.seq < history.last_attempt.get(invocation, 0):
            continue
        if r.step is None:
            raise StoreError(f"run {run.run_id}: record seq {r.seq} names no step")
        if r.kind is RecordKind.COLLECT_ADDED:
            if r.event_id is None:
                raise StoreError(f"run {run.run_id}: record seq {r.seq} names no event")
            event = r.event if r.event is not None else history.events[r.event_id][0]
            collect.restore_added(r.step, r.data, r.event_id, event)
        else:
            buffer_id, taken = r.data
            collect.restore_taken(r.step, buffer_id, taken)


def _restore_replays(run: Any, history: _History) -> None:
    waits_by_key: dict[tuple[str, int], tuple[int, list[int]]] = {}
    for invocation, key in sorted(history.started.items()):
        if invocation in history.finished:
            continue
        # After several crashes one input has several unfinished invocations:
        # each rerun recorded only what went beyond its predecessors, in order.
        replay = run.replays.setdefault(key, Replay())
        replay.emitted.extend(history.emitted_by.get(invocation, ()))
        replay.streamed += history.streamed_by[invocation]
        started, answers = waits_by_key.get(key, (0, []))
        waits_by_key[key] = (
            started + len(history.waits.get(invocation, ())),
            answers + history.resolved_by.get(invocation, []),
        )
    for key, (started, answers) in waits_by_key.items():
        waits = run.replays[key].waits
        for index in range(started):
            if index < len(answers):
                event_id = answers[index]
                waits.append((event_id, history.events[event_id][0]))
            else:
                waits.append(None)  # still open: the rerun waits again, and asks again


def _requeue(run: Any, history: _History) -> None:
    consumed = {key for inv, key in history.started.items() if inv in history.finished}
    last_outside = max((i for i, (_, by, _) in history.events.items() if by is None), default=0)
    table = run.table
    for event_id in sorted(history.events):
        event, by, target = history.events[event_id]
        if isinstance(event, StopEvent):
            run.finish(event, event_id)
            return
        if event_id in history.resolved:
            continue  # a wait took it; a rerun of that wait gets it from its replay
        bindings = (table.by_name[target],) if target else table.routes.get(type(event), ())
        if bindings:
            for binding in bindings:
                if (binding.spec.name, event_id) not in consumed:
                    run.requeue(binding, event_id, event)
        elif isinstance(event, InputRequiredEvent):
            if event_id > last_outside:  # not answered yet: ask again
                run.stream.put(event)
                run.inbox.open_request(event_id)
        elif by is None:
            run.inbox.keep(event_id, event)


def restore_finished(run: Any, records: list[Record]) -> None:
    """Settle `run`, which `records` say has ended, with its recorded outcome and state."""
    history = _History(run.run_id, records)
    _restore_state(run, history)
    last = records[-1]
    stop = history.events[last.event_id][0] if last.event_id in history.events else None
    error = last.error or WorkflowRuntimeError(f"run {run.run_id} ended: {last.data}")
    run.settle_finished(str(last.data), stop if isinstance(stop, StopEvent) else None, error)
