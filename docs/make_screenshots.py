"""Make the pictures of docs/drawing.md: the seed's flows and two runs, in headless Chromium.

    python docs/make_screenshots.py

Uses the browser setup of ``tests/test_browser.py`` (Debian's chromium driven
by Playwright, network blocked) and writes PNG files to ``docs/img/``. Run it
again after changing how drawings look, and commit the pictures.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from flows_for_tests import (
    ConcurrentFlow,
    FailingFlow,
    MultipleEventTypesFlow,
    ParellelFlow,
    generated_flow,
)
from test_browser import browser_page

from fanflow import Workflow, draw_all_possible_flows, draw_most_recent_execution

IMG = Path(__file__).resolve().parent / "img"


async def _runs() -> tuple[Workflow, Workflow]:
    ok, failing = ConcurrentFlow(), FailingFlow()
    await ok.run()
    with contextlib.suppress(ValueError):  # the failure is what the picture shows
        await failing.run()
    return ok, failing


def _shoot(page: Any, problems: list[str], html: str, name: str, action: str = "") -> None:
    page.goto(Path(html).as_uri())
    page.wait_for_load_state("load")
    if action.startswith("hover:"):
        page.locator("g.node", has_text=action[6:]).first.hover()
    elif action == "fit":
        page.locator("button[data-zoom=fit]").click()
    elif action.startswith("click:"):
        page.locator("g.node", has_text=action[6:]).first.click()
        page.mouse.move(5, 5)
    page.screenshot(path=str(IMG / name))
    if problems:
        raise SystemExit(f"{name}: the page reported problems: {problems}")
    print(IMG / name)


def main() -> None:
    """Draw the flows and runs to a temporary folder and screenshot each page."""
    IMG.mkdir(exist_ok=True)
    ok, failing = asyncio.run(_runs())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        shots = [
            (draw_all_possible_flows(ParellelFlow, out / "a.html"), "parallel-flow.png", ""),
            (draw_all_possible_flows(ConcurrentFlow, out / "b.html"), "collecting-events.png", ""),
            (
                draw_all_possible_flows(MultipleEventTypesFlow, out / "c.html"),
                "multiple-event-types.png",
                "",
            ),
            (str(out / "c.html"), "tooltip.png", "hover:StepACompleteEvent"),
            (str(out / "c.html"), "highlight.png", "click:step_b"),
            (draw_most_recent_execution(ok, out / "d.html"), "run-ok.png", ""),
            (draw_most_recent_execution(failing, out / "e.html"), "run-failed.png", ""),
            (
                draw_all_possible_flows(generated_flow(40), out / "f.html"),
                "generated-40.png",
                "fit",
            ),
        ]
        with browser_page(width=1000, height=720) as (page, problems):
            for html, name, action in shots:
                _shoot(page, problems, html, name, action)


if __name__ == "__main__":
    main()
