"""Place a diagram's nodes in layers, start at the top and stop at the bottom.

The layering, the order within each layer and the bends of long edges come
from igraph's Sugiyama layout (the optional ``draw`` extra) or, without
igraph, from the simpler `layered` of ``_layers``. This module turns their
grid units into pixels sized for each node's text, and moves StartEvent
types to the first layer and StopEvent types to the last one when the
automatic layering has put them elsewhere.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

from fanflow.drawing._layers import layered
from fanflow.drawing._model import Diagram, Edge, Node

__all__ = ["INSTALL_HINT", "Layout", "Placed", "Route", "layout", "load_igraph"]

INSTALL_HINT = "pip install 'fanflow[draw]'"

# Monospace text advances 0.6 em per character; the page uses these sizes.
LABEL_EM = {"step": 13 * 0.62, "event": 12 * 0.62}
SMALL_EM = 11 * 0.62
PAD_X = 28.0
GAP_X = 36.0  # at least this much between two nodes of one layer
GAP_Y = 64.0  # between layers
MARGIN = 24.0

Point = tuple[float, float]


class Placed(NamedTuple):
    """A node with its centre and size in pixels."""

    node: Node
    x: float
    y: float
    w: float
    h: float


class Route(NamedTuple):
    """An edge with the points it passes through, from source to target."""

    edge: Edge
    points: list[Point]


class Layout(NamedTuple):
    """Where everything goes, and the size of the whole drawing."""

    nodes: list[Placed]
    routes: list[Route]
    width: float
    height: float


def load_igraph() -> ModuleType:
    """Import igraph, or raise ImportError with the pip line that installs it."""
    try:
        return importlib.import_module("igraph")
    except ImportError as exc:
        raise ImportError(
            f"igraph lays out large workflows with fewer crossings: {INSTALL_HINT}"
        ) from exc


def measure(node: Node) -> tuple[float, float]:
    """Return the width and height `node` needs for its text."""
    width = len(node.label) * LABEL_EM[node.kind]
    lines = [" · ".join(text for text, _ in node.badges), node.stats]
    extra = [line for line in lines if line]
    for line in extra:
        width = max(width, len(line) * SMALL_EM)
    base = 36.0 if node.kind == "step" else 30.0
    return width + PAD_X, base + 15.0 * len(extra)


def layout(diagram: Diagram) -> Layout:
    """Return the layered layout of `diagram` (igraph's if installed, else `layered`)."""
    if not diagram.nodes:
        return Layout([], [], 2 * MARGIN, 2 * MARGIN)
    index = {node.id: i for i, node in enumerate(diagram.nodes)}
    pairs = [(index[e.source], index[e.target]) for e in diagram.edges]
    loops = back_edges(len(diagram.nodes), pairs, _roots(diagram.nodes))
    # Both layouts take a DAG; loops point up, so they go in reversed.
    acyclic = [(t, s) if i in loops else (s, t) for i, (s, t) in enumerate(pairs)]
    try:
        igraph = load_igraph()
    except ImportError:
        (coords, routing), layers = layered(
            len(diagram.nodes), acyclic, lambda found: _ends_first_and_last(diagram.nodes, found)
        )
    else:
        coords, layers, routing = _sugiyama(igraph, diagram.nodes, acyclic)
    routing = [list(reversed(bends)) if i in loops else bends for i, bends in enumerate(routing)]
    return _to_pixels(diagram, coords, layers, routing)


def _sugiyama(
    igraph: ModuleType, nodes: list[Node], acyclic: list[tuple[int, int]]
) -> tuple[list[list[float]], list[int], list[list[list[float]]]]:
    graph = igraph.Graph(n=len(nodes), edges=acyclic, directed=True)
    result = graph.layout_sugiyama()
    layers = [round(y) for _, y in result.coords]
    wanted = _ends_first_and_last(nodes, layers)
    if wanted != layers:
        result = graph.layout_sugiyama(layers=wanted)
        layers = wanted
    return result.coords, layers, list(result.edge_routing or [])


def back_edges(count: int, pairs: list[tuple[int, int]], roots: list[int]) -> set[int]:
    """Return the indices of the edges that close a loop, found depth-first from `roots`.

    This is how dot breaks cycles: what a run reaches first from its start
    event points down, an edge back to a step still on the path points up.
    """
    out: list[list[tuple[int, int]]] = [[] for _ in range(count)]
    for i, (s, t) in enumerate(pairs):
        out[s].append((i, t))
    state = [0] * count  # 0 unseen, 1 on the current path, 2 done
    loops: set[int] = set()
    for root in [*roots, *range(count)]:
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(out[root]))]
        while stack:
            node, edges = stack[-1]
            for i, target in edges:
                if state[target] == 1:
                    loops.add(i)
                elif state[target] == 0:
                    state[target] = 1
                    stack.append((target, iter(out[target])))
                    break
            else:
                state[node] = 2
                stack.pop()
    return loops


def _roots(nodes: list[Node]) -> list[int]:
    return [i for i, node in enumerate(nodes) if "start" in node.tags]


def _ends_first_and_last(nodes: list[Node], layers: list[int]) -> list[int]:
    """Put start events in layer 0 and stop events below every other node."""
    wanted = list(layers)
    for i, node in enumerate(nodes):
        if "start" in node.tags:
            wanted[i] = 0
    rest = [layer for layer, node in zip(wanted, nodes, strict=True) if "stop" not in node.tags]
    bottom = max(rest, default=-1) + 1
    for i, node in enumerate(nodes):
        if "stop" in node.tags:
            wanted[i] = max(wanted[i], bottom)
    return _compact(wanted)


def _compact(layers: list[int]) -> list[int]:
    # Moving nodes can leave a layer empty; renumber so no band is blank.
    order = {layer: rank for rank, layer in enumerate(sorted(set(layers)))}
    return [order[layer] for layer in layers]


def _to_pixels(
    diagram: Diagram,
    coords: list[list[float]],
    layers: list[int],
    routing: list[list[list[float]]],
) -> Layout:
    sizes = [measure(node) for node in diagram.nodes]
    unit = max(w for w, _ in sizes) + GAP_X
    heights: dict[int, float] = defaultdict(float)
    for layer, (_, h) in zip(layers, sizes, strict=True):
        heights[layer] = max(heights[layer], h)
    band = _layer_centres(heights, max(layers) + 1)
    xs = [c[0] for c in coords] + [p[0] for route in routing for p in route]
    left = min(xs)

    def at(x: float, layer: float) -> Point:
        return (MARGIN + unit / 2 + (x - left) * unit, band[round(layer)])

    placed = [
        Placed(node, *at(c[0], layer), w, h)
        for node, c, layer, (w, h) in zip(diagram.nodes, coords, layers, sizes, strict=True)
    ]
    routes = _routes(diagram.edges, placed, routing, at)
    width = MARGIN * 2 + unit * (max(xs) - left + 1)
    height = band[max(layers)] + heights[max(layers)] / 2 + MARGIN
    return Layout(placed, routes, width, height)


def _layer_centres(heights: dict[int, float], count: int) -> list[float]:
    centres, top = [], MARGIN
    for layer in range(count):
        h = heights.get(layer, 0.0)
        centres.append(top + h / 2)
        top += h + GAP_Y
    return centres


def _routes(
    edges: list[Edge],
    placed: list[Placed],
    routing: list[list[list[float]]],
    at: Callable[[float, float], Point],
) -> list[Route]:
    by_id = {p.node.id: p for p in placed}
    routes = []
    for i, edge in enumerate(edges):
        bends = [at(x, y) for x, y in routing[i]] if i < len(routing) else []
        source, target = by_id[edge.source], by_id[edge.target]
        routes.append(Route(edge, [(source.x, source.y), *bends, (target.x, target.y)]))
    _attach_ends(routes, by_id)
    return routes


def _attach_ends(routes: list[Route], by_id: dict[str, Placed]) -> None:
    """Move each route's ends from node centres to the node's top or bottom side.

    Ends meeting one side are spread along it in the order of where their
    edges come from, so arrows into one node neither overlap nor cross there.
    """
    sides: dict[tuple[str, int], list[tuple[float, Route, int]]] = defaultdict(list)
    for route in routes:
        pts = route.points
        for end, node_id, neighbour in ((0, route.edge.source, 1), (-1, route.edge.target, -2)):
            box = by_id[node_id]
            below = pts[neighbour][1] > box.y or (pts[neighbour][1] == box.y and end == 0)
            sides[node_id, 1 if below else -1].append((pts[neighbour][0], route, end))
    for (node_id, side), ends in sides.items():
        box = by_id[node_id]
        ends.sort(key=lambda item: item[0])
        spread = min(box.w * 0.6, 18.0 * (len(ends) - 1))
        for k, (_, route, end) in enumerate(ends):
            offset = spread * (k / (len(ends) - 1) - 0.5) if len(ends) > 1 else 0.0
            route.points[end] = (box.x + offset, box.y + side * box.h / 2)
