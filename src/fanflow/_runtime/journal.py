"""When a run's records reach its store.

`Durability` decides when records are handed to the store: ``"sync"``
writes each record before the run goes on, ``"batched"`` writes the
records of one event-loop turn together, ``"exit"`` writes them when the
run ends (or the process exits cleanly).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["DURABILITY_LEVELS", "Durability", "check_durability"]

Durability = Literal["sync", "batched", "exit"]
DURABILITY_LEVELS: tuple[str, ...] = ("sync", "batched", "exit")


def check_durability(value: str) -> Durability:
    """Return `value` if it names a durability level; ValueError otherwise."""
    if value not in DURABILITY_LEVELS:
        raise ValueError(f"durability must be one of {', '.join(DURABILITY_LEVELS)}; got {value!r}")
    return value  # type: ignore[return-value]
