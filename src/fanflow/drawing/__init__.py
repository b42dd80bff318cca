"""Draw workflows and runs: self-contained HTML pages, Mermaid and DOT.

    from fanflow import draw_all_possible_flows, draw_most_recent_execution

    draw_all_possible_flows(MyFlow, filename="flow.html")
    await wf.run()
    draw_most_recent_execution(wf, filename="run.html")

The HTML page inlines its styles and script and makes no network request,
so it opens anywhere, offline included. Its layered layout comes from
igraph when it is installed (``pip install 'fanflow[draw]'``), else from a
simpler built-in one. Mermaid and DOT need nothing extra.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from fanflow._runtime.records import Record
from fanflow.drawing._html import render_page
from fanflow.drawing._layout import layout
from fanflow.drawing._model import Diagram, flow_diagram, workflow_class
from fanflow.drawing._run import run_diagram
from fanflow.drawing._text import dot_text, mermaid_text
from fanflow.workflow import Workflow

__all__ = [
    "draw_all_possible_flows",
    "draw_execution",
    "draw_most_recent_execution",
    "to_dot",
    "to_html",
    "to_mermaid",
]

Flow = type[Workflow] | Workflow
PathLike = str | os.PathLike[str]


def to_html(flow: Flow) -> str:
    """Return the self-contained HTML page drawing every step and event type of `flow`."""
    return _page(flow_diagram(flow))


def draw_all_possible_flows(
    flow: Flow, filename: PathLike = "workflow_all_flows.html", max_label_length: int | None = None
) -> str:
    """Write the HTML drawing of every step and event type of `flow`; return the file name.

    `flow` is a Workflow subclass or an instance. `max_label_length` shortens
    longer names with an ellipsis (the tooltip keeps the full name).
    """
    return _write(_page(flow_diagram(flow), max_label_length), filename)


def draw_execution(
    records: Sequence[Record],
    filename: PathLike = "workflow_execution.html",
    workflow: Flow | None = None,
    max_label_length: int | None = None,
) -> str:
    """Write the HTML drawing of the path one run took; return the file name.

    `records` are one run's records (``wf.store.records(run_id)``). Edges show
    how many events went that way, steps their invocation count and total
    and longest time, and the step whose error ended the run is red. Given
    `workflow`, the steps and events the run did not reach are drawn faded.
    """
    diagram = run_diagram(records, workflow)
    return _write(_page(diagram, max_label_length, run=True), filename)


def draw_most_recent_execution(
    workflow: Workflow,
    filename: PathLike = "workflow_recent_execution.html",
    max_label_length: int | None = None,
) -> str:
    """Write the HTML drawing of `workflow`'s most recent run; return the file name."""
    if not isinstance(workflow, Workflow):
        cls = workflow_class(workflow)  # raises for anything that is not a workflow at all
        raise TypeError(
            f"draw_most_recent_execution() needs the instance that ran, not the class "
            f"{cls.__name__}: runs are recorded in that instance's store (wf.store)"
        )
    run_ids = workflow.store.run_ids()
    if not run_ids:
        raise ValueError(
            f"{type(workflow).__name__} has no recorded run to draw; await wf.run() first"
        )
    records = workflow.store.records(run_ids[-1])
    return draw_execution(records, filename, workflow, max_label_length)


def to_mermaid(flow: Flow) -> str:
    """Return a Mermaid flowchart of `flow`'s steps and event types."""
    return mermaid_text(flow_diagram(flow))


def to_dot(flow: Flow) -> str:
    """Return a Graphviz DOT digraph of `flow`'s steps and event types."""
    return dot_text(flow_diagram(flow))


def _page(diagram: Diagram, max_label_length: int | None = None, *, run: bool = False) -> str:
    if max_label_length is not None:
        if max_label_length < 2:
            raise ValueError(f"max_label_length must be >= 2, got {max_label_length}")
        for node in diagram.nodes:
            if len(node.label) > max_label_length:
                node.label = node.label[: max_label_length - 1] + "…"
    return render_page(diagram, layout(diagram), run=run)


def _write(page: str, filename: PathLike) -> str:
    # os, not pathlib: `import fanflow` stays free of pathlib's import cost.
    with open(filename, "w", encoding="utf-8") as file:
        file.write(page)
    return os.fspath(filename)
