"""The pure-Python layered layout that draws HTML pages when igraph is not installed."""

from __future__ import annotations

import sys
from itertools import pairwise
from typing import Any

import pytest
from flows_for_tests import ConcurrentFlow, MultipleEventTypesFlow, generated_flow

from fanflow import to_html
from fanflow.drawing._layers import layered
from fanflow.drawing._layout import layout
from fanflow.drawing._model import flow_diagram


@pytest.fixture
def no_igraph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import igraph`` fail, as on an install without the draw extra."""
    monkeypatch.setitem(sys.modules, "igraph", None)


def _overlap(a: Any, b: Any) -> bool:
    return abs(a.x - b.x) * 2 < a.w + b.w and abs(a.y - b.y) * 2 < a.h + b.h


def _unchanged(layers: list[int]) -> list[int]:
    return layers


@pytest.mark.usefixtures("no_igraph")
def test_page_is_drawn_without_igraph() -> None:
    """to_html needs no extra: the fallback layout places every node."""
    page = to_html(ConcurrentFlow)
    assert page.startswith("<!DOCTYPE html>") and 'data-id="s2"' in page


@pytest.mark.usefixtures("no_igraph")
@pytest.mark.parametrize("steps", [40, 200])
def test_generated_layout_is_layered_without_overlaps(steps: int) -> None:
    """Without igraph, StartEvent is on top, StopEvent at the bottom, and nothing overlaps."""
    placed = layout(flow_diagram(generated_flow(steps))).nodes
    start = next(p for p in placed if "start" in p.node.tags)
    stop = next(p for p in placed if "stop" in p.node.tags)
    assert start.y == min(p.y for p in placed)
    assert stop.y == max(p.y for p in placed)
    clashes = [
        (a.node.label, b.node.label)
        for i, a in enumerate(placed)
        for b in placed[i + 1 :]
        if _overlap(a, b)
    ]
    assert clashes == []


@pytest.mark.usefixtures("no_igraph")
def test_symmetric_fan_out_is_centred() -> None:
    """Three parallel branches sit side by side, the start and the join above their middle."""
    placed = {p.node.label: p for p in layout(flow_diagram(MultipleEventTypesFlow)).nodes}
    a, b, c = placed["step_a"], placed["step_b"], placed["step_c"]
    assert a.y == b.y == c.y and a.x < b.x < c.x
    assert placed["start"].x == pytest.approx(b.x)
    assert placed["step_three"].x == pytest.approx(b.x)


def test_long_edge_bends_once_per_layer_it_crosses() -> None:
    """An edge from layer 0 to layer 3 passes through two bend points, one per layer between."""
    # 0 -> 1 -> 2 -> 3, and 0 -> 3 skipping two layers.
    (coords, routing), layers = layered(4, [(0, 1), (1, 2), (2, 3), (0, 3)], _unchanged)
    assert layers == [0, 1, 2, 3]
    assert [y for _, y in routing[3]] == [1.0, 2.0]
    assert routing[:3] == [[], [], []]
    assert len(coords) == 4


def test_nodes_of_one_layer_are_one_unit_apart() -> None:
    """Siblings never share a position: each layer is spread to at least one unit."""
    (coords, _), layers = layered(5, [(0, 1), (0, 2), (0, 3), (0, 4)], _unchanged)
    xs = sorted(x for (x, _), layer in zip(coords, layers, strict=True) if layer == 1)
    assert all(b - a >= 1 for a, b in pairwise(xs))
    assert coords[0][0] == pytest.approx(sum(xs) / len(xs))


def test_adjusted_layers_are_kept() -> None:
    """The layers `adjust` returns (start first, stop last) are the ones laid out."""
    (coords, _), layers = layered(3, [(0, 1), (0, 2)], lambda found: [0, 1, 2])
    assert layers == [0, 1, 2]
    assert [y for _, y in coords] == [0.0, 1.0, 2.0]
