"""The program tests/test_crash.py starts, kills with SIGKILL and resumes.

One command per process::

    python tests/crash_child.py --db sqlite:////tmp/runs.db               # start a LoopFlow run
    python tests/crash_child.py --db URL --run-id ID                       # resume it
    python tests/crash_child.py --db URL --kill-after 7 --kill-at after    # die after batch 7
    python tests/crash_child.py --db URL --ask [--run-id ID]               # AskFlow: wait for input

It prints JSON lines: ``{"run_id": ..., "pid": ...}`` as soon as the run has
an id, ``{"waiting": true}`` once AskFlow waits for its answer (and the
records saying so are in the store), ``{"result": ..., "state": {...}}`` when
the run ends, ``{"error": "..."}`` if the program fails.

``--kill-after N`` makes the process SIGKILL itself around the N-th batch of
records the run hands to its store: ``before`` the store sees it (the batch
is lost), ``after`` it is committed, or (SQLite only) at ``commit``, inside
the batch's transaction just before its COMMIT. Counting batches instead of
sleeping makes every kill land on a chosen moment of the run, the same on
every machine, and it is still a real SIGKILL: no ``finally``, no atexit.

Faults (tests/test_crash.py) use ``--pause-after N``: once the N-th batch
is committed the process prints ``{"paused": N}`` and waits for a line on
stdin, while the test breaks the store (locks the file, fills the disk,
cuts the connection). Each write that fails then prints
``{"write_failed": k}``; a run that the store failed past
``--store-retry-limit`` seconds prints ``{"interrupted": "..."}``.
``--sqlite-timeout`` is how long an SQLite write waits for a lock.

``--zygote`` serves many commands cheaply: it imports everything once, then
reads one JSON command per line on stdin (the options above as keys) and
forks a fresh process for each; it answers each with one JSON line
``{"pid": ..., "lines": [...], "signal": 9 or null, "exit": code or null}``
once that process has ended. The forked process has run nothing before its
command, so a resume in it starts from what the store holds, like a new
process started from scratch, without paying ~0.4 s of imports each time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from resume_flows import AskFlow

from fanflow import (
    Context,
    Event,
    InputRequiredEvent,
    Record,
    StartEvent,
    StopEvent,
    Workflow,
    step,
)
from fanflow.errors import JournalInterrupted
from fanflow.stores import PostgresStore, SqliteStore, Store, open_store

ITEMS = 5
ROUNDS = 3
WATCHDOG_SECONDS = 60  # a child still alive after this is stuck: SIGALRM ends it

Out = Callable[[dict[str, Any]], None]


class Round(Event):
    round: int


class Item(Event):
    round: int
    i: int


class Done(Event):
    round: int
    i: int
    value: int


class Checked(Event):
    round: int
    i: int


class LoopFlow(Workflow):
    """Rounds of fan-out; each result is consumed by two steps and collected with its check.

    ``begin -> Round -> fan -> Item x ITEMS -> work (3 workers) -> Done``;
    ``Done`` goes to both ``tally`` (-> ``Checked``) and ``gather``, which
    collects ``Done`` and ``Checked`` per round (a buffer per round), keeps
    the round's total in the state and loops with the next ``Round`` or
    stops. Every state write is idempotent, as at-least-once reruns need.
    Result with seed 2: 15 * (2 + 3 + 4) = 135.
    """

    @step
    async def begin(self, ctx: Context, ev: StartEvent) -> Round:
        await ctx.store.set("seed", ev.get("seed", 1))
        return Round(round=0)

    @step
    async def fan(self, ctx: Context, ev: Round) -> Item:
        # Streamed first: a rerun may still be replaying its sends when the run
        # ends, and the stream should not depend on how far it got.
        ctx.write_event_to_stream(ev)
        for i in range(ITEMS):
            ctx.send_event(Item(round=ev.round, i=i))
            await asyncio.sleep(0)
        return None

    @step(num_workers=3)
    async def work(self, ctx: Context, ev: Item) -> Done:
        seed = await ctx.store.get("seed")
        await asyncio.sleep(0)
        value = (ev.i + 1) * (ev.round + seed)
        await ctx.store.set(f"results.r{ev.round}.i{ev.i}", value)
        return Done(round=ev.round, i=ev.i, value=value)

    @step(num_workers=2)
    async def tally(self, ctx: Context, ev: Done) -> Checked:
        await asyncio.sleep(0)
        return Checked(round=ev.round, i=ev.i)

    @step
    async def gather(self, ctx: Context, ev: Done | Checked) -> Round | StopEvent:
        got = ctx.collect_events(ev, [Done] * ITEMS + [Checked] * ITEMS, f"r{ev.round}")
        if got is None:
            return None
        total = sum(d.value for d in got if isinstance(d, Done))
        await ctx.store.set(f"totals.r{ev.round}", total)
        if ev.round + 1 < ROUNDS:
            return Round(round=ev.round + 1)
        totals = await ctx.store.get("totals")
        return StopEvent(result=sum(totals.values()))


class KillSwitch:
    """Wraps a store; SIGKILLs this process around the `kill_after`-th batch written."""

    def __init__(
        self,
        store: Store,
        kill_after: int | None,
        kill_at: str,
        pause_after: int | None = None,
        out: Out | None = None,
    ) -> None:
        self.store = store
        self.pause_after = pause_after
        self.out = out
        self.failures = 0
        self.durable = getattr(store, "durable", False)
        self.kill_after = kill_after
        self.kill_at = kill_at
        self.batches = 0
        self.writing = False
        if kill_after is not None and kill_at == "commit":
            # sqlite3 calls the trace callback as a statement starts: killing
            # there leaves the batch's inserts done and its COMMIT undone.
            conn = getattr(store, "_conn", None)
            if not isinstance(store, SqliteStore) or conn is None:
                raise SystemExit("--kill-at commit needs an SQLite store")
            conn.set_trace_callback(self._trace)

    def write(self, records: Sequence[Record]) -> None:
        self.batches += 1
        due = self.batches == self.kill_after
        if due and self.kill_at == "before":
            die()
        self.writing = due
        try:
            self.store.write(records)
        except Exception:
            self.failures += 1
            if self.out is not None:
                self.out({"write_failed": self.failures})
            raise
        finally:
            self.writing = False
        if due and self.kill_at == "after":
            die()
        if self.batches == self.pause_after and self.out is not None:
            self.out({"paused": self.batches})
            sys.stdin.readline()  # the test breaks the store meanwhile

    def _trace(self, statement: str) -> None:
        if self.writing and statement == "COMMIT":
            die()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def die() -> None:
    """End this process the way a crash does."""
    os.kill(os.getpid(), signal.SIGKILL)


def open_db(url: str, table_prefix: str | None, sqlite_timeout: float | None = None) -> Store:
    """Open the store at `url`; a PostgreSQL one on tables of `table_prefix` if given."""
    if table_prefix:
        return PostgresStore(url, table_prefix=table_prefix)
    if sqlite_timeout is not None:
        return SqliteStore(url.removeprefix("sqlite:///"), timeout=sqlite_timeout)
    return open_store(url)


async def drive(command: dict[str, Any], out: Out) -> None:
    """Run one command (see the module docstring), reporting through `out`."""
    store = KillSwitch(
        open_db(command["db"], command.get("table_prefix"), command.get("sqlite_timeout")),
        command.get("kill_after"),
        command.get("kill_at", "after"),
        command.get("pause_after"),
        out,
    )
    try:
        if command.get("ask"):
            await _ask(store, command.get("run_id"), out)
        else:
            await _loop(store, command, out)
    finally:
        store.close()


async def _loop(store: KillSwitch, command: dict[str, Any], out: Out) -> None:
    limit = command.get("store_retry_limit")
    wf = LoopFlow(
        store=store,
        durability=command.get("durability", "batched"),
        **({} if limit is None else {"store_retry_limit": limit}),
    )
    run_id = command.get("run_id")
    handler = wf.resume(run_id) if run_id else wf.run(seed=command.get("seed", 2))
    out({"run_id": handler.run_id, "pid": os.getpid()})
    try:
        result = await handler
    except JournalInterrupted as exc:
        out({"interrupted": str(exc)})
        return
    state = (await handler.ctx.store.get_state()).model_dump()
    out({"result": result, "state": state})


async def _ask(store: KillSwitch, run_id: str | None, out: Out) -> None:
    wf = AskFlow(store=store, timeout=None)
    handler = wf.resume(run_id) if run_id else wf.run()
    out({"run_id": handler.run_id, "pid": os.getpid()})
    async for event in handler.stream_events():
        if isinstance(event, InputRequiredEvent):
            break
    await handler.ctx._run.committed()  # the wait is in the store before we say so
    out({"waiting": True})
    out({"result": await handler})


def run_command(command: dict[str, Any], stream: TextIO) -> int:
    """Run `command`, writing its JSON lines to `stream`; return the exit code."""

    def out(line: dict[str, Any]) -> None:
        stream.write(json.dumps(line) + "\n")
        stream.flush()

    signal.alarm(WATCHDOG_SECONDS)
    try:
        asyncio.run(drive(command, out))
    except BaseException:
        out({"error": traceback.format_exc()})
        return 1
    return 0


def zygote(commands: TextIO, replies: TextIO) -> None:
    """Fork a fresh process per command line read from `commands`; reply when it ends."""
    for line in commands:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 1
            try:
                with os.fdopen(write_end, "w") as stream:
                    code = run_command(json.loads(line), stream)
            finally:
                os._exit(code)  # skip the zygote's atexit and buffers
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            lines = [json.loads(text) for text in pipe]
        _, status = os.waitpid(pid, 0)
        reply = {
            "pid": pid,
            "lines": lines,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        }
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main(argv: list[str] | None = None) -> int:
    """Run one command from the command line, or serve commands with ``--zygote``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="store URL: sqlite:///... or postgresql://...")
    parser.add_argument("--table-prefix", help="PostgreSQL tables prefix (default fanflow)")
    parser.add_argument("--run-id", help="resume this run instead of starting one")
    parser.add_argument("--durability", default="batched", choices=("sync", "batched", "exit"))
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--kill-after", type=int, help="SIGKILL around this batch (1-based)")
    parser.add_argument("--kill-at", default="after", choices=("before", "after", "commit"))
    parser.add_argument("--ask", action="store_true", help="run AskFlow instead of LoopFlow")
    parser.add_argument("--pause-after", type=int, help="wait for a stdin line after this batch")
    parser.add_argument("--store-retry-limit", type=float, help="Workflow(store_retry_limit=)")
    parser.add_argument("--sqlite-timeout", type=float, help="SqliteStore(timeout=)")
    parser.add_argument("--zygote", action="store_true", help="serve commands from stdin")
    args = parser.parse_args(argv)
    if args.zygote:
        zygote(sys.stdin, sys.stdout)
        return 0
    if not args.db:
        parser.error("--db is required")
    command = {key: value for key, value in vars(args).items() if key != "zygote"}
    return run_command(command, sys.stdout)


def _preload() -> None:
    """Import asyncpg now, when there is one, so forked children need not."""
    with contextlib.suppress(ImportError):
        import asyncpg  # noqa: F401


if __name__ == "__main__":
    # Run as the module `crash_child`, not `__main__`, so that event types are
    # stored as crash_child:Round etc., the names the test process knows them by.
    import crash_child

    crash_child._preload()
    sys.exit(crash_child.main())
