#!/usr/bin/env python3
"""fanflow, DBOS and LangGraph side by side: chain and fan-out, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/peers/run_peers.py                       # n=1000, 3 repeats
    .venv/bin/python benchmarks/peers/run_peers.py --dbos /tmp/peer-dbos/bin/python \\
        --langgraph /tmp/peer-lg/bin/python --n 1000 --repeat 3

Each measurement is a fresh process (fanflow through
benchmarks/durability_bench.py ``--child``; the peers through their own
scripts here, each with the Python of its own virtual environment); the
rows alternate within a repeat. The table gives the median us per hop
(chain) or per event (fan-out), and each row's ratio to fanflow with the
same database and a durability that commits before going on (fanflow
"sync", DBOS's step checkpoints, LangGraph's ``durability="sync"``), and to
fanflow "batched".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent / "durability_bench.py"


def rows(args: argparse.Namespace) -> list[tuple[str, str, str, list[str]]]:
    """Return (name, db, workload, command) for every measurement of one repeat."""
    out = []
    for workload in ("chain", "fanout"):
        for db in ("sqlite", "postgres"):
            common = ["--n", str(args.n), "--workload", workload]
            for level in ("sync", "batched"):
                command = [sys.executable, str(BENCH), "--child", f"{db}-{level}", *common]
                out.append((f"fanflow {level}", db, workload, command))
            dbos = [args.dbos, str(HERE / "dbos_bench.py"), "--db", db, *common]
            out.append(("DBOS", db, workload, dbos))
            lg = [args.langgraph, str(HERE / "langgraph_bench.py"), "--db", db, *common]
            out.append(("LangGraph sync", db, workload, lg))
    return out


def run(command: list[str]) -> float:
    """Run one measurement; return its us per item."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return float(figures.get("us_per_item", figures.get("us_per_event")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dbos", default="/tmp/peer-dbos/bin/python", help="DBOS venv's python")
    parser.add_argument("--langgraph", default="/tmp/peer-lg/bin/python", help="LangGraph's")
    args = parser.parse_args()
    plan = rows(args)
    found: dict[tuple[str, str, str], list[float]] = {(n, d, w): [] for n, d, w, _ in plan}
    for repeat in range(args.repeat):
        for name, db, workload, command in plan if repeat % 2 == 0 else plan[::-1]:
            value = run(command)
            found[(name, db, workload)].append(value)
            print(f"  repeat {repeat + 1}: {workload} {db} {name}: {value:.1f} us", flush=True)
    print(
        f"\n| workload (n={args.n:,}) | database | system | us per item | x fanflow sync "
        "| x fanflow batched |"
    )
    print("| --- | --- | --- | --: | --: | --: |")
    for (name, db, workload), values in found.items():
        median = statistics.median(values)
        sync = statistics.median(found[("fanflow sync", db, workload)])
        batched = statistics.median(found[("fanflow batched", db, workload)])
        print(
            f"| {workload} | {db} | {name} | {median:,.1f} ({min(values):,.0f}-{max(values):,.0f}) "
            f"| {median / sync:.1f} | {median / batched:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
