"""fanflow.otel: spans and metrics for runs, on only after instrument()."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import fanflow.otel
from fanflow import (
    Context,
    Event,
    MemoryStore,
    RecordKind,
    StartEvent,
    StopEvent,
    Workflow,
    step,
)
from fanflow.hooks import RunIdentity
from fanflow.otel._tracing import Tracing
from fanflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed

TRACER = trace.get_tracer("tests")  # the global provider: a no-op one in these tests


class Job(Event):
    n: int


class Done(Event):
    n: int


class FanOut(Workflow):
    """Start fans out `count` jobs; each opens a span of its own; collect gathers them."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Job | None:
        count = ev.get("count", 3)
        await ctx.store.set("count", count)
        for n in range(count):
            ctx.send_event(Job(n=n))

    @step(num_workers=8)
    async def work(self, ev: Job) -> Done:
        with Holder.tracer.start_as_current_span("inner"):
            await asyncio.sleep(0)
        return Done(n=ev.n)

    @step
    async def collect(self, ctx: Context, ev: Done) -> StopEvent | None:
        count = await ctx.store.get("count")
        done = ctx.collect_events(ev, [Done] * count)
        return None if done is None else StopEvent(result=sum(d.n for d in done))


class Holder:
    """The tracer that steps open their own spans with (set by the fixture)."""

    tracer: trace.Tracer = TRACER
    tracer_provider: TracerProvider | None = None


class Flaky(Workflow):
    """Fails twice, then succeeds."""

    calls = 0

    @step(retry_policy=retry_policy(wait=wait_fixed(0.0), stop=stop_after_attempt(3)))
    async def flaky(self, ev: StartEvent) -> StopEvent:
        Flaky.calls += 1
        if Flaky.calls < 3:
            raise ValueError(f"try {Flaky.calls}")
        return StopEvent(result="ok")


class Broken(Workflow):
    @step
    async def broken(self, ev: StartEvent) -> StopEvent:
        raise RuntimeError("boom")


class Blocking(Workflow):
    """A plain def step runs in a thread; its own span still nests under the step's."""

    @step
    def blocking(self, ev: StartEvent) -> StopEvent:
        with Holder.tracer.start_as_current_span("in-thread"):
            return StopEvent(result="ok")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Instrument with an in-memory span exporter; uninstrument afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    Holder.tracer = provider.get_tracer("tests")
    Holder.tracer_provider = provider
    fanflow.otel.instrument(tracer_provider=provider, metrics=False)
    yield exporter
    fanflow.otel.uninstrument()
    Holder.tracer = TRACER


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    """Instrument metrics with an in-memory reader; uninstrument afterwards."""
    metric_reader = InMemoryMetricReader()
    fanflow.otel.instrument(meter_provider=MeterProvider([metric_reader]), spans=False)
    yield metric_reader
    fanflow.otel.uninstrument()


def _by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _ctx(span: ReadableSpan) -> trace.SpanContext:
    context = span.get_span_context()
    assert context is not None
    return context


def test_import_fanflow_does_not_import_opentelemetry() -> None:
    """``import fanflow`` (and running a workflow) loads no OpenTelemetry module."""
    code = (
        "import asyncio, sys, fanflow\n"
        "class W(fanflow.Workflow):\n"
        "    @fanflow.step\n"
        "    async def s(self, ev: fanflow.StartEvent) -> fanflow.StopEvent:\n"
        "        return fanflow.StopEvent(result=1)\n"
        "async def main():\n"
        "    await W().run()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'fanflow.otel'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr


async def test_nothing_is_traced_before_instrument() -> None:
    """Without instrument() a run adds no listener and makes no span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert not fanflow.otel.is_instrumented()
    assert await FanOut().run(count=2) == 1
    assert exporter.get_finished_spans() == ()


async def test_step_spans_are_children_of_the_run_span_and_linked_to_their_emitter(
    spans: InMemorySpanExporter,
) -> None:
    """Each step span's parent is the run span; its link names the emitting invocation."""
    handler = FanOut().run(count=3)
    assert await handler == 3
    finished = spans.get_finished_spans()
    (run,) = _by_name(finished, "fanflow.run")
    assert run.attributes is not None and run.attributes["fanflow.run_id"] == handler.run_id
    assert run.attributes["fanflow.status"] == "ok"
    steps = _by_name(finished, "fanflow.step")
    assert len(steps) == 1 + 3 + 3
    by_step: dict[str, list[ReadableSpan]] = {}
    for span in steps:
        assert _parent_id(span) == _ctx(run).span_id
        assert _ctx(span).trace_id == _ctx(run).trace_id
        assert span.attributes is not None
        by_step.setdefault(str(span.attributes["fanflow.step"]), []).append(span)
    (start,) = by_step["start"]
    assert start.links == ()  # the start event comes from outside the run
    for work in by_step["work"]:
        assert [link.context.span_id for link in work.links] == [_ctx(start).span_id]
        assert work.attributes is not None and work.attributes["fanflow.event_type"] == "Job"
        assert work.attributes["fanflow.attempt"] == 1
    work_ids = {_ctx(w).span_id for w in by_step["work"]}
    assert {link.context.span_id for c in by_step["collect"] for link in c.links} == work_ids


async def test_spans_a_step_opens_nest_under_its_invocation(spans: InMemorySpanExporter) -> None:
    """A span opened inside a step (async or in a thread) is a child of that step's span."""
    await FanOut().run(count=2)
    await Blocking().run()
    finished = spans.get_finished_spans()
    ids = {_ctx(s).span_id: s for s in finished}
    for inner in _by_name(finished, "inner") + _by_name(finished, "in-thread"):
        parent = ids[_parent_id(inner) or 0]
        assert parent.name in ("fanflow.step work", "fanflow.step blocking")


async def test_retries_are_attempt_spans_linked_to_the_attempt_before(
    spans: InMemorySpanExporter,
) -> None:
    """Two failed attempts and a good one: three spans, errors on the first two."""
    Flaky.calls = 0
    assert await Flaky().run() == "ok"
    attempts = sorted(
        _by_name(spans.get_finished_spans(), "fanflow.step"),
        key=lambda s: int((s.attributes or {})["fanflow.attempt"]),  # type: ignore[arg-type]
    )
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert attempts[0].events[0].name == "exception"
    for before, after in itertools.pairwise(attempts):
        assert [link.context.span_id for link in after.links] == [_ctx(before).span_id]
        assert after.attributes is not None and after.attributes["fanflow.retry_delay"] == 0.0


async def test_a_failed_run_has_an_error_span(spans: InMemorySpanExporter) -> None:
    """The run span of a failed run has status ERROR and the exception as an event."""
    with pytest.raises(RuntimeError):
        await Broken().run()
    (run,) = _by_name(spans.get_finished_spans(), "fanflow.run")
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None and run.attributes["fanflow.status"] == "failed"
    assert any(e.name == "exception" for e in run.events)


async def test_a_run_started_inside_a_span_is_its_child(spans: InMemorySpanExporter) -> None:
    """The caller's current span is the parent of the run span."""
    with Holder.tracer.start_as_current_span("request") as request:
        await FanOut().run(count=1)
    (run,) = _by_name(spans.get_finished_spans(), "fanflow.run")
    assert _parent_id(run) == request.get_span_context().span_id


async def test_a_resumed_run_continues_its_trace(spans: InMemorySpanExporter) -> None:
    """Resumed in the same process, the run's new span is a child of its first run span."""
    store = MemoryStore(max_runs=None)
    first = FanOut(store=store).run(count=2)
    await first
    records = store.records(first.run_id)
    cut = next(i for i, r in enumerate(records) if r.kind is RecordKind.STEP_FINISHED)
    later = MemoryStore(max_runs=None)
    later.write(records[: cut + 1])
    assert await FanOut(store=later).resume(first.run_id) == 1
    runs = _by_name(spans.get_finished_spans(), "fanflow.run")
    original, resumed = runs
    assert resumed.attributes is not None and resumed.attributes["fanflow.resumed"] is True
    assert _ctx(resumed).trace_id == _ctx(original).trace_id
    assert _parent_id(resumed) == _ctx(original).span_id


def test_trace_goes_into_and_comes_from_run_metadata() -> None:
    """With ``RunIdentity.metadata``, the traceparent is written there and read back on resume."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    writer = Tracing(provider.get_tracer("tests"))
    metadata: dict[str, object] = {}
    run = SimpleNamespace(run_id="r1", workflow="w", resumed=False, metadata=metadata)
    writer.run_started(run)  # type: ignore[arg-type]
    writer.run_finished(run, "ok", None)  # type: ignore[arg-type]
    traceparent = metadata[fanflow.otel.TRACE_KEY]
    assert isinstance(traceparent, str) and traceparent.startswith("00-")

    reader = Tracing(provider.get_tracer("tests"))  # another process: nothing remembered
    again = SimpleNamespace(run_id="r1", workflow="w", resumed=True, metadata=metadata)
    reader.run_started(again)  # type: ignore[arg-type]
    reader.run_finished(again, "ok", None)  # type: ignore[arg-type]
    first, second = exporter.get_finished_spans()
    assert _ctx(second).trace_id == _ctx(first).trace_id
    assert _parent_id(second) == _ctx(first).span_id


async def test_spans_of_steps_cut_off_by_the_run_end_are_ended(
    spans: InMemorySpanExporter,
) -> None:
    """A step still running when another one stops the run gets its span ended too."""

    class Race(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent | Job:
            ctx.send_event(Job(n=0))
            await asyncio.sleep(0)
            return StopEvent(result="first")

        @step
        async def slow(self, ev: Job) -> None:
            await asyncio.sleep(10)

    assert await Race().run() == "first"
    (slow,) = _by_name(spans.get_finished_spans(), "fanflow.step slow")
    assert slow.attributes is not None and slow.attributes["fanflow.cancelled"] is True
    assert RunIdentity  # the type listeners receive


async def test_a_thousand_concurrent_runs_keep_their_spans_apart(
    spans: InMemorySpanExporter,
) -> None:
    """1,000 concurrent fan-out runs: every span sits in its own run's trace, under its parent."""
    flow = FanOut(timeout=None)
    handlers = [flow.run(count=3) for _ in range(1000)]
    assert await asyncio.gather(*handlers) == [3] * 1000
    finished = spans.get_finished_spans()
    runs = {
        str((s.attributes or {})["fanflow.run_id"]): s for s in _by_name(finished, "fanflow.run")
    }
    assert len(runs) == 1000 and {h.run_id for h in handlers} == set(runs)
    steps = _by_name(finished, "fanflow.step")
    assert len(steps) == 1000 * 7
    step_by_id = {_ctx(s).span_id: s for s in steps}
    for span in steps:
        run = runs[str((span.attributes or {})["fanflow.run_id"])]
        assert _ctx(span).trace_id == _ctx(run).trace_id
        assert _parent_id(span) == _ctx(run).span_id
        for link in span.links:
            emitter = step_by_id[link.context.span_id]
            assert (emitter.attributes or {})["fanflow.run_id"] == run.attributes["fanflow.run_id"]  # type: ignore[index]
    inner = _by_name(finished, "inner")
    assert len(inner) == 3000
    for span in inner:
        parent = step_by_id[_parent_id(span) or 0]
        assert parent.name == "fanflow.step work"
        assert _ctx(span).trace_id == _ctx(parent).trace_id


# ---------------------------------------------------------------- metrics


def _points(reader: InMemoryMetricReader) -> dict[str, list[object]]:
    data = reader.get_metrics_data()
    found: dict[str, list[object]] = {}
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _value(reader: InMemoryMetricReader, name: str, **attributes: str) -> float:
    total = 0.0
    for point in _points(reader).get(name, []):
        if all((point.attributes or {}).get(k) == v for k, v in attributes.items()):  # type: ignore[attr-defined]
            total += point.value if hasattr(point, "value") else point.count  # type: ignore[attr-defined]
    return total


async def test_metrics_count_steps_and_time_them(reader: InMemoryMetricReader) -> None:
    """Steps started, finished and failed, durations, and runs active back at zero."""
    Flaky.calls = 0
    await FanOut().run(count=3)
    await Flaky().run()
    assert _value(reader, "fanflow.steps.started", step="work") == 3
    assert _value(reader, "fanflow.steps.finished", step="collect") == 3
    assert _value(reader, "fanflow.steps.started", step="flaky") == 3
    assert _value(reader, "fanflow.steps.failed", step="flaky") == 2
    assert _value(reader, "fanflow.step.duration", step="flaky") == 3
    assert _value(reader, "fanflow.runs.active") == 0
    assert _value(reader, "fanflow.step.events_waiting") == 0


async def test_runs_active_and_events_waiting_while_a_run_lasts(
    reader: InMemoryMetricReader,
) -> None:
    """Mid-run, one run is active and the jobs not yet started are waiting for their step."""
    seen: list[tuple[float, float]] = []

    class Queue(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Job | None:
            for n in range(5):
                ctx.send_event(Job(n=n))

        @step(num_workers=1)
        async def work(self, ev: Job) -> StopEvent | None:
            if ev.n == 0:
                await asyncio.sleep(0)
                seen.append(
                    (
                        _value(reader, "fanflow.runs.active"),
                        _value(reader, "fanflow.step.events_waiting", step="work"),
                    )
                )
            return StopEvent() if ev.n == 4 else None

    await Queue().run()
    assert seen == [(1, 4)]
    assert _value(reader, "fanflow.step.events_waiting") == 0


async def test_prometheus_text_renders_the_metrics() -> None:
    """instrument(prometheus=True): prometheus_text() has fanflow's counters in text format."""
    pytest.importorskip("opentelemetry.exporter.prometheus")
    fanflow.otel.instrument(prometheus=True, spans=False)
    try:
        await FanOut().run(count=2)
        text = fanflow.otel.prometheus_text()
    finally:
        fanflow.otel.uninstrument()
    started = [line for line in text.splitlines() if line.startswith("fanflow_steps_started_total")]
    assert any('step="work"' in line and line.endswith(" 2.0") for line in started)
    assert 'fanflow_step_duration_seconds_bucket{le="0.005"' in text


def test_prometheus_text_before_instrument_says_what_to_call() -> None:
    """Asked before instrument(prometheus=True), prometheus_text names the call to make."""
    fanflow.otel._prometheus = None
    with pytest.raises(RuntimeError, match=r"instrument\(prometheus=True\)"):
        fanflow.otel.prometheus_text()


async def test_a_run_resumed_by_a_fresh_tracer_continues_its_trace_from_the_journal(
    spans: InMemorySpanExporter,
) -> None:
    """The traceparent kept in RUN_STARTED lets a new process's tracer continue the trace."""
    store = MemoryStore(max_runs=None)
    first = FanOut(store=store).run(count=2)
    await first
    records = store.records(first.run_id)
    assert "trace" in records[0].data  # journaled with the run's first record
    cut = next(i for i, r in enumerate(records) if r.kind is RecordKind.STEP_FINISHED)
    later = MemoryStore(max_runs=None)
    later.write(records[: cut + 1])
    provider = Holder.tracer_provider
    fanflow.otel.uninstrument()  # a new process: a tracer that remembers nothing
    fanflow.otel.instrument(tracer_provider=provider, metrics=False)
    assert await FanOut(store=later).resume(first.run_id) == 1
    original, resumed = _by_name(spans.get_finished_spans(), "fanflow.run")
    assert _ctx(resumed).trace_id == _ctx(original).trace_id
    assert _parent_id(resumed) == _ctx(original).span_id
