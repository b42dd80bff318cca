"""The run engine: run state, the records a run produces, and the dispatch loop.

Private: the public API lives in `fanflow.context`, `fanflow.handler` and
`fanflow.workflow`, which reach the engine only through `Run`.
"""
