"""Render a laid-out diagram as one self-contained HTML page.

The drawing is inline SVG, so it shows even with scripts off; the page's
own small script (``page.js``) adds pan, zoom, tooltips and highlighting.
Styles and script are inlined and fonts are the system's: opening the file
makes no network request.
"""

from __future__ import annotations

import json
import os
import zlib
from functools import cache

from fanflow.drawing._layout import Layout, Placed, Point, Route
from fanflow.drawing._model import Diagram

__all__ = ["render_page"]

LEGEND = (
    ("l-step", "step"),
    ("l-event", "event"),
    ("l-start", "StartEvent"),
    ("l-stop", "StopEvent"),
)
RUN_LEGEND = (("l-failed", "failed step"),)
HINT = "drag to pan · wheel or +/&minus; to zoom · click a node to highlight its paths · 0 to fit"


def render_page(diagram: Diagram, layout: Layout, *, run: bool = False) -> str:
    """Return the complete HTML page for `diagram` placed by `layout`."""
    svg = render_svg(layout)
    root = f"ff-{zlib.crc32(svg.encode()):08x}"  # the same page always gets the same id
    data = {"nodes": {n.id: {"title": n.title, "rows": n.rows} for n in diagram.nodes}}
    # "<" escaped so no string in the data can close the script element.
    blob = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    entries = LEGEND + RUN_LEGEND if run else LEGEND
    legend = "".join(f'<li><i class="{css}"></i>{text}</li>' for css, text in entries)
    sub_class = "sub failed" if diagram.alert else "sub"
    title = escape(diagram.title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{_asset("page.css")}</style>
</head>
<body>
<div class="fanflow" id="{root}">
<header>
<h1>{title}</h1>
<p class="{sub_class}">{escape(diagram.subtitle)}</p>
<ul class="legend">{legend}</ul>
<div class="tools"><button type="button" data-zoom="in" title="zoom in">+</button><button
 type="button" data-zoom="out" title="zoom out">&minus;</button><button type="button"
 data-zoom="fit" title="fit to window">fit</button></div>
</header>
{svg}
<div class="tip" role="tooltip" hidden></div>
<p class="hint">{HINT}</p>
<script type="application/json" class="ff-data">{blob}</script>
<script>
{_asset("page.js")}
fanflowDiagram(document.getElementById("{root}"));
</script>
</div>
</body>
</html>
"""


@cache
def _asset(name: str) -> str:
    with open(os.path.join(os.path.dirname(__file__), name), encoding="utf-8") as file:
        return file.read()


def escape(text: str) -> str:
    """Return `text` safe inside HTML and SVG text and double-quoted attributes."""
    # Not html.escape: its module pulls in the entity tables at import time.
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def render_svg(layout: Layout) -> str:
    """Return the ``<svg>`` element of `layout`: edges first, nodes on top."""
    parts = [
        f'<svg class="canvas" viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="workflow diagram">'
    ]
    parts += [_edge(route) for route in layout.routes]
    parts += [_node(placed) for placed in layout.nodes]
    parts.append("</svg>")
    return "\n".join(parts)


def _node(placed: Placed) -> str:
    node = placed.node
    classes = " ".join(["node", node.kind, *node.tags])
    radius = placed.h / 2 if node.kind == "event" else 8
    lines = [_badges(node.badges), escape(node.stats)]
    lines = [line for line in lines if line]
    label_y = -placed.h / 2 + (17 if lines else placed.h / 2)
    out = [
        f'<g class="{classes}" data-id="{node.id}" tabindex="0" '
        f'transform="translate({placed.x:.1f} {placed.y:.1f})" '
        f'aria-label="{escape(node.title)}">',
        f'<rect class="box" x="{-placed.w / 2:.1f}" y="{-placed.h / 2:.1f}" '
        f'width="{placed.w:.1f}" height="{placed.h:.1f}" rx="{radius:.1f}"/>',
        f'<text class="label" y="{label_y:.1f}">{escape(node.label)}</text>',
    ]
    for k, line in enumerate(lines, start=1):
        out.append(f'<text class="small" y="{label_y + 16 * k:.1f}">{line}</text>')
    out.append("</g>")
    return "".join(out)


def _badges(badges: list[tuple[str, str]]) -> str:
    sep = '<tspan class="sep"> · </tspan>'
    return sep.join(f'<tspan class="{css}">{escape(text)}</tspan>' for text, css in badges)


def _edge(route: Route) -> str:
    edge = route.edge
    classes = " ".join(["edge", *edge.tags, "used" if edge.count else ""]).strip()
    out = [
        f'<g class="{classes}" data-s="{edge.source}" data-t="{edge.target}">',
        f'<path class="line" d="{_path(route.points)}"/>',
        f'<path class="head" d="{_head(route.points)}"/>',
    ]
    if edge.count:
        x, y = _middle(route.points)
        out.append(f'<text class="count" x="{x:.1f}" y="{y:.1f}">{edge.count}</text>')
    out.append("</g>")
    return "".join(out)


def _path(points: list[Point]) -> str:
    """Return a smooth path through `points`, leaving and entering each one vertically."""
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in rest:
        mid = (y0 + y1) / 2
        d.append(f"C{x0:.1f},{mid:.1f} {x1:.1f},{mid:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(d)


def _head(points: list[Point]) -> str:
    (_, y_prev), (x, y) = points[-2], points[-1]
    down = 1 if y_prev <= y else -1
    return f"M{x:.1f},{y:.1f} l-4.5,{-9 * down} l9,0 z"


def _middle(points: list[Point]) -> Point:
    if len(points) == 2:
        (x0, y0), (x1, y1) = points
        return (x0 + x1) / 2, (y0 + y1) / 2
    return points[len(points) // 2]
