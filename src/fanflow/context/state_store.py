"""The state store behind ``ctx.store``, under LlamaIndex Workflows' module name.

`InMemoryStateStore` is LlamaIndex Workflows' name for fanflow's `StateStore`
(the same class): ``InMemoryStateStore(DictState())`` or
``InMemoryStateStore(MyState())`` makes a store on its own, for tests or
for code that works on state outside a run::

    store = InMemoryStateStore(DictState())
    await store.set("user.name", "Ada")
    async with store.edit_state() as state:
        state.visits = 1
"""

from fanflow._runtime.state import DictState, StateStore

InMemoryStateStore = StateStore

__all__ = ["DictState", "InMemoryStateStore", "StateStore"]
