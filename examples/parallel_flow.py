"""Fan out with ``ctx.send_event``; the first StopEvent ends the run.

``start`` asks three mirrors for the same file at once. ``ask_mirror`` may
run four invocations side by side (``num_workers=4``), so all three requests
are in flight together. The quickest mirror returns a StopEvent, which ends
the run: the two slower requests are cancelled and never print "answered".

    python examples/parallel_flow.py
"""

from __future__ import annotations

import asyncio

from fanflow import Context, Event, StartEvent, StopEvent, Workflow, step

# Seconds each mirror takes to answer; fixed so the winner is always the same.
MIRRORS = {"mirror-a": 0.3, "mirror-b": 0.2, "mirror-c": 0.1}


class MirrorRequest(Event):
    mirror: str
    delay: float


class FastestMirror(Workflow):
    @step
    async def start(self, ctx: Context, ev: StartEvent) -> MirrorRequest | None:
        # No return value: the events are sent, one per mirror.
        for mirror, delay in MIRRORS.items():
            ctx.send_event(MirrorRequest(mirror=mirror, delay=delay))

    @step(num_workers=4)
    async def ask_mirror(self, ev: MirrorRequest) -> StopEvent:
        print(f"asking {ev.mirror} ({ev.delay} s)")
        await asyncio.sleep(ev.delay)
        print(f"{ev.mirror} answered")
        return StopEvent(result=ev.mirror)


async def main() -> None:
    result = await FastestMirror(timeout=10, verbose=True).run()
    print(f"result: {result}")


if __name__ == "__main__":
    asyncio.run(main())
