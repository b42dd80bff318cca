"""Thread pools shared by every run in the process, made on first use."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["shared_pool"]

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def shared_pool(name: str, size: int) -> ThreadPoolExecutor:
    """Return the process's pool called `name` (threads ``fanflow-<name>``), made on first use."""
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(size, thread_name_prefix=f"fanflow-{name}")
        return pool
