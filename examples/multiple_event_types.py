"""Fan in events of different types; ``collect_events`` orders them by the type list.

``start`` sends three different requests, each handled by its own step.
``assemble`` accepts all three result types. It is called once per result,
in the order they finish, but ``collect_events(ev, [UserLoaded,
OrdersLoaded, SettingsLoaded])`` returns them in the order of that list,
so the step can unpack them by position.

    python examples/multiple_event_types.py
    fanflow run examples/multiple_event_types.py --arg user_id=7
"""

from __future__ import annotations

import asyncio

from fanflow import Context, Event, StartEvent, StopEvent, Workflow, step


class ProfileRequest(StartEvent):
    """The run's input: ``run(user_id=7)``, or ``--arg user_id=7`` on the command line."""

    user_id: int


class UserRequest(Event):
    user_id: int


class OrdersRequest(Event):
    user_id: int


class SettingsRequest(Event):
    user_id: int


class UserLoaded(Event):
    name: str


class OrdersLoaded(Event):
    orders: list[str]


class SettingsLoaded(Event):
    theme: str


class ProfilePage(Workflow):
    @step
    async def start(
        self, ctx: Context, ev: ProfileRequest
    ) -> UserRequest | OrdersRequest | SettingsRequest | None:
        ctx.send_event(UserRequest(user_id=ev.user_id))
        ctx.send_event(OrdersRequest(user_id=ev.user_id))
        ctx.send_event(SettingsRequest(user_id=ev.user_id))

    # The delays make the results arrive settings, orders, user: the reverse
    # of the order `assemble` asks for them in.
    @step
    async def load_user(self, ev: UserRequest) -> UserLoaded:
        await asyncio.sleep(0.3)
        return UserLoaded(name=f"user{ev.user_id}")

    @step
    async def load_orders(self, ev: OrdersRequest) -> OrdersLoaded:
        await asyncio.sleep(0.2)
        return OrdersLoaded(orders=["book", "lamp"])

    @step
    async def load_settings(self, ev: SettingsRequest) -> SettingsLoaded:
        await asyncio.sleep(0.1)
        return SettingsLoaded(theme="dark")

    @step
    async def assemble(
        self, ctx: Context, ev: UserLoaded | OrdersLoaded | SettingsLoaded
    ) -> StopEvent | None:
        print(f"received {type(ev).__name__}")
        parts = ctx.collect_events(ev, [UserLoaded, OrdersLoaded, SettingsLoaded])
        if parts is None:
            return None
        print("collected in order:", ", ".join(type(p).__name__ for p in parts))
        user, orders, settings = parts
        return StopEvent(result=f"{user.name}: {len(orders.orders)} orders, {settings.theme} theme")


async def main() -> None:
    result = await ProfilePage(timeout=10, verbose=True).run(user_id=7)
    print(f"result: {result}")


if __name__ == "__main__":
    asyncio.run(main())
