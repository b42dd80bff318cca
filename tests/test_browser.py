"""The HTML drawings of the seed's flows in real headless Chromium, with the network blocked.

Uses Debian's chromium (``apt-get install chromium``) driven by Playwright;
never a browser that Playwright downloads. Skips, saying why, where either
is missing. `docs/make_screenshots.py` takes the docs' pictures the same way.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flows_for_tests import SEED_FLOWS, FailingFlow

from fanflow import Workflow, draw_all_possible_flows, draw_most_recent_execution

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]


def chromium_path() -> str | None:
    """Return Debian's chromium, or None when this machine has none."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    return shutil.which("chromium")


@contextmanager
def browser_page(width: int = 1100, height: int = 760) -> Iterator[tuple[Any, list[str]]]:
    """Yield a Chromium page that may load only file:// URLs, and the list of problems seen.

    Problems are console errors, page errors and requests for anything but a file.
    """
    # Imported here: playwright is an optional test dependency (the module skips without it).
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    assert path is not None
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})

            def route(request_route: Any) -> None:
                url = request_route.request.url
                if url.startswith("file://"):
                    request_route.continue_()
                else:
                    problems.append(f"request outside file://: {url}")
                    request_route.abort()

            page.route("**/*", route)
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            yield page, problems
        finally:
            browser.close()


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture(autouse=True)
def no_task_left_behind() -> None:
    """Replace conftest's async task check: Playwright's sync API keeps its own loop running.

    These tests start no run inside a pytest event loop (the one run they make
    has a thread and a loop of its own), so there is nothing for the check to find.
    """


@pytest.fixture(scope="module")
def page() -> Iterator[tuple[Any, list[str]]]:
    """One browser for the whole module: starting Chromium is the slow part."""
    with browser_page() as opened:
        yield opened


def _open(page: Any, problems: list[str], path: Path) -> None:
    problems.clear()
    page.goto(path.as_uri())
    page.wait_for_load_state("load")


@pytest.mark.parametrize("flow", SEED_FLOWS, ids=lambda f: f.__name__)
def test_seed_flow_page_in_chromium(
    flow: type[Workflow], page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    """No errors, no requests, one visible node per step and event type, tooltips, pixels."""
    browser, problems = page
    path = Path(draw_all_possible_flows(flow, filename=tmp_path / f"{flow.__name__}.html"))
    _open(browser, problems, path)
    graph = flow.graph()
    steps = browser.locator("g.node.step")
    events = browser.locator("g.node.event")
    assert steps.count() == len(graph.steps)
    assert events.count() == len(graph.event_types)
    for locator in (steps, events):
        for i in range(locator.count()):
            assert locator.nth(i).is_visible()

    tip = browser.locator(".tip")
    assert tip.is_hidden()
    browser.locator("g.node.event.start").hover()
    assert tip.is_visible()
    assert tip.inner_text().startswith("event StartEvent")
    steps.first.hover()
    assert "num_workers" in tip.inner_text()

    assert ink(browser, browser.screenshot()) > 0.02  # a blank page has none
    assert problems == []


def ink(page: Any, png: bytes) -> float:
    """Return the share of a screenshot's pixels that differ from its most common colour."""
    return float(
        page.evaluate(
            """async (b64) => {
                const img = new Image();
                img.src = "data:image/png;base64," + b64;
                await img.decode();
                const c = document.createElement("canvas");
                c.width = img.width; c.height = img.height;
                const g = c.getContext("2d");
                g.drawImage(img, 0, 0);
                const d = g.getImageData(0, 0, c.width, c.height).data;
                const counts = new Map();
                for (let i = 0; i < d.length; i += 4) {
                    const k = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
                    counts.set(k, (counts.get(k) || 0) + 1);
                }
                return 1 - Math.max(...counts.values()) / (d.length / 4);
            }""",
            base64.b64encode(png).decode(),
        )
    )


def test_click_highlights_paths_and_wheel_zooms(
    page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    """Clicking a node highlights what it comes from and leads to; the wheel zooms; drag pans."""
    browser, problems = page
    flow = SEED_FLOWS[2]
    path = Path(draw_all_possible_flows(flow, filename=tmp_path / "multi.html"))
    _open(browser, problems, path)
    browser.locator("g.node.step", has_text="step_a").click()
    highlighted = browser.locator("g.node.hl .label").all_text_contents()
    upstream = ["StartEvent", "start", "StepAEvent"]
    downstream = ["StepACompleteEvent", "step_three", "StopEvent"]
    assert sorted(highlighted) == sorted([*upstream, "step_a", *downstream])
    assert browser.locator("svg.canvas.focus").count() == 1
    browser.keyboard.press("Escape")
    assert browser.locator("g.node.hl").count() == 0

    before = browser.locator("svg.canvas").get_attribute("viewBox")
    browser.mouse.move(500, 400)
    browser.mouse.wheel(0, -400)
    zoomed = browser.locator("svg.canvas").get_attribute("viewBox")
    assert _width(zoomed) < _width(before)
    browser.mouse.down()
    browser.mouse.move(600, 450, steps=5)
    browser.mouse.up()
    panned = browser.locator("svg.canvas").get_attribute("viewBox")
    assert panned.split()[:2] != zoomed.split()[:2] and _width(panned) == _width(zoomed)
    browser.locator("button[data-zoom=fit]").click()
    assert browser.locator("svg.canvas").get_attribute("viewBox") == before
    assert problems == []


def _width(view_box: str | None) -> float:
    assert view_box is not None
    return float(view_box.split()[2])


def test_failed_run_page_in_chromium(page: tuple[Any, list[str]], tmp_path: Path) -> None:
    """A failed run's page shows edge counts and the failed step in red, without errors."""
    browser, problems = page
    wf = FailingFlow()
    # Playwright's loop is running in this thread, so the run gets a thread of its own.
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="value 2"):
        pool.submit(lambda: asyncio.run(_run(wf))).result()
    path = Path(draw_most_recent_execution(wf, tmp_path / "run.html"))
    _open(browser, problems, path)
    assert browser.locator("g.edge .count").all_text_contents() == ["1", "3", "3"]
    failed = browser.locator("g.node.step.failed .box")
    assert failed.count() == 1
    assert failed.evaluate("el => getComputedStyle(el).fill") == "rgb(254, 202, 202)"
    assert "ValueError: value 2 is not allowed" in browser.locator("header .sub").inner_text()
    assert problems == []


async def _run(wf: Workflow) -> None:
    await wf.run()
