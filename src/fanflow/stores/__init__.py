"""Where run records go. `MemoryStore` is the default and the test double.

`SqliteStore` and `PostgresStore` are durable; `open_store` opens one from
a URL. They are imported on first use, so ``import fanflow`` loads neither
sqlite3 nor asyncpg.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fanflow._runtime.records import Record, RecordKind, RunInfo, Store
from fanflow.stores.memory import MemoryStore

if TYPE_CHECKING:
    from fanflow.stores.postgres import PostgresStore
    from fanflow.stores.sqlite import SqliteStore
    from fanflow.stores.url import open_store

__all__ = [
    "MemoryStore",
    "PostgresStore",
    "Record",
    "RecordKind",
    "RunInfo",
    "SqliteStore",
    "Store",
    "open_store",
]

_LAZY = {
    "PostgresStore": "fanflow.stores.postgres",
    "SqliteStore": "fanflow.stores.sqlite",
    "open_store": "fanflow.stores.url",
}


def __getattr__(name: str) -> Any:
    """Import `SqliteStore`, `PostgresStore` and `open_store` when first asked for."""
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
