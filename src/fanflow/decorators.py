"""The ``@step`` decorator under the module name LlamaIndex Workflows uses.

``from fanflow.decorators import step`` is the same object as ``fanflow.step``.
"""

from fanflow.step import StepSpec, catch_error, step

__all__ = ["StepSpec", "catch_error", "step"]
