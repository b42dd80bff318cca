"""`Client`: talk to a ``fanflow serve`` (or any server speaking the same API) from Python.

    from fanflow.client import Client

    async with Client("http://127.0.0.1:8080", token="...") as client:
        handler = await client.run("Ask", topic="otters")
        async for event in handler.stream_events():
            if event.type == "InputRequiredEvent":
                await handler.send_event({"type": "Answer", "value": {"name": "Ada"}})
        print(await handler.result())

Needs httpx (``pip install 'fanflow[client]'``); it does not depend on the
reference's client. Events arrive as `StreamedEvent` (sequence number,
type name, parent type names, fields); an event stream reconnects from
its last sequence number when the connection drops, so nothing is lost
or repeated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Generator
from types import TracebackType
from typing import Any, NamedTuple

import httpx

from fanflow.events import Event

__all__ = ["Client", "ClientError", "RemoteHandler", "RemoteRunError", "StreamedEvent"]


class ClientError(Exception):
    """The server refused a request; `status` is the HTTP status, the message its detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class RemoteRunError(Exception):
    """The run ended without a result: failed, timed out or cancelled (`status` says which)."""

    def __init__(self, handler_id: str, status: str, error: str | None) -> None:
        super().__init__(f"run {handler_id} {status}" + (f": {error}" if error else ""))
        self.handler_id = handler_id
        self.status = status
        self.error = error


class StreamedEvent(NamedTuple):
    """One event of a run's stream, as the server sent it."""

    seq: int
    type: str
    types: list[str]
    value: dict[str, Any]

    def is_a(self, name: str) -> bool:
        """Return whether the event's type or one of its parents is called `name`."""
        return self.type == name or name in self.types


def _envelope(event: Event | dict[str, Any]) -> dict[str, Any]:
    if isinstance(event, Event):
        return {"type": type(event).__name__, "value": event.model_dump(mode="json")}
    return event


class Client:
    """A connection to a workflow server at `url`, with bearer `token` if it needs one."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        reconnects: int = 5,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout)
        self.reconnects = reconnects

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.http.aclose()

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        """Send a request; return its JSON body, or raise `ClientError`."""
        reply = await self.http.request(method, path, **kw)
        if reply.status_code >= 400 and not (reply.status_code == 500 and _is_handler(reply)):
            try:
                detail = str(reply.json().get("detail"))
            except ValueError:
                detail = reply.text[:200]
            raise ClientError(reply.status_code, detail)
        return reply.json() if reply.content else None

    async def healthy(self) -> bool:
        """Return whether the server answers its health check."""
        try:
            return bool((await self.request("GET", "/health"))["status"] == "healthy")
        except (ClientError, httpx.HTTPError):
            return False

    async def workflows(self) -> list[str]:
        """Return the names of the served workflows."""
        return list((await self.request("GET", "/workflows"))["workflows"])

    async def run(
        self, workflow: str, start_event: Event | None = None, **fields: Any
    ) -> RemoteHandler:
        """Start a run of `workflow` (with `start_event`, or its fields); return its handler."""
        start = start_event.model_dump(mode="json") if start_event is not None else fields
        data = await self.request(
            "POST", f"/workflows/{workflow}/run-nowait", json={"start_event": start}
        )
        return RemoteHandler(self, data["handler_id"])

    def handler(self, handler_id: str) -> RemoteHandler:
        """Return the handler of an existing run."""
        return RemoteHandler(self, handler_id)

    async def list(
        self, status: str | list[str] | None = None, workflow: str | list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Return the handlers (newest first), optionally of some statuses and workflows."""
        params: dict[str, Any] = {}
        if status is not None:
            params["status"] = [status] if isinstance(status, str) else status
        if workflow is not None:
            params["workflow_name"] = [workflow] if isinstance(workflow, str) else workflow
        return list((await self.request("GET", "/handlers", params=params))["handlers"])


def _is_handler(reply: httpx.Response) -> bool:
    # The reference answers 500 with the handler's data for a failed run.
    try:
        return "handler_id" in reply.json()
    except ValueError:
        return False


class RemoteHandler:
    """A run on the server: await its result, stream its events, send it events, cancel it."""

    def __init__(self, client: Client, handler_id: str) -> None:
        self.client = client
        self.handler_id = handler_id

    def __repr__(self) -> str:
        return f"<RemoteHandler {self.handler_id}>"

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()

    async def info(self) -> dict[str, Any]:
        """Return the handler's data: status, result, error, times."""
        data: dict[str, Any] = await self.client.request("GET", f"/handlers/{self.handler_id}")
        return data

    async def result(self) -> Any:
        """Wait for the run to end; return its result (`RemoteRunError` if it did not succeed).

        A plain StopEvent's ``result`` is returned; a StopEvent subclass comes
        back as its fields (a dict).
        """
        async for _ in self.stream_events():
            pass
        data = await self.info()
        while data["status"] == "running":  # the stream ended before the status was written
            await asyncio.sleep(0.05)
            data = await self.info()
        if data["status"] != "completed":
            raise RemoteRunError(self.handler_id, data["status"], data.get("error"))
        result = data.get("result") or {}
        value = result.get("value") or {}
        return value.get("result") if result.get("type") == "StopEvent" else value

    async def stream_events(
        self, after: int = -1, *, include_internal: bool = False
    ) -> AsyncIterator[StreamedEvent]:
        """Yield the run's streamed events after sequence number `after`, to the run's end."""
        attempts = 0
        while True:
            try:
                async for event in self._stream(after, include_internal):
                    attempts = 0
                    after = event.seq
                    yield event
                return
            except (httpx.TransportError, httpx.RemoteProtocolError):
                attempts += 1
                if attempts > self.client.reconnects:
                    raise
                await asyncio.sleep(min(0.1 * 2**attempts, 2.0))

    async def _stream(self, after: int, internal: bool) -> AsyncIterator[StreamedEvent]:
        params = {"after_sequence": str(after), "include_internal": str(internal).lower()}
        url = f"/events/{self.handler_id}"
        async with self.client.http.stream("GET", url, params=params, timeout=None) as reply:
            if reply.status_code == 204:
                return
            if reply.status_code >= 400:
                await reply.aread()
                raise ClientError(reply.status_code, reply.text[:200])
            seq: int | None = None
            async for line in reply.aiter_lines():
                if line.startswith("id:"):
                    seq = int(line[3:].strip())
                elif line.startswith("data:") and seq is not None:
                    data = json.loads(line[5:])
                    yield StreamedEvent(seq, data["type"], data.get("types") or [], data["value"])
                    seq = None

    async def send_event(self, event: Event | dict[str, Any], step: str | None = None) -> None:
        """Send `event` (an Event, or an envelope ``{"type": ..., "value": {...}}``) to the run."""
        body: dict[str, Any] = {"event": _envelope(event)}
        if step is not None:
            body["step"] = step
        await self.client.request("POST", f"/events/{self.handler_id}", json=body)

    async def cancel(self) -> None:
        """Cancel the run."""
        await self.client.request("POST", f"/handlers/{self.handler_id}/cancel")
