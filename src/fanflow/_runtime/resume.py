"""Rebuild a run from its records and queue the work that was left undone.

Steps whose completion was recorded are not run again. An invocation that
started but has no STEP_FINISHED record (it was in flight when the process
died) runs again from the top: at-least-once. Its rerun does not repeat
what the first attempt already recorded: the events it emitted and the
events it streamed are matched in order and not sent twice. Queued events,
collect buffers, the state, unanswered input requests and answers that
arrived before a wait are all restored.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import TYPE_CHECKING

from fanflow._runtime.records import Record, RecordKind
from fanflow._runtime.worker import Replay
from fanflow.errors import WorkflowRuntimeError
from fanflow.events import Event, InputRequiredEvent, StopEvent

if TYPE_CHECKING:
    from fanflow._runtime.run import Run

__all__ = ["replay_finished", "restore"]


class _History:
    """A run's records, indexed for resuming."""

    def __init__(self, records: list[Record]) -> None:
        self.started: dict[int, tuple[str, int]] = {}  # invocation -> (step, input event id)
        self.finished: set[int] = set()
        self.events: dict[int, tuple[Event, int | None, str | None]] = {}  # id -> event, by, target
        self.emitted_by: dict[int, list[int]] = {}
        self.streamed_by: Counter[int] = Counter()
        self.resolved: dict[int, int] = {}  # event id -> invocation whose wait took it
        self.collects: list[Record] = []
        self.states: list[Record] = []
        self.start_event = records[0].event
        for record in records:
            self._index(record)

    def _index(self, r: Record) -> None:
        kind = r.kind
        if kind is RecordKind.EVENT_EMITTED:
            assert r.event_id is not None and r.event is not None
            self.events[r.event_id] = (r.event, r.invocation, r.data)
            if r.invocation is not None:
                self.emitted_by.setdefault(r.invocation, []).append(r.event_id)
        elif kind is RecordKind.STEP_STARTED:
            assert r.invocation is not None and r.step is not None and r.event_id is not None
            self.started[r.invocation] = (r.step, r.event_id)
        elif kind is RecordKind.STEP_FINISHED:
            assert r.invocation is not None
            self.finished.add(r.invocation)
        elif kind is RecordKind.WAIT_RESOLVED:
            assert r.event_id is not None and r.invocation is not None
            self.resolved[r.event_id] = r.invocation
        elif kind is RecordKind.STREAMED and r.invocation is not None:
            self.streamed_by[r.invocation] += 1
        elif kind in (RecordKind.COLLECT_ADDED, RecordKind.COLLECTED):
            self.collects.append(r)
        elif kind is RecordKind.STATE_CHANGED:
            self.states.append(r)

    def done(self, invocation: int | None) -> bool:
        return invocation is not None and invocation in self.finished


def restore(run: Run, records: list[Record]) -> None:
    """Bring `run` to where its `records` end and queue what is left to do."""
    history = _History(records)
    run._event_ids = max(history.events, default=0)
    run.invocations = max(history.started, default=0)
    _restore_state(run, history)
    _restore_buffers(run, history)
    for invocation, key in sorted(history.started.items()):
        if invocation in history.finished:
            continue
        # After several crashes one input has several unfinished invocations:
        # each rerun recorded only what went beyond its predecessors, in order.
        replay = run.replays.setdefault(key, Replay(deque(), 0))
        replay.emitted.extend(history.emitted_by.get(invocation, ()))
        replay.streamed += history.streamed_by[invocation]
    if not history.events and history.start_event is not None:
        run.emit(history.start_event, None)  # stopped before the start event was routed
    _requeue(run, history)


def _restore_state(run: Run, history: _History) -> None:
    store = run.ctx.store
    for record in history.states:
        path, value = record.data
        store.restore(path, value)


def _restore_buffers(run: Run, history: _History) -> None:
    for r in history.collects:
        if not history.done(r.invocation):
            continue  # its rerun collects again
        assert r.step is not None
        if r.kind is RecordKind.COLLECT_ADDED:
            assert r.event_id is not None
            event = r.event if r.event is not None else history.events[r.event_id][0]
            run.buffer(r.step, r.data).add(r.event_id, event)
            run._synthetic_ids = min(run._synthetic_ids, r.event_id)
        else:
            buffer_id, taken = r.data
            run.buffer(r.step, buffer_id).remove(taken)


def _requeue(run: Run, history: _History) -> None:
    consumed = {key for inv, key in history.started.items() if inv in history.finished}
    last_outside = max((i for i, (_, by, _) in history.events.items() if by is None), default=0)
    for event_id in sorted(history.events):
        event, by, target = history.events[event_id]
        if isinstance(event, StopEvent):
            run.finish(event, event_id)
            return
        waiter = history.resolved.get(event_id)
        if waiter is not None:
            if waiter not in history.finished:
                run.parked.append((event_id, event))  # the rerun waits for it again
            continue
        bindings = (run.table.by_name[target],) if target else run.table.routes.get(type(event), ())
        if bindings:
            for binding in bindings:
                if (binding.spec.name, event_id) not in consumed:
                    run._submit(binding, event_id, event)
        elif isinstance(event, InputRequiredEvent):
            if event_id > last_outside:  # not answered yet: ask again
                run.stream.put(event)
                run.awaiting_input += 1
        elif by is None:
            run.parked.append((event_id, event))


def replay_finished(run: Run, records: list[Record]) -> None:
    """Settle `run` (already finished in `records`) with its recorded outcome."""
    history = _History(records)
    _restore_state(run, history)
    last = records[-1]
    run._closed = True  # a finished run records nothing more
    run.outcome = str(last.data)
    stop = history.events[last.event_id][0] if last.event_id in history.events else None
    if isinstance(stop, StopEvent):
        run.stop_event = stop
        run.stream.put(stop)
        run.stream.close()
        run.future.set_result(stop.result if type(stop) is StopEvent else stop)
        return
    error = last.error or WorkflowRuntimeError(f"run {run.run_id} ended: {last.data}")
    run.stream.close(error)
    run.future.set_exception(error)
