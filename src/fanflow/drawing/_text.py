"""Mermaid and Graphviz DOT text for a diagram, for docs and code review.

Node ids are generated (``s0``, ``e0``), never taken from names, so no
step or event name can collide with a keyword of either language. Steps
show their settings only where they differ from the defaults.
"""

from __future__ import annotations

from fanflow.drawing._model import Diagram, Node

__all__ = ["dot_text", "mermaid_text"]

# (fill, stroke) per kind of node; the same colours as the HTML page.
COLOURS = {
    "step": ("#dbeafe", "#2563eb"),
    "event": ("#dcfce7", "#16a34a"),
    "start": ("#fef3c7", "#d97706"),
    "stop": ("#ede9fe", "#7c3aed"),
    "failed": ("#fecaca", "#dc2626"),
}


def _style(node: Node) -> str:
    for tag in ("failed", "start", "stop"):
        if tag in node.tags:
            return tag
    return node.kind


def _label(node: Node) -> str:
    marks = [text for text, css in node.badges if css not in ("b-default", "b-start", "b-stop")]
    return f"{node.label} ({', '.join(marks)})" if marks else node.label


def mermaid_text(diagram: Diagram) -> str:
    """Return a Mermaid ``flowchart`` of `diagram`, top to bottom."""
    lines = ["flowchart TD"]
    for node in diagram.nodes:
        text = _label(node).replace('"', "#quot;")
        shape = f'["{text}"]' if node.kind == "step" else f'(["{text}"])'
        lines.append(f"    {node.id}{shape}:::{_style(node)}")
    for edge in diagram.edges:
        arrow = f"-->|{edge.count}|" if edge.count else "-->"
        lines.append(f"    {edge.source} {arrow} {edge.target}")
    for name, (fill, stroke) in COLOURS.items():
        lines.append(f"    classDef {name} fill:{fill},stroke:{stroke},color:#1f2937")
    return "\n".join(lines) + "\n"


def dot_text(diagram: Diagram) -> str:
    """Return a Graphviz ``digraph`` of `diagram`, StartEvent on top, StopEvent at the bottom."""
    lines = [
        f"digraph {_quote(diagram.title)} {{",
        "    rankdir=TB;",
        '    node [fontname="Helvetica", fontsize=12, style="filled"];',
        '    edge [color="#64748b"];',
    ]
    for node in diagram.nodes:
        fill, stroke = COLOURS[_style(node)]
        shape = 'shape=box, style="rounded,filled"' if node.kind == "step" else "shape=ellipse"
        lines.append(
            f"    {node.id} [label={_quote(_label(node))}, {shape}, "
            f'fillcolor="{fill}", color="{stroke}"];'
        )
    for edge in diagram.edges:
        label = f" [label={edge.count}]" if edge.count else ""
        lines.append(f"    {edge.source} -> {edge.target}{label};")
    for rank, tag in (("source", "start"), ("sink", "stop")):
        ids = [node.id for node in diagram.nodes if tag in node.tags]
        if ids:
            lines.append(f"    {{ rank={rank}; {'; '.join(ids)}; }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
