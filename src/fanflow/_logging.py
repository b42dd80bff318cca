"""Log what runs do under the ``fanflow`` logger, with ``run_id`` and ``step`` on each record.

`LogListener` is always on (`install`) and costs next to nothing while
the logger is not enabled for a call's level: each call asks
``log.isEnabledFor`` before building anything. Levels:

- DEBUG: a run started or resumed;
- INFO: a step attempt failed (its traceback only at DEBUG), a retry, a
  run that ended ``ok`` or ``cancelled``;
- WARNING: a run that ended otherwise (``failed``, ``timeout``, ``lost``).

It hears no step that starts or finishes well: those are the hot path
(``Workflow(verbose=True)`` prints them).

Every record carries ``run_id``, ``step`` (None for the run's own
records) and ``workflow`` as attributes, for structured handlers. The
library prints nothing itself: the ``fanflow`` logger gets a
`logging.NullHandler`, so only an application that configures logging
sees these records.
"""

from __future__ import annotations

import logging

from fanflow._runtime.hooks import InvocationInfo, Listener, RunIdentity, add_listener

__all__ = ["LOG", "LogListener", "install"]

log = logging.getLogger("fanflow")
_DEBUG, _INFO, _WARNING = logging.DEBUG, logging.INFO, logging.WARNING
_QUIET_ENDS = frozenset({"ok", "cancelled"})


class LogListener(Listener):
    """A listener that logs run starts and ends, step failures and retries."""

    def run_started(self, run: RunIdentity) -> None:
        if log.isEnabledFor(_DEBUG):
            what = "resumed" if run.resumed else "started"
            log.debug("run %s %s (%s)", run.run_id, what, run.workflow, extra=_run_extra(run))

    def run_finished(self, run: RunIdentity, status: str, error: BaseException | None) -> None:
        level = _INFO if status in _QUIET_ENDS else _WARNING
        if not log.isEnabledFor(level):
            return
        if error is None:
            log.log(level, "run %s ended: %s", run.run_id, status, extra=_run_extra(run))
        else:
            log.log(
                level,
                "run %s ended: %s (%s: %s)",
                run.run_id,
                status,
                type(error).__name__,
                error,
                extra=_run_extra(run),
            )

    def step_failed(self, info: InvocationInfo, error: BaseException, seconds: float) -> None:
        if log.isEnabledFor(_INFO):
            log.info(
                "run %s: step %s failed (attempt %d, %.6f s): %s: %s",
                info.run_id,
                info.step,
                info.attempt,
                seconds,
                type(error).__name__,
                error,
                exc_info=error if log.isEnabledFor(_DEBUG) else None,
                extra=_step_extra(info),
            )

    def step_retried(self, info: InvocationInfo, delay: float) -> None:
        if log.isEnabledFor(_INFO):
            log.info(
                "run %s: step %s runs again in %g s (attempt %d)",
                info.run_id,
                info.step,
                delay,
                info.attempt + 1,
                extra=_step_extra(info),
            )


def _run_extra(run: RunIdentity) -> dict[str, object]:
    return {"run_id": run.run_id, "step": None, "workflow": run.workflow}


def _step_extra(info: InvocationInfo) -> dict[str, object]:
    return {
        "run_id": info.run_id,
        "step": info.step,
        "workflow": info.workflow,
        "attempt": info.attempt,
    }


LOG = LogListener()


def install() -> None:
    """Let `LOG` hear every run in this process, and keep the library from printing."""
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())
    add_listener(LOG)
