"""Time drawing generated workflows as HTML pages (the target: 200 steps in under 2 s).

    python benchmarks/draw_bench.py            # 40, 200 and 1000 steps
    python benchmarks/draw_bench.py 200 500    # chosen sizes

Each size is drawn five times (graph, layout, page, file); the best and the
median wall time are printed, with the page's size. The workflows come from
`tests/flows_for_tests.generated_flow`: steps that fan out, join, skip
ahead and loop back, like the drawing tests use.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from flows_for_tests import generated_flow

from fanflow import draw_all_possible_flows

REPEAT = 5
TARGET_SECONDS = {200: 2.0}


def bench(steps: int, folder: Path) -> None:
    """Draw a generated workflow of `steps` steps REPEAT times and print the timings."""
    flow = generated_flow(steps)
    target = folder / f"flow{steps}.html"
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        draw_all_possible_flows(flow, filename=target)
        times.append(time.perf_counter() - start)
    size = target.stat().st_size
    line = (
        f"{steps:5d} steps: best {min(times):.3f} s, median {statistics.median(times):.3f} s, "
        f"page {size / 1024:.0f} KiB"
    )
    limit = TARGET_SECONDS.get(steps)
    if limit is not None:
        line += f"  (target < {limit:.1f} s: {'ok' if max(times) < limit else 'MISSED'})"
    print(line)


def main(argv: list[str]) -> None:
    """Benchmark the sizes given on the command line, or 40, 200 and 1000 steps."""
    sizes = [int(arg) for arg in argv] or [40, 200, 1000]
    with tempfile.TemporaryDirectory() as folder:
        for steps in sizes:
            bench(steps, Path(folder))


if __name__ == "__main__":
    main(sys.argv[1:])
