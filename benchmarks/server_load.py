"""Load on a workflow server over loopback: many SSE clients, a steady rate of new runs.

    python benchmarks/server_load.py --server fanflow --seconds 60
    python benchmarks/server_load.py --server reference --python /tmp/agents-venv/bin/python

Starts the server in a child process (``fanflow serve`` on SQLite, or the
reference's ``llama_agents.server.WorkflowServer`` run by a Python that has
``llama-agents-server`` installed), then for `--seconds` starts `--rate`
runs per second, each by one of `--clients` concurrent clients that start a
run (``run-nowait``) and follow its event stream (SSE, from the start) to
its end. A run fans out 10 items; each item writes one progress event
carrying the time it was written. Reported: runs finished, events lost
(a run whose stream lacks one of its 10 progress events, or its
StopEvent), p50/p99 latency from ``write_event_to_stream`` to the client,
and the server's peak RSS (VmHWM). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ITEMS = 10

# The same workflow on both engines; only the import lines differ.
WORKFLOW = """
class Item(Event):
    n: int

class Progress(Event):
    n: int
    t: float

class Done(Event):
    n: int

class Load(Workflow):
    @step
    async def split(self, ctx: Context, ev: StartEvent) -> Item:
        for n in range(ITEMS):
            ctx.send_event(Item(n=n))
        return None

    @step(num_workers=10)
    async def work(self, ctx: Context, ev: Item) -> Done:
        ctx.write_event_to_stream(Progress(n=ev.n, t=time.time()))
        return Done(n=ev.n)

    @step
    async def join(self, ctx: Context, ev: Done) -> StopEvent:
        got = ctx.collect_events(ev, [Done] * ITEMS)
        if got is None:
            return None
        return StopEvent(result=len(got))
"""

FANFLOW_APP = (
    """
import time
from fanflow import Context, Event, StartEvent, StopEvent, Workflow, step
"""
    + WORKFLOW
)

REFERENCE_APP = (
    """
import asyncio, sys, time
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent
from llama_agents.server import WorkflowServer
"""
    + WORKFLOW
    + """
server = WorkflowServer()
server.add_workflow("Load", Load(timeout=None))
asyncio.run(server.serve(host="127.0.0.1", port=int(sys.argv[1])))
"""
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(kind: str, python: str, folder: Path, port: int) -> subprocess.Popen[bytes]:
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed with the process
    if kind == "fanflow":
        app = folder / "load_app.py"
        app.write_text(f"ITEMS = {ITEMS}\n" + textwrap.dedent(FANFLOW_APP))
        args = [python, "-m", "fanflow.cli", "serve", str(app), "--port", str(port)]
        args += ["--db", f"sqlite:///{folder / 'runs.db'}"]
    else:
        app = folder / "ref_app.py"
        app.write_text(f"ITEMS = {ITEMS}\n" + textwrap.dedent(REFERENCE_APP))
        args = [python, str(app), str(port)]
    return subprocess.Popen(args, cwd=folder, stdout=log, stderr=log)


async def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    http = Http("127.0.0.1", port)
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit("the server exited; see its server.log")
        try:
            _reader, writer, status, _ = await http._open("GET", "/health")
            writer.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("the server did not answer /health in 30 s")


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.finished = 0
        self.lost_runs = 0
        self.lost_events = 0
        self.errors: dict[str, int] = {}
        self.late = 0.0  # seconds the starts fell behind the schedule, at most

    def error(self, text: str) -> None:
        self.errors[text] = self.errors.get(text, 0) + 1


class Http:
    """A minimal HTTP/1.1 client on asyncio streams: one connection per request.

    httpx with 500 streaming clients takes a whole CPU of this 2-CPU machine
    and becomes the bottleneck; this client parses only what the benchmark
    needs (status line, headers, a Content-Length or chunked body).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    async def _open(
        self, method: str, path: str, body: bytes = b""
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[str, str]]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Connection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        status_line = await reader.readline()
        if not status_line:
            writer.close()
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return reader, writer, status, headers

    async def chunks(self, reader: asyncio.StreamReader, headers: dict[str, str]):  # type: ignore[no-untyped-def]
        """Yield the body's bytes as they arrive."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return
                data = await reader.readexactly(size)
                await reader.readexactly(2)
                yield data
        elif "content-length" in headers:
            yield await reader.readexactly(int(headers["content-length"]))
        else:
            while data := await reader.read(65536):
                yield data

    async def post_json(self, path: str, payload: object) -> dict:  # type: ignore[type-arg]
        reader, writer, status, headers = await self._open(
            "POST", path, json.dumps(payload).encode()
        )
        try:
            body = b"".join([c async for c in self.chunks(reader, headers)])
        finally:
            writer.close()
        if status >= 300:
            raise RuntimeError(f"HTTP {status}: {body[:80]!r}")
        return json.loads(body)  # type: ignore[no-any-return]

    async def sse(self, path: str):  # type: ignore[no-untyped-def]
        """Yield the ``data:`` payloads of an SSE stream, each with the time it arrived."""
        reader, writer, status, headers = await self._open("GET", path)
        try:
            if status != 200:
                raise RuntimeError(f"HTTP {status} for {path}")
            buffer = b""
            async for chunk in self.chunks(reader, headers):
                now = time.time()
                buffer += chunk
                while b"\n\n" in buffer:
                    message, buffer = buffer.split(b"\n\n", 1)
                    for line in message.split(b"\n"):
                        if line.startswith(b"data:"):
                            yield now, line[5:]
        finally:
            writer.close()


async def one_run(http: Http, tally: Tally) -> None:
    reply = await http.post_json("/workflows/Load/run-nowait", {"start_event": {}})
    handler = reply["handler_id"]
    seen: list[int] = []
    stopped = False
    async for now, data in http.sse(f"/events/{handler}?after_sequence=-1&sse=true"):
        event = json.loads(data)
        if event["type"] == "Progress":
            seen.append(event["value"]["n"])
            tally.latencies.append(now - event["value"]["t"])
        elif event["type"] == "StopEvent" or "StopEvent" in (event.get("types") or []):
            stopped = event["type"] == "StopEvent"
            break
    missing = ITEMS - len(set(seen))
    if missing or not stopped or len(seen) != ITEMS:
        tally.lost_runs += 1
        tally.lost_events += missing + (0 if stopped else 1)
    tally.finished += 1


async def load(port: int, rate: float, seconds: float, clients: int) -> Tally:
    tally = Tally()
    tokens: asyncio.Queue[float | None] = asyncio.Queue()
    http = Http("127.0.0.1", port)

    async def worker() -> None:
        while True:
            due = await tokens.get()
            if due is None:
                return
            tally.late = max(tally.late, time.monotonic() - due)
            try:
                await one_run(http, tally)
            except Exception as exc:
                tally.error(f"{type(exc).__name__}: {str(exc)[:80]}")

    workers = [asyncio.create_task(worker()) for _ in range(clients)]
    start = time.monotonic()
    total = int(rate * seconds)
    for k in range(total):
        due = start + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tokens.put_nowait(due)
    for _ in workers:
        tokens.put_nowait(None)
    await asyncio.gather(*workers)
    return tally


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["fanflow", "reference"], default="fanflow")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the server")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=100.0, help="runs started per second")
    parser.add_argument("--clients", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        proc = start_server(args.server, args.python, Path(folder), port)
        try:
            await wait_healthy(port, proc)
            began = time.monotonic()
            tally = await load(port, args.rate, args.seconds, args.clients)
            took = time.monotonic() - began
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    expected = int(args.rate * args.seconds)
    print(
        json.dumps(
            {
                "server": args.server,
                "runs_started": expected,
                "runs_finished": tally.finished,
                "runs_per_s": round(tally.finished / took, 1),
                "runs_with_lost_events": tally.lost_runs,
                "events_lost": tally.lost_events,
                "errors": tally.errors,
                "latency_p50_ms": round(pct(tally.latencies, 0.50) * 1000, 2),
                "latency_p99_ms": round(pct(tally.latencies, 0.99) * 1000, 2),
                "latency_mean_ms": round(statistics.fmean(tally.latencies) * 1000, 2)
                if tally.latencies
                else None,
                "starts_behind_schedule_s": round(tally.late, 2),
                "server_peak_rss_mb": round(rss, 1),
                "seconds": args.seconds,
                "rate": args.rate,
                "clients": args.clients,
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
