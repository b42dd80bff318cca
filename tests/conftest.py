"""Shared fixtures: a mock clock and helpers that finish runs or fail instead of hanging.

Concurrency tests drive runs with gates (`asyncio.Event`) and let ready tasks
run with `spin` (event-loop turns, no real time). `finish`, `receive` and
`drain` await a handler or its event stream, blocked (so a `MockClock` with
autojump may jump), but fail the test instead of hanging when nothing
arrives within `PATIENCE` real seconds.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from fanflow import MockClock, WorkflowHandler

Spin = Callable[..., Awaitable[None]]
Finish = Callable[..., Awaitable[Any]]
Receive = Callable[..., Awaitable[Any]]
Drain = Callable[..., Awaitable[list[Any]]]

# Loop turns a run may take to settle; runs in these tests need far fewer.
TURNS = 500
# Real seconds a blocked wait may take before the test calls it a hang; the
# runs in these tests settle in milliseconds.
PATIENCE = 10.0


async def _spin(turns: int = 20) -> None:
    """Let ready tasks run for `turns` event-loop iterations; no time passes."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def _finish(handler: WorkflowHandler, patience: float = PATIENCE) -> Any:
    """Return (or raise) the run's outcome, failing the test if it does not end by itself."""
    await asyncio.wait([handler], timeout=patience)
    if handler.done():
        return await handler
    handler.cancel_run()
    pytest.fail(f"run {handler.run_id} did not end within {patience} s; it hangs")


async def _receive(stream: AsyncIterator[Any], patience: float = PATIENCE) -> Any:
    """Return the stream's next item (or raise its error), failing the test if none comes."""
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.wait([pending], timeout=patience)
    if pending.done():
        return pending.result()
    pending.cancel()
    pytest.fail(f"nothing arrived on the event stream within {patience} s")


async def _drain(stream: AsyncIterator[Any], patience: float = PATIENCE) -> list[Any]:
    """Return every remaining item of the stream, failing the test if it does not end."""
    items = []
    while True:
        try:
            items.append(await _receive(stream, patience))
        except StopAsyncIteration:
            return items


@pytest.fixture(autouse=True)
async def no_task_left_behind() -> AsyncIterator[None]:
    """Fail a test whose runs leave tasks running; cancel them so later tests are unaffected.

    Tasks are tracked from creation: a leaked task would otherwise be garbage
    collected mid-session, far from the test that leaked it.
    """
    loop = asyncio.get_running_loop()
    created: list[asyncio.Task[Any]] = []

    def track(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        created.append(task)
        return task

    loop.set_task_factory(track)
    yield
    loop.set_task_factory(None)
    await _spin()
    current = asyncio.current_task()
    left = [task for task in created if task is not current and not task.done()]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    assert left == [], "tasks still running after the test's runs ended"


@pytest.fixture
def clock() -> MockClock:
    """Return a clock that only moves when the test advances it."""
    return MockClock()


@pytest.fixture
def spin() -> Spin:
    """Return the helper that lets ready tasks run without time passing."""
    return _spin


@pytest.fixture
def finish() -> Finish:
    """Return the helper that awaits a run that must end without time passing."""
    return _finish


@pytest.fixture
def receive() -> Receive:
    """Return the helper that reads the next streamed event without hanging."""
    return _receive


@pytest.fixture
def drain() -> Drain:
    """Return the helper that reads a stream to its end without hanging."""
    return _drain
