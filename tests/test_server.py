"""`fanflow serve` driven over HTTP by the reference's own client, llama-agents-client 0.4.1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

pytest.importorskip("starlette")
client_module = pytest.importorskip("llama_agents.client")
WorkflowClient = client_module.WorkflowClient

APP = textwrap.dedent(
    """
    import asyncio

    from fanflow import (
        Context, Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent,
        Workflow, step,
    )


    class Item(Event):
        n: int


    class Progress(Event):
        n: int


    class Done(Event):
        n: int


    class FanOut(Workflow):
        @step
        async def split(self, ctx: Context, ev: StartEvent) -> Item:
            count = ev.get("count", 3)
            await ctx.store.set("count", count)
            for n in range(count):
                ctx.send_event(Item(n=n))
            return None

        @step(num_workers=4)
        async def work(self, ctx: Context, ev: Item) -> Done:
            ctx.write_event_to_stream(Progress(n=ev.n))
            return Done(n=ev.n)

        @step
        async def join(self, ctx: Context, ev: Done) -> StopEvent:
            count = await ctx.store.get("count")
            got = ctx.collect_events(ev, [Done] * count)
            if got is None:
                return None
            return StopEvent(result=sum(d.n for d in got))


    class Answer(HumanResponseEvent):
        name: str


    class Ask(Workflow):
        @step
        async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
            asked = InputRequiredEvent(prefix="name?")
            answer = await ctx.wait_for_event(Answer, waiter_event=asked)
            await ctx.store.set("answer", answer.name)
            return StopEvent(result=f"hello {answer.name}")


    class Slow(Workflow):
        @step
        async def sleep(self, ctx: Context, ev: StartEvent) -> StopEvent:
            await asyncio.sleep(3600)
            return StopEvent()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A ``fanflow serve`` child process on a free loopback port."""

    def __init__(self, app: Path, db: str, *extra: str, token: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        args = [sys.executable, "-m", "fanflow.cli", "serve", str(app), "--port", str(self.port)]
        args += ["--db", db, *extra]
        if token:
            args += ["--token", token]
        self.log = app.parent / f"server-{self.port}.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(args, cwd=app.parent, stderr=log)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", headers=headers, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not become healthy in 20 s")

    def client(self) -> object:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        http = httpx.AsyncClient(base_url=self.url, headers=headers)
        OPEN_CLIENTS.append(http)
        return WorkflowClient(httpx_client=http)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


OPEN_CLIENTS: list[httpx.AsyncClient] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while OPEN_CLIENTS:
        await OPEN_CLIENTS.pop().aclose()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / f"srvapp_{os.urandom(4).hex()}.py"
    path.write_text(APP)
    return path


@contextmanager
def serving(app: Path, db: str, *extra: str, token: str | None = None) -> Iterator[Server]:
    server = Server(app, db, *extra, token=token)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(app: Path, tmp_path: Path) -> Iterator[Server]:
    with serving(app, f"sqlite:///{tmp_path / 'runs.db'}") as running:
        yield running


async def events_of(client: object, handler_id: str, **kw: object) -> list[object]:
    stream = client.get_workflow_events(handler_id, **kw)  # type: ignore[attr-defined]
    return [event async for event in stream]


async def wait_for_type(client: object, handler_id: str, name: str) -> int:
    """Follow the stream until an event of type `name`; return its sequence number."""
    stream = client.get_workflow_events(handler_id)  # type: ignore[attr-defined]
    async for event in stream:
        if event.type == name:
            seq = stream.last_sequence
            await stream.aclose()
            return int(seq)
    raise AssertionError(f"the stream ended without {name}")


async def test_list_and_describe_workflows(server: Server) -> None:
    """The reference client lists workflows, their schemas, event schemas and graphs."""
    client = server.client()
    assert (await client.is_healthy()).status == "healthy"
    assert (await client.list_workflows()).workflows == ["FanOut", "Ask", "Slow"]
    schema = await client.get_workflow_schema("Ask")
    assert schema.start["title"] == "StartEvent"
    events = await client.get_workflow_events_schema("Ask")
    titles = {e["title"] for e in events.events}
    assert "Answer" in titles  # found through wait_for_event, never registered
    graph = (await client.get_workflow_graph("FanOut")).graph
    ids = {node.id for node in graph.nodes}
    assert {"split", "work", "join", "Item", "Done", "StopEvent"} <= ids


async def test_run_waits_for_the_result(server: Server) -> None:
    """POST /workflows/{name}/run returns the completed handler with the StopEvent."""
    client = server.client()
    data = await client.run_workflow("FanOut", start_event={"count": 4})
    assert data.status == "completed"
    assert data.result.type == "StopEvent"
    assert data.result.value == {"result": 6}


async def test_stream_carries_every_progress_event_then_the_stop(server: Server) -> None:
    """SSE: each written event once, in order, with increasing ids, ending with the StopEvent."""
    client = server.client()
    handler = await client.run_workflow_nowait("FanOut", start_event={"count": 5})
    stream = client.get_workflow_events(handler.handler_id)
    seen = []
    seqs = []
    async for event in stream:
        seen.append(event)
        seqs.append(stream.last_sequence)
    assert sorted(e.value["n"] for e in seen if e.type == "Progress") == [0, 1, 2, 3, 4]
    assert seen[-1].type == "StopEvent" and seen[-1].value == {"result": 10}
    assert seqs == sorted(set(seqs))
    done = await client.get_handler(handler.handler_id)
    assert done.status == "completed"


async def test_reconnect_from_last_sequence_loses_and_repeats_nothing(server: Server) -> None:
    """Events after a given sequence number are exactly the rest of the stream."""
    client = server.client()
    handler = await client.run_workflow_nowait("FanOut", start_event={"count": 6})
    stream = client.get_workflow_events(handler.handler_id)
    everything = [(stream.last_sequence, e) async for e in stream]
    everything = []
    stream = client.get_workflow_events(handler.handler_id)
    async for e in stream:
        everything.append((stream.last_sequence, e.model_dump()))
    cut = everything[2][0]
    rest = []
    stream = client.get_workflow_events(handler.handler_id, after_sequence=cut)
    async for e in stream:
        rest.append((stream.last_sequence, e.model_dump()))
    assert rest == everything[3:]
    async with httpx.AsyncClient(base_url=server.url) as http:
        last = everything[-1][0]
        reply = await http.get(f"/events/{handler.handler_id}", params={"after_sequence": last})
        assert reply.status_code == 204  # finished and fully read


async def test_human_answer_reaches_the_waiting_step(server: Server) -> None:
    """An InputRequiredEvent streams; the answer (a type the step waits for) completes the run."""
    client = server.client()
    handler = await client.run_workflow_nowait("Ask")
    await wait_for_type(client, handler.handler_id, "InputRequiredEvent")
    sent = await client.send_event(handler.handler_id, {"type": "Answer", "value": {"name": "Ada"}})
    assert sent.status == "sent"
    events = await events_of(client, handler.handler_id)
    assert events[-1].value == {"result": "hello Ada"}


async def test_unknown_event_type_is_refused_naming_the_accepted_ones(server: Server) -> None:
    """A 400 names the types the workflow accepts."""
    client = server.client()
    handler = await client.run_workflow_nowait("Ask")
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await client.send_event(handler.handler_id, {"type": "Nope", "value": {}})
    assert caught.value.response.status_code == 400
    detail = caught.value.response.json()["detail"]
    assert "unknown event type 'Nope'" in detail and "Answer" in detail
    await client.cancel_handler(handler.handler_id)


async def test_cancelled_handler_is_answered_not_a_500(server: Server) -> None:
    """Cancel, then GET the handler: 200 with status cancelled (the reference answers 500)."""
    client = server.client()
    handler = await client.run_workflow_nowait("Slow")
    assert (await client.cancel_handler(handler.handler_id)).status == "cancelled"
    async with httpx.AsyncClient(base_url=server.url) as http:
        for _ in range(200):
            reply = await http.get(f"/handlers/{handler.handler_id}")
            if reply.json()["status"] != "running":
                break
            await asyncio.sleep(0.02)
    assert reply.status_code == 200 and reply.json()["status"] == "cancelled"
    events = await events_of(client, handler.handler_id)
    assert events[-1].type == "WorkflowCancelledEvent"


async def test_handlers_are_listed_with_filters(server: Server) -> None:
    """GET /handlers filters by status and workflow name."""
    client = server.client()
    done = await client.run_workflow("FanOut", start_event={"count": 2})
    waiting = await client.run_workflow_nowait("Ask")
    await wait_for_type(client, waiting.handler_id, "InputRequiredEvent")
    running = await client.get_handlers(status=["running"])
    assert [h.handler_id for h in running.handlers] == [waiting.handler_id]
    fanouts = await client.get_handlers(workflow_name=["FanOut"])
    assert [h.handler_id for h in fanouts.handlers] == [done.handler_id]
    await client.cancel_handler(waiting.handler_id)


async def test_malformed_requests_get_one_clear_4xx(server: Server) -> None:
    """Unknown workflow/handler 404; bad JSON 400; oversized body 413; bad status 400."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.post("/workflows/Nope/run-nowait", json={})).status_code == 404
        assert (await http.get("/handlers/0123")).status_code == 404
        assert (await http.get("/events/0123")).status_code == 404
        bad = await http.post("/workflows/FanOut/run-nowait", content=b"{not json")
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]
        wrong = await http.post("/workflows/FanOut/run-nowait", json={"start_event": 3})
        assert wrong.status_code == 400
        huge = await http.post("/workflows/FanOut/run-nowait", content=b"x" * (2 << 20))
        assert huge.status_code == 413
        assert (await http.get("/handlers", params={"status": "weird"})).status_code == 400
        assert (
            "access-control-allow-origin"
            not in (await http.get("/health", headers={"origin": "http://evil.example"})).headers
        )


async def test_restart_resumes_a_waiting_run(app: Path, tmp_path: Path) -> None:
    """A run waiting for input when the server dies is resumed by the next server."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with serving(app, db) as first:
        client = first.client()
        handler = await client.run_workflow_nowait("Ask")
        seq = await wait_for_type(client, handler.handler_id, "InputRequiredEvent")
        first.stop(signal.SIGKILL)
    with serving(app, db) as second:
        client = second.client()
        assert (await client.get_handler(handler.handler_id)).status == "running"
        await client.send_event(handler.handler_id, {"type": "Answer", "value": {"name": "Bo"}})
        events = await events_of(client, handler.handler_id, after_sequence=seq)
        assert events[-1].value == {"result": "hello Bo"}
        assert all(e.type != "StopEvent" for e in events[:-1])


def test_non_loopback_address_without_token_refuses_to_start(app: Path, tmp_path: Path) -> None:
    """--host 0.0.0.0 with no token: exit status 2 and a message saying why."""
    env = {k: v for k, v in os.environ.items() if k != "FANFLOW_TOKEN"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fanflow.cli",
            "serve",
            str(app),
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
            "--db",
            f"sqlite:///{tmp_path / 'r.db'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "without a token" in done.stderr


async def test_token_is_required_on_every_route(app: Path, tmp_path: Path) -> None:
    """Without the bearer token: 401 everywhere, SSE and UI included; with it: served."""
    with serving(app, f"sqlite:///{tmp_path / 'runs.db'}", token="s3cret") as running:
        async with httpx.AsyncClient(base_url=running.url) as http:
            for path in ("/health", "/workflows", "/handlers", "/events/x", "/", "/ui/app.js"):
                assert (await http.get(path)).status_code == 401, path
            wrong = {"authorization": "Bearer nope"}
            assert (await http.get("/health", headers=wrong)).status_code == 401
        client = running.client()
        data = await client.run_workflow("FanOut", start_event={"count": 2})
        events = await events_of(client, data.handler_id, after_sequence=-1)
        assert events[-1].value == {"result": 1}


async def test_metrics_are_served_in_prometheus_text_when_asked(app: Path, tmp_path: Path) -> None:
    """``fanflow serve --metrics`` answers /metrics with fanflow's step counters; off, 404."""
    with serving(app, f"sqlite:///{tmp_path / 'runs.db'}", "--metrics") as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            names = (await http.get("/workflows")).json()["workflows"]
            started = await http.post(f"/workflows/{names[0]}/run", json={"start_event": {}})
            assert started.status_code in (200, 500)
            text = (await http.get("/metrics")).text
    assert "fanflow" in text and "# TYPE" in text
    with serving(app, f"sqlite:///{tmp_path / 'other.db'}") as server:
        assert httpx.get(server.url + "/metrics").status_code == 404
