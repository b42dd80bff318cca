"""Spans for runs and step invocations, built from the engine's listener calls.

One span per run (``fanflow.run``), one per attempt of a step invocation
(``fanflow.step``). A step span's parent is its run's span; it is linked
to the span of the invocation that emitted the event it handles, and a
retry's span is linked to the attempt before it. The step span is made
current in the invocation's own context, so spans a step opens nest
under it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from contextvars import Token
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fanflow._runtime.hooks import InvocationInfo, Listener, RunIdentity
from fanflow.events import Event

__all__ = ["TRACE_KEY", "Tracing"]

TRACE_KEY = "trace"  # where a run's W3C traceparent goes in its RUN_STARTED data
MAX_EMITTERS = 65_536  # emitting spans kept per run for links (oldest forgotten first)
MAX_REMEMBERED = 10_000  # runs whose trace a resume in this process can continue
_ENDED_RUN = {"ok": StatusCode.UNSET, "cancelled": StatusCode.UNSET}
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(slots=True)
class _Attempt:
    span: Span
    token: Token[Context]


@dataclass(slots=True)
class _RunTrace:
    span: Span
    token: Token[Context]
    parent: SpanContext | None
    attempts: dict[int, _Attempt] = field(default_factory=dict)  # invocation -> open attempt
    emitters: OrderedDict[int, SpanContext] = field(default_factory=OrderedDict)
    retried: dict[int, tuple[SpanContext, float]] = field(default_factory=dict)
    # The engine calls step_finished before it emits the returned event.
    last_finished: tuple[int, SpanContext] | None = None


class Tracing(Listener):
    """A listener that turns runs and step attempts into OpenTelemetry spans."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self.runs: dict[str, _RunTrace] = {}
        # run id -> traceparent, for resumes in this process when the engine
        # does not hand the journal's copy back (`RunIdentity.metadata`).
        self.remembered: OrderedDict[str, str] = OrderedDict()

    # ------------------------------------------------------------ runs

    def run_started(self, run: RunIdentity) -> None:
        metadata = getattr(run, "metadata", None)
        parent = otel_context.get_current()
        if run.resumed:
            carrier = _traceparent(metadata) or self.remembered.get(run.run_id)
            if carrier is not None:
                parent = _PROPAGATOR.extract({"traceparent": carrier})
        attributes: dict[str, Any] = {
            "fanflow.run_id": run.run_id,
            "fanflow.workflow": run.workflow,
        }
        if run.resumed:
            attributes["fanflow.resumed"] = True
        span = self.tracer.start_span(
            f"fanflow.run {run.workflow}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        parent_span = trace.get_current_span(parent).get_span_context()
        self.runs[run.run_id] = _RunTrace(
            span, token, parent_span if parent_span.is_valid else None
        )
        if not run.resumed:
            self._remember(run.run_id, span, metadata)

    def _remember(self, run_id: str, span: Span, metadata: object) -> None:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
        traceparent = carrier.get("traceparent")
        if traceparent is None:
            return
        if isinstance(metadata, MutableMapping):
            metadata[TRACE_KEY] = traceparent  # journaled with RUN_STARTED by the engine
        self.remembered[run_id] = traceparent
        if len(self.remembered) > MAX_REMEMBERED:
            self.remembered.popitem(last=False)

    def run_finished(self, run: RunIdentity, status: str, error: BaseException | None) -> None:
        state = self.runs.pop(run.run_id, None)
        if state is None:
            return
        for attempt in state.attempts.values():
            # Cancelled with its run: the engine calls no step hook for it.
            attempt.span.set_attribute("fanflow.cancelled", True)
            attempt.span.set_status(Status(StatusCode.ERROR, f"run ended ({status})"))
            attempt.span.end()
        span = state.span
        span.set_attribute("fanflow.status", status)
        if error is not None:
            span.record_exception(error)
        code = _ENDED_RUN.get(status, StatusCode.ERROR)
        if code is StatusCode.ERROR:
            span.set_status(Status(code, _describe(error) if error is not None else status))
        span.end()
        _detach(state.token)

    # ------------------------------------------------------------ steps

    def event_emitted(
        self, run_id: str, event_id: int, event: Event, by: InvocationInfo | None
    ) -> None:
        state = self.runs.get(run_id)
        if state is None:
            return
        if by is not None:
            attempt = state.attempts.get(by.invocation)
            if attempt is not None:
                emitter = attempt.span.get_span_context()
            elif state.last_finished is not None and state.last_finished[0] == by.invocation:
                emitter = state.last_finished[1]
            else:
                emitter = None
        else:
            # From outside the run: the sender's span, if it has one (a request's).
            emitter = trace.get_current_span().get_span_context()
            run_span = state.span.get_span_context()
            if not emitter.is_valid or emitter.span_id in (run_span.span_id, _id(state.parent)):
                emitter = None
        if emitter is not None:
            emitters = state.emitters
            emitters[event_id] = emitter
            if len(emitters) > MAX_EMITTERS:
                emitters.popitem(last=False)

    def step_started(self, info: InvocationInfo) -> None:
        state = self.runs.get(info.run_id)
        if state is None:
            return
        links = []
        emitter = state.emitters.get(info.event_id)
        if emitter is not None:
            links.append(Link(emitter, {"fanflow.link": "emitted_by"}))
        attributes: dict[str, Any] = {
            "fanflow.run_id": info.run_id,
            "fanflow.workflow": info.workflow,
            "fanflow.step": info.step,
            "fanflow.invocation": info.invocation,
            "fanflow.attempt": info.attempt,
            "fanflow.event_id": info.event_id,
            "fanflow.event_type": info.event_type.__name__,
            "fanflow.worker": info.worker,
        }
        retried = state.retried.pop(info.invocation, None)
        if retried is not None:
            links.append(Link(retried[0], {"fanflow.link": "retry_of"}))
            attributes["fanflow.retry_delay"] = retried[1]
        span = self.tracer.start_span(
            f"fanflow.step {info.step}",
            context=trace.set_span_in_context(state.span),
            links=links,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        state.attempts[info.invocation] = _Attempt(span, token)

    def step_finished(self, info: InvocationInfo, output: Event | None, seconds: float) -> None:
        attempt = self._close(info)
        if attempt is None:
            return
        span = attempt.span
        span.set_attribute("fanflow.output_type", type(output).__name__ if output else "None")
        span.end()
        if output is not None:
            state = self.runs.get(info.run_id)
            if state is not None:
                state.last_finished = (info.invocation, span.get_span_context())

    def step_failed(self, info: InvocationInfo, error: BaseException, seconds: float) -> None:
        attempt = self._close(info)
        if attempt is None:
            return
        span = attempt.span
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, _describe(error)))
        span.end()
        state = self.runs.get(info.run_id)
        if state is not None:
            state.retried[info.invocation] = (span.get_span_context(), 0.0)

    def step_retried(self, info: InvocationInfo, delay: float) -> None:
        state = self.runs.get(info.run_id)
        if state is None:
            return
        failed = state.retried.get(info.invocation)
        if failed is not None:
            state.retried[info.invocation] = (failed[0], delay)

    def _close(self, info: InvocationInfo) -> _Attempt | None:
        state = self.runs.get(info.run_id)
        if state is None:
            return None
        attempt = state.attempts.pop(info.invocation, None)
        if attempt is not None:
            _detach(attempt.token)
        # An attempt that fails for good leaves no retry to link.
        state.retried.pop(info.invocation, None)
        return attempt


def _traceparent(metadata: object) -> str | None:
    if isinstance(metadata, Mapping):
        value = metadata.get(TRACE_KEY)
        return value if isinstance(value, str) else None
    return None


def _detach(token: Token[Context]) -> None:
    otel_context.detach(token)  # logs (never raises) a token from another context


def _id(context: SpanContext | None) -> int:
    return context.span_id if context is not None else 0


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
