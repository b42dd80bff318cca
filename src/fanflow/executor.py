"""Where a step's body runs: the executor seam.

The engine hands each invocation to an executor as a `StepCall` and awaits
what its ``run`` returns. `DefaultExecutor` runs an ``async def`` body in
the event loop and a plain ``def`` body in a thread; `ThreadExecutor`
moves every body to a thread. Pass your own with ``@step(executor=...)``
or ``Workflow(executor=...)``: any object with ``run(call) -> Awaitable``.

    class Logged:
        def run(self, call: StepCall) -> Awaitable[Any]:
            print("running", call.spec.name, "attempt", call.attempt)
            return DefaultExecutor().run(call)
"""

from fanflow._runtime.executor import DefaultExecutor, Executor, StepCall, ThreadExecutor

for _name in ("DefaultExecutor", "Executor", "StepCall", "ThreadExecutor"):
    globals()[_name].__module__ = __name__

__all__ = ["DefaultExecutor", "Executor", "StepCall", "ThreadExecutor"]
