"""``fanflow submit`` and ``fanflow worker``: the run queue from the shell.

    fanflow submit flows.py:Report --db postgresql://host/db --arg topic=cats [--wait]
    fanflow worker flows.py:Report other.py --db postgresql://host/db --concurrency 8

``submit`` queues a run and prints its id (with ``--wait``, then its
result, as ``fanflow run`` does). ``worker`` claims and drives queued runs
of the workflows it is given until SIGTERM or Ctrl-C; then it stops
claiming, lets its runs finish for ``--grace`` seconds and hands the rest
back to the queue for other workers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from fanflow._runtime.lease import LEASE_TTL
from fanflow.cli._db import db_url, shown_url
from fanflow.cli._run import UsageError, check_arguments, describe, make_workflow, start_arguments
from fanflow.cli._target import file_source, load_target
from fanflow.stores.url import open_store
from fanflow.worker.queue import submit
from fanflow.worker.worker import Worker

__all__ = ["add_submit", "add_worker"]

TARGET_HELP = "path/to/file.py:FlowClass or package.module:FlowClass"
DB_HELP = "the PostgreSQL journal the workers share (default: $FANFLOW_DB)"


def add_submit(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``fanflow submit`` to `commands`."""
    parser = commands.add_parser(
        "submit",
        parents=[common],
        help="queue a run for 'fanflow worker' processes and print its id",
        description="Queue a run in a PostgreSQL run database; any 'fanflow worker' serving "
        "the workflow runs it. Prints the run id; with --wait, then the result (exit status "
        "1 if the run failed).",
    )
    parser.add_argument("target", help=TARGET_HELP)
    parser.add_argument("--db", metavar="URL", help=DB_HELP)
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a StartEvent field; VALUE is read as JSON if it parses, else as a string",
    )
    parser.add_argument("--json-args", metavar="JSON", help="StartEvent fields as one JSON object")
    parser.add_argument("--wait", action="store_true", help="wait for the run's end; print result")
    parser.set_defaults(command=_cmd_submit)


def add_worker(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``fanflow worker`` to `commands`."""
    parser = commands.add_parser(
        "worker",
        parents=[common],
        help="claim and drive queued runs of the given workflows",
        description="Claim queued runs of the given workflows from a PostgreSQL run database "
        "and drive them, up to --concurrency at once; take over runs whose worker died (once "
        "its lease lapses). On SIGTERM or Ctrl-C: stop claiming, wait --grace seconds for the "
        "runs in progress, hand the rest back.",
    )
    parser.add_argument("targets", nargs="+", metavar="TARGET", help=TARGET_HELP)
    parser.add_argument("--db", metavar="URL", help=DB_HELP)
    parser.add_argument("--concurrency", type=_positive_int, default=4, metavar="N")
    parser.add_argument(
        "--lease-ttl",
        type=_positive,
        default=LEASE_TTL,
        metavar="S",
        help=f"seconds after this worker dies that others take its runs (default {LEASE_TTL:g})",
    )
    parser.add_argument(
        "--grace",
        type=_positive,
        default=30.0,
        metavar="S",
        help="on SIGTERM, seconds to let runs finish before handing them back (default 30)",
    )
    parser.add_argument(
        "--poll", type=_positive, default=0.1, metavar="S", help="seconds between queue looks"
    )
    parser.set_defaults(command=_cmd_worker)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a count >= 1: {text!r}")
    return int(text)


def _postgres_url(given: str | None) -> str:
    url = db_url(given)
    if not url.startswith(("postgresql://", "postgres://")):
        raise UsageError(
            f"the run queue needs a PostgreSQL database, got {shown_url(url)}; pass "
            "--db postgresql://user@host/db (or set FANFLOW_DB)"
        )
    return url


def _cmd_submit(args: argparse.Namespace) -> int:
    url = _postgres_url(args.db)
    kwargs = start_arguments(args.arg, args.json_args)
    target = load_target(args.target)
    wf = make_workflow(target, None, False)
    check_arguments(wf, kwargs)
    return asyncio.run(_submit(wf, kwargs, url, file_source(args.target, target), args.wait))


async def _submit(wf: Any, kwargs: dict[str, Any], url: str, source: str | None, wait: bool) -> int:
    store = open_store(url)
    try:
        handle = await submit(wf, wf._start_event(None, kwargs), store, source=source)
        print(handle.run_id, flush=True)
        if not wait:
            return 0
        try:
            result = await handle
        except Exception as exc:
            print(f"fanflow: run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print(f"result: {describe(result)}", flush=True)
        return 0
    finally:
        store.close()


def _cmd_worker(args: argparse.Namespace) -> int:
    url = _postgres_url(args.db)
    workflows = [make_workflow(load_target(target), None, False) for target in args.targets]
    logging.basicConfig(level=logging.INFO, format="fanflow worker: %(message)s")
    return asyncio.run(_serve(workflows, url, args))


async def _serve(workflows: list[Any], url: str, args: argparse.Namespace) -> int:
    worker = Worker(
        workflows,
        url,
        concurrency=args.concurrency,
        lease_ttl=args.lease_ttl,
        poll=args.poll,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    names = ", ".join(worker.workflows)
    print(
        f"fanflow worker {worker.name}: serving {names} from {shown_url(url)} "
        f"(concurrency {args.concurrency})",
        file=sys.stderr,
        flush=True,
    )
    try:
        await worker.serve(grace=args.grace)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
    print(
        f"fanflow worker {worker.name}: stopped; {worker.finished} run(s) finished here",
        file=sys.stderr,
        flush=True,
    )
    return 0
