#!/usr/bin/env python3
"""What durability costs: fan-out n=10,000 W=4 per event, by store and durability level.

    .venv/bin/python benchmarks/durability_bench.py                 # every level, 3 repeats
    .venv/bin/python benchmarks/durability_bench.py --only sqlite   # the SQLite rows only
    .venv/bin/python benchmarks/durability_bench.py --profile sqlite-batched
    .venv/bin/python benchmarks/durability_bench.py --workload chain --n 1000

The flow is the hoisted fan-out of benchmarks/fanout_hoisted.py::

    start --send_event x n--> work (num_workers=W) --> collect (n) --> StopEvent

run on a `MemoryStore` (the default), on `SqliteStore` with each durability
level, and on `PostgresStore` (batched at n; sync at --pg-sync-n, 1,000 by
default, because it commits every record: about 7 commits per event).
Every measurement is a fresh process with a fresh database file (or fresh
PostgreSQL tables, dropped afterwards); the levels alternate within a
repeat. Each process first runs a 10-event warm-up on the same store, then
times one run, ``await`` included (for "exit" that is where the records are
written). The table shows the median (min-max) per event over the repeats
and its ratio to the in-memory median of the same sitting; issue 4's target
is SQLite batched <= 3x. PostgreSQL rows are skipped, saying why, when
asyncpg or the server (``$FANFLOW_BENCH_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/test``) is missing.

``--workload chain`` times a chain instead: one step that sends itself the
next hop n times (us per hop). The ``-full`` SQLite rows open the file with
``synchronous="FULL"``, which syncs the log at every commit (what survives a
power loss). benchmarks/peers/ runs the same workloads on DBOS and LangGraph.

``--profile LEVEL`` runs one measurement in this process under cProfile
and prints where the time goes, grouped into the engine, JSON encoding, the
store's own code and the SQL it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import json
import os
import platform
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fanout_hoisted

from fanflow import Context, Event, MemoryStore, StartEvent, StopEvent, Store, Workflow, step
from fanflow.stores import PostgresStore, SqliteStore

DSN = os.environ.get("FANFLOW_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Level:
    """One row of the table: a store, a durability level, and the fan-out size."""

    name: str
    store: str  # "memory", "sqlite", "sqlite-full" or "postgres"
    durability: str
    n: int | None = None  # None: --n


def levels(args: argparse.Namespace) -> list[Level]:
    """Return the rows to measure, in table order."""
    rows = [
        Level("memory", "memory", "batched"),
        Level("sqlite-sync", "sqlite", "sync"),
        Level("sqlite-batched", "sqlite", "batched"),
        Level("sqlite-exit", "sqlite", "exit"),
        Level("sqlite-full-sync", "sqlite-full", "sync"),
        Level("sqlite-full-batched", "sqlite-full", "batched"),
        Level("postgres-batched", "postgres", "batched"),
        Level("postgres-sync", "postgres", "sync", args.pg_sync_n),
    ]
    return [row for row in rows if any(word in row.name for word in args.only)]


# ---------------------------------------------------------------- the flow
# The hoisted fan-out of fanout_hoisted.py (this script's folder is on sys.path).


def make_fanout(n: int, workers: int, store: Store, durability: str) -> Any:
    """Return the hoisted fan-out workflow of n events over `workers` workers on `store`."""
    return fanout_hoisted.make_fanout(n, workers, timeout=None, store=store, durability=durability)


class Hop(Event):
    i: int


def make_chain(n: int, workers: int, store: Store, durability: str) -> Any:
    """Return a chain of n hops: one step that sends itself the next hop until the last."""

    class Chain(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Hop:
            return Hop(i=0)

        @step
        async def hop(self, ctx: Context, ev: Hop) -> Hop | StopEvent:
            return Hop(i=ev.i + 1) if ev.i + 1 < n else StopEvent(result=n)

    return Chain(timeout=None, store=store, durability=durability)


WORKLOADS = {"fanout": make_fanout, "chain": make_chain}


# ---------------------------------------------------------------- one measurement


@contextlib.contextmanager
def open_store(kind: str) -> Iterator[Store]:
    """Yield a fresh store of `kind`; its file or tables are removed afterwards."""
    if kind == "memory":
        yield MemoryStore()
    elif kind.startswith("sqlite"):
        synchronous = "FULL" if kind == "sqlite-full" else "NORMAL"
        with (
            tempfile.TemporaryDirectory() as tmp,
            SqliteStore(Path(tmp) / "runs.db", synchronous=synchronous) as store,
        ):
            yield store
    else:
        prefix = f"ffbench_{uuid.uuid4().hex[:10]}"
        store = PostgresStore(DSN, table_prefix=prefix)
        try:
            yield store
        finally:
            store.close()
            drop_tables(prefix)


def drop_tables(prefix: str) -> None:
    """Drop the PostgreSQL tables of `prefix`."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(DSN, timeout=10)
        try:
            tables = ", ".join(f"{prefix}_{t}" for t in ("meta", "records", "runs", "leases"))
            await conn.execute(f"DROP TABLE IF EXISTS {tables}")
        finally:
            await conn.close()

    asyncio.run(go())


def measure(
    level: Level,
    n: int,
    workers: int,
    profiler: cProfile.Profile | None = None,
    workload: str = "fanout",
) -> dict[str, Any]:
    """Time one run of `workload` at `level` (under `profiler`, if given); return its figures."""
    make = WORKLOADS[workload]
    with open_store(level.store) as store:

        async def go() -> tuple[float, Any, str]:
            await make(10, workers, store, level.durability).run()  # warm-up
            wf = make(n, workers, store, level.durability)
            if profiler is not None:
                profiler.enable()
            started = time.perf_counter()
            handler = wf.run()
            result = await handler
            wall = time.perf_counter() - started
            if profiler is not None:
                profiler.disable()
            return wall, result, handler.run_id

        wall, result, run_id = asyncio.run(go())
        records = len(store.records(run_id))
    if result != n:
        raise SystemExit(f"{level.name}: the {workload} returned {result!r}, not {n}")
    return {
        "level": level.name,
        "workload": workload,
        "n": n,
        "workers": workers,
        "wall_s": round(wall, 6),
        "us_per_event": round(wall / n * 1e6, 3),
        "records": records,
        "us_per_record": round(wall / records * 1e6, 3),
    }


# ---------------------------------------------------------------- the sitting


def postgres_problem() -> str | None:
    """Return why PostgreSQL rows cannot run here, or None if they can."""
    try:
        PostgresStore(DSN, table_prefix="ffbench_probe").close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    drop_tables("ffbench_probe")
    return None


def run_child(level: Level, n: int, workers: int, workload: str = "fanout") -> dict[str, Any]:
    """Measure `level` in a fresh process and return its figures."""
    command = [sys.executable, __file__, "--child", level.name, "--n", str(n)]
    command += ["--workload", workload]
    done = subprocess.run(
        [*command, "--workers", str(workers)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{level.name} failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return figures


def header(args: argparse.Namespace) -> str:
    """Return the date, machine, Python and commit of this sitting."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    return (
        f"{datetime.date.today()}  {platform.system()} {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n"
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"commit {commit}{' + uncommitted src/' if dirty else ''}; "
        f"{args.workload} W={args.workers}, {args.repeat} fresh processes per row"
    )


def table(rows: dict[Level, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    """Return the results as a markdown table with ratios to the in-memory median."""
    medians = {
        level.name: statistics.median(f["us_per_event"] for f in runs)
        for level, runs in rows.items()
        if runs
    }
    memory = medians.get("memory")
    lines = [
        "| store, durability | n | us/event median (min-max) | x memory | records/event |",
        "| --- | --: | --: | --: | --: |",
    ]
    for level, runs in rows.items():
        n = level.n or args.n
        if not runs:
            lines.append(f"| {level.name} | {n:,} | skipped | | |")
            continue
        costs = [f["us_per_event"] for f in runs]
        median = medians[level.name]
        ratio = f"{median / memory:.2f}" if memory else "?"
        per_event = runs[0]["records"] / n
        lines.append(
            f"| {level.name} | {n:,} | {median:.1f} ({min(costs):.1f}-{max(costs):.1f}) "
            f"| {ratio} | {per_event:.1f} |"
        )
    return "\n".join(lines)


def sitting(args: argparse.Namespace) -> int:
    """Measure every level --repeat times in fresh processes and print the table."""
    chosen = levels(args)
    problem = postgres_problem() if any(lv.store == "postgres" for lv in chosen) else None
    rows: dict[Level, list[dict[str, Any]]] = {level: [] for level in chosen}
    print(header(args), flush=True)
    for repeat in range(args.repeat):
        order = chosen if repeat % 2 == 0 else chosen[::-1]
        for level in order:
            if level.store == "postgres" and problem:
                continue
            figures = run_child(level, level.n or args.n, args.workers, args.workload)
            rows[level].append(figures)
            print(f"  repeat {repeat + 1}: {level.name}: {figures['us_per_event']} us/event")
            if args.out:
                with open(args.out, "a") as out:
                    out.write(json.dumps(figures) + "\n")
    print(table(rows, args))
    if problem:
        print(f"PostgreSQL rows skipped: {problem} ({DSN})")
    return 0


# ---------------------------------------------------------------- profiling

GROUPS = (
    # PostgresStore runs asyncpg on a thread of its own: the caller waits on a lock.
    ("SQL: inserts and commits (sqlite3, asyncpg)", ("method 'execute", "'_thread.lock'")),
    ("JSON encoding (serialize.py, _rows.py, json)", ("serialize.py", "_rows.py", "json/")),
    ("the store's own Python (the rest of stores/)", ("stores/",)),
)


def profile(args: argparse.Namespace) -> int:
    """Profile one measurement of `args.profile` and print where its time goes."""
    level = next((lv for lv in levels(args) if lv.name == args.profile), None)
    if level is None:
        raise SystemExit(f"--profile takes one of {', '.join(lv.name for lv in levels(args))}")
    profiler = cProfile.Profile()
    figures = measure(level, level.n or args.n, args.workers, profiler, args.workload)
    stats = pstats.Stats(profiler)
    print(json.dumps(figures))
    total = figures["wall_s"]
    own: dict[str, float] = {}
    for (path, _, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{path}:{name}"
        group = next(
            (g for g, keys in GROUPS if any(k in where for k in keys)), "engine and the rest"
        )
        own[group] = own.get(group, 0.0) + tottime
    spent = sum(own.values())
    print(f"own time by group, of {spent:.2f} s (the run took {total:.2f} s under cProfile):")
    for group, seconds in sorted(own.items(), key=lambda item: -item[1]):
        print(f"  {seconds / spent:6.1%}  {seconds:7.3f} s  {group}")
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="events per fan-out (10,000)")
    parser.add_argument("--workers", type=int, default=4, help="num_workers of the work step (4)")
    parser.add_argument("--pg-sync-n", type=int, default=1_000, help="n of postgres-sync (1,000)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per row (3)")
    parser.add_argument(
        "--only", nargs="+", default=[""], help="measure rows whose name contains a word"
    )
    parser.add_argument("--workload", choices=tuple(WORKLOADS), default="fanout")
    parser.add_argument("--out", help="append each measurement to this file as a JSON line")
    parser.add_argument("--profile", metavar="LEVEL", help="profile one level in this process")
    parser.add_argument("--top", type=int, default=25, help="functions --profile lists (25)")
    parser.add_argument("--child", metavar="LEVEL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        level = next(lv for lv in levels(args) if lv.name == args.child)
        print(json.dumps(measure(level, args.n, args.workers, workload=args.workload)))
        return 0
    if args.profile:
        return profile(args)
    return sitting(args)


if __name__ == "__main__":
    sys.exit(main())
