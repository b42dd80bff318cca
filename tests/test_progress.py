"""The run status of the CLI (fanflow.cli._progress): counts, the rich table, plain lines."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterable

from rich.console import Console

from fanflow import Context, Event, MemoryStore, Record, RecordKind, StartEvent, StopEvent, Workflow
from fanflow import step as step_
from fanflow.cli._progress import Above, LiveView, Progress, ProgressListener, show_records
from fanflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed


class Job(Event):
    n: int


class Jobs(Workflow):
    """Fans out three jobs to a step with one worker; job 1 fails once."""

    failed = False

    @step_
    async def start(self, ctx: Context, ev: StartEvent) -> Job | None:
        for n in range(3):
            ctx.send_event(Job(n=n))
        return None

    @step_(
        num_workers=1, retry_policy=retry_policy(wait=wait_fixed(0.0), stop=stop_after_attempt(2))
    )
    async def work(self, ev: Job) -> StopEvent | None:
        if ev.n == 1 and not Jobs.failed:
            Jobs.failed = True
            raise ValueError("once")
        return StopEvent(result="ok") if ev.n == 2 else None


def _rendered(progress: Progress) -> str:
    screen = io.StringIO()
    Console(file=screen, width=100).print(progress.render())
    return screen.getvalue()


async def _records(records: Iterable[Record]) -> AsyncIterator[Record]:
    for record in records:
        yield record
        await asyncio.sleep(0)


async def test_hooks_and_records_count_the_same() -> None:
    """A run counted from its hooks and from its records gives the same plain lines."""
    Jobs.failed = False
    heard = Progress()
    store = MemoryStore()
    handler = Jobs(store=store, listeners=[ProgressListener(heard)]).run()
    assert await handler == "ok"
    read = Progress()
    read.add(store.records(handler.run_id))
    assert (
        heard.lines()
        == read.lines()
        == [
            "running: -",
            "done:    start 1, work 3 (1 failed)",
            "events:  StartEvent 1, Job 3, StopEvent 1",
        ]
    )
    assert heard.ended == read.ended == "ok"


def test_waiting_counts_events_of_a_type_the_step_took_before() -> None:
    """Once a step started on a type, the events of that type it has not started on wait."""
    progress = Progress()
    for n in range(4):
        progress.emitted("Job", n)
    assert progress.waiting("work") == 0  # not known to take Job yet
    progress.started("work", 1, "Job", 1)
    assert progress.waiting("work") == 3
    progress.started("work", 1, "Job", 2)  # a retry takes no new event
    assert progress.waiting("work") == 3
    progress.finished("work", 1, 0.5)
    progress.started("work", 2, "Job", 1)
    assert progress.waiting("work") == 2


def test_p50_is_the_median_of_attempt_durations() -> None:
    """Finished and failed attempts both count towards a step's p50."""
    progress = Progress()
    progress.started("s", 1, "E", 1)
    progress.failed_attempt("s", 0.1)
    progress.finished("s", 1, 0.3)
    progress.started("s", 2, "E", 1)
    progress.finished("s", 2, 0.2)
    assert progress.p50("s") == 0.2
    assert progress.p50("other") is None


def test_table_has_a_row_per_step_with_its_counts() -> None:
    """The rich table shows running, done, failed, waiting and p50 for each step."""
    progress = Progress()
    for n in range(3):
        progress.emitted("Job", n)
    progress.started("work", 1, "Job", 1)
    progress.finished("work", 1, 0.002)
    progress.started("work", 2, "Job", 1)
    text = _rendered(progress)
    header, row = text.splitlines()[:2]
    assert header.split() == ["step", "running", "done", "failed", "waiting", "p50"]
    assert row.split()[:5] == ["work", "1", "1", "1", "2.0"]
    assert "events: Job 3" in text


async def test_show_records_prints_plain_lines_when_not_a_terminal() -> None:
    """Off a terminal, a progress line when counts change, then the final counts."""
    Jobs.failed = False
    store = MemoryStore()
    handler = Jobs(store=store).run()
    await handler
    out = io.StringIO()
    progress = await show_records(_records(store.records(handler.run_id)), out, every=0.0)
    lines = out.getvalue().splitlines()
    assert lines[0] == "progress: running: - | done:    - | events:  StartEvent 1"
    assert lines[-2:] == ["done:    start 1, work 3 (1 failed)", progress.lines()[2]]


async def test_show_records_draws_a_live_table_on_a_terminal() -> None:
    """On a terminal the table is drawn with escape codes and erased at the end."""
    Jobs.failed = False
    store = MemoryStore()
    handler = Jobs(store=store).run()
    await handler
    out = io.StringIO()
    await show_records(_records(store.records(handler.run_id)), out, live=True)
    text = out.getvalue()
    assert "\x1b[" in text and "waiting" in text
    assert text.endswith(
        "done:    start 1, work 3 (1 failed)\nevents:  StartEvent 1, Job 3, StopEvent 1\n"
    )


def test_writes_above_the_live_table_go_to_a_plain_stream_unchanged() -> None:
    """Output for a stream that is not a terminal is written as is, not drawn on the console."""
    view = LiveView(Progress(), io.StringIO())
    real = io.StringIO()
    above = Above(real, view)
    above.write("event: x\n")
    assert real.getvalue() == "event: x\n" and not above.isatty()


def test_records_of_other_kinds_change_nothing() -> None:
    """State changes and streamed events leave the counts alone."""
    progress = Progress()
    assert not progress.add([Record("r", 1, RecordKind.STATE_CHANGED, 0.0, "s", 1)])


async def test_show_records_prints_each_records_line_above_the_table() -> None:
    """`each` turns records into lines printed above the live table (runs show --follow)."""
    Jobs.failed = False
    store = MemoryStore()
    handler = Jobs(store=store).run()
    await handler
    records = store.records(handler.run_id)
    out = io.StringIO()
    await show_records(_records(records), out, live=True, each=lambda r: f"seq {r.seq}")
    text = out.getvalue()
    assert all(f"seq {r.seq}\n" in text for r in records)
    assert text.index("seq 1\n") < text.index(f"seq {records[-1].seq}\n")
