"""The seed tutorial's three programs run on fanflow with only the import line changed.

Random sleeps are replaced by gates so the order of completion is chosen by
the test, not by chance.
"""

import asyncio

from fanflow import Context, Event, StartEvent, StopEvent, Workflow, step

SEED_VERBOSE_TRANSCRIPT = """\
Running step start
Step start produced no event
Running step step_two
Running slow query  Query 1
Running step step_two
Running slow query  Query 2
Running step step_two
Running slow query  Query 3
Step step_two produced event StopEvent
"""


class StepTwoEvent(Event):
    query: str


class StepThreeEvent(Event):
    result: str


class StepAEvent(Event):
    query: str


class StepBEvent(Event):
    query: str


class StepCEvent(Event):
    query: str


class StepACompleteEvent(Event):
    result: str


class StepBCompleteEvent(Event):
    result: str


class StepCCompleteEvent(Event):
    result: str


def gates(*queries: str) -> dict[str, asyncio.Event]:
    """Return one closed gate per query."""
    return {query: asyncio.Event() for query in queries}


class ParellelFlow(Workflow):
    gates: dict[str, asyncio.Event] = {}

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StepTwoEvent:
        ctx.send_event(StepTwoEvent(query="Query 1"))
        ctx.send_event(StepTwoEvent(query="Query 2"))
        ctx.send_event(StepTwoEvent(query="Query 3"))

    @step(num_workers=4)
    async def step_two(self, ctx: Context, ev: StepTwoEvent) -> StopEvent:
        print("Running slow query ", ev.query)
        await self.gates[ev.query].wait()  # the seed sleeps a random 1-5 s here
        return StopEvent(result=ev.query)


class ConcurrentFlow(Workflow):
    """The seed's fan-in of three StepThreeEvent; each query ends when its gate opens."""

    gates: dict[str, asyncio.Event] = {}
    order: list[str] = []

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StepTwoEvent:
        ctx.send_event(StepTwoEvent(query="Query 1"))
        ctx.send_event(StepTwoEvent(query="Query 2"))
        ctx.send_event(StepTwoEvent(query="Query 3"))

    @step(num_workers=4)
    async def step_two(self, ctx: Context, ev: StepTwoEvent) -> StepThreeEvent:
        print("Running query ", ev.query)
        await self.gates[ev.query].wait()
        # Open the next query's gate: results arrive in the order the test chose.
        position = self.order.index(ev.query)
        if position + 1 < len(self.order):
            self.gates[self.order[position + 1]].set()
        return StepThreeEvent(result=ev.query)

    @step
    async def step_three(self, ctx: Context, ev: StepThreeEvent) -> StopEvent:
        # wait until we receive 3 events
        result = ctx.collect_events(ev, [StepThreeEvent] * 3)
        if result is None:
            return None

        # do something with all 3 results together
        print(result)
        return StopEvent(result="Done")


class MultipleTypesFlow(Workflow):
    collected: list[list[Event]] = []

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StepAEvent | StepBEvent | StepCEvent:
        ctx.send_event(StepAEvent(query="Query 1"))
        ctx.send_event(StepBEvent(query="Query 2"))
        ctx.send_event(StepCEvent(query="Query 3"))

    @step
    async def step_a(self, ctx: Context, ev: StepAEvent) -> StepACompleteEvent:
        print("Doing something A-ish")
        return StepACompleteEvent(result=ev.query)

    @step
    async def step_b(self, ctx: Context, ev: StepBEvent) -> StepBCompleteEvent:
        print("Doing something B-ish")
        return StepBCompleteEvent(result=ev.query)

    @step
    async def step_c(self, ctx: Context, ev: StepCEvent) -> StepCCompleteEvent:
        print("Doing something C-ish")
        return StepCCompleteEvent(result=ev.query)

    @step
    async def step_three(
        self,
        ctx: Context,
        ev: StepACompleteEvent | StepBCompleteEvent | StepCCompleteEvent,
    ) -> StopEvent:
        print("Received event ", ev.result)

        # wait until we receive 3 events
        collected = ctx.collect_events(
            ev,
            [StepCCompleteEvent, StepACompleteEvent, StepBCompleteEvent],
        )
        if collected is None:
            return None

        self.collected.append(collected)
        # do something with all 3 results together
        return StopEvent(result="Done")


async def test_parallel_flow_returns_the_first_stop_event(finish, capsys):
    """ParellelFlow ends with the fastest query's result: 'Query 3' when Query 3 is fastest."""
    flow = ParellelFlow(timeout=300, verbose=True)
    flow.gates = gates("Query 1", "Query 2", "Query 3")
    flow.gates["Query 3"].set()

    assert await finish(flow.run()) == "Query 3"
    assert capsys.readouterr().out == SEED_VERBOSE_TRANSCRIPT


async def test_concurrent_flow_collects_three_results_in_arrival_order(finish, capsys):
    """ConcurrentFlow prints the three collected results as they arrived and returns 'Done'."""
    flow = ConcurrentFlow(timeout=300, verbose=False)
    flow.gates = gates("Query 1", "Query 2", "Query 3")
    flow.order = ["Query 1", "Query 2", "Query 3"]
    flow.gates["Query 1"].set()

    assert await finish(flow.run()) == "Done"
    assert capsys.readouterr().out.splitlines() == [
        "Running query  Query 1",
        "Running query  Query 2",
        "Running query  Query 3",
        "[StepThreeEvent(result='Query 1'), StepThreeEvent(result='Query 2'), "
        "StepThreeEvent(result='Query 3')]",
    ]


async def test_concurrent_flow_result_order_follows_completion(finish, capsys):
    """When Query 3 finishes first, the collected list starts with Query 3."""
    flow = ConcurrentFlow(timeout=300)
    flow.gates = gates("Query 1", "Query 2", "Query 3")
    flow.order = ["Query 3", "Query 1", "Query 2"]
    flow.gates["Query 3"].set()

    assert await finish(flow.run()) == "Done"
    printed = capsys.readouterr().out.splitlines()[-1]
    assert printed == (
        "[StepThreeEvent(result='Query 3'), StepThreeEvent(result='Query 1'), "
        "StepThreeEvent(result='Query 2')]"
    )


async def test_multiple_event_types_are_collected_in_requested_order(finish, capsys):
    """The StepA/B/C flow collects [C, A, B] in the order asked, then returns 'Done'."""
    flow = MultipleTypesFlow(timeout=300, verbose=False)
    flow.collected = []

    assert await finish(flow.run()) == "Done"
    (collected,) = flow.collected
    assert [type(ev) for ev in collected] == [
        StepCCompleteEvent,
        StepACompleteEvent,
        StepBCompleteEvent,
    ]
    assert [ev.result for ev in collected] == ["Query 3", "Query 1", "Query 2"]
    assert capsys.readouterr().out.splitlines() == [
        "Doing something A-ish",
        "Doing something B-ish",
        "Doing something C-ish",
        "Received event  Query 1",
        "Received event  Query 2",
        "Received event  Query 3",
    ]
