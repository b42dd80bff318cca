"""``fanflow runs``: list, show, resume and answer the runs journaled in a run database.

    fanflow runs list [--status S] [--limit N]
    fanflow runs show RUN_ID [--follow]
    fanflow runs resume RUN_ID [--workflow FILE.py:Class]
    fanflow runs send RUN_ID --event '{"type": "HumanResponseEvent", "data": {"response": "Ada"}}'

Each takes ``--db URL`` (default: ``$FANFLOW_DB``, else
``sqlite:///fanflow-runs.db``). A run id may be shortened to any prefix
that names one run. ``resume`` and ``send`` load the workflow from where
the run recorded it (``file.py:Class`` or ``module:Class``) unless
``--workflow`` names it (printing what they import first), then follow
the run as ``fanflow run`` does. ``list`` and ``show`` only read the
database (a read-only file will do) and never import code; ``show
--follow`` keeps printing the records of a run that another process
drives, as they are committed, until the run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from pydantic import ValidationError

from fanflow import events
from fanflow._runtime.records import Record, RecordKind, Store
from fanflow.cli._db import (
    CachedStore,
    db_option,
    db_url,
    follow_records,
    loose_records,
    open_db,
    pending_requests,
    recorded_source,
    shown_url,
)
from fanflow.cli._progress import show_records
from fanflow.cli._run import Inputs, Ui, UsageError, follow, make_ui, make_workflow
from fanflow.cli._show import record_line, record_lines, runs_table
from fanflow.cli._target import Target, TargetError, load_target
from fanflow.errors import WorkflowRuntimeError
from fanflow.events import Event, lookup_type
from fanflow.serialize import not_resumable
from fanflow.workflow import Workflow

__all__ = ["add_runs", "event_from_text", "find_run", "recorded_target"]

DB_HELP = "the run database (default: $FANFLOW_DB, else sqlite:///fanflow-runs.db)"
RUN_ID_HELP = "a run id, or a prefix of one that names a single run"
RUN_STATUSES = ("running", "ok", "failed", "cancelled", "timeout", "detached", "interrupted")
EVENT_EXAMPLE = '{"type": "HumanResponseEvent", "data": {"response": "Ada"}}'


def add_runs(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    following: argparse.ArgumentParser,
) -> None:
    """Add ``fanflow runs`` and its commands to `commands`.

    `common` holds ``--debug``; `following` the options of commands that
    drive a run (``--db``, ``--verbose``, ``--detach-on-input``, ...).
    """
    runs = commands.add_parser(
        "runs",
        parents=[common],
        help="list, show, resume and answer journaled runs",
        description="Work with the runs journaled in a run database (--db).",
        epilog="Run 'fanflow runs COMMAND --help' for a command's options.",
    )
    subcommands = runs.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_list(subcommands, common)
    _add_show(subcommands, common)
    _add_resume(subcommands, common, following)
    _add_send(subcommands, common, following)


def _add_list(subcommands: Any, common: argparse.ArgumentParser) -> None:
    runs_list = subcommands.add_parser(
        "list",
        parents=[common],
        help="list runs, newest first",
        description="List the runs in the database, newest first: id, workflow, status "
        "(running, ok, failed, cancelled, timeout), start (local time) and duration.",
    )
    runs_list.add_argument("--db", metavar="URL", help=DB_HELP)
    runs_list.add_argument(
        "--status",
        choices=RUN_STATUSES,
        metavar="S",
        help=f"only runs with status S: {', '.join(RUN_STATUSES)}",
    )
    runs_list.add_argument(
        "--limit", type=_count, default=20, metavar="N", help="at most N runs (0: all; default 20)"
    )
    runs_list.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line, for scripts: run_id, workflow, status, result, error, "
        "worker, started_at, finished_at (seconds since the epoch)",
    )
    runs_list.set_defaults(command=_cmd_list)


def _add_show(subcommands: Any, common: argparse.ArgumentParser) -> None:
    show = subcommands.add_parser(
        "show",
        parents=[common],
        help="print a run's records",
        description="Print the records of a run, one line each: sequence number, seconds "
        "since the start, kind, step#invocation, and what happened. Reads the database "
        "only, and imports no code.",
    )
    show.add_argument("run_id", metavar="RUN_ID", help=RUN_ID_HELP)
    show.add_argument("--db", metavar="URL", help=DB_HELP)
    show.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="then print each new record as it is committed (the run may be driven by another "
        "process); exit when the run finishes (Ctrl-C to stop earlier)",
    )
    show.set_defaults(command=_cmd_show)


def _add_resume(
    subcommands: Any, common: argparse.ArgumentParser, following: argparse.ArgumentParser
) -> None:
    resume = subcommands.add_parser(
        "resume",
        parents=[common, following],
        help="continue a run from its records and print its result",
        description="Continue a run whose process ended (or print the result of a finished "
        "one): steps whose completion was recorded do not run again. Exit status as 'fanflow "
        "run': 0 ok, 1 failed, 3 left waiting for input.",
    )
    resume.add_argument("run_id", metavar="RUN_ID", help=RUN_ID_HELP)
    _add_workflow_option(resume)
    resume.set_defaults(command=_cmd_resume)


def _add_send(
    subcommands: Any, common: argparse.ArgumentParser, following: argparse.ArgumentParser
) -> None:
    send = subcommands.add_parser(
        "send",
        parents=[common, following],
        help="send an event to a run (answer its input request) and print its result",
        description="Resume a run, deliver one event to it (as handler.ctx.send_event does) "
        "and follow it to its result. Exit status as 'fanflow run'.",
    )
    send.add_argument("run_id", metavar="RUN_ID", help=RUN_ID_HELP)
    send.add_argument(
        "--event",
        required=True,
        metavar="JSON",
        help=f"the event: {EVENT_EXAMPLE}; type is a class name (looked up in the workflow's "
        "module, then fanflow.events) or module:Qualname",
    )
    _add_workflow_option(send)
    send.set_defaults(command=_cmd_send)


def _add_workflow_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workflow",
        metavar="TARGET",
        help="load the workflow from TARGET (file.py:Class or module:Class) instead of "
        "where the run recorded it",
    )


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return int(text)


# ---------------------------------------------------------------- list, show


def _cmd_list(args: argparse.Namespace) -> int:
    url = db_url(args.db)
    store = open_db(url, must_exist=True, readonly=True)
    try:
        limit = args.limit or None
        runs = store.list_runs(status=args.status, limit=None if limit is None else limit + 1)
        if args.json:
            for info in runs[:limit]:
                print(json.dumps(_run_json(info, loose_records(store, info.run_id)), default=repr))
            return 0
    finally:
        store.close()
    if not runs:
        which = f" with status {args.status!r}" if args.status else ""
        print(f"no runs{which} in {shown_url(url)}", file=sys.stderr)
        return 0
    for line in runs_table(runs[:limit]):
        print(line)
    if limit is not None and len(runs) > limit:
        print(f"(the newest {limit}; --limit 0 lists all)", file=sys.stderr)
    return 0


def _run_json(info: Any, records: list[Record]) -> dict[str, Any]:
    """Return one run as a JSON-ready dict (for ``runs list --json``)."""
    result: Any = None
    error: str | None = None
    worker: Any = None
    last = records[-1] if records else None
    for record in records:
        if record.kind is RecordKind.RUN_RESUMED:
            worker = record.data  # the lease holder that took the run over last
    if last is not None and last.kind is RecordKind.RUN_FINISHED:
        if last.error is not None:
            error = f"{type(last.error).__name__}: {last.error}"
        elif last.event_id is not None:
            for record in records:
                if record.kind is RecordKind.EVENT_EMITTED and record.event_id == last.event_id:
                    stop = record.event
                    result = stop.get("result") if isinstance(stop, Event) else None
                    if isinstance(result, Event):
                        result = result.model_dump(mode="json")
    return {
        "run_id": info.run_id,
        "workflow": info.workflow,
        "status": info.status,
        "result": result,
        "error": error,
        "worker": worker,
        "started_at": info.started_at,
        "finished_at": info.finished_at,
    }


def _cmd_show(args: argparse.Namespace) -> int:
    url = db_url(args.db)
    store = open_db(url, must_exist=True, readonly=True)
    try:
        run_id = find_run(store, args.run_id, url)
        if args.follow:
            return _follow_run(store, run_id)
        # Never import the code a database names: types not imported are shown by name.
        records = loose_records(store, run_id)
    finally:
        store.close()
    for line in record_lines(records):
        print(line)
    return 0


def _follow_run(store: Store, run_id: str) -> int:
    """Print run `run_id`'s records, then each new one, until it finishes; 130 on Ctrl-C."""
    try:
        asyncio.run(_print_records(store, run_id))
    except KeyboardInterrupt:
        return 130  # quietly: stopping a tail is what Ctrl-C is for
    return 0


async def _print_records(store: Store, run_id: str) -> None:
    start: float | None = None

    def line(record: Record) -> str:
        nonlocal start
        start = record.at if start is None else start
        return record_line(record, start)

    records = follow_records(store, run_id)
    if sys.stdout.isatty():  # the record lines above the live table of the steps
        await show_records(records, sys.stdout, live=True, each=line)
        return
    async for record in records:
        print(line(record), flush=True)


def find_run(store: Store, given: str, url: str) -> str:
    """Return the id of the run `given` names: its id, or a prefix of one run's id."""
    ids = store.run_ids()
    if given in ids:
        return given
    matches = [run_id for run_id in ids if run_id.startswith(given)] if given else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(
            f"run id {given!r} is ambiguous: {len(matches)} runs start with it; give more of it"
        )
    raise UsageError(
        f"no run {given!r} in {shown_url(url)}; 'fanflow runs list{db_option(url)}' shows the "
        "runs there"
    )


def recorded_target(store: Store, run_id: str, given: str | None) -> Target:
    """Load the workflow of run `run_id`: from `given`, else from where the run recorded it."""
    source = given or recorded_source(store, run_id)
    if not source:
        raise UsageError(
            f"run {run_id} does not record where its workflow is defined; "
            "pass --workflow FILE.py:Class"
        )
    where = "given by --workflow" if given else f"as run {run_id} recorded it"
    print(f"fanflow: importing {source} ({where})", file=sys.stderr, flush=True)
    try:
        return load_target(source)
    except TargetError as exc:
        if given:
            raise
        raise TargetError(
            f"{exc} (the workflow run {run_id} recorded; pass --workflow FILE.py:Class "
            "to load it from elsewhere)"
        ) from exc


# ---------------------------------------------------------------- resume, send


def _cmd_resume(args: argparse.Namespace) -> int:
    return _drive(args, event_text=None)


def _cmd_send(args: argparse.Namespace) -> int:
    return _drive(args, event_text=args.event)


def _drive(args: argparse.Namespace, event_text: str | None) -> int:
    """Resume the run `args` names, send it the event of `event_text` if any, and follow it."""
    payload = _event_json(event_text) if event_text is not None else None
    url = db_url(args.db)
    store = CachedStore(open_db(url, must_exist=True))
    try:
        run_id = find_run(store, args.run_id, url)
        _check_resumable(store, run_id)
        target = recorded_target(store, run_id, args.workflow)
        wf = make_workflow(target, args.timeout, args.verbose)
        records = store.records(run_id)
        event = None
        inputs = Inputs(detach=args.detach_on_input, db=db_option(url), workflow=wf)
        if payload is not None:
            event = event_from_text(*payload, wf)
            if records[-1].kind is RecordKind.RUN_FINISHED:
                raise WorkflowRuntimeError(
                    f"cannot send {type(event).__name__}: run {run_id} has already finished "
                    f"({records[-1].data})"
                )
            # The run asks again what it asked before; the event sent answers that.
            inputs.answered = pending_requests(records)
        ui = make_ui(args.progress)
        with ui.capture_stdout():
            return asyncio.run(_resume(wf, run_id, store, ui, inputs, args, event))
    finally:
        store.close()


def _check_resumable(store: Store, run_id: str) -> None:
    """Raise `WorkflowRuntimeError` if run `run_id` is unfinished and cannot be resumed."""
    records = loose_records(store, run_id)
    reason = not_resumable(records)
    if reason is not None and records[-1].kind is not RecordKind.RUN_FINISHED:
        raise WorkflowRuntimeError(f"run {run_id} cannot be resumed: {reason}")


async def _resume(
    wf: Workflow,
    run_id: str,
    store: Store,
    ui: Ui,
    inputs: Inputs,
    args: argparse.Namespace,
    event: Event | None,
) -> int:
    handler = wf.resume(run_id, store=store, durability=args.durability)
    if handler.done():
        print(f"run {run_id} had finished: {store.records(run_id)[-1].data}", file=ui.err)
    else:
        print(f"run {run_id} resumed", file=ui.err, flush=True)
    if event is not None:
        handler.ctx.send_event(event)
    return await follow(handler, store, ui, inputs=inputs, debug=args.debug)


def _event_json(text: str) -> tuple[str, dict[str, Any]]:
    """Return the type name and data of ``--event`` JSON text."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--event is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise UsageError(f'--event needs a JSON object with a "type", like {EVENT_EXAMPLE}')
    extra = sorted(set(payload) - {"type", "data"})
    if extra:
        raise UsageError(f'--event takes "type" and "data" only; got also {", ".join(extra)}')
    data = payload.get("data")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise UsageError(f'--event "data" must be a JSON object, got {type(data).__name__}')
    return payload["type"], data


def event_from_text(name: str, data: dict[str, Any], wf: Workflow) -> Event:
    """Return the event of type `name` with fields `data`, for a run of `wf`.

    `name` is ``module:Qualname`` or a bare class name, looked up in the
    workflow's module, then in `fanflow.events`, then among all event types
    defined so far (if only one has that name).
    """
    event_type = lookup_type(name) if ":" in name else _by_class_name(name, wf)
    if event_type is None:
        module = type(wf).__module__
        raise UsageError(
            f"unknown event type {name!r}: no Event class of that name in {module} or "
            "fanflow.events; give it as module:Qualname"
        )
    try:
        return event_type.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(data)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise UsageError(f"--event: {event_type.__name__} does not validate: {problems}") from None


def _by_class_name(name: str, wf: Workflow) -> type[Event] | None:
    # lookup_type wants "module:Qualname"; with ":Name" it takes a unique match on the name.
    for module in (sys.modules.get(type(wf).__module__), events):
        found = getattr(module, name, None)
        if isinstance(found, type) and issubclass(found, Event):
            return found
    return lookup_type(f":{name}")
