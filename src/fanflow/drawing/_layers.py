"""A small layered layout in pure Python, used when igraph is not installed.

The same steps as a Sugiyama layout, each in its simplest form: longest-path
layers, a dummy node wherever an edge crosses a layer, a few barycentre
sweeps to order each layer, and x positions pulled towards the neighbours'
mean while keeping one unit between nodes. It gives what igraph's
``layout_sugiyama`` gives (grid coordinates and bend points), so the pixels
are worked out by the same code; igraph finds fewer crossings on large
workflows.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

__all__ = ["Grid", "layered"]

SWEEPS = 6  # barycentre passes, down and up
PULLS = 4  # passes pulling x positions towards the neighbours

# Grid coordinates of each node ([x, layer]) and each edge's bend points.
Grid = tuple[list[list[float]], list[list[list[float]]]]


def layered(
    count: int, edges: list[tuple[int, int]], adjust: Callable[[list[int]], list[int]]
) -> tuple[Grid, list[int]]:
    """Return the grid layout of a DAG of `count` nodes, and its layers.

    `adjust` may move nodes to other layers (start events first, stop
    events last); an edge must still point to a lower layer afterwards.
    """
    layers = adjust(_longest_path(count, edges))
    chains, rank = _split_long_edges(layers, edges)
    order = _order(rank, chains)
    xs = _positions(order, chains)
    coords = [[xs[i], float(layers[i])] for i in range(count)]
    routing = [[[xs[d], float(rank[d])] for d in chain[1:-1]] for chain in chains]
    return (coords, routing), layers


def _longest_path(count: int, edges: list[tuple[int, int]]) -> list[int]:
    out: list[list[int]] = [[] for _ in range(count)]
    incoming = [0] * count
    for s, t in edges:
        out[s].append(t)
        incoming[t] += 1
    layer = [0] * count
    ready = [i for i in range(count) if incoming[i] == 0]
    while ready:
        node = ready.pop()
        for t in out[node]:
            layer[t] = max(layer[t], layer[node] + 1)
            incoming[t] -= 1
            if incoming[t] == 0:
                ready.append(t)
    return layer


def _split_long_edges(
    layers: list[int], edges: list[tuple[int, int]]
) -> tuple[list[list[int]], list[int]]:
    """Return each edge as a chain of nodes one layer apart, and every node's layer."""
    rank = list(layers)
    chains = []
    for s, t in edges:
        step = 1 if rank[t] >= rank[s] else -1
        chain = [s]
        for layer in range(rank[s] + step, rank[t], step):
            rank.append(layer)  # a dummy node where the edge crosses `layer`
            chain.append(len(rank) - 1)
        chains.append([*chain, t])
    return chains, rank


def _neighbours(size: int, chains: list[list[int]]) -> tuple[list[list[int]], list[list[int]]]:
    above: list[list[int]] = [[] for _ in range(size)]
    below: list[list[int]] = [[] for _ in range(size)]
    for chain in chains:
        for a, b in pairwise(chain):
            below[a].append(b)
            above[b].append(a)
    return above, below


def _order(rank: list[int], chains: list[list[int]]) -> list[list[int]]:
    """Return the nodes of each layer, left to right, after barycentre sweeps."""
    order: list[list[int]] = [[] for _ in range(max(rank, default=0) + 1)]
    for node, layer in enumerate(rank):
        order[layer].append(node)
    above, below = _neighbours(len(rank), chains)
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        layers = range(1, len(order)) if down else range(len(order) - 2, -1, -1)
        for layer in layers:
            fixed = order[layer - 1] if down else order[layer + 1]
            where = {node: i for i, node in enumerate(fixed)}
            links = above if down else below
            order[layer] = _by_barycentre(order[layer], links, where)
    return order


def _by_barycentre(nodes: list[int], links: list[list[int]], where: dict[int, int]) -> list[int]:
    def key(item: tuple[int, int]) -> float:
        i, node = item
        placed = [where[n] for n in links[node] if n in where]
        return sum(placed) / len(placed) if placed else float(i)

    return [node for _, node in sorted(enumerate(nodes), key=key)]


def _positions(order: list[list[int]], chains: list[list[int]]) -> list[float]:
    """Return x of every node: neighbours' mean where there is room, one unit apart."""
    size = sum(len(layer) for layer in order)
    xs = [0.0] * size
    width = max((len(layer) for layer in order), default=1)
    for layer in order:
        start = (width - len(layer)) / 2
        for i, node in enumerate(layer):
            xs[node] = start + i
    above, below = _neighbours(size, chains)
    for _ in range(PULLS):
        for layer in order:
            wanted = [_mean(xs, above[n] + below[n], xs[n]) for n in layer]
            for node, x in zip(layer, _spread(wanted), strict=True):
                xs[node] = x
    left = min(xs, default=0.0)
    return [x - left for x in xs]


def _spread(wanted: list[float]) -> list[float]:
    """Return `wanted` moved apart to one unit, as much to the left as to the right."""
    right, left = list(wanted), list(wanted)
    for i in range(1, len(wanted)):
        right[i] = max(right[i], right[i - 1] + 1)
    for i in range(len(wanted) - 2, -1, -1):
        left[i] = min(left[i], left[i + 1] - 1)
    # Each pass keeps one unit between neighbours, so their mean does too.
    return [(a + b) / 2 for a, b in zip(left, right, strict=True)]


def _mean(xs: list[float], nodes: list[int], default: float) -> float:
    return sum(xs[n] for n in nodes) / len(nodes) if nodes else default
