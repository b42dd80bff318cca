"""Two ``fanflow serve`` processes on one PostgreSQL database act as one service."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from test_server import _close_clients, app, events_of, serving, wait_for_type

pytest.importorskip("llama_agents.client")
asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is not installed")

DSN = os.environ.get("FANFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

__all__ = ["_close_clients", "app"]  # fixtures shared with test_server


@pytest.fixture
async def dsn() -> str:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(DSN), 5)
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable at {DSN}: {type(exc).__name__}: {exc}")
    await conn.close()
    return DSN


async def test_answer_posted_to_one_replica_reaches_the_run_the_other_drives(
    app: Path, dsn: str
) -> None:
    """Run started on A; B streams it, takes the human answer; A's run completes; B reports it."""
    with serving(app, dsn) as a, serving(app, dsn) as b:
        on_a, on_b = a.client(), b.client()
        handler = await on_a.run_workflow_nowait("Ask")
        await wait_for_type(on_b, handler.handler_id, "InputRequiredEvent")
        assert (await on_b.get_handler(handler.handler_id)).status == "running"
        await on_b.send_event(handler.handler_id, {"type": "Answer", "value": {"name": "Cy"}})
        events = await events_of(on_b, handler.handler_id, after_sequence=-1)
        assert events[-1].value == {"result": "hello Cy"}
        assert (await on_a.get_handler(handler.handler_id)).status == "completed"


async def test_cancel_posted_to_one_replica_stops_the_run_the_other_drives(
    app: Path, dsn: str
) -> None:
    """A cancel sent to B ends A's run as cancelled."""
    with serving(app, dsn) as a, serving(app, dsn) as b:
        on_a, on_b = a.client(), b.client()
        handler = await on_a.run_workflow_nowait("Slow")
        for _ in range(200):
            listed = await on_b.get_handlers(status=["running"])
            if handler.handler_id in [h.handler_id for h in listed.handlers]:
                break
            await asyncio.sleep(0.02)
        assert (await on_b.cancel_handler(handler.handler_id)).status == "cancelled"
        events = await events_of(on_a, handler.handler_id, after_sequence=-1)
        assert events[-1].type == "WorkflowCancelledEvent"
