"""Serve workflows over HTTP: the reference server's API, durable runs, a live web UI.

    from fanflow.server import WorkflowServer

    server = WorkflowServer()
    server.add_workflow("greet", Greet())
    await server.serve(port=8080)

Needs the ``server`` extra: ``pip install 'fanflow[server]'``. See docs/server.md.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "fanflow.server needs Starlette and uvicorn: pip install 'fanflow[server]'",
        name=exc.name,
    ) from exc

from fanflow.server._app import WorkflowServer

__all__ = ["WorkflowServer"]

WorkflowServer.__module__ = "fanflow.server"
