"""Runs shared by many processes through one PostgreSQL journal, and limits across them.

    handler = await wf.submit(store="postgresql://...", topic="cats")  # queue a run
    print(await handler)                                             # follow it to its end

    worker = Worker([MyFlow()], "postgresql://...", concurrency=8)   # in any process
    await worker.serve()                                             # until worker.stop()

`Limit` and `limited` bound calls across every worker on one database.
See ``docs/scale-out.md``.
"""

from fanflow.worker.limits import Limit, LimitError, close_limits, limited, parse_rate
from fanflow.worker.queue import QueuedRun, send_event, submit
from fanflow.worker.worker import Worker

for _name in ("Limit", "LimitError", "QueuedRun", "Worker"):
    globals()[_name].__module__ = __name__

__all__ = [
    "Limit",
    "LimitError",
    "QueuedRun",
    "Worker",
    "close_limits",
    "limited",
    "parse_rate",
    "send_event",
    "submit",
]
