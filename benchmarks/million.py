"""A journaled fan-out of n events into one collect_events, for time and memory per event.

    python benchmarks/million.py --n 1000000 [--store sqlite|memory]

`start` sends n `Item(i=...)` events; `join` collects all n (its type list
built once). Prints one JSON line: wall time, microseconds per event, peak
RSS above the baseline, bytes per event above the baseline, and the bytes
the collector's own events take (measured by holding n such events).
Run each size in a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import tempfile
import time

from fanflow import Context, Event, StartEvent, StopEvent, Workflow, step


class Item(Event):
    i: int


def make(n: int, **kwargs: object) -> Workflow:
    expected = [Item] * n

    class Fan(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Item | None:
            for i in range(n):
                ctx.send_event(Item(i=i))
            return None

        @step
        async def join(self, ctx: Context, ev: Item) -> StopEvent | None:
            got = ctx.collect_events(ev, expected)
            return None if got is None else StopEvent(result=len(got))

    return Fan(timeout=None, **kwargs)  # type: ignore[arg-type]


async def _run(wf: Workflow) -> object:
    return await wf.run()


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def event_bytes(n: int) -> float:
    """Return the bytes per event that holding `min(n, 100000)` Items takes."""
    k = min(n, 100_000)
    gc.collect()
    before = rss_mib()
    held = [Item(i=i) for i in range(k)]
    after = rss_mib()
    del held
    return (after - before) * 2**20 / k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    args = parser.parse_args()
    per_event = event_bytes(args.n)
    with tempfile.TemporaryDirectory() as folder:
        store = f"sqlite:///{folder}/runs.db" if args.store == "sqlite" else None
        wf = make(args.n, **({"store": store} if store else {}))
        gc.collect()
        base = rss_mib()
        started = time.perf_counter()
        result = asyncio.run(_run(wf))
        wall = time.perf_counter() - started
    assert result == args.n, result
    extra = (peak_mib() - base) * 2**20 / args.n
    print(
        json.dumps(
            {
                "n": args.n,
                "store": args.store,
                "wall_s": round(wall, 3),
                "us_per_event": round(wall / args.n * 1e6, 2),
                "peak_rss_mib": round(peak_mib(), 1),
                "base_rss_mib": round(base, 1),
                "bytes_per_event": round(extra),
                "event_bytes": round(per_event),
                "engine_bytes_per_event": round(extra - per_event),
            }
        )
    )


if __name__ == "__main__":
    main()
