"""`WorkflowServer`: serve workflows over HTTP, speaking the reference server's API.

    server = WorkflowServer(db="sqlite:///runs.db")
    server.add_workflow("greet", Greet())
    await server.serve(host="127.0.0.1", port=8080)

Routes (those of ``llama-agents-server`` 0.8, see docs/server.md):
``GET /health``, ``GET /workflows``, ``POST /workflows/{name}/run`` and
``/run-nowait``, ``GET /workflows/{name}/schema``, ``/events``,
``/representation``, ``GET|POST /events/{handler_id}``, ``GET /handlers``,
``GET /handlers/{id}``, ``POST /handlers/{id}/cancel``, ``GET
/results/{id}``; the web UI at ``/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fanflow.events import Event, StartEvent
from fanflow.server._envelope import EventError, envelope, parse_event
from fanflow.server._feed import FeedStore
from fanflow.server._mailbox import open_mailbox
from fanflow.server._runs import HandlerGone, NoHandler, Runs
from fanflow.server._security import BodyLimit, BodyTooLarge, TokenCheck
from fanflow.server._served import ServedWorkflow
from fanflow.server._ui import ui_routes
from fanflow.stores.url import open_store
from fanflow.workflow import Workflow

__all__ = ["DEFAULT_DB", "MAX_BODY", "WorkflowServer"]

log = logging.getLogger("fanflow.server")

DEFAULT_DB = "sqlite:///fanflow-runs.db"
MAX_BODY = 1 << 20  # bytes
HEARTBEAT = 15.0  # seconds between SSE comments on a quiet stream
STATUSES = ("running", "completed", "failed", "cancelled")


class WorkflowServer:
    """Workflows served over HTTP, their runs journaled in `db` (resumed after a restart).

    `token` (a bearer token) is required on every route when given;
    `cors_origins` turns CORS on for those origins (off by default);
    `max_body` limits request bodies (bytes).
    """

    def __init__(
        self,
        *,
        db: str = DEFAULT_DB,
        token: str | None = None,
        cors_origins: Sequence[str] = (),
        max_body: int = MAX_BODY,
        poll: float = 0.2,
        takeover_every: float = 10.0,
        metrics: bool = False,
    ) -> None:
        self.db = db
        # GET /metrics in the Prometheus text format (turns on fanflow.otel metrics).
        self.metrics = metrics
        self.token = token or None
        self.cors_origins = list(cors_origins)
        self.max_body = max_body
        self.takeover_every = takeover_every
        self.runs = Runs(poll=poll)
        self._poll = poll
        self._app: Any = None

    def add_workflow(
        self, name: str, workflow: Workflow, additional_events: Sequence[type[Event]] | None = None
    ) -> None:
        """Serve `workflow` under `name`.

        Clients may send it the event types its steps declare or wait for
        (``ctx.wait_for_event``), the framework's, and `additional_events`.
        """
        if not isinstance(workflow, Workflow):
            raise TypeError(
                f"add_workflow({name!r}, ...) takes a Workflow instance, got {workflow!r}"
            )
        self.runs.add(ServedWorkflow(name, workflow, additional_events or ()))

    @property
    def app(self) -> Any:
        """Return the ASGI application (built once)."""
        if self._app is None:
            self._app = self._build()
        return self._app

    async def serve(
        self, host: str = "127.0.0.1", port: int = 8080, **uvicorn_options: Any
    ) -> None:
        """Serve until cancelled (or SIGINT/SIGTERM), with uvicorn."""
        import uvicorn

        config = uvicorn.Config(
            self.app, host=host, port=port, log_level="warning", **uvicorn_options
        )
        await uvicorn.Server(config).serve()

    # ------------------------------------------------------------ app

    def _build(self) -> Any:
        middleware = []
        if self.cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=self.cors_origins,
                    allow_methods=["GET", "POST"],
                    allow_headers=["authorization", "content-type", "last-event-id"],
                )
            )
        app = Starlette(
            routes=self._routes() + ui_routes(self),
            middleware=middleware,
            lifespan=self._lifespan,
            exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        )
        guarded: Any = BodyLimit(app, self.max_body)
        if self.token:
            guarded = TokenCheck(guarded, self.token)
        return guarded

    async def _metrics(self, request: Request) -> Response:
        if not self.metrics:
            raise HTTPException(404, "metrics are off; start the server with --metrics")
        from fanflow.otel import prometheus_text  # the otel extra, loaded only when asked

        return Response(prometheus_text(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self.metrics:
            from fanflow.otel import instrument

            instrument(spans=False, prometheus=True)
        store = open_store(self.db)
        feed = FeedStore(store, poll=self._poll)
        mailbox = open_mailbox(self.db)
        try:
            await self.runs.start(feed, mailbox, takeover_every=self.takeover_every)
            yield
        finally:
            await self.runs.stop()
            await mailbox.close()
            store.close()

    def _routes(self) -> list[Route]:
        return [
            Route("/health", self._health, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/workflows", self._workflows, methods=["GET"]),
            Route("/workflows/{name}/run", self._run, methods=["POST"]),
            Route("/workflows/{name}/run-nowait", self._run_nowait, methods=["POST"]),
            Route("/workflows/{name}/schema", self._schema, methods=["GET"]),
            Route("/workflows/{name}/events", self._event_schemas, methods=["GET"]),
            Route("/workflows/{name}/representation", self._representation, methods=["GET"]),
            Route("/events/{handler_id}", self._stream, methods=["GET"]),
            Route("/events/{handler_id}", self._send, methods=["POST"]),
            Route("/handlers", self._handlers, methods=["GET"]),
            Route("/handlers/{handler_id}", self._handler, methods=["GET"]),
            Route("/handlers/{handler_id}/cancel", self._cancel, methods=["POST"]),
            Route("/results/{handler_id}", self._result, methods=["GET"]),
        ]

    def served(self, request: Request) -> ServedWorkflow:
        """Return the workflow the path names; 404 if none."""
        name = request.path_params["name"]
        served = self.runs.served.get(name)
        if served is None:
            known = ", ".join(sorted(self.runs.served)) or "none"
            raise HTTPException(404, f"no workflow {name!r} (served: {known})")
        return served

    def handler_data(self, handler_id: str) -> dict[str, Any]:
        """Return the handler data of `handler_id`; 404 if there is no such handler."""
        try:
            return self.runs.handler_data(handler_id)
        except NoHandler:
            raise HTTPException(404, f"no handler {handler_id!r}") from None

    # ------------------------------------------------------------ workflows

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def _workflows(self, request: Request) -> Response:
        return JSONResponse({"workflows": list(self.runs.served)})

    async def _schema(self, request: Request) -> Response:
        served = self.served(request)
        return JSONResponse(
            {
                "start": served.start_type.model_json_schema(),
                "stop": served.stop_type.model_json_schema(),
            }
        )

    async def _event_schemas(self, request: Request) -> Response:
        return JSONResponse({"events": self.served(request).schemas()})

    async def _representation(self, request: Request) -> Response:
        return JSONResponse({"graph": self.served(request).representation()})

    # ------------------------------------------------------------ runs

    async def _start(self, request: Request) -> tuple[ServedWorkflow, Any]:
        served = self.served(request)
        body = await json_body(request, required=False)
        if body.get("context"):
            raise HTTPException(
                400,
                "a context in the request is not accepted: fanflow keeps a "
                "run's context in its journal; continue a run by its handler id",
            )
        if body.get("handler_id"):
            raise HTTPException(
                400,
                "handler_id is chosen by the server: fanflow does not "
                "start a run under a given id or continue a finished one",
            )
        payload = body.get("start_event", body.get("kwargs"))
        start: StartEvent | None = None
        if payload is not None:
            try:
                event = parse_event(
                    payload, served.registry, bare=served.start_type, what="start_event"
                )
            except EventError as exc:
                raise HTTPException(400, str(exc)) from None
            if not isinstance(event, served.start_type):
                raise HTTPException(
                    400,
                    f"start_event must be a {served.start_type.__name__}, "
                    f"got {type(event).__name__}",
                )
            start = event
        handler = self.runs.run(served, start)
        await self.runs.committed(handler)
        return served, handler

    async def _run_nowait(self, request: Request) -> Response:
        served, handler = await self._start(request)
        return JSONResponse(self.runs._starting(handler.run_id, served))

    async def _run(self, request: Request) -> Response:
        _, handler = await self._start(request)
        with contextlib.suppress(BaseException):
            await asyncio.shield(handler)
        data = self.handler_data(handler.run_id)
        return JSONResponse(data, status_code=500 if data["status"] == "failed" else 200)

    async def _handler(self, request: Request) -> Response:
        data = self.handler_data(request.path_params["handler_id"])
        return JSONResponse(data, status_code=202 if data["status"] == "running" else 200)

    async def _result(self, request: Request) -> Response:
        data = dict(self.handler_data(request.path_params["handler_id"]))
        result = data["result"]
        if result is not None:
            plain = result["type"] == "StopEvent"
            data["result"] = result["value"].get("result") if plain else result["value"]
        status = {"running": 202, "failed": 500}.get(data["status"], 200)
        return JSONResponse(data, status_code=status)

    async def _handlers(self, request: Request) -> Response:
        statuses = _list_param(request, "status")
        if statuses is not None:
            unknown = sorted(set(statuses) - set(STATUSES))
            if unknown:
                raise HTTPException(
                    400, f"unknown status {', '.join(unknown)}; use {', '.join(STATUSES)}"
                )
        names = _list_param(request, "workflow_name")
        return JSONResponse({"handlers": self.runs.handlers(statuses, names)})

    async def _cancel(self, request: Request) -> Response:
        handler_id = request.path_params["handler_id"]
        if request.query_params.get("purge", "false").lower() == "true":
            raise HTTPException(
                400, "purge is not supported: fanflow keeps every run's records in its journal"
            )
        try:
            await self.runs.cancel(handler_id)
        except NoHandler:
            raise HTTPException(404, f"no handler {handler_id!r}") from None
        except HandlerGone:
            status = self.handler_data(handler_id)["status"]
            if status != "cancelled":
                raise HTTPException(
                    409, f"handler {handler_id} has already finished ({status})"
                ) from None
        return JSONResponse({"status": "cancelled"})

    async def _send(self, request: Request) -> Response:
        handler_id = request.path_params["handler_id"]
        body = await json_body(request)
        payload = body.get("event")
        if not payload:
            raise HTTPException(400, 'the body needs an "event": {"type": ..., "value": {...}}')
        step = body.get("step")
        if step is not None and not isinstance(step, str):
            raise HTTPException(400, '"step" must be a step name (a string)')
        try:
            served = self.runs.served_of(handler_id)
        except NoHandler:
            raise HTTPException(404, f"no handler {handler_id!r}") from None
        try:
            event = parse_event(payload, served.registry)
        except EventError as exc:
            raise HTTPException(400, str(exc)) from None
        if step is not None and step not in {s.name for s in served.specs}:
            raise HTTPException(400, f"no step {step!r} in {served.name}")
        try:
            await self.runs.send(handler_id, event, step)
        except HandlerGone:
            raise HTTPException(409, f"handler {handler_id} has already finished") from None
        except Exception as exc:  # the run refused it (a bad target step, ...)
            raise HTTPException(400, f"{type(exc).__name__}: {exc}") from None
        return JSONResponse({"status": "sent"})

    async def _stream(self, request: Request) -> Response:
        handler_id = request.path_params["handler_id"]
        query = request.query_params
        sse = query.get("sse", "true").lower() == "true"
        internal = query.get("include_internal", "false").lower() == "true"
        qualified = query.get("include_qualified_name", "true").lower() == "true"
        records = self._records(handler_id)
        after = _after(query.get("after_sequence", "now"), records[-1].seq if records else 0)
        last_id = request.headers.get("last-event-id")
        if sse and last_id is not None and last_id.strip().lstrip("-").isdigit():
            after = int(last_id)
        finished = bool(records) and records[-1].kind.value == "run_finished"
        if finished and records[-1].seq <= after:
            return Response(status_code=204)
        items = self.runs.follow(handler_id, after, internal)
        media = "text/event-stream" if sse else "application/x-ndjson"
        return StreamingResponse(
            _format(items, sse, qualified),
            media_type=media,
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    def _records(self, handler_id: str) -> list[Any]:
        try:
            return self.runs.records(handler_id)
        except NoHandler:
            if handler_id in self.runs.local:
                return []  # started, not written yet
            raise HTTPException(404, f"no handler {handler_id!r}") from None


def _after(text: str, now: int) -> int:
    if text.lower() == "now":
        return now
    try:
        return int(text)
    except ValueError:
        raise HTTPException(
            400, f"after_sequence must be an integer or 'now', got {text!r}"
        ) from None


async def _format(
    items: AsyncIterator[tuple[int, Event]], sse: bool, qualified: bool
) -> AsyncIterator[str]:
    """Write `items` as SSE (``id:`` the sequence number) or NDJSON, with heartbeats."""
    queue: asyncio.Queue[tuple[int, Event] | None] = asyncio.Queue()

    async def feed() -> None:
        try:
            async for item in items:
                await queue.put(item)
        finally:
            await queue.put(None)

    feeder = asyncio.get_running_loop().create_task(feed())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), HEARTBEAT)
            except asyncio.TimeoutError:
                if sse:
                    yield ": heartbeat\n\n"
                continue
            if item is None:
                break
            seq, event = item
            data = json.dumps(envelope(event, with_qualified_name=qualified))
            yield f"id: {seq}\ndata: {data}\n\n" if sse else f"{data}\n"
    finally:
        feeder.cancel()
        with contextlib.suppress(BaseException):
            await feeder


def _list_param(request: Request, name: str) -> list[str] | None:
    values = [v.strip() for v in request.query_params.getlist(name)]
    values = [p.strip() for v in values for p in v.split(",") if p.strip()]
    return values or None


async def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    """Return the request's JSON object body; 400 with one clear message if it is not one."""
    try:
        raw = await request.body()
    except BodyTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    if not raw.strip():
        if required:
            raise HTTPException(400, "the request needs a JSON object body")
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise HTTPException(
            400, f"the request body must be a JSON object, got {type(body).__name__}"
        )
    return body


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 204:
        return Response(status_code=204)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)
