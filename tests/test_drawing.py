"""Drawing flows and runs: the HTML page, its layout, run overlays, Mermaid and DOT."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flows_for_tests import (
    SEED_FLOWS,
    CheckEvent,
    ConcurrentFlow,
    FailingFlow,
    FlakyFlow,
    MultipleEventTypesFlow,
    ParellelFlow,
    StepTwoEvent,
    generated_flow,
)

from fanflow import (
    Event,
    Record,
    RecordKind,
    StartEvent,
    StopEvent,
    Workflow,
    draw_all_possible_flows,
    draw_execution,
    draw_most_recent_execution,
    step,
    to_dot,
    to_html,
    to_mermaid,
)
from fanflow.drawing._html import render_page
from fanflow.drawing._layout import back_edges, layout
from fanflow.drawing._model import flow_diagram
from fanflow.drawing._run import format_seconds, run_diagram

NODE = re.compile(r'<g class="node (step|event)([^"]*)" data-id="(\w+)"')
EDGE = re.compile(r'<g class="edge[^"]*" data-s="(\w+)" data-t="(\w+)"')
LABEL = re.compile(r'data-id="(\w+)"[^>]*>.*?<text class="label"[^>]*>([^<]*)</text>')


def nodes(page: str) -> dict[str, tuple[str, str]]:
    """Return label -> (kind, classes) for every node of `page`."""
    kinds = {m[3]: (m[1], m[2].strip()) for m in NODE.finditer(page)}
    return {label: kinds[node_id] for node_id, label in LABEL.findall(page)}


def edges(page: str) -> set[tuple[str, str]]:
    """Return the (source label, target label) pairs of `page`'s arrows."""
    labels = dict(LABEL.findall(page))
    return {(labels[s], labels[t]) for s, t in EDGE.findall(page)}


def tooltips(page: str) -> dict[str, dict[str, Any]]:
    """Return the tooltip data embedded in `page`, keyed by node title."""
    blob = re.search(r'<script type="application/json" class="ff-data">(.*?)</script>', page, re.S)
    assert blob is not None
    return {n["title"]: dict(n["rows"]) for n in json.loads(blob[1])["nodes"].values()}


def test_draw_all_possible_flows_writes_one_file(tmp_path: Path) -> None:
    """The seed's call writes one HTML file and returns its name."""
    target = tmp_path / "Concurrent_execution.html"
    assert draw_all_possible_flows(ParellelFlow, filename=str(target)) == str(target)
    assert [p.name for p in tmp_path.iterdir()] == ["Concurrent_execution.html"]
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("flow", SEED_FLOWS, ids=lambda f: f.__name__)
def test_page_loads_nothing_from_outside(flow: type[Workflow]) -> None:
    """Styles and script are inline; no URL, link, import or external source appears."""
    page = to_html(flow)
    assert "<style>" in page and "fanflowDiagram(" in page
    for needle in ("http:", "https:", "//cdn", "<link", " src=", "@import", "url("):
        assert needle not in page


@pytest.mark.parametrize("flow", SEED_FLOWS, ids=lambda f: f.__name__)
def test_one_node_per_step_and_event_type(flow: type[Workflow]) -> None:
    """Every step and every event type of the graph is one node."""
    graph = flow.graph()
    found = nodes(to_html(flow))
    assert sorted(k for k, (kind, _) in found.items() if kind == "step") == sorted(graph.steps)
    events = sorted(k for k, (kind, _) in found.items() if kind == "event")
    assert events == sorted(t.__name__ for t in graph.event_types)


def test_edges_follow_accepts_and_returns() -> None:
    """Arrows go event -> step for accepted types and step -> event for returned ones."""
    assert edges(to_html(MultipleEventTypesFlow)) == {
        ("StartEvent", "start"),
        ("start", "StepAEvent"),
        ("start", "StepBEvent"),
        ("start", "StepCEvent"),
        ("StepAEvent", "step_a"),
        ("StepBEvent", "step_b"),
        ("StepCEvent", "step_c"),
        ("step_a", "StepACompleteEvent"),
        ("step_b", "StepBCompleteEvent"),
        ("step_c", "StepCCompleteEvent"),
        ("StepACompleteEvent", "step_three"),
        ("StepBCompleteEvent", "step_three"),
        ("StepCCompleteEvent", "step_three"),
        ("step_three", "StopEvent"),
    }


def test_start_and_stop_events_are_marked() -> None:
    """StartEvent and StopEvent carry their own classes (and colours)."""
    found = nodes(to_html(ConcurrentFlow))
    assert "start" in found["StartEvent"][1].split()
    assert "stop" in found["StopEvent"][1].split()
    assert not {"start", "stop"} & set(found["StepTwoEvent"][1].split())


def test_workers_retry_and_timeout_are_marked() -> None:
    """Steps with several workers or a retry policy are marked, non-default ones loudly."""
    page = to_html(generated_flow(12))
    found = nodes(page)
    assert "concurrent" in found["step_0"][1].split()
    assert '<tspan class="b-default">\u00d74</tspan>' in page
    assert '<tspan class="b-workers">\u00d78</tspan>' in page  # step_5: num_workers=8
    assert "retry" in found["step_3"][1].split()
    assert '<tspan class="b-timeout">timeout 10 s</tspan>' in page  # step_4


def test_tooltips_show_event_fields_and_step_settings() -> None:
    """Hover data holds an event's fields and a step's settings."""
    tips = tooltips(to_html(FlakyFlow))
    assert tips["event StopEvent"]["result"] == "Any = None"
    flaky = tips["step flaky"]
    assert flaky["num_workers"] == "4 (default)"
    assert flaky["retry_policy"] == (
        "retry_policy(retry=None, wait=wait_fixed(0.0), stop=stop_after_attempt(3))"
    )
    assert flaky["timeout"] == "30 s"
    assert tooltips(to_html(ParellelFlow))["event StepTwoEvent"]["query"] == "str"


def test_class_and_instance_draw_the_same() -> None:
    """A workflow instance draws exactly like its class."""
    assert to_html(ConcurrentFlow()) == to_html(ConcurrentFlow)


def test_not_a_workflow_is_a_clear_type_error() -> None:
    """Anything but a Workflow subclass or instance is refused by name."""
    with pytest.raises(TypeError, match="expected a Workflow subclass or instance, got class int"):
        to_html(int)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got class Workflow"):
        to_mermaid(Workflow)


def test_same_named_event_types_get_distinct_escaped_labels() -> None:
    """Two event classes named alike stay two nodes; '<locals>' in a label is escaped."""

    def make() -> type[Event]:
        class Ping(Event):
            pass

        return Ping

    first, second = make(), make()

    class Echo(Workflow):
        @step
        async def one(self, ev: StartEvent) -> first:  # type: ignore[valid-type]
            return first()

        @step
        async def two(self, ev: first) -> second:  # type: ignore[valid-type]
            return second()

        @step
        async def three(self, ev: second) -> StopEvent:  # type: ignore[valid-type]
            return StopEvent()

    page = to_html(Echo)
    assert ">Ping</text>" in page
    assert "make.&lt;locals&gt;.Ping" in page and "<locals>" not in page.split("<script")[0]
    assert to_dot(Echo).count('label="') == 7  # 3 steps, 4 event types


def test_max_label_length_shortens_labels(tmp_path: Path) -> None:
    """Long names are cut with an ellipsis; the tooltip keeps the full name."""
    page = Path(draw_all_possible_flows(ConcurrentFlow, tmp_path / "f.html", max_label_length=8))
    text = page.read_text(encoding="utf-8")
    assert ">StepTwo\u2026</text>" in text
    assert "event StepTwoEvent" in text


def _overlap(a: Any, b: Any) -> bool:
    return abs(a.x - b.x) * 2 < a.w + b.w and abs(a.y - b.y) * 2 < a.h + b.h


@pytest.mark.parametrize("steps", [40, 200])
def test_generated_layout_is_layered_without_overlaps(steps: int) -> None:
    """StartEvent is on top, StopEvent at the bottom, and no two nodes overlap."""
    placed = layout(flow_diagram(generated_flow(steps))).nodes
    assert len(placed) == 2 * steps + 1
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


def test_loops_are_found_depth_first_from_the_start() -> None:
    """The edge that returns to a node already on the path is the one drawn upwards."""
    # 0 -> 1 -> 2 -> 1 and 2 -> 3: only 2 -> 1 closes a loop.
    assert back_edges(4, [(0, 1), (1, 2), (2, 1), (2, 3)], [0]) == {2}


def test_every_format_draws_without_igraph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without igraph (the draw extra) HTML uses the built-in layout; text needs nothing."""
    monkeypatch.setitem(sys.modules, "igraph", None)
    assert to_html(ParellelFlow).startswith("<!DOCTYPE html>")
    assert to_mermaid(ParellelFlow).startswith("flowchart TD")


@pytest.mark.parametrize("flow", SEED_FLOWS, ids=lambda f: f.__name__)
def test_seed_pages_are_small(flow: type[Workflow]) -> None:
    """A seed flow's page stays far below 1 MB."""
    assert len(to_html(flow).encode()) < 1_000_000


# ---------------------------------------------------------------- runs


async def test_most_recent_execution_counts_events_per_edge(tmp_path: Path) -> None:
    """The run's drawing labels each edge with the events that went over it."""
    wf = ConcurrentFlow()
    await wf.run()
    page = Path(draw_most_recent_execution(wf, tmp_path / "run.html")).read_text("utf-8")
    diagram = run_diagram(wf.store.records(wf.store.run_ids()[-1]), wf)
    labels = {node.id: node.label for node in diagram.nodes}
    counts = {(labels[e.source], labels[e.target]): e.count for e in diagram.edges}
    assert counts == {
        ("StartEvent", "start"): 1,
        ("start", "StepTwoEvent"): 3,
        ("StepTwoEvent", "step_two"): 3,
        ("step_two", "StepThreeEvent"): 3,
        ("StepThreeEvent", "step_three"): 3,
        ("step_three", "StopEvent"): 1,
    }
    assert page.count('<text class="count"') == 6
    assert "ok in" in page


async def test_failed_step_is_marked_and_named() -> None:
    """The step whose error ended the run is tagged failed; the subtitle names the error."""
    wf = FailingFlow()
    with pytest.raises(ValueError, match="value 2"):
        await wf.run()
    diagram = run_diagram(wf.store.records(wf.store.run_ids()[-1]), wf)
    check = diagram.by_step["check"]
    assert "failed" in check.tags and check.stats.startswith("3 runs")
    assert "failed" not in diagram.by_step["start"].tags
    assert "idle" in diagram.by_event[StopEvent].tags
    assert diagram.alert
    assert "ValueError: value 2 is not allowed (raised by step check)" in diagram.subtitle
    assert 'class="node step failed"' in render_page(diagram, layout(diagram), run=True)


async def test_retried_step_is_not_the_failed_one() -> None:
    """A step that failed once and then succeeded is marked retried, and the run is ok."""
    wf = FlakyFlow()
    assert await wf.run() == "ok"
    diagram = run_diagram(wf.store.records(wf.store.run_ids()[-1]), wf)
    flaky = diagram.by_step["flaky"]
    assert "retried" in flaky.tags and "failed" not in flaky.tags
    assert dict(flaky.rows)["invocations"] == "1"
    assert dict(flaky.rows)["failed attempts"] == "1"
    assert not diagram.alert


def _records() -> list[Record]:
    start, two = StartEvent(), StepTwoEvent(query="q")

    def rec(seq: int, kind: RecordKind, at: float, **kw: Any) -> Record:
        return Record("run-1", seq, kind, at, **kw)

    return [
        rec(1, RecordKind.RUN_STARTED, 10.0, event=start, data="Hand"),
        rec(2, RecordKind.EVENT_EMITTED, 10.0, event_id=1, event=start),
        rec(3, RecordKind.STEP_STARTED, 10.0, step="a", invocation=1, event_id=1, data=1),
        rec(4, RecordKind.EVENT_EMITTED, 10.5, step="a", invocation=1, event_id=2, event=two),
        rec(5, RecordKind.EVENT_EMITTED, 10.5, step="a", invocation=1, event_id=3, event=two),
        rec(6, RecordKind.STEP_FINISHED, 10.5, step="a", invocation=1, data=0.5),
        rec(7, RecordKind.STEP_STARTED, 10.5, step="b", invocation=2, event_id=2, data=1),
        rec(8, RecordKind.STEP_STARTED, 10.5, step="b", invocation=3, event_id=3, data=1),
        rec(9, RecordKind.STEP_FINISHED, 11.5, step="b", invocation=2, data=1.0),
        rec(10, RecordKind.STEP_FINISHED, 12.5, step="b", invocation=3, data=2.0),
        rec(11, RecordKind.RUN_FINISHED, 12.5, data="ok"),
    ]


def test_step_stats_from_hand_made_records(tmp_path: Path) -> None:
    """Invocation count, total and longest time come from the records alone."""
    diagram = run_diagram(_records())
    assert diagram.by_step["b"].stats == "2 runs \u00b7 total 3.00 s \u00b7 max 2.00 s"
    assert diagram.by_step["a"].stats == "1 run \u00b7 total 500 ms \u00b7 max 500 ms"
    assert diagram.subtitle == "ok in 2.50 s"
    assert diagram.title == "Hand \u00b7 run run-1"
    page = Path(draw_execution(_records(), tmp_path / "x.html")).read_text("utf-8")
    assert edges(page) == {("StartEvent", "a"), ("a", "StepTwoEvent"), ("StepTwoEvent", "b")}


def test_bad_record_sets_are_refused() -> None:
    """No records, or records of two runs, are a ValueError that says what to pass."""
    with pytest.raises(ValueError, match="no records to draw"):
        draw_execution([])
    other = _records()[0]._replace(run_id="run-2")
    with pytest.raises(ValueError, match="records of 2 runs"):
        draw_execution([*_records(), other])


def test_most_recent_execution_needs_an_instance_that_ran() -> None:
    """A class, or an instance with no run yet, is refused with what to do instead."""
    with pytest.raises(TypeError, match="needs the instance that ran"):
        draw_most_recent_execution(ConcurrentFlow)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("await wf.run()")):
        draw_most_recent_execution(ConcurrentFlow())


def test_format_seconds() -> None:
    """Durations read at a glance."""
    assert [format_seconds(s) for s in (0.00025, 0.0123, 1.5)] == ["250 µs", "12 ms", "1.50 s"]


# ---------------------------------------------------------------- text


def test_mermaid_flowchart() -> None:
    """Mermaid text has one node line per step and event, one line per arrow, and styles."""
    text = to_mermaid(ConcurrentFlow)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    e0(["StartEvent"]):::start' in lines
    assert '    s1["step_two"]:::step' in lines
    assert sum("-->" in line for line in lines) == 6
    assert any(line.startswith("    classDef stop ") for line in lines)


def test_text_formats_show_non_default_settings() -> None:
    """Only settings that differ from the defaults appear in text labels."""
    assert 'label="flaky (retry, timeout 30 s)"' in to_dot(FlakyFlow)
    text = to_mermaid(generated_flow(12))
    assert '["step_5 (\u00d78)"]' in text
    assert '["step_0"]' in text


DOT = shutil.which("dot")


@pytest.mark.skipif(DOT is None, reason="Graphviz 'dot' not installed (apt-get install graphviz)")
@pytest.mark.parametrize(
    "flow", [*SEED_FLOWS, FailingFlow, FlakyFlow, generated_flow(40)], ids=lambda f: f.__name__
)
def test_dot_is_accepted_by_graphviz(flow: type[Workflow]) -> None:
    """Graphviz's dot parses and renders the DOT text without a warning."""
    assert DOT is not None
    done = subprocess.run(
        [DOT, "-Tsvg"], input=to_dot(flow), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "<svg" in done.stdout


def test_dot_ranks_start_first_and_stop_last() -> None:
    """DOT puts StartEvent in the source rank and StopEvent in the sink rank."""
    text = to_dot(ConcurrentFlow)
    assert "{ rank=source; e0; }" in text
    assert "{ rank=sink; e3; }" in text


def test_events_sent_outside_annotations_still_appear() -> None:
    """An event type a run emitted without annotation is drawn with its counts."""
    records = _records()
    extra = Record("run-1", 12, RecordKind.EVENT_EMITTED, 12.5, "b", 3, 4, CheckEvent(value=1))
    diagram = run_diagram([*records[:-1], extra, records[-1]], ParellelFlow)
    assert diagram.edge(diagram.by_step["b"], diagram.by_event[CheckEvent]).count == 1
