"""Instrumentation hooks: listen to what happens in runs, as it happens.

Subclass `Listener`, override the calls you need, and pass it to
``Workflow(listeners=[...])`` (that workflow's runs) or `add_listener`
(every run in the process). Step calls run inside the invocation's own
context, so a tracer may open a span in ``step_started`` and the step's
code sees it as current; ``run_started`` runs in the run's context, which
every invocation's context is copied from.

    class Timer(Listener):
        def step_finished(self, info, output, seconds):
            print(f"{info.step} took {seconds:.3f} s")

    MyFlow(listeners=[Timer()])

A listener that raises is logged under the ``fanflow`` logger and
otherwise ignored: listening never changes a run.
"""

from fanflow._runtime.hooks import (
    InvocationInfo,
    Listener,
    RunIdentity,
    add_listener,
    remove_listener,
)

for _name in ("InvocationInfo", "Listener", "RunIdentity"):
    globals()[_name].__module__ = __name__

__all__ = ["InvocationInfo", "Listener", "RunIdentity", "add_listener", "remove_listener"]
