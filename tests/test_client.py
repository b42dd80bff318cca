"""`fanflow.client.Client` against a live ``fanflow serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_server import Server, _close_clients, app, serving

from fanflow.client import Client, ClientError, RemoteRunError

pytest.importorskip("starlette")

__all__ = ["_close_clients", "app"]  # fixtures shared with test_server


@pytest.fixture
def server(app: Path, tmp_path: Path) -> Iterator[Server]:
    with serving(app, f"sqlite:///{tmp_path / 'runs.db'}", token="tok") as running:
        yield running


async def test_run_stream_and_await_the_result(server: Server) -> None:
    """Start a run; its stream has every progress event and the stop; await gives the result."""
    async with Client(server.url, token="tok") as client:
        assert await client.healthy()
        assert await client.workflows() == ["FanOut", "Ask", "Slow"]
        handler = await client.run("FanOut", count=4)
        events = [e async for e in handler.stream_events()]
        assert sorted(e.value["n"] for e in events if e.type == "Progress") == [0, 1, 2, 3]
        assert events[-1].is_a("StopEvent")
        assert await handler == 6
        rest = [e async for e in handler.stream_events(after=events[1].seq)]
        assert rest == events[2:]


async def test_send_an_answer_and_list(server: Server) -> None:
    """An answer sent through the client completes a waiting run; list filters by status."""
    async with Client(server.url, token="tok") as client:
        handler = await client.run("Ask")
        async for event in handler.stream_events():
            if event.type == "InputRequiredEvent":
                break
        assert [h["handler_id"] for h in await client.list(status="running")] == [
            handler.handler_id
        ]
        await handler.send_event({"type": "Answer", "value": {"name": "Ada"}})
        assert await handler.result() == "hello Ada"
        with pytest.raises(ClientError) as caught:
            await handler.send_event({"type": "Answer", "value": {"name": "late"}})
        assert caught.value.status == 409


async def test_cancel_makes_the_result_raise(server: Server) -> None:
    """A cancelled run's result raises RemoteRunError with status cancelled."""
    async with Client(server.url, token="tok") as client:
        handler = await client.run("Slow")
        await handler.cancel()
        with pytest.raises(RemoteRunError) as caught:
            await handler
        assert caught.value.status == "cancelled"


async def test_wrong_token_is_a_client_error(server: Server) -> None:
    """A wrong token: ClientError 401."""
    async with Client(server.url, token="nope") as client:
        with pytest.raises(ClientError) as caught:
            await client.workflows()
        assert caught.value.status == 401
