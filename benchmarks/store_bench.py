"""Time `store.write` of 10,000 records in batches of 100: memory, SQLite, PostgreSQL.

    .venv/bin/python benchmarks/store_bench.py                  # all three
    .venv/bin/python benchmarks/store_bench.py --records 50000  # more records
    FANFLOW_BENCH_POSTGRES=postgresql://... .venv/bin/python benchmarks/store_bench.py

The records are a run's typical mix (events emitted, step starts and ends,
state changes). Each store writes them REPEAT times into a fresh location;
the best and median microseconds per record are printed. PostgreSQL is
skipped, saying why, when asyncpg or the server is missing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from fanflow import Event, MemoryStore, Record, RecordKind, Store
from fanflow.stores import PostgresStore, SqliteStore

REPEAT = 5
DSN = os.environ.get("FANFLOW_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
K = RecordKind


class Item(Event):
    n: int
    text: str


def make_records(run_id: str, count: int) -> list[Record]:
    """Return `count` records of one run, cycling through a step's usual records."""
    t0 = time.time()
    out = []
    for seq in range(count):
        at = t0 + seq * 1e-5
        match seq % 4:
            case 0:
                rec = Record(run_id, seq, K.EVENT_EMITTED, at, "fan", 1, seq, Item(n=seq, text="x"))
            case 1:
                rec = Record(run_id, seq, K.STEP_STARTED, at, "work", seq, seq - 1, data=1)
            case 2:
                rec = Record(run_id, seq, K.STATE_CHANGED, at, "work", seq, data=("count", seq))
            case _:
                rec = Record(run_id, seq, K.STEP_FINISHED, at, "work", seq, None, data=0.001)
        out.append(rec)
    return out


def time_writes(open_store: Callable[[], Store], count: int, batch: int) -> list[float]:
    """Return seconds per record of writing `count` records in batches, REPEAT times."""
    results = []
    for _ in range(REPEAT):
        store = open_store()
        try:
            records = make_records(uuid.uuid4().hex, count)
            batches = [records[i : i + batch] for i in range(0, count, batch)]
            start = time.perf_counter()
            for chunk in batches:
                store.write(chunk)
            results.append((time.perf_counter() - start) / count)
        finally:
            store.close()
    return results


def report(name: str, per_record: list[float], base: float | None) -> float:
    """Print one line of results; return the median."""
    median = statistics.median(per_record)
    ratio = "" if base is None else f"  {median / base:6.1f}x memory"
    best = min(per_record) * 1e6
    print(f"{name:<12} best {best:7.2f} us/record  median {median * 1e6:7.2f}{ratio}")
    return median


def postgres_opener() -> Callable[[], Store] | str:
    """Return an opener on fresh tables, or why PostgreSQL is skipped."""
    try:
        PostgresStore(DSN, table_prefix="fanflow_bench_probe", timeout=3).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    prefixes: list[str] = []

    def opener() -> Store:
        prefixes.append(f"fanflow_bench_{uuid.uuid4().hex[:8]}")
        return PostgresStore(DSN, table_prefix=prefixes[-1])

    opener.prefixes = prefixes  # type: ignore[attr-defined]
    return opener


def drop_tables(prefixes: list[str]) -> None:
    """Drop the tables the PostgreSQL runs created."""
    import asyncio

    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(DSN)
        for p in [*prefixes, "fanflow_bench_probe"]:
            tables = ", ".join(f"{p}_{t}" for t in ("meta", "records", "runs", "leases"))
            await conn.execute(f"DROP TABLE IF EXISTS {tables}")
        await conn.close()

    asyncio.run(go())


def main(argv: list[str]) -> None:
    """Run the benchmark for the stores available here."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    print(f"write {args.records} records in batches of {args.batch}, best of {REPEAT}")
    base = report("memory", time_writes(lambda: MemoryStore(None), args.records, args.batch), None)
    with tempfile.TemporaryDirectory() as folder:
        counter = iter(range(REPEAT))
        sqlite = time_writes(
            lambda: SqliteStore(Path(folder) / f"bench{next(counter)}.db"), args.records, args.batch
        )
    report("sqlite", sqlite, base)
    opener = postgres_opener()
    if isinstance(opener, str):
        print(f"postgresql   skipped: {opener}")
        return
    try:
        report("postgresql", time_writes(opener, args.records, args.batch), base)
    finally:
        drop_tables(opener.prefixes)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
