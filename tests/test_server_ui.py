"""The web UI of ``fanflow serve`` end to end in headless Chromium (Playwright).

Start a run from the form generated from the start event's schema, watch
its step light up, answer its input request from the form generated from
the awaited event's schema, and see the result. Screenshots go to
docs/img/server-*.png (shown in docs/server.md).
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_server import serving

pytest.importorskip("starlette")
async_api = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
# Screenshots go to docs/img (shown in docs/server.md) only when asked for, with
# FANFLOW_SCREENSHOTS=1; otherwise to the test's temporary folder.
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)",
)

APP = textwrap.dedent(
    """
    from fanflow import (
        Context, Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent,
        Workflow, step,
    )


    class Brief(StartEvent):
        topic: str
        words: int = 100


    class Draft(Event):
        text: str


    class Review(HumanResponseEvent):
        reviewer: str
        approved: bool = True


    class Progress(Event):
        note: str


    class Publish(Workflow):
        \"\"\"Draft a text, have a person review it, publish it.\"\"\"

        @step
        async def draft(self, ctx: Context, ev: Brief) -> Draft:
            ctx.write_event_to_stream(Progress(note=f"drafting {ev.topic}"))
            await ctx.store.set("topic", ev.topic)
            return Draft(text=f"{ev.words} words on {ev.topic}")

        @step
        async def review(self, ctx: Context, ev: Draft) -> StopEvent:
            asked = InputRequiredEvent(prefix=f"approve '{ev.text}'?")
            answer = await ctx.wait_for_event(Review, waiter_event=asked)
            await ctx.store.set("reviewer", answer.reviewer)
            return StopEvent(result=f"published, reviewed by {answer.reviewer}")
    """
)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    async with async_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def test_start_watch_answer_and_see_the_result(browser: Any, tmp_path: Path) -> None:
    """The whole loop in the browser, no network but loopback."""
    img = DOCS_IMG if os.environ.get("FANFLOW_SCREENSHOTS") == "1" else tmp_path
    app = tmp_path / "publish_app.py"
    app.write_text(APP)
    with serving(app, f"sqlite:///{tmp_path / 'runs.db'}") as server:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.on("pageerror", lambda e: failed.append(str(e)))
        await page.goto(server.url + "/")
        card = page.locator('section.workflow[data-name="Publish"]')
        await card.locator("svg .node.step").first.wait_for()
        await card.locator("#f-topic").fill("otters")
        await page.screenshot(path=str(img / "server-workflows.png"))
        await card.locator("button.primary").click()

        await page.wait_for_url("**/#/runs/*")
        await page.locator("#run-graph .node.step.running").wait_for()  # review waits: lit
        await page.locator("#ask form #f-reviewer").wait_for()
        timeline = await page.locator("#timeline").inner_text()
        assert "Progress" in timeline and "InputRequiredEvent" in timeline
        await page.locator("#ask form #f-reviewer").fill("Grace")
        await page.screenshot(path=str(img / "server-run.png"))
        await page.locator("#ask form button.primary").click()

        result = page.locator("#result-value")
        await result.wait_for()
        assert "reviewed by Grace" in await result.inner_text()
        status = page.locator("#run-status")
        await page.wait_for_function(
            "document.getElementById('run-status').textContent === 'completed'"
        )
        assert await status.inner_text() == "completed"
        await page.wait_for_function(
            "document.getElementById('state').textContent.includes('Grace')"
        )
        assert await page.locator("#run-graph .node.step.running").count() == 0
        await page.screenshot(path=str(img / "server-run-done.png"))

        await page.goto(server.url + "/#/runs")
        row = page.locator("#runs tbody tr").first
        await row.wait_for()
        assert "completed" in await row.inner_text()
        await page.screenshot(path=str(img / "server-runs.png"))
        assert failed == []
