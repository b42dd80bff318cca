"""Counters and histograms of steps and runs, through the OpenTelemetry metrics API.

Events waiting per step (``fanflow.step.events_waiting``) is derived from
the listener calls. Routing is by exact event type, so the first time a
step starts on an event of type T (in a workflow) it is known to accept
T: the T events already emitted in that workflow's runs are counted as
waiting for it then, and each T emitted later is counted as it comes,
until the step starts on it. What a run leaves waiting is taken back when
the run ends, so the count never drifts. (An event taken by
``ctx.wait_for_event`` instead of a step stays counted until its run ends.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from opentelemetry import metrics

from fanflow._runtime.hooks import InvocationInfo, Listener, RunIdentity
from fanflow.events import Event

__all__ = ["BUCKETS", "Metrics"]

# Step durations in seconds: from a fast in-loop step to a slow model call.
BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(slots=True)
class _RunCounts:
    workflow: str
    waiting: Counter[str] = field(default_factory=Counter)  # step -> events waiting
    emitted: Counter[type[Event]] = field(default_factory=Counter)


class Metrics(Listener):
    """A listener that counts step attempts and runs, and times steps."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.started = meter.create_counter(
            "fanflow.steps.started", unit="{attempt}", description="Step attempts started"
        )
        self.finished = meter.create_counter(
            "fanflow.steps.finished", unit="{invocation}", description="Step invocations finished"
        )
        self.failed = meter.create_counter(
            "fanflow.steps.failed", unit="{attempt}", description="Step attempts that raised"
        )
        self.duration = meter.create_histogram(
            "fanflow.step.duration",
            unit="s",
            description="Duration of a step attempt",
            explicit_bucket_boundaries_advisory=BUCKETS,
        )
        self.active = meter.create_up_down_counter(
            "fanflow.runs.active", unit="{run}", description="Runs in progress"
        )
        self.waiting = meter.create_up_down_counter(
            "fanflow.step.events_waiting",
            unit="{event}",
            description="Events routed to a step that it has not started on yet",
        )
        self.routes: dict[tuple[str, type[Event]], set[str]] = {}  # (workflow, type) -> steps
        self.runs: dict[str, _RunCounts] = {}

    def run_started(self, run: RunIdentity) -> None:
        self.runs[run.run_id] = _RunCounts(run.workflow)
        self.active.add(1, {"workflow": run.workflow})

    def run_finished(self, run: RunIdentity, status: str, error: BaseException | None) -> None:
        counts = self.runs.pop(run.run_id, None)
        if counts is None:
            return
        self.active.add(-1, {"workflow": run.workflow})
        for step, left in counts.waiting.items():
            if left:
                self.waiting.add(-left, {"workflow": run.workflow, "step": step})

    def event_emitted(
        self, run_id: str, event_id: int, event: Event, by: InvocationInfo | None
    ) -> None:
        counts = self.runs.get(run_id)
        if counts is None:
            return
        kind = type(event)
        counts.emitted[kind] += 1
        for step in self.routes.get((counts.workflow, kind), ()):
            counts.waiting[step] += 1
            self.waiting.add(1, {"workflow": counts.workflow, "step": step})

    def step_started(self, info: InvocationInfo) -> None:
        attributes = {"workflow": info.workflow, "step": info.step}
        self.started.add(1, attributes)
        if info.attempt != 1:
            return
        steps = self.routes.setdefault((info.workflow, info.event_type), set())
        if info.step not in steps:
            steps.add(info.step)
            self._learned(info)
            return
        counts = self.runs.get(info.run_id)
        if counts is not None and counts.waiting[info.step] > 0:
            counts.waiting[info.step] -= 1
            self.waiting.add(-1, attributes)

    def _learned(self, info: InvocationInfo) -> None:
        """Count as waiting the events of a type just seen to go to `info.step`."""
        attributes = {"workflow": info.workflow, "step": info.step}
        for run_id, counts in self.runs.items():
            if counts.workflow != info.workflow:
                continue
            # In this run the step has just started on one of them; in others, on none.
            waiting = counts.emitted[info.event_type] - (run_id == info.run_id)
            if waiting > 0:
                counts.waiting[info.step] += waiting
                self.waiting.add(waiting, attributes)

    def step_finished(self, info: InvocationInfo, output: Event | None, seconds: float) -> None:
        attributes = {"workflow": info.workflow, "step": info.step}
        self.finished.add(1, attributes)
        self.duration.record(seconds, {**attributes, "outcome": "finished"})

    def step_failed(self, info: InvocationInfo, error: BaseException, seconds: float) -> None:
        attributes = {"workflow": info.workflow, "step": info.step}
        self.failed.add(1, {**attributes, "error": type(error).__name__})
        self.duration.record(seconds, {**attributes, "outcome": "failed"})
