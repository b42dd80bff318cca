"""Run each example as a script and check its verbose trace and result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str) -> list[str]:
    """Run ``examples/<name>`` in a fresh interpreter and return its output lines."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def assert_in_order(lines: list[str], expected: list[str]) -> None:
    """Assert that `expected` occur in `lines` in this order (other lines may come between)."""
    position = 0
    for want in expected:
        try:
            position = lines.index(want, position) + 1
        except ValueError:
            pytest.fail(f"{want!r} missing (or out of order) in output:\n" + "\n".join(lines))


def test_every_example_is_tested() -> None:
    """Each example file has a test in this module."""
    tested = {"parallel_flow.py", "collect_flow.py", "multiple_event_types.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_parallel_flow_first_stop_event_wins() -> None:
    """The quickest mirror ends the run and the slower requests never answer."""
    lines = run_example("parallel_flow.py")
    assert_in_order(
        lines,
        [
            "Running step start",
            "Step start produced no event",
            "Running step ask_mirror",
            "asking mirror-a (0.3 s)",
            "Running step ask_mirror",
            "asking mirror-b (0.2 s)",
            "Running step ask_mirror",
            "asking mirror-c (0.1 s)",
            "mirror-c answered",
            "Step ask_mirror produced event StopEvent",
        ],
    )
    assert "mirror-a answered" not in lines
    assert "mirror-b answered" not in lines
    assert lines.count("Running step ask_mirror") == 3
    assert lines[-1] == "result: mirror-c"


def test_collect_flow_waits_for_all_counts() -> None:
    """``total`` runs once per count and finishes only with all three, in arrival order."""
    lines = run_example("collect_flow.py")
    assert_in_order(
        lines,
        [
            "Running step start",
            "Step start produced no event",
            "counting intro.txt",
            "counting usage.txt",
            "counting faq.txt",
            "Step count_words produced event WordCount",
            "Running step total",
            "Step total produced no event",
            "collected: usage.txt=6, faq.txt=2, intro.txt=5",
            "Step total produced event StopEvent",
        ],
    )
    assert lines.count("Running step count_words") == 3
    assert lines.count("Step count_words produced event WordCount") == 3
    assert lines.count("Running step total") == 3
    assert lines.count("Step total produced no event") == 2
    assert lines[-1] == "result: 13 words in 3 documents"


def test_multiple_event_types_ordered_by_type_list() -> None:
    """Results arrive settings, orders, user but are collected user, orders, settings."""
    lines = run_example("multiple_event_types.py")
    assert_in_order(
        lines,
        [
            "Running step start",
            "Step start produced no event",
            "Step load_settings produced event SettingsLoaded",
            "received SettingsLoaded",
            "Step load_orders produced event OrdersLoaded",
            "received OrdersLoaded",
            "Step load_user produced event UserLoaded",
            "received UserLoaded",
            "collected in order: UserLoaded, OrdersLoaded, SettingsLoaded",
            "Step assemble produced event StopEvent",
        ],
    )
    for name in ("load_user", "load_orders", "load_settings"):
        assert lines.count(f"Running step {name}") == 1
    assert lines.count("Step assemble produced no event") == 2
    assert lines[-1] == "result: user7: 2 orders, dark theme"
