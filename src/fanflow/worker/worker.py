"""`Worker`: claims queued runs from a PostgreSQL journal and drives them.

Any number of workers, in any number of processes and machines, share one
database. Each loop turn a worker claims as many queued runs as it has free
slots (``FOR UPDATE SKIP LOCKED``: two workers never wait on, nor take, the
same row), takes over claimed runs whose lease has lapsed (their worker
died), delivers the events sent to its runs from outside, and sleeps a poll
interval. A run is driven with ``wf.resume`` under the run's fenced lease,
exactly as a resume from the shell: a worker that lost the lease cannot
append to the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from fanflow._runtime.lease import LEASE_TTL
from fanflow.errors import LeaseError
from fanflow.serialize import event_from_json
from fanflow.worker._sql import fetch, migrate
from fanflow.worker.limits import close_limits, database
from fanflow.worker.queue import open_queue_store
from fanflow.workflow import Workflow

__all__ = ["Worker"]

log = logging.getLogger("fanflow.worker")


class LeasedStore:
    """The worker's store, as its runs see it: leases last the worker's `ttl`.

    The engine takes a run's lease for its own ttl (30 s); a worker that
    must be taken over sooner asks the store for its own ttl instead, and
    renews the leases it holds every third of it (`renew`).
    """

    def __init__(self, store: Any, ttl: float) -> None:
        self.inner = store
        self.ttl = ttl
        self.held: dict[str, str] = {}  # run id -> holder token, while held here

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return repr(self.inner)

    def acquire_lease(self, run_id: str, holder: str, ttl: float) -> None:
        """Take or renew `run_id` for `holder`, for the worker's ttl."""
        self.inner.acquire_lease(run_id, holder, self.ttl)
        self.held[run_id] = holder

    def release_lease(self, run_id: str, holder: str) -> None:
        """Give `run_id` back."""
        if self.held.get(run_id) == holder:
            del self.held[run_id]
        self.inner.release_lease(run_id, holder)

    def renew(self) -> list[str]:
        """Renew every lease held here; return the runs whose lease was lost."""
        lost = []
        for run_id, holder in list(self.held.items()):
            try:
                self.inner.acquire_lease(run_id, holder, self.ttl)
            except LeaseError:
                self.held.pop(run_id, None)
                lost.append(run_id)
            except Exception as exc:  # the engine's own renewal retries too
                log.warning("could not renew the lease of run %s: %s", run_id, exc)
        return lost


class Worker:
    """Claims runs of `workflows` queued in `store` and drives up to `concurrency` at once.

    `store` is a `PostgresStore` or a ``postgresql://`` URL. `lease_ttl` is
    how long after this worker dies its runs are taken over by others;
    `poll` is the seconds between looks at the queue.
    """

    def __init__(
        self,
        workflows: Iterable[Workflow],
        store: Any,
        *,
        concurrency: int = 4,
        lease_ttl: float = LEASE_TTL,
        poll: float = 0.1,
        name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        if not lease_ttl > 0:
            raise ValueError(f"lease_ttl must be > 0 seconds, got {lease_ttl!r}")
        self.workflows = {wf.workflow_name: wf for wf in workflows}
        if not self.workflows:
            raise ValueError("a worker needs at least one workflow")
        inner, self._owns_store = open_queue_store(store)
        try:
            self.sql = migrate(inner)
        except BaseException:
            if self._owns_store:
                inner.close()
            raise
        self.store = LeasedStore(inner, lease_ttl)
        self.concurrency = concurrency
        self.poll = poll
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.runs: dict[str, Any] = {}  # run id -> its handler, while driven here
        self.finished = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._handing_back: set[str] = set()
        self._lost: set[str] = set()  # runs whose lease another worker took
        self._missing_logged: set[str] = set()

    def __repr__(self) -> str:
        return f"<Worker {self.name} {len(self.runs)}/{self.concurrency} runs>"

    def stop(self) -> None:
        """Stop claiming runs; `serve` then finishes or hands back the runs it drives."""
        self._stopping.set()

    async def serve(self, grace: float = 30.0) -> None:
        """Claim and drive runs until `stop`; then wait `grace` s and hand back the rest."""
        token = database.set(self.store.inner)
        heartbeat = asyncio.get_running_loop().create_task(self._renew(), name="fanflow renew")
        try:
            while not self._stopping.is_set():
                self.turn()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll)
            await self._drain(grace)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            database.reset(token)
            await close_limits()
            if self._owns_store:
                self.store.inner.close()

    def turn(self) -> None:
        """Claim what the free slots allow, take over lapsed runs, deliver outside events."""
        names = list(self.workflows)
        free = self.concurrency - len(self.runs)
        if free > 0:
            rows = fetch(self.store, self.sql.claim, self.name, names, free)
            free -= len(rows)
            if free > 0:
                ttl = self.store.ttl
                rows += fetch(self.store, self.sql.take_over, self.name, names, free, ttl)
            for run_id, workflow in rows:
                self._drive(run_id, self.workflows[workflow])
        self._deliver()
        self._log_missing(names)

    def _drive(self, run_id: str, wf: Workflow) -> None:
        try:
            handler = wf.resume(run_id, store=self.store)
        except LeaseError as exc:
            log.info("run %s is held elsewhere; left to its holder: %s", run_id, exc)
            return
        except Exception as exc:
            log.error("run %s of %s cannot be resumed: %s", run_id, wf.workflow_name, exc)
            fetch(self.store, self.sql.done, run_id)
            return
        self.runs[run_id] = handler
        task = asyncio.get_running_loop().create_task(self._follow(run_id, handler))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, run_id: str, handler: Any) -> None:
        drain = asyncio.get_running_loop().create_task(_drain_stream(handler))
        try:
            await asyncio.wait([handler])
        finally:
            self.runs.pop(run_id, None)
            await drain
        error = None if handler.cancelled() else handler.exception()
        if run_id in self._handing_back:
            self._handing_back.discard(run_id)
            fetch(self.store, self.sql.hand_back, run_id, self.name)
            log.info("run %s handed back to the queue", run_id)
        elif isinstance(error, LeaseError) or run_id in self._lost:
            self._lost.discard(run_id)
            log.warning("run %s: lease lost; another worker drives it now", run_id)
        else:
            fetch(self.store, self.sql.done, run_id)
            self.finished += 1

    def _deliver(self) -> None:
        if not self.runs:
            return
        for run_id, text in fetch(self.store, self.sql.deliver, list(self.runs)):
            handler = self.runs.get(run_id)
            event = event_from_json(json.loads(text), f"event sent to run {run_id}")
            if handler is None or handler.done():
                log.warning("run %s ended before an outside %s reached it", run_id, event)
                continue
            handler.ctx.send_event(event)

    def _log_missing(self, names: Sequence[str]) -> None:
        for (workflow,) in fetch(self.store, self.sql.missing, names):
            if workflow not in self._missing_logged:
                self._missing_logged.add(workflow)
                log.warning(
                    "queued runs of workflow %r are left for other workers: this one has %s",
                    workflow,
                    ", ".join(names),
                )

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.store.ttl / 3)
            for run_id in self.store.renew():
                handler = self.runs.get(run_id)
                if handler is not None:
                    log.warning("run %s: lease lost; stopping it here", run_id)
                    self._lost.add(run_id)
                    handler.detach()

    async def _drain(self, grace: float) -> None:
        """Wait up to `grace` s for the runs driven here, then hand the rest back."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for run_id, handler in list(self.runs.items()):
            self._handing_back.add(run_id)
            handler.detach()
        if self._tasks:
            await asyncio.wait(list(self._tasks))


async def _drain_stream(handler: Any) -> None:
    """Read the run's stream so that nothing piles up unread."""
    with contextlib.suppress(Exception):
        async for _ in handler.stream_events():
            pass
