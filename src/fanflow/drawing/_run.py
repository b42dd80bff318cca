"""What one run did, read from its records, and laid over a diagram.

Which edges carried how many events, how often each step ran and for how
long, and which step's error ended the run. Records are the only input, so
a run can be drawn from any store, after the fact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from fanflow._runtime.records import Record, RecordKind
from fanflow.drawing._model import Diagram, Node, flow_diagram
from fanflow.events import Event
from fanflow.workflow import Workflow

__all__ = ["RunSummary", "StepStats", "format_seconds", "run_diagram", "summarize"]


class StepStats:
    """How one step fared in one run."""

    __slots__ = ("failures", "finished", "invocations", "seconds")

    def __init__(self) -> None:
        self.invocations = 0
        self.failures = 0  # failed attempts, retried or not
        self.seconds: dict[int, float] = {}  # invocation -> time spent in its attempts
        self.finished: set[int] = set()

    @property
    def total(self) -> float:
        """Return the time spent in all attempts of all invocations."""
        return sum(self.seconds.values())

    @property
    def longest(self) -> float:
        """Return the time of the slowest invocation (its attempts added up)."""
        return max(self.seconds.values(), default=0.0)


class RunSummary:
    """Everything the drawing of a run needs, counted from its records."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.workflow = "workflow"
        self.status = "running"
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.failed_step: str | None = None
        self.steps: dict[str, StepStats] = {}
        self.event_types: list[type[Event]] = []
        self.emitted: Counter[tuple[str, type[Event]]] = Counter()
        self.delivered: Counter[tuple[type[Event], str]] = Counter()

    @property
    def seconds(self) -> float | None:
        """Return how long the run took, or None if it has not finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def summarize(records: Sequence[Record]) -> RunSummary:
    """Count what the run of `records` did; ValueError if they are empty or mixed."""
    if not records:
        raise ValueError("no records to draw: the run has not started or the store forgot it")
    run_ids = {r.run_id for r in records}
    if len(run_ids) > 1:
        raise ValueError(
            f"records of {len(run_ids)} runs given; pass the records of one run "
            "(store.records(run_id))"
        )
    summary = RunSummary(records[0].run_id)
    types: dict[int | None, type[Event]] = {}
    failed_by: dict[int, str] = {}
    for record in records:
        _count(summary, record, types, failed_by)
    if summary.error is not None:
        summary.failed_step = failed_by.get(id(summary.error))
    return summary


def _count(
    summary: RunSummary,
    record: Record,
    types: dict[int | None, type[Event]],
    failed_by: dict[int, str],
) -> None:
    kind, step = record.kind, record.step
    if kind is RecordKind.EVENT_EMITTED and record.event is not None:
        event_type = types[record.event_id] = type(record.event)
        if event_type not in summary.event_types:
            summary.event_types.append(event_type)
        if step is not None:
            summary.emitted[step, event_type] += 1
    elif step is None or record.invocation is None:
        _run_level(summary, record)
    elif kind is RecordKind.STEP_STARTED:
        stats = summary.steps.setdefault(step, StepStats())
        if record.invocation not in stats.seconds:
            stats.invocations += 1
            stats.seconds[record.invocation] = 0.0
            if record.event_id in types:
                summary.delivered[types[record.event_id], step] += 1
    elif kind in (RecordKind.STEP_FINISHED, RecordKind.STEP_FAILED):
        stats = summary.steps.setdefault(step, StepStats())
        stats.seconds[record.invocation] = stats.seconds.get(record.invocation, 0.0) + float(
            record.data or 0.0
        )
        if kind is RecordKind.STEP_FINISHED:
            stats.finished.add(record.invocation)
        else:
            stats.failures += 1
            if record.error is not None:
                failed_by[id(record.error)] = step


def _run_level(summary: RunSummary, record: Record) -> None:
    if record.kind is RecordKind.RUN_STARTED:
        summary.workflow = str(record.data or summary.workflow)
        summary.started_at = record.at
    elif record.kind is RecordKind.RUN_FINISHED:
        summary.status = str(record.data)
        summary.error = record.error
        summary.finished_at = record.at


def run_diagram(
    records: Sequence[Record], flow: type[Workflow] | Workflow | None = None
) -> Diagram:
    """Return the diagram of the run of `records`, over `flow`'s full graph if given."""
    summary = summarize(records)
    diagram = flow_diagram(flow) if flow is not None else Diagram(title=summary.workflow)
    for event_type in summary.event_types:
        diagram.event_node(event_type)
    for name in summary.steps:
        diagram.step_node(name)
    for (step, event_type), count in summary.emitted.items():
        diagram.edge(diagram.step_node(step), diagram.event_node(event_type)).count = count
    for (event_type, step), count in summary.delivered.items():
        diagram.edge(diagram.event_node(event_type), diagram.step_node(step)).count = count
    _mark(diagram, summary)
    diagram.title = f"{summary.workflow} · run {summary.run_id[:12]}"
    diagram.subtitle = _outcome(summary)
    diagram.alert = summary.status not in ("ok", "running")
    return diagram


def _mark(diagram: Diagram, summary: RunSummary) -> None:
    for edge in diagram.edges:
        if not edge.count:
            edge.tags.append("idle")
    seen = set(summary.event_types)
    for event_type, node in diagram.by_event.items():
        if event_type not in seen:
            node.tags.append("idle")
    for name, node in diagram.by_step.items():
        stats = summary.steps.get(name)
        if stats is None:
            node.tags.append("idle")
            continue
        _mark_step(node, stats, failed=name == summary.failed_step)


def _mark_step(node: Node, stats: StepStats, *, failed: bool) -> None:
    runs = f"{stats.invocations} run{'s' * (stats.invocations != 1)}"
    node.stats = (
        f"{runs} · total {format_seconds(stats.total)} · max {format_seconds(stats.longest)}"
    )
    unfinished = stats.invocations - len(stats.finished)
    node.rows += [
        ("invocations", str(stats.invocations)),
        ("total time", format_seconds(stats.total)),
        ("slowest", format_seconds(stats.longest)),
        ("failed attempts", str(stats.failures)),
    ]
    if unfinished and not failed:
        node.rows.append(("unfinished", f"{unfinished} (cut off when the run ended)"))
    if failed:
        node.tags.append("failed")
        node.badges.append(("failed", "b-failed"))
    elif stats.failures:
        node.tags.append("retried")
        node.badges.append((f"{stats.failures} failed attempt(s)", "b-retried"))


def _outcome(summary: RunSummary) -> str:
    took = f" in {format_seconds(summary.seconds)}" if summary.seconds is not None else ""
    text = f"{summary.status}{took}"
    if summary.error is not None:
        text += f": {type(summary.error).__name__}: {summary.error}"
        if summary.failed_step is not None:
            text += f" (raised by step {summary.failed_step})"
    return text


def format_seconds(seconds: float) -> str:
    """Return `seconds` as a short human duration: ``350 µs``, ``12 ms``, ``1.25 s``."""
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"
