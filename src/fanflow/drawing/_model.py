"""The diagram a drawing shows: nodes and edges read from a step graph.

`flow_diagram` turns a workflow's static graph into a `Diagram`: one node
per step and per event type, an edge event -> step for every accepted type
and step -> event for every type a step may emit. The HTML page, Mermaid
and DOT all render this one structure. `fanflow.drawing._run` lays a run's
records over it.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from fanflow.events import Event, StartEvent, StopEvent
from fanflow.graph import StepGraph, is_external
from fanflow.step import StepSpec
from fanflow.workflow import Workflow

__all__ = ["DEFAULT_WORKERS", "Diagram", "Edge", "Node", "flow_diagram", "workflow_class"]

DEFAULT_WORKERS = 4  # `@step`'s default num_workers: marked, but not highlighted
TIMES = "\u00d7"  # the multiplication sign of "x4 workers"


# Plain classes, not dataclasses: `import fanflow` imports this module, and
# each dataclass costs about a millisecond to create.


class Node:
    """One box of the drawing: a step or an event type."""

    __slots__ = ("badges", "id", "kind", "label", "rows", "stats", "tags", "title")

    def __init__(self, id: str, kind: str, label: str, title: str) -> None:
        self.id = id
        self.kind = kind  # "step" or "event"
        self.label = label
        self.title = title  # first line of the tooltip
        self.rows: list[tuple[str, str]] = []  # the tooltip's table
        self.tags: list[str] = []  # CSS classes: start, stop, failed, idle...
        self.badges: list[tuple[str, str]] = []  # (text, CSS class) marks
        self.stats = ""  # what a run did here, one line


class Edge:
    """An arrow: an event type going into a step, or a step emitting an event type."""

    __slots__ = ("count", "source", "tags", "target")

    def __init__(self, source: str, target: str) -> None:
        self.source = source
        self.target = target
        self.count: int | None = None  # events that went this way in a run
        self.tags: list[str] = []


class Diagram:
    """What to draw: nodes, edges, a title and an optional line under it."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.subtitle = ""
        self.alert = False  # show the subtitle as a failure
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.by_step: dict[str, Node] = {}
        self.by_event: dict[type[Event], Node] = {}
        self._edge_index: dict[tuple[str, str], Edge] = {}

    def edge(self, source: Node, target: Node) -> Edge:
        """Return the edge `source` -> `target`, adding it if it is new."""
        key = (source.id, target.id)
        found = self._edge_index.get(key)
        if found is None:
            found = self._edge_index[key] = Edge(source.id, target.id)
            self.edges.append(found)
        return found

    def step_node(self, name: str, spec: StepSpec | None = None) -> Node:
        """Return the node of step `name`, adding it if it is new."""
        node = self.by_step.get(name)
        if node is None:
            node = Node(f"s{len(self.by_step)}", "step", name, f"step {name}")
            if spec is not None:
                _describe_step(node, spec)
            self.by_step[name] = node
            self.nodes.append(node)
        return node

    def event_node(self, event_type: type[Event]) -> Node:
        """Return the node of `event_type`, adding it if it is new."""
        node = self.by_event.get(event_type)
        if node is None:
            label = _unique_label(event_type, self.by_event)
            node = Node(f"e{len(self.by_event)}", "event", label, f"event {label}")
            _describe_event(node, event_type)
            self.by_event[event_type] = node
            self.nodes.append(node)
        return node


def workflow_class(flow: object) -> type[Workflow]:
    """Return the Workflow subclass `flow` is, or is an instance of; TypeError otherwise."""
    cls = flow if isinstance(flow, type) else type(flow)
    if not issubclass(cls, Workflow) or cls is Workflow:
        raise TypeError(
            f"expected a Workflow subclass or instance, got {_kind_of(flow)}; "
            "pass the class (MyFlow) or an instance (MyFlow())"
        )
    return cls


def flow_diagram(flow: type[Workflow] | Workflow) -> Diagram:
    """Return the diagram of every step and event type of `flow` and how they connect."""
    cls = workflow_class(flow)
    graph = cls.graph()
    diagram = Diagram(title=cls.__name__)
    add_graph(diagram, graph)
    return diagram


def add_graph(diagram: Diagram, graph: StepGraph) -> None:
    """Add `graph`'s steps, event types and edges to `diagram`."""
    for event_type in _start_first(graph.event_types):
        diagram.event_node(event_type)
    for spec in graph.steps.values():
        diagram.step_node(spec.name, spec)
    for spec in graph.steps.values():
        step_node = diagram.by_step[spec.name]
        for accepted in spec.accepts:
            diagram.edge(diagram.by_event[accepted], step_node)
        for returned in spec.returns:
            diagram.edge(step_node, diagram.by_event[returned])


def _start_first(event_types: list[type[Event]]) -> list[type[Event]]:
    # Node order seeds the layout's ordering within a layer.
    return sorted(event_types, key=lambda t: not issubclass(t, StartEvent))


def _describe_step(node: Node, spec: StepSpec) -> None:
    node.title = f"step {spec.name}"
    node.rows = [
        ("accepts", " | ".join(t.__name__ for t in spec.accepts)),
        ("returns", " | ".join(t.__name__ for t in spec.returns) or "None"),
        ("num_workers", f"{spec.num_workers}{' (default)' * _is_default(spec)}"),
        ("retry_policy", repr(spec.retry_policy) if spec.retry_policy else "none"),
        ("timeout", f"{spec.timeout:g} s" if spec.timeout is not None else "none"),
    ]
    doc = _first_line(spec.fn)
    if doc:
        node.rows.insert(0, ("doc", doc))
    if spec.num_workers > 1:
        node.tags.append("concurrent")
        css = "b-default" if _is_default(spec) else "b-workers"
        node.badges.append((f"{TIMES}{spec.num_workers}", css))
    if spec.retry_policy is not None:
        node.tags.append("retry")
        node.badges.append(("retry", "b-retry"))
    if spec.timeout is not None:
        node.badges.append((f"timeout {spec.timeout:g} s", "b-timeout"))


def _is_default(spec: StepSpec) -> bool:
    return spec.num_workers == DEFAULT_WORKERS


def _describe_event(node: Node, event_type: type[Event]) -> None:
    if issubclass(event_type, StartEvent):
        node.tags.append("start")
        node.badges.append(("start", "b-start"))
    elif issubclass(event_type, StopEvent):
        node.tags.append("stop")
        node.badges.append(("stop", "b-stop"))
    elif is_external(event_type):
        node.tags.append("external")
        node.badges.append(("outside", "b-external"))
    doc = _first_line(event_type) if vars(event_type).get("__doc__") else ""
    if doc:
        node.rows.append(("doc", doc))
    fields = event_type.model_fields
    for name, info in fields.items():
        text = _type_name(info.annotation)
        if not info.is_required():
            text += f" = {info.get_default(call_default_factory=False)!r}"
        node.rows.append((name, text))
    if not fields:
        node.rows.append(("fields", "none declared (extra keywords allowed)"))
    node.rows.append(("class", f"{event_type.__module__}.{event_type.__qualname__}"))


def _unique_label(event_type: type[Event], known: dict[type[Event], Node]) -> str:
    names = {node.label for node in known.values()}
    for label in (event_type.__name__, event_type.__qualname__):
        if label not in names:
            return label
    return f"{event_type.__module__}.{event_type.__qualname__}"


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _first_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _kind_of(obj: object) -> str:
    if isinstance(obj, type):
        return f"class {obj.__name__}"
    return f"{type(obj).__name__} {obj!r:.60}"
