"""`WorkflowHandler`: what ``wf.run(...)`` returns to the caller.

It is an asyncio future: ``await handler`` gives the run's result (or raises
the step's own exception, unwrapped); ``done()``, ``exception()`` and
``add_done_callback`` work as on any future, and ``asyncio.gather`` takes it.

The handler is done only once every step invocation of the run has
finished, the cleanup of cancelled ones included. Cancelling it (directly,
by cancelling a task that awaits it, or by an ``asyncio.wait_for``
timeout) stops the run; await ``asyncio.shield(handler)`` where that must
not happen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fanflow._runtime.records import Record
from fanflow._runtime.run import Run
from fanflow.events import Event, StopEvent

if TYPE_CHECKING:
    from fanflow.context import Context

__all__ = ["WorkflowHandler"]


class WorkflowHandler(asyncio.Future[Any]):
    """A running workflow: await it, stream its events, cancel it."""

    def __init__(self, ctx: Context[Any], run: Run, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.ctx = ctx
        self._run = run

    @property
    def run_id(self) -> str:
        """Return this run's id (also the key of its records in the store)."""
        return self._run.run_id

    def stream_events(self, expose_internal: bool = False) -> AsyncIterator[Event]:
        """Iterate over the events steps write to the stream, ending with a StopEvent.

        A run that did not succeed ends its stream with `WorkflowFailedEvent`,
        `WorkflowTimedOutEvent` or `WorkflowCancelledEvent` (StopEvent
        subclasses); ``await handler`` then raises the run's error. With
        `expose_internal` the engine's own events (`StepStateChanged`, ...)
        are streamed too. Events are buffered until read, up to a limit.
        Only one consumer per run.
        """
        if expose_internal:
            self._run.expose_internal()
        return self._run.stream.consume()

    def records(self, after: int = 0) -> AsyncIterator[Record]:
        """Iterate over this run's records with ``seq > after``: those so far, then live ones.

        Any number of readers may follow one run; each ends after the
        RUN_FINISHED record. How far a slow reader may fall behind depends on
        the store (`MemoryStore`: ``max_records``).
        """
        return self._run.subscribe(after)

    def records_so_far(self) -> list[Record]:
        """Return the run's records up to now, those its store has and those on their way."""
        return self._run.records()

    def cancel_run(self) -> asyncio.Future[None]:
        """Stop the run now; ``await handler`` then raises `WorkflowCancelledByUser`.

        Takes effect immediately; the returned future is already done, so both
        ``handler.cancel_run()`` and ``await handler.cancel_run()`` work.
        """
        self._run.cancel()
        done: asyncio.Future[None] = self.get_loop().create_future()
        done.set_result(None)
        return done

    def cancel(self, msg: Any = None) -> bool:
        """Stop the run; the handler ends cancelled once its steps have finished.

        This is what ``asyncio.wait_for`` calls on timeout, and what happens
        when a task awaiting the handler is cancelled.
        """
        if self.done():
            return False
        self._cancel_msg = msg
        self._run.cancel(handler_too=True)
        return True

    def cancel_now(self) -> None:
        """Finish the cancellation that `cancel` began (called by the run)."""
        super().cancel(getattr(self, "_cancel_msg", None))

    def detach(self) -> None:
        """Stop driving the run here, unfinished, so another process can resume it.

        Its records are written and its lease released; use it when a run
        waits for input that will come later, elsewhere (``wf.resume(run_id)``).
        """
        self._run.detach()

    async def send_event(self, event: Event, step: str | None = None) -> None:
        """Deliver `event` into the run from outside (same as ``handler.ctx.send_event``)."""
        self.ctx.send_event(event, step)

    def get_stop_event(self) -> StopEvent | None:
        """Return the StopEvent that ended the run, or None (still running or failed)."""
        return self._run.stop_event

    async def stop_event_result(self) -> StopEvent:
        """Wait for the run and return its StopEvent (not just its result)."""
        await asyncio.shield(self)
        stop = self._run.stop_event
        assert stop is not None
        return stop

    def is_done(self) -> bool:
        """Return whether the run has ended (same as ``done()``)."""
        return self.done()

    def __repr__(self) -> str:
        state = self._run.outcome or "running"
        return f"<WorkflowHandler run_id={self.run_id} {self._run.workflow_name} {state}>"
