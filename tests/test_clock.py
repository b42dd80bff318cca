"""Clocks: the mock clock moves only when told; the system clock is the loop's."""

import asyncio

import pytest

from fanflow import Context, Event, MockClock, StartEvent, StopEvent, SystemClock, Workflow, step


def test_mock_clock_starts_where_told():
    """MockClock(start=) sets the initial time; it does not move by itself."""
    clock = MockClock(start=100.0)

    assert clock.now() == 100.0


def test_advance_fires_due_timers_in_time_order():
    """advance() runs every timer due by the new time, earliest first, and no later ones."""
    clock = MockClock()
    fired = []
    clock.call_later(3, lambda: fired.append(("c", clock.now())))
    clock.call_later(1, lambda: fired.append(("a", clock.now())))
    clock.call_later(2, lambda: fired.append(("b", clock.now())))

    clock.advance(2.5)

    assert fired == [("a", 1.0), ("b", 2.0)]
    assert clock.now() == 2.5


def test_timers_due_at_the_same_time_fire_in_scheduling_order():
    """Timers with equal due times fire in the order they were scheduled."""
    clock = MockClock()
    fired = []
    for name in "xyz":
        clock.call_later(1, lambda name=name: fired.append(name))

    clock.advance(1)

    assert fired == ["x", "y", "z"]


def test_cancelled_timer_does_not_fire():
    """A cancelled timer is skipped when its time comes."""
    clock = MockClock()
    fired = []
    timer = clock.call_later(1, lambda: fired.append("late"))
    timer.cancel()

    clock.advance(5)

    assert fired == []


def test_timer_scheduled_by_a_timer_fires_within_the_same_advance():
    """A timer a callback schedules inside the advanced window fires in that advance."""
    clock = MockClock()
    fired = []
    clock.call_later(1, lambda: clock.call_later(1, lambda: fired.append(clock.now())))

    clock.advance(3)

    assert fired == [2.0]


def test_advance_rejects_negative_time():
    """Time does not go backwards."""
    with pytest.raises(ValueError, match="seconds >= 0"):
        MockClock().advance(-1)


async def test_sleep_waits_until_the_clock_is_advanced(spin):
    """Without autojump, sleep() returns only after advance() moved past its delay."""
    clock = MockClock()
    sleeper = asyncio.ensure_future(clock.sleep(10))
    await spin()
    clock.advance(9)
    await spin()
    assert not sleeper.done()

    clock.advance(1)
    await spin()

    assert sleeper.done()


async def test_autojump_sleep_returns_at_once_and_moves_time():
    """With autojump, sleep(d) returns immediately and the clock reads d later."""
    clock = MockClock(autojump=True)

    await clock.sleep(30)

    assert clock.now() == 30.0


async def test_autojump_sleep_fires_timers_on_the_way():
    """An autojump sleep runs the timers that fall due during it."""
    clock = MockClock(autojump=True)
    fired = []
    clock.call_later(5, lambda: fired.append(clock.now()))

    await clock.sleep(10)

    assert fired == [5.0]


async def test_cancelled_sleep_leaves_no_timer(spin):
    """Cancelling a sleeping task cancels its timer; a later advance does not fail."""
    clock = MockClock()
    sleeper = asyncio.ensure_future(clock.sleep(10))
    await spin()
    sleeper.cancel()
    await spin()

    clock.advance(20)

    assert sleeper.cancelled()


def test_system_clock_now_is_monotonic():
    """SystemClock.now() never goes backwards."""
    clock = SystemClock()
    first = clock.now()

    assert clock.now() >= first


async def test_system_clock_call_later_runs_on_the_loop(spin):
    """SystemClock.call_later runs the callback from the loop, not right away."""
    fired = []
    SystemClock().call_later(0, lambda: fired.append(True))
    assert fired == []

    await spin()

    assert fired == [True]


async def test_system_clock_sleep_takes_real_time():
    """SystemClock.sleep(d) returns after about d seconds of its clock."""
    clock = SystemClock()
    before = clock.now()

    await clock.sleep(0.002)

    assert clock.now() - before >= 0.0019


class _Tick(Event):
    pass


class _SleepsAndWorks(Workflow):
    """`sleeper` sleeps 10 s on the mock clock while `worker` reads the time between yields."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> _Tick | None:
        ctx.send_event(_Tick())
        ctx.send_event(_Tick())
        return None

    @step(num_workers=2)
    async def tick(self, ctx: Context, ev: _Tick) -> StopEvent | None:
        clock = self.clock
        if await ctx.store.get("sleeping", default=False):
            readings = []
            for _ in range(5):
                await asyncio.sleep(0)
                readings.append(clock.now())
            await ctx.store.set("readings", readings)
            return None
        await ctx.store.set("sleeping", True)
        await clock.sleep(10)
        return StopEvent(result=(await ctx.store.get("readings"), clock.now()))


async def test_autojump_waits_until_every_task_is_blocked():
    """The clock jumps over a sleep only once the other step has nothing left to run."""
    readings, woke_at = await _SleepsAndWorks(clock=MockClock(autojump=True)).run()
    assert readings == [0.0] * 5
    assert woke_at == 10.0
