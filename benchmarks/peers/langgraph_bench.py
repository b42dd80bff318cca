#!/usr/bin/env python3
"""The durability benchmark's chain and fan-out on LangGraph with its SQLite or PostgreSQL saver.

Run it in a virtual environment of its own (LangGraph is never a fanflow dependency)::

    python3.11 -m venv /tmp/peer-lg && /tmp/peer-lg/bin/pip install langgraph \\
        langgraph-checkpoint-sqlite langgraph-checkpoint-postgres 'psycopg[binary]'
    /tmp/peer-lg/bin/python benchmarks/peers/langgraph_bench.py --db sqlite --workload chain

One measurement per process, printed as a JSON line (us per hop or per event):

- chain: a node that loops to itself `n` times (a super-step, and so a
  checkpoint, per hop);
- fan-out: a node sends `n` items (``Send``) to a worker node, run at most
  `workers` at a time (``max_concurrency``), whose outputs a reducer
  gathers; a last node counts them.

Checkpointers: ``AsyncSqliteSaver`` on a fresh file, ``AsyncPostgresSaver``
on a fresh PostgreSQL database (dropped afterwards). Durability mode
"sync" for the chain's per-step checkpoint to be written before the next
step, as fanflow's and DBOS's are; ``--durability async`` for LangGraph's
default. A 10-item warm-up runs first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import sys
import tempfile
import time
import uuid
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

DSN = os.environ.get("FANFLOW_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


class ChainState(TypedDict):
    i: int
    n: int


class FanState(TypedDict):
    n: int
    results: Annotated[list[int], operator.add]
    total: int


class Item(TypedDict):
    i: int


def chain_graph() -> StateGraph:
    graph = StateGraph(ChainState)
    graph.add_node("hop", lambda s: {"i": s["i"] + 1})
    graph.add_edge(START, "hop")
    graph.add_conditional_edges("hop", lambda s: "hop" if s["i"] < s["n"] else END)
    return graph


def fanout_graph() -> StateGraph:
    graph = StateGraph(FanState)
    graph.add_node("start", lambda s: {})
    graph.add_node("work", lambda item: {"results": [item["i"]]})
    graph.add_node("collect", lambda s: {"total": len(s["results"])})
    graph.add_edge(START, "start")
    graph.add_conditional_edges(
        "start", lambda s: [Send("work", {"i": i}) for i in range(s["n"])], ["work"]
    )
    graph.add_edge("work", "collect")
    graph.add_edge("collect", END)
    return graph


async def run_once(app, workload: str, n: int, workers: int, durability: str) -> int:
    config = {
        "configurable": {"thread_id": uuid.uuid4().hex},
        "recursion_limit": n + 10,
        "max_concurrency": workers,
    }
    if workload == "chain":
        out = await app.ainvoke({"i": 0, "n": n}, config, durability=durability)
        return int(out["i"])
    out = await app.ainvoke({"n": n, "results": []}, config, durability=durability)
    return int(out["total"])


async def measure(saver, args: argparse.Namespace) -> tuple[float, int]:
    graph = chain_graph() if args.workload == "chain" else fanout_graph()
    app = graph.compile(checkpointer=saver)
    await run_once(app, args.workload, 10, args.workers, args.durability)
    started = time.perf_counter()
    result = await run_once(app, args.workload, args.n, args.workers, args.durability)
    return time.perf_counter() - started, result


async def on_sqlite(args: argparse.Namespace) -> tuple[float, int]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    with tempfile.TemporaryDirectory() as folder:
        async with AsyncSqliteSaver.from_conn_string(f"{folder}/lg.sqlite") as saver:
            return await measure(saver, args)


async def on_postgres(args: argparse.Namespace) -> tuple[float, int]:
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    name = f"ffpeer_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        url = DSN.rsplit("/", 1)[0] + f"/{name}"
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            return await measure(saver, args)
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workload", choices=("chain", "fanout"), default="chain")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--durability", choices=("sync", "async", "exit"), default="sync")
    args = parser.parse_args()
    run = on_sqlite if args.db == "sqlite" else on_postgres
    wall, result = asyncio.run(run(args))
    if result != args.n:
        raise SystemExit(f"the {args.workload} returned {result}, not {args.n}")
    record = {
        "peer": "langgraph",
        "db": args.db,
        "workload": args.workload,
        "durability": args.durability,
        "n": args.n,
        "wall_s": round(wall, 6),
        "us_per_item": round(wall / args.n * 1e6, 1),
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
