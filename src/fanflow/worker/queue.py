"""Submitting runs to the queue, and following them through the journal.

`submit` writes a run's first two records (RUN_STARTED and the start
event) to the journal, so the run exists, with its id, before any worker
sees it, and then queues it. A worker drives it with ``wf.resume``: a
queued run is a run that has not taken its first step yet. The handle that
`submit` returns follows the journal to the run's end.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from fanflow._runtime.records import Record, RecordKind, Store
from fanflow.errors import WorkflowRuntimeError
from fanflow.events import Event, StartEvent
from fanflow.serialize import event_to_json
from fanflow.worker._sql import QueueSql, fetch, migrate, postgres_store

if TYPE_CHECKING:
    from fanflow.workflow import Workflow

__all__ = ["POLL", "QueuedRun", "open_queue_store", "send_event", "submit"]

POLL = 0.05  # seconds between looks at the journal while waiting for a run's end
ENDED = ("ok", "failed", "cancelled", "timeout")


def open_queue_store(store: Store | str) -> tuple[Any, bool]:
    """Return ``(store, opened)``: `store`, opened if it is a URL; must be PostgreSQL."""
    if not isinstance(store, str):
        return postgres_store(store), False
    # The postgres extra is optional: opened here, on first use.
    from fanflow.stores.url import open_store

    opened = open_store(store)
    try:
        return postgres_store(opened), True
    except BaseException:
        opened.close()
        raise


async def submit(
    wf: Workflow, event: StartEvent, store: Store | str, *, source: str | None = None
) -> QueuedRun:
    """Queue a run of `wf` starting with `event` in `store`; return its handle.

    `source` is where workers and ``fanflow runs resume`` find the workflow
    (default: its class's module, as a run records it).
    """
    wf.validate(validate_resource_configs=False)
    queue_store, opened = open_queue_store(store)
    try:
        sql = migrate(queue_store)
        run_id = os.urandom(16).hex()
        now = time.time()
        info = {"workflow": wf.workflow_name, "source": source or wf._source}
        queue_store.write(
            [
                Record(run_id, 1, RecordKind.RUN_STARTED, now, event=event, data=info),
                Record(run_id, 2, RecordKind.EVENT_EMITTED, now, event_id=1, event=event),
            ]
        )
        fetch(queue_store, sql.enqueue, run_id, wf.workflow_name)
    except BaseException:
        if opened:
            queue_store.close()
        raise
    return QueuedRun(wf, run_id, queue_store, sql, owns_store=opened)


def send_event(store: Store | str, run_id: str, event: Event) -> None:
    """Send `event` to queued run `run_id` from outside, from any process.

    The worker that drives the run delivers it (as ``handler.ctx.send_event``
    would), within a poll interval; a run not yet claimed gets it once a
    worker claims it.
    """
    queue_store, opened = open_queue_store(store)
    try:
        sql = migrate(queue_store)
        payload = json.dumps(event_to_json(event))
        fetch(queue_store, sql.send, run_id, payload)
    finally:
        if opened:
            queue_store.close()


class QueuedRun:
    """A submitted run: ``await`` it for its result, read `status`, send it events."""

    def __init__(
        self, wf: Workflow, run_id: str, store: Any, sql: QueueSql, *, owns_store: bool
    ) -> None:
        self.workflow = wf
        self.run_id = run_id
        self.store = store
        self._sql = sql
        self._owns_store = owns_store

    def __repr__(self) -> str:
        return f"<QueuedRun run_id={self.run_id} {self.workflow.workflow_name}>"

    def status(self) -> str:
        """Return ``queued``, ``running``, or how the run ended (``ok``, ``failed``, ...)."""
        rows = fetch(self.store, self._sql.state, self.run_id)
        if not rows:
            raise WorkflowRuntimeError(f"run {self.run_id} is not in the queue of {self.store!r}")
        state, status = rows[0]
        if status in ENDED:
            return str(status)
        return "queued" if state == "queued" else "running"

    def send_event(self, event: Event) -> None:
        """Send `event` to the run from outside (see `fanflow.worker.send_event`)."""
        payload = json.dumps(event_to_json(event))
        fetch(self.store, self._sql.send, self.run_id, payload)

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the run's end and return its result (or raise its recorded error).

        `timeout` bounds the wait in seconds (`TimeoutError`); the run goes on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while fetch(self.store, self._sql.status, self.run_id)[0][0] not in ENDED:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.run_id} did not end within {timeout} s")
            await asyncio.sleep(POLL)
        # The journal holds the outcome: a resume of an ended run only reads it.
        handler = self.workflow.resume(self.run_id, store=self.store)
        try:
            return await handler
        finally:
            self.close()

    def close(self) -> None:
        """Close the store if `submit` opened it from a URL."""
        if self._owns_store:
            self._owns_store = False
            self.store.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()
