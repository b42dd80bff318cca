"""Where run records go. `MemoryStore` is the default and the test double."""

from fanflow._runtime.records import Record, RecordKind, Store
from fanflow.stores.memory import MemoryStore

__all__ = ["MemoryStore", "Record", "RecordKind", "Store"]
