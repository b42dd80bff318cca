"""``fanflow serve app.py``: serve the workflows of a file over HTTP, with a live web UI.

The file's `WorkflowServer` is served if it defines one; otherwise each
`Workflow` subclass it defines is served under its class name. Runs are
journaled in ``--db`` (default: ``$FANFLOW_DB``, else
``sqlite:///fanflow-runs.db``) and resumed when the server starts again.
Binding anything but a loopback address needs a bearer token (``--token``
or ``$FANFLOW_TOKEN``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any

from fanflow.cli._db import db_url, shown_url
from fanflow.cli._run import UsageError
from fanflow.cli._target import TargetError, _is_path, _load_file, _load_module
from fanflow.workflow import Workflow

__all__ = ["add_serve"]

SERVER_INSTALL = "pip install 'fanflow[server]'"


def add_serve(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``fanflow serve`` to `commands`."""
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve a file's workflows over HTTP, with a live web UI",
        description="Serve the WorkflowServer a file defines, or else each Workflow class it "
        "defines under its class name: the HTTP API of llama-agents-server, durable runs "
        f"(resumed on restart) and a web UI at /. Needs {SERVER_INSTALL}.",
    )
    serve.add_argument("app", help="path/to/app.py or package.module")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.add_argument(
        "--db",
        metavar="URL",
        help="where runs are journaled (default: $FANFLOW_DB, else sqlite:///fanflow-runs.db)",
    )
    serve.add_argument(
        "--token",
        help="bearer token required on every request (default: $FANFLOW_TOKEN); needed to "
        "bind an address other than loopback",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow cross-origin requests from ORIGIN (repeatable; default: CORS off)",
    )
    serve.add_argument(
        "--metrics",
        action="store_true",
        help="serve run and step metrics at /metrics in the Prometheus text format "
        "(needs the otel and server extras)",
    )
    serve.set_defaults(command=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run ``fanflow serve``."""
    try:
        from fanflow.server import WorkflowServer
    except ModuleNotFoundError as exc:
        print(f"fanflow: error: fanflow serve needs {exc.name}: {SERVER_INSTALL}", file=sys.stderr)
        return 1
    token = args.token or os.environ.get("FANFLOW_TOKEN") or None
    if not _loopback(args.host) and not token:
        raise UsageError(
            f"refusing to serve on {args.host} without a token: anyone who can reach it could "
            "run workflows; pass --token TOKEN (or set FANFLOW_TOKEN), or bind 127.0.0.1"
        )
    module = _load_module(args.app) if not _is_path(args.app) else _load_file(Path(args.app))
    servers = [v for v in vars(module).values() if isinstance(v, WorkflowServer)]
    if len(servers) > 1:
        raise TargetError(f"{args.app} defines {len(servers)} WorkflowServers; keep one")
    url = db_url(args.db)
    if servers:
        server = servers[0]
        if args.db or os.environ.get("FANFLOW_DB"):
            server.db = url
        server.token = token or server.token
        if args.cors_origin:
            server.cors_origins = list(args.cors_origin)
        server.metrics = server.metrics or args.metrics
    else:
        server = WorkflowServer(
            db=url, token=token, cors_origins=args.cors_origin, metrics=args.metrics
        )
        for cls in _workflow_classes(module):
            server.add_workflow(cls.__name__, cls())
    names = ", ".join(server.runs.served) or "none"
    if not server.runs.served:
        raise TargetError(f"{args.app} defines no WorkflowServer and no Workflow class")
    print(
        f"fanflow: serving {names} on http://{_host(args.host)}:{args.port} "
        f"(runs in {shown_url(server.db)})",
        file=sys.stderr,
        flush=True,
    )
    _run(server.serve(host=args.host, port=args.port))
    return 0


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop when it is installed (the server extra brings it), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def _workflow_classes(module: ModuleType) -> list[type[Workflow]]:
    return [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and issubclass(v, Workflow)
        and v is not Workflow
        and v.__module__ == module.__name__
    ]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
