"""The server's runs: start them, resume them, follow them, answer and cancel them anywhere.

A handler is a run in the journal: its id is the run id. This process
drives the runs it started and the unfinished runs it resumed (at start-up,
and any whose driver died once its lease expired); requests for a run that
another process drives go through the mailbox in the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timezone
from typing import Any

from fanflow._runtime.records import Record, RecordKind
from fanflow.errors import LeaseError
from fanflow.events import (
    Event,
    InputRequiredEvent,
    StartEvent,
    StepState,
    StepStateChanged,
    StopEvent,
    WorkflowCancelledEvent,
    WorkflowFailedEvent,
    WorkflowTimedOutEvent,
)
from fanflow.handler import WorkflowHandler
from fanflow.serialize import event_from_json, event_to_json
from fanflow.server._envelope import envelope
from fanflow.server._feed import FeedStore
from fanflow.server._mailbox import Mail, Mailbox
from fanflow.server._served import ServedWorkflow

__all__ = ["HandlerGone", "NoHandler", "Runs", "reference_status"]

log = logging.getLogger("fanflow.server")

UNFINISHED = ("running", "detached", "interrupted")
FINISHED_CACHE = 2048


class NoHandler(LookupError):
    """No run of a served workflow has this id."""


class HandlerGone(RuntimeError):
    """The run has finished; it takes no more events."""


def reference_status(status: str) -> str:
    """Return the reference's handler status for a fanflow run status."""
    if status == "ok":
        return "completed"
    if status == "cancelled":
        return "cancelled"
    if status in UNFINISHED:
        return "running"
    return "failed"  # failed, timeout, lost


def iso(at: float | None) -> str | None:
    """Return the epoch time `at` as an ISO 8601 UTC string."""
    return None if at is None else datetime.fromtimestamp(at, timezone.utc).isoformat()


class Runs:
    """The runs of the served workflows in one database, as this process sees them."""

    feed: FeedStore
    mailbox: Mailbox

    def __init__(self, *, poll: float = 0.2) -> None:
        self.poll = poll
        self.served: dict[str, ServedWorkflow] = {}
        self.by_workflow: dict[str, ServedWorkflow] = {}
        self.local: dict[str, WorkflowHandler] = {}
        self._finished: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, served: ServedWorkflow) -> None:
        """Serve `served`; its workflow name must not be another served workflow's."""
        if served.name in self.served:
            raise ValueError(f"a workflow is already served under the name {served.name!r}")
        other = self.by_workflow.get(served.wf.workflow_name)
        if other is not None:
            raise ValueError(
                f"{served.name!r} and {other.name!r} would record their runs under the same "
                f"workflow name {served.wf.workflow_name!r}; give one of them "
                f"workflow_name=... when constructing it"
            )
        self.served[served.name] = served
        self.by_workflow[served.wf.workflow_name] = served

    # ------------------------------------------------------------ lifecycle

    async def start(self, feed: FeedStore, mailbox: Mailbox, *, takeover_every: float) -> None:
        """Resume the unfinished runs nobody drives; start the mailbox and take-over loops."""
        self.feed = feed
        self.mailbox = mailbox
        self.resume_orphans()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._deliver_loop(), name="fanflow mail"))
        self._tasks.append(loop.create_task(self._takeover_loop(takeover_every), name="takeover"))

    async def stop(self) -> None:
        """Stop the loops and leave the runs of this process unfinished, for a restart."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for handler in list(self.local.values()):
            if not handler.done():
                handler.detach()
        for handler in list(self.local.values()):
            with contextlib.suppress(BaseException):
                await handler

    def resume_orphans(self) -> list[str]:
        """Resume the unfinished runs of served workflows that no live process drives."""
        resumed = []
        for status in UNFINISHED:
            for info in self.feed.list_runs(status=status):
                served = self.by_workflow.get(info.workflow)
                if served is None or info.run_id in self.local:
                    continue
                if self._resume(served, info.run_id) is not None:
                    resumed.append(info.run_id)
        return resumed

    def _resume(self, served: ServedWorkflow, run_id: str) -> WorkflowHandler | None:
        try:
            handler = served.wf.resume(run_id, store=self.feed)
        except LeaseError:
            return None  # another live process drives it
        except Exception as exc:
            log.warning("run %s of %s cannot be resumed: %s", run_id, served.name, exc)
            return None
        if not handler.done():
            log.info("resumed run %s of %s", run_id, served.name)
        self._keep(handler)
        return handler

    async def _takeover_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                self.resume_orphans()
            except Exception:
                log.exception("looking for runs to take over failed")

    async def _deliver_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                mail = await self.mailbox.take(list(self.local))
            except Exception:
                log.exception("reading the mailbox failed")
                continue
            for message in mail:
                self._deliver(message)

    def _deliver(self, message: Mail) -> None:
        handler = self.local.get(message.run_id)
        if handler is None or handler.done():
            return
        if message.kind == "cancel":
            handler.cancel_run()
            return
        try:
            event = event_from_json(message.payload["event"], "mail")
            handler.ctx.send_event(event, message.payload.get("step"))
        except Exception as exc:
            log.warning("an event for run %s could not be delivered: %s", message.run_id, exc)

    # ------------------------------------------------------------ runs

    def run(self, served: ServedWorkflow, start_event: StartEvent | None) -> WorkflowHandler:
        """Start a run of `served` with `start_event`, journaled; return its handler."""
        handler = served.wf.run(start_event=start_event, store=self.feed)
        self._keep(handler)
        return handler

    async def committed(self, handler: WorkflowHandler, within: float = 5.0) -> None:
        """Return once the run's first records are in the database (other replicas see it)."""
        deadline = time.monotonic() + within
        while not self.feed.written(handler.run_id) and not handler.done():
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.001)

    def _keep(self, handler: WorkflowHandler) -> None:
        run_id = handler.run_id
        self.local[run_id] = handler

        def ended(done: asyncio.Future[Any]) -> None:
            if not done.cancelled():
                done.exception()  # retrieved: the outcome is in the records
            if self.local.get(run_id) is done:
                del self.local[run_id]
            self.feed.wake(run_id)

        handler.add_done_callback(ended)

    def records(self, run_id: str) -> list[Record]:
        """Return the records of a run of a served workflow; `NoHandler` if there is none."""
        try:
            records = self.feed.records(run_id)
        except KeyError:
            raise NoHandler(run_id) from None
        if not records or self._served_of(records) is None:
            raise NoHandler(run_id)
        return records

    def _served_of(self, records: list[Record]) -> ServedWorkflow | None:
        data = records[0].data
        name = data.get("workflow") if isinstance(data, dict) else None
        return self.by_workflow.get(str(name))

    def served_of(self, run_id: str) -> ServedWorkflow:
        """Return the served workflow of run `run_id`; `NoHandler` if none."""
        handler = self.local.get(run_id)
        if handler is not None:
            served = self.by_workflow.get(handler._run.workflow_name)
            if served is not None:
                return served
        served = self._served_of(self.records(run_id))
        assert served is not None
        return served

    async def send(self, run_id: str, event: Event, step: str | None) -> None:
        """Deliver `event` to run `run_id`, wherever it is driven."""
        handler = self._driver(run_id)
        if handler is not None:
            handler.ctx.send_event(event, step)
            return
        await self.mailbox.post(run_id, "event", {"event": event_to_json(event), "step": step})

    async def cancel(self, run_id: str) -> None:
        """Cancel run `run_id`, wherever it is driven."""
        handler = self._driver(run_id)
        if handler is not None:
            handler.cancel_run()
            return
        await self.mailbox.post(run_id, "cancel", {})

    def _driver(self, run_id: str) -> WorkflowHandler | None:
        """Return the local handler of unfinished run `run_id`, taking it over if nobody drives it.

        None: another live process drives it. `HandlerGone` if it has finished.
        """
        handler = self.local.get(run_id)
        if handler is not None and not handler.done():
            return handler
        records = self.records(run_id)
        if records[-1].kind is RecordKind.RUN_FINISHED:
            raise HandlerGone(run_id)
        served = self._served_of(records)
        assert served is not None
        handler = self._resume(served, run_id)
        if handler is not None and handler.done():
            raise HandlerGone(run_id)
        return handler

    # ------------------------------------------------------------ reading

    def handler_data(self, run_id: str) -> dict[str, Any]:
        """Return the reference's ``HandlerData`` of run `run_id`."""
        kept = self._finished.get(run_id)
        if kept is not None:
            return kept
        try:
            records = self.records(run_id)
        except NoHandler:
            handler = self.local.get(run_id)
            if handler is None:
                raise
            return self._starting(run_id, self.by_workflow[handler._run.workflow_name])
        data = self._data(records)
        if records[-1].kind is RecordKind.RUN_FINISHED:
            self._finished[run_id] = data
            while len(self._finished) > FINISHED_CACHE:
                self._finished.popitem(last=False)
        return data

    def _starting(
        self, run_id: str, served: ServedWorkflow, at: float | None = None
    ) -> dict[str, Any]:
        """Return the ``HandlerData`` of a running run (whose records may not be written yet)."""
        return {
            "handler_id": run_id,
            "workflow_name": served.name,
            "run_id": run_id,
            "error": None,
            "result": None,
            "result_unreadable": False,
            "status": "running",
            "started_at": iso(at if at is not None else time.time()),
            "updated_at": None,
            "completed_at": None,
        }

    def _data(self, records: list[Record]) -> dict[str, Any]:
        first, last = records[0], records[-1]
        served = self._served_of(records)
        finished = last.kind is RecordKind.RUN_FINISHED
        status = str(last.data) if finished else "running"
        result = None
        if finished and status == "ok":
            stop = stop_event(records, last)
            result = envelope(stop) if stop is not None else None
        error = str(last.error) if finished and last.error is not None else None
        return {
            "handler_id": first.run_id,
            "workflow_name": served.name if served else "",
            "run_id": first.run_id,
            "error": error,
            "result": result,
            "result_unreadable": False,
            "status": reference_status(status),
            "started_at": iso(first.at),
            "updated_at": iso(last.at),
            "completed_at": iso(last.at) if finished else None,
        }

    def handlers(
        self, statuses: Iterable[str] | None, names: Iterable[str] | None
    ) -> list[dict[str, Any]]:
        """Return the ``HandlerData`` of the runs of served workflows, newest first, filtered."""
        wanted = set(statuses) if statuses is not None else None
        names = set(names) if names is not None else None
        out = []
        for info in self.feed.list_runs():
            served = self.by_workflow.get(info.workflow)
            if served is None or (names is not None and served.name not in names):
                continue
            status = reference_status(info.status)
            if wanted is not None and status not in wanted:
                continue
            if status == "running":
                out.append(self._starting(info.run_id, served, info.started_at))
                continue
            with contextlib.suppress(NoHandler, KeyError):
                out.append(self.handler_data(info.run_id))
        return out

    async def follow(
        self, run_id: str, after: int, include_internal: bool
    ) -> AsyncIterator[tuple[int, Event]]:
        """Yield ``(seq, event)`` for what run `run_id` streams after `after`, to its end."""
        reader = StreamReader(self, run_id, include_internal)
        async for record in self.feed.follow(run_id, after, run_id in self.local):
            for event in reader.events(record):
                yield record.seq, event


class StreamReader:
    """Turns one run's records into the events its stream carried."""

    def __init__(self, runs: Runs, run_id: str, internal: bool) -> None:
        self.runs = runs
        self.run_id = run_id
        self.internal = internal
        self.names: dict[int, str] = {}
        self.stops: dict[int, StopEvent] = {}
        served = runs.served_of(run_id)
        self.consumed = set(type(served.wf).graph().consumers)

    def events(self, r: Record) -> list[Event]:
        """Return the stream events record `r` stands for (most records stand for none)."""
        kind = r.kind
        if kind in _ASKED and r.event is not None:
            return [r.event]  # written to the stream, or a wait's waiter_event
        if kind is RecordKind.EVENT_EMITTED and r.event is not None and r.event_id is not None:
            self.names[r.event_id] = type(r.event).__name__
            if isinstance(r.event, StopEvent):
                self.stops[r.event_id] = r.event
            elif isinstance(r.event, InputRequiredEvent) and type(r.event) not in self.consumed:
                return [r.event]  # a request no step takes goes to the caller's stream
            return []
        if kind is RecordKind.RUN_FINISHED:
            return [self._final(r)]
        if self.internal and kind in _STEP_KINDS and r.step is not None:
            return [self._step_state(r)]
        return []

    def _step_state(self, r: Record) -> StepStateChanged:
        named = self.names.get(r.event_id) if r.event_id is not None else None
        running = r.kind is RecordKind.STEP_STARTED
        return StepStateChanged(
            name=r.step or "",
            step_state=StepState.RUNNING if running else StepState.NOT_RUNNING,
            worker_id=str(r.invocation),
            input_event_name=(named or "") if running else "",
            output_event_name=named if r.kind is RecordKind.STEP_FINISHED else None,
        )

    def _final(self, r: Record) -> StopEvent:
        status = str(r.data)
        if status == "ok":
            stop = self.stops.get(r.event_id or -1)
            if stop is None:
                stop = stop_event(self.runs.feed.records(self.run_id), r)
            return stop or StopEvent()
        if status == "cancelled":
            return WorkflowCancelledEvent()
        if status == "timeout":
            return WorkflowTimedOutEvent(timeout=0.0, active_steps=[])
        error = r.error if isinstance(r.error, Exception) else RuntimeError(str(r.error))
        return WorkflowFailedEvent(step_name="", exception=error)


_ASKED = (RecordKind.STREAMED, RecordKind.WAIT_STARTED)
_STEP_KINDS = (RecordKind.STEP_STARTED, RecordKind.STEP_FINISHED, RecordKind.STEP_FAILED)


def stop_event(records: list[Record], finished: Record) -> StopEvent | None:
    """Return the StopEvent that run-finished record `finished` names, from `records`."""
    for r in reversed(records):
        if (
            r.kind is RecordKind.EVENT_EMITTED
            and r.event_id == finished.event_id
            and isinstance(r.event, StopEvent)
        ):
            return r.event
    return None
