"""Fan out, then fan in with ``ctx.collect_events`` before finishing.

``start`` sends one document to ``count_words`` per file; the counts come
back as ``WordCount`` events in whatever order they finish. ``total`` runs
once per ``WordCount``: ``collect_events`` returns None until all three are
in, then returns them (in arrival order) and the run ends with their sum.

    python examples/collect_flow.py
"""

from __future__ import annotations

import asyncio

from fanflow import Context, Event, StartEvent, StopEvent, Workflow, step

# (name, text, seconds to "read" it): the delays fix the order the counts arrive.
DOCUMENTS = [
    ("intro.txt", "workflows react to typed events", 0.3),
    ("usage.txt", "steps fan out and fan in", 0.1),
    ("faq.txt", "why async", 0.2),
]


class Document(Event):
    name: str
    text: str
    delay: float


class WordCount(Event):
    name: str
    words: int


class WordTotal(Workflow):
    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Document | None:
        for name, text, delay in DOCUMENTS:
            ctx.send_event(Document(name=name, text=text, delay=delay))

    @step(num_workers=4)
    async def count_words(self, ev: Document) -> WordCount:
        print(f"counting {ev.name}")
        await asyncio.sleep(ev.delay)
        return WordCount(name=ev.name, words=len(ev.text.split()))

    @step
    async def total(self, ctx: Context, ev: WordCount) -> StopEvent | None:
        counts = ctx.collect_events(ev, [WordCount] * len(DOCUMENTS))
        if counts is None:
            return None  # not all counts are in yet
        print("collected:", ", ".join(f"{c.name}={c.words}" for c in counts))
        words = sum(c.words for c in counts)
        return StopEvent(result=f"{words} words in {len(counts)} documents")


async def main() -> None:
    result = await WordTotal(timeout=10, verbose=True).run()
    print(f"result: {result}")


if __name__ == "__main__":
    asyncio.run(main())
