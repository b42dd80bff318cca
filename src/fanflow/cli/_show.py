"""Text for ``fanflow runs list`` and ``runs show``: a table of runs, a line per record."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from fanflow._runtime.records import Record, RecordKind, RunInfo
from fanflow.cli._run import error_name
from fanflow.events import Event
from fanflow.serialize import UnloadedEvent

__all__ = ["duration_text", "event_text", "record_line", "record_lines", "runs_table"]

SHORT = 100  # characters of an event or value shown in a record line
K = RecordKind


def runs_table(runs: Sequence[RunInfo]) -> list[str]:
    """Return `runs` as the lines of a table: id, workflow, status, started, duration."""
    rows = [("ID", "WORKFLOW", "STATUS", "STARTED", "DURATION")]
    rows += [
        (
            info.run_id,
            info.workflow,
            info.status,
            datetime.fromtimestamp(info.started_at).strftime("%Y-%m-%d %H:%M:%S"),
            duration_text(info.duration),
        )
        for info in runs
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def duration_text(seconds: float | None) -> str:
    """Return `seconds` as ``0.62 s``, ``12.5 s``, ``3 min 07 s`` or ``2 h 05 min``; None: ``-``."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def record_lines(records: Sequence[Record]) -> list[str]:
    """Return one line per record: seq, seconds since the first, kind, step#invocation, details."""
    start = records[0].at if records else 0.0
    return [record_line(record, start) for record in records]


def record_line(record: Record, start: float) -> str:
    """Return `record` as one line; `start` is the time offsets are counted from."""
    who = f"{record.step}#{record.invocation}" if record.step else "-"
    parts = [_details(record)]
    if record.event is not None:
        parts.append(_short(event_text(record.event)))
    if record.error is not None:
        parts.append(f"error {error_name(record.error)}: {_short(str(record.error))}")
    text = "  ".join(part for part in parts if part)
    offset = f"+{record.at - start:.3f}s"
    return f"{record.seq:>5}  {offset:>9}  {record.kind.value:<14} {who:<14} {text}".rstrip()


def event_text(event: Event) -> str:
    """Return `event` as ``Name {fields}`` (an event whose type is not imported too)."""
    if isinstance(event, UnloadedEvent):
        name = event.stored_type.rpartition(":")[2]
    else:
        name = type(event).__name__
    fields = json.dumps(event.model_dump(), default=repr, ensure_ascii=False)
    return f"{name} {fields}"


def _details(record: Record) -> str:
    show = _DETAILS.get(record.kind)
    try:
        return show(record) if show is not None else _value(record.data)
    except (TypeError, ValueError, KeyError, AttributeError):  # data of an unexpected shape
        return _value(record.data)


def _started(r: Record) -> str:
    return f"{r.data['workflow']} from {r.data['source']}"


def _emitted(r: Record) -> str:
    to = f" to step {r.data}" if r.data else ""
    by = "" if r.invocation is not None else " from outside"
    return f"#{r.event_id}{by}{to}"


def _step_started(r: Record) -> str:
    return f"input #{r.event_id}, attempt {r.data}"


def _step_finished(r: Record) -> str:
    output = "no output" if r.event_id is None else f"output #{r.event_id}"
    return f"{output}, {_seconds(r.data)}"


def _wait_started(r: Record) -> str:
    name, requirements = r.data
    return f"for {name}" + (f" {_value(requirements)}" if requirements else "")


def _collected(r: Record) -> str:
    buffer_id, taken = r.data
    into = f" (buffer {buffer_id})" if buffer_id else ""
    return "took " + ", ".join(f"#{i}" for i in taken) + into


def _state_changed(r: Record) -> str:
    path, value = r.data
    return f"{path or '(whole state)'} = {_value(value)}"


def _finished(r: Record) -> str:
    return str(r.data) + (f", stop event #{r.event_id}" if r.event_id is not None else "")


_DETAILS: dict[RecordKind, Callable[[Record], str]] = {
    K.RUN_STARTED: _started,
    K.EVENT_EMITTED: _emitted,
    K.STEP_STARTED: _step_started,
    K.STEP_FINISHED: _step_finished,
    K.STEP_FAILED: lambda r: f"after {_seconds(r.data)}",
    K.WAIT_STARTED: _wait_started,
    K.WAIT_RESOLVED: lambda r: f"got #{r.event_id}",
    K.COLLECT_ADDED: lambda r: f"#{r.event_id}" + (f" (buffer {r.data})" if r.data else ""),
    K.COLLECTED: _collected,
    K.STREAMED: lambda r: "",
    K.STATE_CHANGED: _state_changed,
    K.RUN_RESUMED: lambda r: f"by {r.data}",
    K.RUN_FINISHED: _finished,
}


def _seconds(value: Any) -> str:
    return f"{float(value):.3f} s"


def _value(value: Any) -> str:
    if value is None:
        return ""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return _short(text)


def _short(text: str) -> str:
    return text if len(text) <= SHORT else text[: SHORT - 1] + "\u2026"
