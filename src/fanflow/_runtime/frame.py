"""The step invocation a worker task is running, as `Context` and the engine see it.

A worker task keeps one `StepFrame` and reuses it for every invocation it
runs; `current_frame` points at it inside the invocation's own context, so
`Context` methods know which step and invocation is calling them.
"""

from __future__ import annotations

from collections import deque
from contextvars import ContextVar
from typing import Any

from fanflow.events import Event
from fanflow.retry import RetryInfo

__all__ = ["FIRST_ATTEMPT", "Replay", "StepFrame", "current_frame"]

FIRST_ATTEMPT = RetryInfo()

current_frame: ContextVar[StepFrame | None] = ContextVar("fanflow_step_frame", default=None)


class Replay:
    """What an interrupted invocation did before a resume, so its rerun does not repeat it."""

    __slots__ = ("emitted", "streamed", "waits")

    def __init__(self) -> None:
        self.emitted: deque[int] = deque()  # ids of the events it emitted, in order
        self.streamed = 0  # how many events it wrote to the stream
        # One entry per wait_for_event it began, in order: the answer (id, event)
        # it got, or None if it was still waiting.
        self.waits: deque[tuple[int, Event] | None] = deque()


class StepFrame:
    """One worker's current invocation: step, input event, attempt, and its undo log."""

    __slots__ = (
        "cause_id",
        "event",
        "event_id",
        "invocation",
        "replay",
        "retry",
        "run",
        "slice_start",
        "step",
        "stopping",
        "successor",
        "timed_out",
        "undo",
        "worker",
    )

    def __init__(self, run: Any, step: str, worker: int = 0) -> None:
        self.run = run
        self.step = step
        self.worker = worker  # numbers the worker task within its run
        self.invocation = 0
        self.event: Event | None = None
        self.event_id = 0
        self.cause_id: int | None = None  # id of the event its input's emitter was handling
        self.replay: Replay | None = None
        self.retry = FIRST_ATTEMPT
        self.timed_out = False  # the step's own timeout cancelled it
        self.stopping = False  # the run cancelled it (the run ended)
        self.slice_start = 0.0  # when it last resumed, on the run's clock
        self.successor: Any = None  # the step lane this worker takes over next (see scheduler)
        self.undo: list[tuple[Any, ...]] | None = None  # collect changes of the current attempt
