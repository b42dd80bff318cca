"""Lease rules shared by the durable stores: who holds a run, and when a lease lapses.

A holder is named ``hostname:pid:token`` (`fanflow._runtime.journal.new_holder`).
A lease lapses when its ttl runs out, or at once when its holder is a
process on this host that no longer exists: a run whose process was killed
can be resumed without waiting.
"""

from __future__ import annotations

import os

from fanflow.errors import LeaseError

__all__ = ["blocking_holder", "holder_is_dead", "lease_error"]

# The host part of the holder names the engine makes (`journal.new_holder`).
_HOST = os.uname().nodename


def holder_is_dead(holder: str) -> bool:
    """Return True if `holder` names a process on this host that has exited.

    Holders on other hosts, or not in ``hostname:pid:token`` form, are never
    judged dead: their leases lapse by ttl only.
    """
    host, _, pid_text = holder.rpartition(":")[0].rpartition(":")
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid <= 0:  # os.kill(0, ...) would signal our own process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive but another user's
        return False
    return False


def blocking_holder(
    current: tuple[str, float] | None, holder: str, now: float
) -> tuple[str, float] | None:
    """Return ``(holder, seconds left)`` of a lease that keeps `holder` out, else None.

    `current` is the stored ``(holder, expires_at)``; one's own lease, a
    lapsed one and one held by a dead process on this host keep nobody out.
    """
    if current is None or current[0] == holder:
        return None
    other, expires_at = current
    if expires_at <= now or holder_is_dead(other):
        return None
    return other, expires_at - now


def lease_error(run_id: str, blocker: tuple[str, float]) -> LeaseError:
    """Return the `LeaseError` for `run_id` held by `blocker` (``(holder, seconds left)``)."""
    other, left = blocker
    return LeaseError(
        f"run {run_id} is held by {other} for {left:.1f} s more; "
        "wait for that process to finish or for its lease to expire"
    )
