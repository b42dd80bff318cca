"""Helpers for testing workflows: run one end to end and look at what it streamed.

result = await WorkflowTestRunner(MyFlow()).run(start_event=StartEvent(topic="x"))
assert result.result == "done"
assert result.event_types[ProgressEvent] == 3
"""

from fanflow.testing.runner import WorkflowTestResult, WorkflowTestRunner

__all__ = ["WorkflowTestResult", "WorkflowTestRunner"]
