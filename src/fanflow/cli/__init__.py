"""The ``fanflow`` command: run, check and draw workflows; list, show, resume and answer runs.

    fanflow run flows.py:MyFlow --arg topic=cats --timeout 60
    fanflow check flows.py:MyFlow
    fanflow draw flows.py:MyFlow -o flow.html
    fanflow runs list
    fanflow runs send RUN_ID --event '{"type": "HumanResponseEvent", "data": {"response": "Ada"}}'
    fanflow port my_project/ --diff
    fanflow serve app.py --port 8080

A target is ``path/to/file.py:FlowClass`` or ``package.module:FlowClass``
(``:FlowClass`` may be left out when the file defines one workflow). Every
run is journaled in the database ``--db`` names (default: ``$FANFLOW_DB``,
else ``sqlite:///fanflow-runs.db``). Exit status: 0 success, 1 a failed run
or an invalid workflow, 2 a wrong command line or a target that cannot be
loaded, 3 a run left waiting for input. Errors are one line; ``--debug``
adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

from fanflow import __version__
from fanflow._runtime.journal import DURABILITY_LEVELS
from fanflow.cli._db import CachedStore, NoDatabaseError, db_option, db_url, open_db
from fanflow.cli._run import (
    Inputs,
    UsageError,
    check_arguments,
    make_ui,
    make_workflow,
    run_workflow,
    start_arguments,
)
from fanflow.cli._runs import add_runs
from fanflow.cli._serve import add_serve
from fanflow.cli._target import Target, TargetError, file_source, load_target
from fanflow.cli._worker import add_submit, add_worker
from fanflow.drawing import draw_all_possible_flows, to_dot, to_mermaid
from fanflow.drawing._model import workflow_class
from fanflow.errors import FanflowError, WorkflowValidationError

__all__ = ["main"]

FORMATS = {".html": "html", ".htm": "html", ".mmd": "mermaid", ".mermaid": "mermaid"}
FORMATS |= {".dot": "dot", ".gv": "dot"}
TARGET_HELP = "path/to/file.py:FlowClass or package.module:FlowClass"
PORT_INSTALL = "pip install 'fanflow[port]'"
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fanflow`` command line with `argv` (default: sys.argv); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except (TargetError, UsageError, NoDatabaseError) as exc:
        return _fail(args, exc, 2)
    except (FanflowError, ImportError, OSError, ValueError, TypeError) as exc:
        return _fail(args, exc, 1)
    except KeyboardInterrupt:
        print("fanflow: interrupted", file=sys.stderr)
        return 130


def _fail(args: argparse.Namespace, exc: BaseException, status: int) -> int:
    if args.debug:
        traceback.print_exception(exc)
    plain = isinstance(exc, (TargetError, UsageError, NoDatabaseError))
    text = str(exc) if plain else _one_line(exc)
    print(f"fanflow: error: {text}", file=sys.stderr)
    return status


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", "; ")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``fanflow`` and its commands."""
    parser = argparse.ArgumentParser(
        prog="fanflow",
        description="Run, check and draw fanflow workflows; list, show, resume and answer "
        "their runs; queue them for workers; serve them over HTTP; port LlamaIndex Workflows "
        "programs.",
        epilog="Run 'fanflow COMMAND --help' for a command's options.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    following = _following_options()
    _add_run(commands, common, following)
    _add_check(commands, common)
    _add_draw(commands, common)
    add_runs(commands, common, following)
    add_submit(commands, common)
    add_worker(commands, common)
    _add_port(commands, common)
    add_serve(commands, common)
    return parser


def _following_options() -> argparse.ArgumentParser:
    """Return the options of the commands that drive a run: run, runs resume, runs send."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--db",
        metavar="URL",
        help="where runs are journaled: sqlite:///file.db, sqlite:////abs/file.db or "
        "postgresql://user@host/db (default: $FANFLOW_DB, else sqlite:///fanflow-runs.db)",
    )
    options.add_argument(
        "--durability",
        choices=DURABILITY_LEVELS,
        help="when records are committed: each one (sync), each loop turn (batched, the "
        "workflow's default) or at the end (exit)",
    )
    options.add_argument("--verbose", action="store_true", help="print each step as it runs")
    options.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="limit the run to S seconds (0: no limit; default: the workflow's own, 45 s)",
    )
    options.add_argument(
        "--progress",
        choices=["auto", "live", "plain", "none"],
        default="auto",
        help="live status on a terminal, plain lines otherwise (default: auto)",
    )
    options.add_argument(
        "--detach-on-input",
        action="store_true",
        help="when the run asks for input, leave it waiting in the database and exit with "
        "status 3 (answer later with 'fanflow runs send'); default: read a line of stdin",
    )
    return options


def _add_run(
    commands: Subcommands, common: argparse.ArgumentParser, following: argparse.ArgumentParser
) -> None:
    run = commands.add_parser(
        "run",
        parents=[common, following],
        help="run a workflow and print its streamed events and result",
        description="Run a workflow, journaled in the run database: print its id, show live "
        "progress, print streamed events and the result. Exit status 0 on success, 1 if the "
        "run fails, 3 if it was left waiting for input (--detach-on-input).",
    )
    run.add_argument("target", help=TARGET_HELP)
    run.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a StartEvent field; VALUE is read as JSON if it parses (3, true, [1]), "
        "else as a string; repeatable",
    )
    run.add_argument("--json-args", metavar="JSON", help="StartEvent fields as one JSON object")
    run.set_defaults(command=_cmd_run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _add_check(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    check = commands.add_parser(
        "check",
        parents=[common],
        help="validate a workflow and print every problem",
        description="Validate a workflow's steps and event graph; print every problem. "
        "Exit status 1 if there is any.",
    )
    check.add_argument("target", help=TARGET_HELP)
    check.set_defaults(command=_cmd_check)


def _add_draw(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    draw = commands.add_parser(
        "draw",
        parents=[common],
        help="draw a workflow as an HTML page, Mermaid or DOT",
        description="Draw every step and event type of a workflow. HTML is a self-contained "
        "page; Mermaid and DOT are text (printed when no -o is given).",
    )
    draw.add_argument("target", help=TARGET_HELP)
    draw.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write")
    draw.add_argument(
        "--format",
        choices=["html", "mermaid", "dot"],
        help="default: from the output's suffix (.html, .mmd, .dot), else html",
    )
    draw.set_defaults(command=_cmd_draw)


def _add_port(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    port = commands.add_parser(
        "port",
        parents=[common],
        help="point a LlamaIndex Workflows program's imports at fanflow",
        description="Rewrite imports of workflows, llama_index.core.workflow and "
        "llama_index.utils.workflow (and the code's dotted uses of them) to fanflow, in place, "
        "keeping formatting and comments. Folders are searched for *.py files. Exit status 1 "
        f"if a file cannot be read or parsed. Needs {PORT_INSTALL}.",
    )
    port.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a .py file or a folder")
    port.add_argument(
        "--diff", action="store_true", help="print a unified diff instead of changing the files"
    )
    port.set_defaults(command=_cmd_port)


def _cmd_run(args: argparse.Namespace) -> int:
    kwargs = start_arguments(args.arg, args.json_args)
    target = load_target(args.target)
    wf = make_workflow(target, args.timeout, args.verbose)
    check_arguments(wf, kwargs)
    url = db_url(args.db)
    store = CachedStore(open_db(url), source=file_source(args.target, target))
    try:
        wf.store = store
        if args.durability is not None:
            wf.durability = args.durability
        ui = make_ui(args.progress)
        inputs = Inputs(detach=args.detach_on_input, db=db_option(url))
        with ui.capture_stdout():
            return asyncio.run(run_workflow(wf, kwargs, ui, inputs=inputs, debug=args.debug))
    finally:
        store.close()


def _cmd_port(args: argparse.Namespace) -> int:
    try:
        # libcst is the optional `port` extra: load it only for this command.
        from fanflow.cli._port import port_paths
    except ModuleNotFoundError as exc:
        if exc.name != "libcst":
            raise
        print(f"fanflow: error: fanflow port needs libcst: {PORT_INSTALL}", file=sys.stderr)
        return 1
    return port_paths(args.paths, diff=args.diff, out=sys.stdout, err=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        target = load_target(args.target)
    except TargetError as exc:
        # A step whose definition is wrong fails while its file is imported:
        # that is a problem of the workflow, not of the command line.
        if isinstance(exc.__cause__, WorkflowValidationError):
            print(f"problem: {exc.__cause__}")
            return 1
        raise
    cls = workflow_class(target)
    problems = cls.problems()
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"{cls.__name__}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    graph = cls.graph()
    print(f"{cls.__name__}: ok ({len(graph.steps)} steps, {len(graph.event_types)} event types)")
    return 0


def _cmd_draw(args: argparse.Namespace) -> int:
    target: Target = load_target(args.target)
    output: Path | None = args.output
    fmt = args.format or (FORMATS.get(output.suffix.lower(), "html") if output else "html")
    if fmt == "html":
        name = draw_all_possible_flows(target, output or f"{workflow_class(target).__name__}.html")
        print(name)
        return 0
    text = to_mermaid(target) if fmt == "mermaid" else to_dot(target)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(output)
    return 0
