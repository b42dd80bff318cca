#!/usr/bin/env python3
"""Fan-out/fan-in with the collector's expected-type list built once.

`../shared/bench/flowbench.py fanout` calls
``ctx.collect_events(ev, [ResultEv] * n)`` for every one of the n results, so
the benchmark itself does O(n) work per event (O(n^2) in total) before the
engine is even called. This script runs the same flow

    start --send_event x N--> work (num_workers=W) --> collect (N) --> StopEvent

but builds ``[ResultEv] * n`` once, outside the step, so what grows with n is
the engine's own per-event cost. It prints ONE JSON line with the same
figures as ``flowbench.py fanout`` (``bench`` is ``fanout_hoisted``).

The engine is the module named by $FLOW_IMPL (default ``fanflow``); names
missing at its top level are looked up in ``<FLOW_IMPL>.events``, as in
flowbench.py, so ``FLOW_IMPL=workflows`` runs it on the reference.

    FLOW_IMPL=fanflow .venv/bin/python benchmarks/fanout_hoisted.py --n 100000 --workers 4
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import resource
import sys
import time
from typing import Any

IMPL = os.environ.get("FLOW_IMPL", "fanflow")
mod = importlib.import_module(IMPL)


def _get(name: str) -> Any:
    if hasattr(mod, name):
        return getattr(mod, name)
    return getattr(importlib.import_module(IMPL + ".events"), name)


Workflow, step, Context = _get("Workflow"), _get("step"), _get("Context")
Event, StartEvent, StopEvent = _get("Event"), _get("StartEvent"), _get("StopEvent")


def _impl_version() -> str | None:
    v = getattr(mod, "__version__", None)
    if v is None and IMPL == "workflows":
        from importlib.metadata import version

        v = version("llama-index-workflows")
    return v


class WorkEv(Event):
    i: int


class ResultEv(Event):
    i: int


def make_fanout(n: int, workers: int, **kw: Any) -> Any:
    """The flowbench fan-out flow, with the expected-type list hoisted out of the step."""
    expected = [ResultEv] * n  # built once per workflow, not once per event

    class HoistedFanout(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> WorkEv:
            for i in range(n):
                ctx.send_event(WorkEv(i=i))
            return None

        @step(num_workers=workers)
        async def work(self, ctx: Context, ev: WorkEv) -> ResultEv:
            return ResultEv(i=ev.i)

        @step
        async def collect(self, ctx: Context, ev: ResultEv) -> StopEvent:
            got = ctx.collect_events(ev, expected)
            if got is None:
                return None
            return StopEvent(result=len(got))

    return HoistedFanout(**kw)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--timeout", type=float, default=600.0, help="Workflow(timeout=...)")
    a = p.parse_args(argv)

    async def run() -> tuple[float, Any]:
        await make_fanout(10, a.workers, timeout=a.timeout).run()  # warm-up
        wf = make_fanout(a.n, a.workers, timeout=a.timeout)
        t = time.perf_counter()
        res = await wf.run()
        return time.perf_counter() - t, res

    wall, res = asyncio.run(run())
    out = {
        "bench": "fanout_hoisted",
        "impl": IMPL,
        "impl_version": _impl_version(),
        "python": platform.python_version(),
        "n": a.n,
        "workers": a.workers,
        "wall_s": round(wall, 6),
        "events_per_s": round(a.n / wall, 6),
        "us_per_event": round(wall / a.n * 1e6, 6),
        "result": res,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 6),
    }
    print(json.dumps(out))
    return 0 if res == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
