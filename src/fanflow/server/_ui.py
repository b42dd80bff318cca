"""The web UI: a page of vanilla JS and CSS served by the server itself (no CDN, works offline).

Besides the static files it reads three JSON routes of its own: a
workflow's drawing (an SVG from `fanflow.drawing`), a run's drawing with
the counts on its edges, and a run's current state.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fanflow._runtime.records import Record, RecordKind
from fanflow.drawing._html import render_svg
from fanflow.drawing._layout import layout
from fanflow.drawing._model import Diagram, flow_diagram
from fanflow.drawing._run import run_diagram
from fanflow.server._runs import NoHandler

if TYPE_CHECKING:
    from fanflow.server._app import WorkflowServer

__all__ = ["run_state", "ui_routes"]

STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


def ui_routes(server: WorkflowServer) -> list[Route]:
    """Return the routes of the web UI of `server`."""

    async def index(request: Request) -> Response:
        return Response(
            _static("index.html"), media_type="text/html; charset=utf-8", headers=_NO_STORE
        )

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "drawing.css":  # the drawings' own styles, shared with fanflow.drawing
            css = resources.files("fanflow.drawing").joinpath("page.css").read_bytes()
            return Response(css, media_type=STATIC["app.css"], headers=_NO_STORE)
        if name not in STATIC:
            raise HTTPException(404, f"no UI file {name!r}")
        return Response(_static(name), media_type=STATIC[name], headers=_NO_STORE)

    async def workflow_graph(request: Request) -> Response:
        served = server.served(request)
        return JSONResponse(_drawing(flow_diagram(served.wf)))

    async def run_graph(request: Request) -> Response:
        handler_id = request.path_params["handler_id"]
        records = _records(server, handler_id)
        served = server.runs.served_of(handler_id)
        return JSONResponse(_drawing(run_diagram(records, served.wf)))

    async def state(request: Request) -> Response:
        records = _records(server, request.path_params["handler_id"])
        return JSONResponse({"state": run_state(records), "waiting": _waiting(records)})

    return [
        Route("/", index, methods=["GET"]),
        Route("/ui/{name}", asset, methods=["GET"]),
        Route("/ui/api/workflows/{name}/graph", workflow_graph, methods=["GET"]),
        Route("/ui/api/handlers/{handler_id}/graph", run_graph, methods=["GET"]),
        Route("/ui/api/handlers/{handler_id}/state", state, methods=["GET"]),
    ]


_NO_STORE = {"cache-control": "no-store"}


def _static(name: str) -> bytes:
    return resources.files("fanflow.server").joinpath("static").joinpath(name).read_bytes()


def _records(server: WorkflowServer, handler_id: str) -> list[Record]:
    try:
        return server.runs.records(handler_id)
    except NoHandler:
        raise HTTPException(404, f"no handler {handler_id!r}") from None


def _drawing(diagram: Diagram) -> dict[str, Any]:
    return {
        "svg": render_svg(layout(diagram)),
        "steps": {name: node.id for name, node in diagram.by_step.items()},
        "title": diagram.title,
        "subtitle": diagram.subtitle,
    }


def run_state(records: list[Record]) -> Any:
    """Return a run's state as its STATE_CHANGED records leave it (dotted paths applied)."""
    state: dict[str, Any] = {}
    for r in records:
        if r.kind is not RecordKind.STATE_CHANGED or not isinstance(r.data, (tuple, list)):
            continue
        path, value = r.data
        if path is None:
            state = _plain(value) if isinstance(_plain(value), dict) else {"value": _plain(value)}
            continue
        where = state
        *parents, leaf = str(path).split(".")
        for part in parents:
            nxt = where.get(part)
            if not isinstance(nxt, dict):
                nxt = where[part] = {}
            where = nxt
        where[leaf] = _plain(value)
    return state


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def _waiting(records: list[Record]) -> list[dict[str, Any]]:
    """Return the waits still open: the event type each wants and its JSON schema."""
    finished = {r.invocation for r in records if r.kind is RecordKind.STEP_FINISHED}
    open_waits: dict[int | None, str] = {}
    for r in records:
        if r.kind is RecordKind.WAIT_STARTED and isinstance(r.data, (tuple, list)):
            open_waits[r.invocation] = str(r.data[0])
        elif r.kind is RecordKind.WAIT_RESOLVED:
            open_waits.pop(r.invocation, None)
    if records and records[-1].kind is RecordKind.RUN_FINISHED:
        return []
    return [{"step": None, "type": name} for inv, name in open_waits.items() if inv not in finished]
