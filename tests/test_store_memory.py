"""MemoryStore passes the store contract (tests/store_contract.py)."""

from __future__ import annotations

import pytest
from store_contract import StoreContract

from fanflow.stores import MemoryStore, Store


class MemoryBackend:
    """Fresh MemoryStores: nothing is kept between them, nothing to tamper with."""

    durable = False
    checks_dead_holders = False

    def open(self) -> Store:
        return MemoryStore(max_runs=None)

    def expire(self, store: Store, run_id: str) -> None:
        assert isinstance(store, MemoryStore)
        holder, _ = store._leases[run_id]
        store._leases[run_id] = (holder, 0.0)


class TestMemoryStore(StoreContract):
    """The contract, against MemoryStore."""

    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return MemoryBackend()
