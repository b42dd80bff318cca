#!/usr/bin/env python3
"""How long a committed record takes to reach a subscriber in another process.

    .venv/bin/python benchmarks/follow_bench.py                  # SQLite and PostgreSQL
    .venv/bin/python benchmarks/follow_bench.py --only sqlite --n 2000

A writer process commits a run's records one batch (of one record) at a
time, a random 1-9 ms apart, and notes the wall-clock time at which each
`write` returned (the commit is done). This process follows the run with
``store.subscribe`` and notes when each record arrives. The latency of a
record is arrival minus commit, on one machine and one clock; the table
gives p50, p90, p99 and max over `--n` records (issue 8's target: p99 <=
50 ms). PostgreSQL is on loopback (``$FANFLOW_BENCH_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/test``) and is skipped, saying why,
when unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from fanflow import Record, RecordKind, StartEvent
from fanflow.stores import PostgresStore, SqliteStore, Store

DSN = os.environ.get("FANFLOW_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
K = RecordKind


def open_store(kind: str, where: str) -> Store:
    """Open the store under test: an SQLite file, or PostgreSQL tables of prefix `where`."""
    if kind == "sqlite":
        return SqliteStore(where)
    return PostgresStore(DSN, table_prefix=where)


def writer(kind: str, where: str, run_id: str, n: int) -> None:
    """Commit `n` records of `run_id` one at a time; print the time each commit returned."""
    store = open_store(kind, where)
    rng = random.Random(1)
    committed: list[float] = []
    try:
        store.write([Record(run_id, 1, K.RUN_STARTED, time.time(), event=StartEvent(), data="B")])
        print("started", flush=True)
        sys.stdin.readline()  # the subscriber is ready
        for seq in range(2, n + 2):
            time.sleep(rng.uniform(0.001, 0.009))
            kind_ = K.RUN_FINISHED if seq == n + 1 else K.STEP_STARTED
            data = "ok" if kind_ is K.RUN_FINISHED else 1
            record = Record(run_id, seq, kind_, time.time(), "s", 1, event_id=1, data=data)
            store.write([record])
            committed.append(time.time())
    finally:
        store.close()
    print(json.dumps(committed), flush=True)


async def follow(kind: str, where: str, n: int) -> list[float]:
    """Start a writer process, follow its run, and return each record's latency in seconds."""
    run_id = uuid.uuid4().hex
    child = subprocess.Popen(
        [sys.executable, __file__, "--writer", kind, where, run_id, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    store = open_store(kind, where)
    arrived: dict[int, float] = {}
    try:
        assert child.stdout.readline().strip() == "started"
        records = store.subscribe(run_id)  # type: ignore[attr-defined]
        assert (await anext(records)).seq == 1
        child.stdin.write("go\n")
        child.stdin.flush()
        async for record in records:
            arrived[record.seq] = time.time()
        committed = json.loads(child.stdout.readline())
        child.wait(60)
    finally:
        store.close()
        if child.poll() is None:
            child.kill()
    return [arrived[seq] - at for seq, at in enumerate(committed, 2)]


def percentile(values: list[float], p: float) -> float:
    """Return the `p`-th percentile of `values` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def row(name: str, latencies: list[float]) -> str:
    """Return one table row: p50, p90, p99, max in milliseconds."""
    ms = [value * 1000 for value in latencies]
    cells = [percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), max(ms)]
    mean = statistics.fmean(ms)
    return f"| {name} | {len(ms):,} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {mean:.1f} |"


def postgres_problem() -> str | None:
    """Return why PostgreSQL cannot be measured, or None."""
    try:
        PostgresStore(DSN, table_prefix="ffbench_probe", readonly=True).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def drop_tables(prefix: str) -> None:
    """Drop the benchmark's PostgreSQL tables."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(DSN)
        try:
            tables = ", ".join(f"{prefix}_{t}" for t in ("meta", "records", "runs", "leases"))
            await conn.execute(f"DROP TABLE IF EXISTS {tables}")
        finally:
            await conn.close()

    asyncio.run(go())


def main() -> None:
    """Measure each store and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="records per store (default 1000)")
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument("--writer", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        kind, where, run_id, n = args.writer
        writer(kind, where, run_id, int(n))
        return
    print("| store | records | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
    print("| --- | --: | --: | --: | --: | --: | --: |")
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as folder:
            path = str(Path(folder) / "runs.db")
            SqliteStore(path).close()
            name = f"SqliteStore (poll {SqliteStore.poll_interval * 1000:g} ms)"
            print(row(name, asyncio.run(follow("sqlite", path, args.n))), flush=True)
    if args.only in (None, "postgres"):
        problem = postgres_problem()
        if problem is not None:
            print(f"PostgreSQL skipped: {problem}", file=sys.stderr)
            return
        prefix = f"ffbench_{uuid.uuid4().hex[:8]}"
        PostgresStore(DSN, table_prefix=prefix).close()
        try:
            latencies = asyncio.run(follow("postgres", prefix, args.n))
            print(row("PostgresStore (LISTEN/NOTIFY)", latencies), flush=True)
        finally:
            drop_tables(prefix)


if __name__ == "__main__":
    main()
