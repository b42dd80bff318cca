"""A workflow as the server serves it: its name, its event types, its schemas and graph.

The event types a client may send are those the steps declare, those they
wait for with ``ctx.wait_for_event`` (found in the steps' source, so they
need no registering), the framework's own and any ``additional_events``.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from fanflow.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)
from fanflow.step import StepSpec
from fanflow.workflow import Workflow

__all__ = ["ServedWorkflow", "waited_types"]

FRAMEWORK_EVENTS: tuple[type[Event], ...] = (
    StartEvent,
    StopEvent,
    InputRequiredEvent,
    HumanResponseEvent,
)


class ServedWorkflow:
    """One workflow instance served under `name`."""

    def __init__(self, name: str, wf: Workflow, additional: Sequence[type[Event]] = ()) -> None:
        self.name = name
        self.wf = wf
        graph = type(wf).graph()
        self.specs: list[StepSpec] = list(graph.steps.values())
        self.waited = waited_types(self.specs)
        found = [*graph.event_types, *self.waited, *additional, *FRAMEWORK_EVENTS]
        self.events: list[type[Event]] = list(dict.fromkeys(found))
        self.registry: dict[str, type[Event]] = {t.__name__: t for t in reversed(self.events)}
        starts = graph.start_types
        self.start_type: type[StartEvent] = starts[0] if len(starts) == 1 else StartEvent
        stops = graph.stop_types
        self.stop_type: type[StopEvent] = stops[0] if len(stops) == 1 else StopEvent

    def schemas(self) -> list[dict[str, Any]]:
        """Return the JSON schema of every event type of the workflow."""
        return [t.model_json_schema() for t in self.events]

    def representation(self) -> dict[str, Any]:
        """Return the workflow's graph in the reference's ``WorkflowGraph`` shape."""
        nodes: dict[str, dict[str, Any]] = {}
        edges: list[dict[str, Any]] = []
        producers: dict[str, list[str]] = {}
        for spec in self.specs:
            for t in spec.returns:
                producers.setdefault(t.__name__, []).append(spec.name)
        for spec in self.specs:
            doc = inspect.getdoc(spec.fn)
            nodes[spec.name] = {
                "id": spec.name,
                "label": spec.name,
                "node_type": "step",
                "description": doc,
            }
            for t in (*spec.accepts, *spec.returns):
                nodes.setdefault(t.__name__, _event_node(t, producers.get(t.__name__, [])))
            for t in spec.returns:
                edges.append({"source": spec.name, "target": t.__name__, "label": None})
                if issubclass(t, InputRequiredEvent):
                    nodes.setdefault("external_step", _external())
                    edges.append({"source": t.__name__, "target": "external_step", "label": None})
        for spec in self.specs:
            for t in spec.accepts:
                if issubclass(t, HumanResponseEvent) and "external_step" in nodes:
                    edges.append({"source": "external_step", "target": t.__name__, "label": None})
                edges.append({"source": t.__name__, "target": spec.name, "label": None})
        cls = type(self.wf)
        return {
            "name": cls.__name__,
            "nodes": list(nodes.values()),
            "edges": edges,
            "description": inspect.getdoc(cls) if cls.__doc__ else None,
        }


def _event_node(t: type[Event], produced_by: list[str]) -> dict[str, Any]:
    chain = [c.__name__ for c in t.__mro__ if isinstance(c, type) and issubclass(c, Event)]
    chain = [name for name in chain if name != "Event"] or [t.__name__]
    return {
        "id": t.__name__,
        "label": t.__name__,
        "node_type": "event",
        "event_type": t.__name__,
        "event_types": chain,
        "event_schema": t.model_json_schema(),
        "produced_by": produced_by,
    }


def _external() -> dict[str, Any]:
    return {"id": "external_step", "label": "external_step", "node_type": "external"}


def waited_types(specs: Iterable[StepSpec]) -> list[type[Event]]:
    """Return the event types the steps' source passes to ``wait_for_event``.

    The first argument (or ``event_type=``) of each call is looked up among
    the step function's globals and closure: names only, nothing evaluated.
    """
    found: list[type[Event]] = []
    for spec in specs:
        fn = inspect.unwrap(spec.fn)
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        except (OSError, TypeError, SyntaxError):
            continue  # no source to read (a builtin, a REPL): declare additional_events
        scope = _scope(fn)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _called(node.func) == "wait_for_event"):
                continue
            arg = node.args[0] if node.args else _keyword(node, "event_type")
            target = _resolve(arg, scope) if arg is not None else None
            if isinstance(target, type) and issubclass(target, Event) and target not in found:
                found.append(target)
    return found


def _scope(fn: Any) -> dict[str, Any]:
    scope = dict(getattr(fn, "__globals__", {}))
    with contextlib.suppress(TypeError, ValueError):
        scope.update(inspect.getclosurevars(fn).nonlocals)
    return scope


def _called(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _resolve(expr: ast.expr, scope: dict[str, Any]) -> Any:
    if isinstance(expr, ast.Name):
        return scope.get(expr.id)
    if isinstance(expr, ast.Attribute):
        base = _resolve(expr.value, scope)
        return getattr(base, expr.attr, None) if base is not None else None
    return None
