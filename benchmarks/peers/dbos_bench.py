#!/usr/bin/env python3
"""The durability benchmark's chain and fan-out on DBOS (SQLite or PostgreSQL system database).

Run it in a virtual environment of its own (DBOS is never a fanflow dependency)::

    python3.11 -m venv /tmp/peer-dbos && /tmp/peer-dbos/bin/pip install dbos
    /tmp/peer-dbos/bin/python benchmarks/peers/dbos_bench.py --db sqlite --workload chain --n 1000

One measurement per process, printed as a JSON line (us per hop or per event):

- chain: a workflow runs `n` steps one after the other, each step's output
  the next one's input (each step is checkpointed before the next starts);
- fan-out: a workflow runs `n` steps concurrently, at most `workers` at a
  time (asyncio.gather under a semaphore), and sums their outputs.

A 10-item warm-up runs first; a fresh SQLite file, or a fresh PostgreSQL
database (dropped afterwards), per process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid

from dbos import DBOS

DSN = os.environ.get("FANFLOW_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@DBOS.step()
async def hop(i: int) -> int:
    return i + 1


@DBOS.step()
async def work(i: int) -> int:
    return i


@DBOS.workflow()
async def chain(n: int) -> int:
    i = 0
    while i < n:
        i = await hop(i)
    return i


@DBOS.workflow()
async def fanout(n: int, workers: int) -> int:
    gate = asyncio.Semaphore(workers)

    async def one(i: int) -> int:
        async with gate:
            return await work(i)

    results = await asyncio.gather(*(one(i) for i in range(n)))
    return len(results)


def database(kind: str, folder: str) -> tuple[str, str | None]:
    """Return the system database URL for `kind`, and the PostgreSQL database to drop."""
    if kind == "sqlite":
        return f"sqlite:///{folder}/dbos.sqlite", None
    name = f"ffpeer_{uuid.uuid4().hex[:10]}"
    return DSN.rsplit("/", 1)[0] + f"/{name}", name


def drop(name: str) -> None:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def measure(workload: str, n: int, workers: int) -> tuple[float, int]:
    if workload == "chain":
        await chain(10)
        started = time.perf_counter()
        result = await chain(n)
    else:
        await fanout(10, workers)
        started = time.perf_counter()
        result = await fanout(n, workers)
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workload", choices=("chain", "fanout"), default="chain")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, dropped = database(args.db, folder)
        DBOS(config={"name": "ffbench", "system_database_url": url, "run_admin_server": False})
        try:
            DBOS.launch()
            wall, result = asyncio.run(measure(args.workload, args.n, args.workers))
        finally:
            DBOS.destroy()
            if dropped:
                drop(dropped)
    if result != args.n:
        raise SystemExit(f"the {args.workload} returned {result}, not {args.n}")
    print(
        json.dumps(
            {
                "peer": "dbos",
                "db": args.db,
                "workload": args.workload,
                "n": args.n,
                "wall_s": round(wall, 6),
                "us_per_item": round(wall / args.n * 1e6, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
