#!/usr/bin/env python3
"""Benchmark fanflow against the reference engine side by side, in one sitting.

Runs ``../shared/bench/flowbench.py`` (and ``benchmarks/fanout_hoisted.py``)
for BOTH engines, each run in a fresh process, alternating the engine on
every repeat (fanflow first on odd repeats, the reference first on even
ones), so that drift on a shared, noisy machine hits both engines alike.
Prints, per figure, median (min-max) for each engine and the ratio
fanflow/reference, then the targets of issue 2, item 7, reached or not.

    .venv/bin/python benchmarks/compare.py --quick                # debug: 1 repeat
    .venv/bin/python benchmarks/compare.py --repeat 3 --out /tmp/bench.jsonl
    .venv/bin/python benchmarks/compare.py --only fanout

Engines: ``FLOW_IMPL=fanflow`` with ``--fanflow-python`` (default
``.venv/bin/python`` of this repo) and ``FLOW_IMPL=workflows`` with
``--ref-python`` (default ``/work/ref-venv/bin/python``,
llama-index-workflows 2.26.1). Reference runs are killed after
``--ref-timeout`` seconds; a reference run whose estimated time (its fan-out
grows with n squared) exceeds that limit is skipped and the table says so.

fanflow is measured from a copy of ``src/`` taken at the start and checked
by a smoke test, so that edits to the engine during the sitting cannot mix
versions (``--no-snapshot`` measures the live tree and warns if it changed).

Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOISTED = Path(__file__).resolve().parent / "fanout_hoisted.py"
FF, REF = "fanflow", "workflows"
ENGINE_LABEL = {FF: "fanflow", REF: "reference"}

# The reference's fan-out n=1000 W=4 from ../shared/bench/README.md; used to
# estimate larger n (the reference grows with n squared) when this sitting
# has no measurement of its own.
REF_FANOUT_1000_S = 7.67


@dataclass(frozen=True)
class Metric:
    key: str
    unit: str
    better: str  # "lower" or "higher"


@dataclass
class Workload:
    label: str
    script: str  # "flowbench", "hoisted" or "import"
    args: list[str] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    ref: str = "run"  # "run", "estimate" (skip when too slow) or "never"
    ref_note: str = ""
    fanout_n: int = 0  # for the reference's estimate


US_EV = Metric("us_per_event", "us/event", "lower")
WALL = Metric("wall_s", "s", "lower")
RUNS_S = Metric("runs_per_s", "runs/s", "higher")
PEAK = Metric("peak_rss_mib", "MiB peak RSS", "lower")


def _fanout(n: int, ref: str, note: str = "") -> Workload:
    return Workload(
        f"fanout n={n} W=4",
        "flowbench",
        ["fanout", "--n", str(n), "--workers", "4"],
        [US_EV],
        ref=ref,
        ref_note=note,
        fanout_n=n,
    )


def _hoisted(n: int) -> Workload:
    return Workload(
        f"fanout_hoisted n={n} W=4",
        "hoisted",
        ["--n", str(n), "--workers", "4"],
        [US_EV],
        ref="never",
        ref_note="fanflow-only workload (benchmarks/fanout_hoisted.py)",
    )


WORKLOADS = [
    Workload(
        "import",
        "import",
        metrics=[
            Metric("import_ms", "ms (wall minus `-c pass`)", "lower"),
            Metric("importtime_ms", "ms (-X importtime, cumulative)", "lower"),
            Metric(
                "deps_floor_ms", "ms (`import asyncio; from pydantic import BaseModel`)", "lower"
            ),
        ],
    ),
    _fanout(1000, "run"),
    _fanout(10000, "estimate"),
    _fanout(100000, "estimate"),
    _hoisted(1000),
    _hoisted(10000),
    _hoisted(100000),
    Workload(
        "chain K=20 R=200",
        "flowbench",
        ["chain", "--steps", "20", "--runs", "200"],
        [Metric("us_per_hop", "us/hop", "lower")],
    ),
    Workload("concurrent R=1000", "flowbench", ["concurrent", "--runs", "1000"], [RUNS_S, PEAK]),
    Workload("concurrent R=5000", "flowbench", ["concurrent", "--runs", "5000"], [RUNS_S, PEAK]),
    Workload("sleepy", "flowbench", ["sleepy"], [WALL]),
    Workload(
        "memgrow R=200 B=5",
        "flowbench",
        ["memgrow", "--runs", "200", "--rounds", "5"],
        [
            Metric("traced_kib_per_run", "KiB/run traced", "lower"),
            Metric("rss_growth_mib", "MiB RSS last-first round", "lower"),
        ],
    ),
    Workload(
        "raw n=10000 W=4",
        "flowbench",
        ["raw", "--n", "10000", "--workers", "4"],
        [US_EV],
    ),
    Workload(
        "raw --pydantic n=10000 W=4",
        "flowbench",
        ["raw", "--n", "10000", "--workers", "4", "--pydantic"],
        [US_EV],
    ),
]


# ------------------------------------------------------------------ helpers


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.3e}"
    return f"{v:.4g}"


def summary(vals: list[float]) -> dict[str, Any] | None:
    if not vals:
        return None
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
    }


def cell(s: dict[str, Any] | None) -> str:
    if s is None:
        return "-"
    if s["n"] == 1:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"


def machine_info() -> dict[str, Any]:
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = None
    with contextlib.suppress(OSError):
        load = [round(x, 2) for x in os.getloadavg()]
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_python": platform.python_version(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "loadavg": load,
    }


def git_state() -> dict[str, Any]:
    """The fanflow commit measured, and whether src/ had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(
                ["git", *args], capture_output=True, text=True, cwd=str(REPO), timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    dirty = git("status", "--porcelain", "--", "src")
    return {
        "fanflow_commit": git("rev-parse", "--short", "HEAD"),
        "fanflow_src_dirty": None if dirty is None else bool(dirty),
    }


def src_hash(root: Path) -> str:
    """A digest of a fanflow source tree, to notice the engine changing mid-sitting."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        with contextlib.suppress(OSError):
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


class Runner:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.python = {FF: a.fanflow_python, REF: a.ref_python}
        self.timeout = {FF: a.timeout, REF: a.ref_timeout}
        self.out = open(a.out, "a") if a.out else None  # noqa: SIM115
        self.sitting = machine_info()["date"]
        # (workload label, engine) -> list of result dicts
        self.results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.notes: dict[tuple[str, str], str] = {}
        self.short: dict[tuple[str, str], str] = {}
        self.src_hashes: dict[str, list[str]] = {}  # fanflow src digest -> workloads
        self.src_root = REPO / "src"  # where fanflow is imported from
        self.snapshot = False
        self.git: dict[str, Any] = git_state()

    def write(self, rec: dict[str, Any]) -> None:
        if self.out:
            self.out.write(json.dumps({"sitting": self.sitting, **rec}) + "\n")
            self.out.flush()

    def env(self, engine: str) -> dict[str, str]:
        env = dict(os.environ)
        env["FLOW_IMPL"] = engine
        if engine == FF and self.snapshot:
            old = env.get("PYTHONPATH")
            env["PYTHONPATH"] = str(self.src_root) + (os.pathsep + old if old else "")
        return env

    def smoke(self) -> str:
        """Check that fanflow imports from src_root and runs small flows: '' or an error."""
        code = "import fanflow; print(fanflow.__file__)"
        try:
            r = subprocess.run(
                [self.python[FF], "-c", code],
                capture_output=True,
                text=True,
                timeout=120,
                env=self.env(FF),
                cwd=str(REPO),
            )
        except (OSError, subprocess.SubprocessError) as e:
            return f"import failed: {e}"
        if r.returncode:
            return "import failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
        if not r.stdout.strip().startswith(str(self.src_root)):
            return f"fanflow imported from {r.stdout.strip()}, not from {self.src_root}"
        checks = [
            Workload("smoke sleepy", "flowbench", ["sleepy"]),
            Workload("smoke fanout", "flowbench", ["fanout", "--n", "200"]),
            Workload("smoke hoisted", "hoisted", ["--n", "200"]),
            Workload("smoke chain", "flowbench", ["chain", "--steps", "3", "--runs", "5"]),
            Workload("smoke concurrent", "flowbench", ["concurrent", "--runs", "50"]),
            Workload("smoke memgrow", "flowbench", ["memgrow", "--runs", "10", "--rounds", "2"]),
        ]
        for w in checks:
            _, err = self.run_once(w, FF)
            if err:
                return f"{w.label}: {err}"
        return ""

    # -------------------------------------------------------- one process

    def run_once(self, w: Workload, engine: str) -> tuple[dict[str, Any] | None, str]:
        """One fresh process: (its JSON line plus derived figures, error or '')."""
        script = self.a.flowbench if w.script == "flowbench" else str(HOISTED)
        cmd = [self.python[engine], script, *w.args]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=self.timeout[engine],
                env=self.env(engine),
                cwd=str(REPO),
            )
        except subprocess.TimeoutExpired:
            return None, f"timeout > {self.timeout[engine]:.0f} s"
        elapsed = time.perf_counter() - t0
        lines = r.stdout.strip().splitlines()
        if r.returncode or not lines:
            tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"failed rc={r.returncode}: {tail}"
        rec: dict[str, Any] = json.loads(lines[-1])
        rec["process_s"] = round(elapsed, 3)
        if rec.get("bench") == "memgrow":
            rss = rec["rss_mib"]
            rec["rss_growth_mib"] = round(rss[-1] - rss[0], 3)
        if rec.get("bench") == "concurrent" and rec.get("ok") != rec.get("runs"):
            return rec, f"wrong result: {rec.get('ok')} of {rec.get('runs')} runs returned 2"
        if "n" in rec and rec.get("result") != rec["n"]:
            return rec, f"wrong result: {rec.get('result')!r}, expected {rec['n']}"
        return rec, ""

    def import_sample(self, engine: str) -> dict[str, Any]:
        module = "fanflow" if engine == FF else "workflows"
        py = self.python[engine]

        def wall(code: str) -> float:
            t = time.perf_counter()
            subprocess.run(
                [py, "-c", code],
                check=True,
                capture_output=True,
                timeout=self.timeout[engine],
                env=self.env(engine),
                cwd=str(REPO),
            )
            return time.perf_counter() - t

        base = wall("pass")
        full = wall(f"import {module}")
        deps = wall("import asyncio; from pydantic import BaseModel")
        r = subprocess.run(
            [py, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=self.timeout[engine],
            env=self.env(engine),
            cwd=str(REPO),
        )
        cum = None
        for line in r.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() == module:
                cum = int(parts[1].strip()) / 1000
        return {
            "bench": "import",
            "impl": engine,
            "module": module,
            "pass_ms": round(base * 1000, 3),
            "import_total_ms": round(full * 1000, 3),
            "import_ms": round((full - base) * 1000, 3),
            "importtime_ms": cum,
            "deps_floor_ms": round((deps - base) * 1000, 3),
        }

    # ------------------------------------------------------------ a workload

    def ref_plan(self, w: Workload) -> str:
        """'' to run the reference, else the reason it is skipped."""
        if w.ref == "never":
            return w.ref_note or "fanflow only"
        if w.ref == "estimate":
            got = self.medians("fanout n=1000 W=4", REF, "wall_s")
            base, src = (got, "this sitting") if got else (REF_FANOUT_1000_S, "bench README")
            est = base * (w.fanout_n / 1000) ** 2
            if est > self.a.ref_timeout:
                return (
                    f"reference skipped: estimated {est:.0f} s (n^2 from n=1000 = "
                    f"{base:.2f} s, {src}) > --ref-timeout {self.a.ref_timeout:.0f} s"
                )
        return ""

    def medians(self, label: str, engine: str, key: str) -> float | None:
        vals = [r[key] for r in self.results.get((label, engine), []) if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    def run_workload(self, w: Workload) -> None:
        self.src_hashes.setdefault(src_hash(self.src_root), []).append(w.label)
        skip = self.ref_plan(w)
        engines = [FF] if skip else [FF, REF]
        if skip:
            if w.ref != "never":
                self.notes[(w.label, REF)] = skip
            self.short[(w.label, REF)] = (
                "n/a (fanflow only)"
                if w.ref == "never"
                else f"skipped (> {self.a.ref_timeout:.0f} s)"
            )
            print(f"  {w.label}: {skip}", flush=True)
        n = self.a.import_samples if w.script == "import" else self.a.repeat
        if w.script == "import":  # warm the bytecode caches first
            for e in engines:
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self.import_sample(e)
        stopped: set[str] = set()
        for rep in range(n):
            order = engines if rep % 2 == 0 else engines[::-1]
            for engine in order:
                if engine in stopped:
                    continue
                if w.script == "import":
                    rec, err = None, ""
                    try:
                        rec = self.import_sample(engine)
                    except (subprocess.SubprocessError, OSError) as e:
                        err = f"failed: {e}"
                else:
                    rec, err = self.run_once(w, engine)
                base = {"workload": w.label, "engine": engine, "rep": rep + 1}
                if rec is None or err:
                    stopped.add(engine)
                    self.notes[(w.label, engine)] = err
                    self.short[(w.label, engine)] = err.split(":")[0]
                    self.write({**base, "status": "error", "error": err, "result": rec})
                    print(f"  {w.label} [{ENGINE_LABEL[engine]} {rep + 1}/{n}]: {err}", flush=True)
                    continue
                self.results.setdefault((w.label, engine), []).append(rec)
                self.write({**base, "status": "ok", **rec})
                figs = ", ".join(f"{m.key}={fmt(rec.get(m.key))}" for m in w.metrics)
                if w.script != "import" or self.a.verbose:
                    print(f"  {w.label} [{ENGINE_LABEL[engine]} {rep + 1}/{n}]: {figs}", flush=True)

    # --------------------------------------------------------------- report

    def stat(self, label: str, engine: str, key: str) -> dict[str, Any] | None:
        vals = [r[key] for r in self.results.get((label, engine), []) if r.get(key) is not None]
        return summary(vals)

    def table(self, selected: list[Workload]) -> list[str]:
        rows = [
            "| workload | figure | better | fanflow median (min-max) "
            "| reference median (min-max) | fanflow/reference |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for w in selected:
            for m in w.metrics:
                f = self.stat(w.label, FF, m.key)
                r = self.stat(w.label, REF, m.key)
                ratio = f["median"] / r["median"] if f and r and r["median"] else None
                rcell = cell(r) if r else (self.short.get((w.label, REF)) or "-")
                fcell = cell(f) if f else (self.short.get((w.label, FF)) or "-")
                rows.append(
                    f"| {w.label} | {m.key} [{m.unit}] | {m.better} | {fcell} | {rcell} "
                    f"| {fmt(ratio) + 'x' if ratio is not None else '-'} |"
                )
                self.write(
                    {
                        "kind": "summary",
                        "workload": w.label,
                        "metric": m.key,
                        "unit": m.unit,
                        "fanflow": f,
                        "reference": r,
                        "ratio_fanflow_reference": ratio,
                        "note": self.notes.get((w.label, REF), ""),
                    }
                )
        return rows

    def details(self) -> list[str]:
        out = [f"{label} [{ENGINE_LABEL[e]}]: {note}" for (label, e), note in self.notes.items()]
        for engine in (FF, REF):
            for rec in self.results.get(("memgrow R=200 B=5", engine), []):
                out.append(
                    f"memgrow {ENGINE_LABEL[engine]}: rss_mib={rec['rss_mib']} "
                    f"traced_mib={rec['traced_mib']} "
                    f"traced_kib_per_run={fmt(rec['traced_kib_per_run'])}"
                )
        for script, name in (("fanout", "flowbench fanout"), ("fanout_hoisted", "hoisted fanout")):
            a = self.medians(f"{script} n=1000 W=4", FF, "us_per_event")
            b = self.medians(f"{script} n=10000 W=4", FF, "us_per_event")
            c = self.medians(f"{script} n=100000 W=4", FF, "us_per_event")
            if a and c:
                out.append(
                    f"{name} (fanflow) us/event n=1000: {fmt(a)}, n=10000: {fmt(b)}, "
                    f"n=100000: {fmt(c)}; per-event cost ratio n=100000/n=1000 = {c / a:.2f}"
                )
        return out

    def targets(self) -> list[tuple[str, str, str]]:
        """(target, measured, verdict) for issue 2, item 7."""
        t: list[tuple[str, str, str]] = []
        med = self.medians

        def add(target: str, measured: str, ok: bool | None) -> None:
            verdict = "not measured" if ok is None else ("reached" if ok else "NOT reached")
            t.append((target, measured, verdict))
            self.write(
                {"kind": "target", "target": target, "measured": measured, "verdict": verdict}
            )

        v = med("fanout n=10000 W=4", FF, "us_per_event")
        h = med("fanout_hoisted n=10000 W=4", FF, "us_per_event")
        add(
            "fan-out n=10,000 W=4 <= 10 us/event",
            f"flowbench {fmt(v)} us/event; hoisted {fmt(h)} us/event",
            None if v is None else v <= 10,
        )
        for script, name in (("fanout", "flowbench"), ("fanout_hoisted", "hoisted")):
            a = med(f"{script} n=1000 W=4", FF, "us_per_event")
            c = med(f"{script} n=100000 W=4", FF, "us_per_event")
            add(
                f"per-event cost n=100,000 within 1.5x of n=1,000 ({name})",
                "-" if not (a and c) else f"{fmt(c)} / {fmt(a)} us/event = {c / a:.2f}x",
                None if not (a and c) else c / a <= 1.5,
            )
        v = med("chain K=20 R=200", FF, "us_per_hop")
        add("chain K=20 <= 25 us/hop", f"{fmt(v)} us/hop", None if v is None else v <= 25)
        fr = med("concurrent R=5000", FF, "runs_per_s")
        rr = med("concurrent R=5000", REF, "runs_per_s")
        add(
            "5,000 concurrent runs >= 10x reference runs/s",
            "-" if not (fr and rr) else f"{fmt(fr)} vs {fmt(rr)} runs/s = {fr / rr:.2f}x",
            None if not (fr and rr) else fr / rr >= 10,
        )
        fm = med("concurrent R=5000", FF, "peak_rss_mib")
        rm = med("concurrent R=5000", REF, "peak_rss_mib")
        add(
            "5,000 concurrent runs <= 1/3 of reference peak RSS",
            "-" if not (fm and rm) else f"{fmt(fm)} vs {fmt(rm)} MiB = {fm / rm:.2f}x",
            None if not (fm and rm) else fm / rm <= 1 / 3,
        )
        k = med("memgrow R=200 B=5", FF, "traced_kib_per_run")
        g = med("memgrow R=200 B=5", FF, "rss_growth_mib")
        add(
            "memgrow flat (< 1 KiB/run traced, < 2 MiB RSS growth over 800 runs)",
            "-" if k is None or g is None else f"{fmt(k)} KiB/run, RSS +{fmt(g)} MiB",
            None if k is None or g is None else (k < 1 and g < 2),
        )
        s = med("sleepy", FF, "wall_s")
        add(
            "sleepy ~0.3 s (0.27-0.33 s)",
            f"{fmt(s)} s",
            None if s is None else abs(s - 0.3) <= 0.03,
        )
        fi = med("import", FF, "import_ms")
        ri = med("import", REF, "import_ms")
        fx = med("import", FF, "importtime_ms")
        rx = med("import", REF, "importtime_ms")
        measured = "-"
        if fi and ri:
            measured = f"wall {fmt(fi)} vs {fmt(ri)} ms = {fi / ri:.2f}x"
            if fx and rx:
                measured += f"; -X importtime {fmt(fx)} vs {fmt(rx)} ms = {fx / rx:.2f}x"
            fd = med("import", FF, "deps_floor_ms")
            if fd:
                measured += f"; asyncio+pydantic alone {fmt(fd)} ms"
        add(
            "import fanflow <= 1/2 of import workflows",
            measured,
            None if not (fi and ri) else fi / ri <= 0.5,
        )
        return t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--flowbench",
        default=str((REPO / ".." / "shared" / "bench" / "flowbench.py").resolve()),
        help="path to flowbench.py (default: ../shared/bench/flowbench.py from the repo root)",
    )
    p.add_argument("--fanflow-python", default=str(REPO / ".venv" / "bin" / "python"))
    p.add_argument("--ref-python", default="/work/ref-venv/bin/python")
    p.add_argument("--repeat", type=int, default=3, help="fresh processes per engine (default 3)")
    p.add_argument("--import-samples", type=int, default=15, help="fresh processes for import")
    p.add_argument("--ref-timeout", type=float, default=60.0, help="seconds per reference run")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per fanflow run")
    p.add_argument("--only", default="", help="substring filter on workload labels")
    p.add_argument("--quick", action="store_true", help="1 repeat, 5 import samples")
    p.add_argument("--out", default="", help="append JSON lines (runs, summaries) to this file")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    p.add_argument("--verbose", action="store_true", help="also print every import sample")
    p.add_argument(
        "--no-snapshot",
        action="store_true",
        help="measure the live src/ tree instead of a copy taken at the start",
    )
    p.add_argument(
        "--snapshot-tries",
        type=int,
        default=10,
        help="snapshots to try, 30 s apart, until one passes the smoke test (default 10)",
    )
    a = p.parse_args(argv)
    if a.quick:
        a.repeat, a.import_samples = 1, 5
    for path in (a.flowbench, a.fanflow_python, a.ref_python):
        if not Path(path).exists():
            p.error(f"not found: {path}")

    selected = [w for w in WORKLOADS if a.only in w.label]
    if a.list:
        for w in selected:
            print(f"{w.label:32s} {w.script:9s} {' '.join(w.args)}")
        return 0
    if not selected:
        p.error(f"no workload matches --only {a.only!r}")

    runner = Runner(a)
    snap: Path | None = None
    try:
        if not a.no_snapshot:
            snap = take_snapshot(runner, a.snapshot_tries)
            if snap is None:
                return 2
        else:
            err = runner.smoke()
            if err:
                print(f"# fanflow fails the smoke test: {err}", flush=True)
                return 2
        return sitting(runner, selected)
    finally:
        if runner.out:
            runner.out.close()
        if snap is not None:
            shutil.rmtree(snap, ignore_errors=True)


def take_snapshot(runner: Runner, tries: int) -> Path | None:
    """Copy src/ to a temp dir that passes the smoke test; measure that copy.

    The engine may be edited while a sitting runs (about 6 minutes); a copy
    keeps every workload on the same source. A copy taken mid-edit may be
    broken, so it must pass a smoke test first, else a new copy is taken.
    """
    runner.snapshot = True
    for attempt in range(1, tries + 1):
        snap = Path(tempfile.mkdtemp(prefix="fanflow-bench-"))
        state = git_state()
        shutil.copytree(REPO / "src", snap / "src", ignore=shutil.ignore_patterns("__pycache__"))
        runner.src_root = snap / "src"
        err = runner.smoke()
        if not err:
            runner.git = state
            return snap
        shutil.rmtree(snap, ignore_errors=True)
        print(f"# snapshot {attempt}/{tries} of src/ fails the smoke test: {err}", flush=True)
        if attempt < tries:
            time.sleep(30)
    print("# no snapshot of src/ passed the smoke test; nothing measured", flush=True)
    return None


def sitting(runner: Runner, selected: list[Workload]) -> int:
    a = runner.a
    info = machine_info()
    versions: dict[str, str] = {}
    for engine, py in runner.python.items():
        code = "import platform; print(platform.python_version())"
        r = subprocess.run([py, "-c", code], capture_output=True, text=True)
        versions[engine] = r.stdout.strip()
    info.update(
        kind="sitting",
        flowbench=a.flowbench,
        fanflow_python=a.fanflow_python,
        ref_python=a.ref_python,
        python_versions=versions,
        **runner.git,
        fanflow_src_digest=src_hash(runner.src_root),
        fanflow_src_snapshot=runner.snapshot,
        repeat=a.repeat,
        import_samples=a.import_samples,
        ref_timeout=a.ref_timeout,
    )
    runner.write(info)
    dirty = " + uncommitted src changes" if info["fanflow_src_dirty"] else ""
    where = f"a copy of src/ in {runner.src_root}" if runner.snapshot else "the live src/"
    print(
        f"# {info['date']}  nproc={info['nproc']}  cpu={info['cpu']}  load={info['loadavg']}\n"
        f"# fanflow: {a.fanflow_python} (Python {versions[FF]}), commit "
        f"{info['fanflow_commit']}{dirty}, measuring {where} "
        f"(digest {info['fanflow_src_digest']})\n"
        f"# reference: {a.ref_python} (Python {versions[REF]})\n"
        f"# repeat={a.repeat} import_samples={a.import_samples} ref_timeout={a.ref_timeout:.0f}s",
        flush=True,
    )
    t0 = time.perf_counter()
    for w in selected:
        print(f"{w.label}", flush=True)
        runner.run_workload(w)
    runner.src_hashes.setdefault(src_hash(runner.src_root), []).append("(end)")
    print(f"\n# total {time.perf_counter() - t0:.0f} s\n")
    if len(runner.src_hashes) > 1:
        print("# WARNING: fanflow's source changed during this sitting; figures mix versions:")
        for digest, labels in runner.src_hashes.items():
            print(f"#   src {digest}: {', '.join(labels)}")
        print()
    runner.write({"kind": "src_hashes", "src_hashes": runner.src_hashes})
    print("\n".join(runner.table(selected)))
    det = runner.details()
    if det:
        print()
        print("\n".join(det))
    print("\n| target (issue 2, item 7) | measured (fanflow medians) | verdict |")
    print("| --- | --- | --- |")
    for target, measured, verdict in runner.targets():
        if a.only and verdict == "not measured":
            continue
        print(f"| {target} | {measured} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
