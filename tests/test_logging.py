"""fanflow._logging: run ends, step failures and retries under the ``fanflow`` logger."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fanflow import MockClock, StartEvent, StopEvent, Workflow, step
from fanflow._logging import LOG, install
from fanflow.hooks import remove_listener
from fanflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed


class Flaky(Workflow):
    """Fails once, then succeeds."""

    calls = 0

    @step(retry_policy=retry_policy(wait=wait_fixed(0.5), stop=stop_after_attempt(2)))
    async def flaky(self, ev: StartEvent) -> StopEvent:
        Flaky.calls += 1
        if Flaky.calls == 1:
            raise ValueError("first try")
        return StopEvent(result="ok")


class Broken(Workflow):
    @step
    async def broken(self, ev: StartEvent) -> StopEvent:
        raise RuntimeError("boom")


@pytest.fixture(autouse=True)
def _installed() -> Iterator[None]:
    """Install the logging listener for the test only."""
    install()
    yield
    remove_listener(LOG)


def _mine(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fanflow"]


async def test_a_retried_step_and_the_run_end_are_logged_with_run_id_and_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The failed attempt and its retry at INFO, each naming its run and step as extras."""
    Flaky.calls = 0
    with caplog.at_level(logging.INFO, logger="fanflow"):
        handler = Flaky(clock=MockClock(autojump=True)).run()
        await handler
    records = _mine(caplog)
    messages = [r.getMessage() for r in records]
    assert messages == [
        f"run {handler.run_id}: step flaky failed (attempt 1, {_seconds(records[0])} s): "
        "ValueError: first try",
        f"run {handler.run_id}: step flaky runs again in 0.5 s (attempt 2)",
        f"run {handler.run_id} ended: ok",
    ]
    assert [r.levelno for r in records] == [logging.INFO] * 3
    assert [(r.run_id, r.step) for r in records] == [  # type: ignore[attr-defined]
        (handler.run_id, "flaky"),
        (handler.run_id, "flaky"),
        (handler.run_id, None),
    ]
    assert records[0].exc_info is None  # the traceback only at DEBUG


def _seconds(record: logging.LogRecord) -> str:
    return record.getMessage().split(", ")[1].split(" s)")[0]


async def test_a_failed_run_is_a_warning_and_debug_adds_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run that fails ends with a WARNING; at DEBUG the failed attempt carries its traceback."""
    with caplog.at_level(logging.DEBUG, logger="fanflow"), pytest.raises(RuntimeError):
        await Broken().run()
    records = _mine(caplog)
    assert records[0].levelno == logging.DEBUG and "started" in records[0].getMessage()
    failed = next(r for r in records if "step broken failed" in r.getMessage())
    assert failed.exc_info is not None and failed.exc_info[0] is RuntimeError
    assert records[-1].levelno == logging.WARNING
    assert records[-1].getMessage().endswith("ended: failed (RuntimeError: boom)")


async def test_nothing_is_built_when_the_logger_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the fanflow logger above WARNING, no call reaches a log method."""
    logger = logging.getLogger("fanflow")
    monkeypatch.setattr(logger, "level", logging.CRITICAL)
    calls: list[str] = []
    for name in ("debug", "info", "log", "warning"):
        monkeypatch.setattr(logger, name, lambda *a, _n=name, **k: calls.append(_n))
    Flaky.calls = 0
    await Flaky(clock=MockClock(autojump=True)).run()
    with pytest.raises(RuntimeError):
        await Broken().run()
    assert calls == []


def test_the_library_prints_nothing_without_logging_configured() -> None:
    """A failed run in a script with no logging set up prints nothing (a NullHandler)."""
    code = (
        "import asyncio, fanflow, fanflow._logging\n"
        "fanflow._logging.install()\n"
        "class W(fanflow.Workflow):\n"
        "    @fanflow.step\n"
        "    async def s(self, ev: fanflow.StartEvent) -> fanflow.StopEvent:\n"
        "        raise ValueError('x')\n"
        "async def main():\n"
        "    try:\n"
        "        await W().run()\n"
        "    except ValueError:\n"
        "        pass\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
