"""Resuming runs from their records (fanflow._runtime.resume), in one process.

A crash is simulated by keeping only the first k records of a finished run:
every prefix must resume to the same result and state, and no recorded step
completion may run twice. The subprocess + SIGKILL version is test_crash.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from resume_flows import AskFlow, CrashFlow

from fanflow import (
    Context,
    HumanResponseEvent,
    InputRequiredEvent,
    MemoryStore,
    Record,
    RecordKind,
    StopEvent,
    WorkflowCancelledByUser,
    WorkflowRuntimeError,
)


async def _finished_run() -> tuple[str, list[Record], object, dict[str, object]]:
    store = MemoryStore(max_runs=None)
    handler = CrashFlow(store=store).run(seed=2)
    result = await handler
    state = (await handler.ctx.store.get_state()).model_dump()
    return handler.run_id, store.records(handler.run_id), result, state


def _completions(records: list[Record]) -> Counter[tuple[str | None, int | None]]:
    inputs = {
        r.invocation: (r.step, r.event_id) for r in records if r.kind is RecordKind.STEP_STARTED
    }
    return Counter(inputs[r.invocation] for r in records if r.kind is RecordKind.STEP_FINISHED)


async def test_every_prefix_of_the_records_resumes_to_the_same_outcome():
    """Cut the record log anywhere: the resumed run ends with the same result and state."""
    run_id, records, result, state = await _finished_run()
    for cut in range(1, len(records)):
        store = MemoryStore(max_runs=None)
        store.write(records[:cut])
        handler = CrashFlow(store=store).resume(run_id)
        assert await asyncio.wait_for(handler, 5) == result, f"cut at {cut}"
        assert (await handler.ctx.store.get_state()).model_dump() == state, f"cut at {cut}"
        twice = [key for key, n in _completions(store.records(run_id)).items() if n > 1]
        assert twice == [], f"cut at {cut}: completions run twice: {twice}"


async def test_finished_steps_are_not_run_again():
    """Resuming after round 0 completed does not redo round 0's work."""
    run_id, records, result, _ = await _finished_run()
    cut = next(
        i
        for i, r in enumerate(records)
        if r.kind is RecordKind.STATE_CHANGED and r.data[0] == "totals.r0"
    )
    store = MemoryStore(max_runs=None)
    store.write(records[: cut + 1])
    handler = CrashFlow(store=store).resume(run_id)
    assert await handler == result
    resumed = store.records(run_id)[cut + 1 :]
    assert RecordKind.RUN_RESUMED in {r.kind for r in resumed}
    begun = [r for r in resumed if r.kind is RecordKind.STEP_STARTED]
    assert "begin" not in {r.step for r in begun}
    round0 = {r.event_id for r in records[: cut + 1] if r.kind is RecordKind.EVENT_EMITTED}
    assert not [r for r in begun if r.event_id in round0 and r.step == "work"]


async def test_resuming_a_finished_run_returns_its_result_without_running():
    """A run that already ended gives back its recorded result."""
    run_id, records, result, _ = await _finished_run()
    store = MemoryStore(max_runs=None)
    store.write(records)
    handler = CrashFlow(store=store).resume(run_id)
    assert await handler == result
    assert len(store.records(run_id)) == len(records)


async def test_resuming_an_unknown_run_names_it():
    """An id the store does not hold is a clear error."""
    with pytest.raises(WorkflowRuntimeError, match="no run 'nope'"):
        CrashFlow().resume("nope")


async def test_a_waiting_run_resumes_and_takes_the_answer():
    """A run left in wait_for_event is resumed elsewhere and completes with the answer."""
    store = MemoryStore(max_runs=None)
    first = AskFlow(store=store).run()
    events = first.stream_events()
    asked = await anext(events)
    assert isinstance(asked, InputRequiredEvent)
    first.ctx._run.journal.flush()
    saved = store.records(first.run_id)
    first.cancel_run()  # the first process goes away
    with pytest.raises(WorkflowCancelledByUser):
        await first

    later = MemoryStore(max_runs=None)
    later.write(saved)
    handler = AskFlow(store=later).resume(first.run_id)
    again = await anext(handler.stream_events())
    assert isinstance(again, InputRequiredEvent)  # the pending request is asked again
    handler.ctx.send_event(HumanResponseEvent(response="Ada"))
    assert await handler == "hello Ada"
    assert await handler.ctx.store.get("asked") is True


async def test_an_answer_sent_before_the_wait_resumes_is_kept():
    """An answer that arrives while the resumed step has not reached its wait yet is not lost."""
    store = MemoryStore(max_runs=None)
    first = AskFlow(store=store).run()
    await anext(first.stream_events())
    first.ctx._run.journal.flush()
    saved = store.records(first.run_id)
    first.cancel_run()
    with pytest.raises(WorkflowCancelledByUser):
        await first
    later = MemoryStore(max_runs=None)
    later.write(saved)
    handler = AskFlow(store=later).resume(first.run_id)
    handler.ctx.send_event(HumanResponseEvent(response="Grace"))
    assert await handler == "hello Grace"


async def test_context_to_dict_and_from_dict_continue_a_waiting_run():
    """ctx.to_dict() while waiting, Context.from_dict() + run(ctx=...) later: the run completes."""
    wf = AskFlow()
    first = wf.run()
    await anext(first.stream_events())
    data = first.ctx.to_dict()
    first.cancel_run()
    with pytest.raises(WorkflowCancelledByUser):
        await first

    import json

    restored = Context.from_dict(wf, json.loads(json.dumps(data)))
    handler = wf.run(ctx=restored)
    handler.ctx.send_event(HumanResponseEvent(response="Lin"))
    assert await handler == "hello Lin"


async def test_from_dict_of_a_finished_run_keeps_state_for_a_new_run():
    """A context saved after a run carries its state into the next run."""
    wf = CrashFlow()
    handler = wf.run(seed=3)
    await handler
    restored = Context.from_dict(wf, handler.ctx.to_dict())
    assert await restored.store.get("totals.r0") == 30
    assert isinstance(await wf.run(ctx=restored, seed=3), int)


async def test_from_dict_rejects_data_it_did_not_make():
    """Malformed context data is a clear error."""
    from fanflow import SerializationError

    with pytest.raises(SerializationError, match="to_dict"):
        Context.from_dict(AskFlow(), {"nope": 1})


def test_stop_event_is_recorded_as_the_run_result():
    """RUN_FINISHED names the StopEvent that ended the run."""

    async def main() -> None:
        store = MemoryStore()
        handler = CrashFlow(store=store).run()
        await handler
        records = store.records(handler.run_id)
        last = records[-1]
        stop = {r.event_id: r.event for r in records if r.kind is RecordKind.EVENT_EMITTED}
        assert isinstance(stop[last.event_id], StopEvent)

    asyncio.run(main())


async def test_detach_leaves_a_waiting_run_resumable():
    """handler.detach() writes the records and stops; resume() finishes the run elsewhere."""
    store = MemoryStore(max_runs=None)
    first = AskFlow(store=store).run()
    await anext(first.stream_events())
    first.detach()
    with pytest.raises(WorkflowRuntimeError, match="detached"):
        await first
    kinds = [r.kind for r in store.records(first.run_id)]
    assert RecordKind.RUN_FINISHED not in kinds
    handler = AskFlow(store=store).resume(first.run_id)
    handler.ctx.send_event(HumanResponseEvent(response="Kay"))
    assert await handler == "hello Kay"
