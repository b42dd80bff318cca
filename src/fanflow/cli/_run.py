"""``fanflow run``: start a run, show its progress and streamed events, print the result.

Progress comes from the run's records, read from ``wf.store`` every tick;
streamed events come from ``handler.stream_events()``. Events and the
result go to stdout, progress to stderr, so ``fanflow run ... > out`` keeps
only the results. `follow` does the same for a run resumed by ``fanflow
runs resume`` or ``runs send``; asked for input, it reads a line of stdin
or (``--detach-on-input``) leaves the run waiting in its store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TextIO, cast

from pydantic import ValidationError

from fanflow._runtime.hooks import add_listener, remove_listener
from fanflow._runtime.records import Record, RecordKind, Store
from fanflow.cli._answer import (
    RESPONSE,
    answer_for,
    field_value,
    fields_to_ask,
    has_default,
    hint_data,
)
from fanflow.cli._progress import Above, LiveView, Progress, ProgressListener
from fanflow.errors import WorkflowCancelledByUser
from fanflow.events import Event, InputRequiredEvent, StopEvent
from fanflow.handler import WorkflowHandler
from fanflow.serialize import RecordedError
from fanflow.workflow import Workflow

__all__ = [
    "Inputs",
    "Ui",
    "UsageError",
    "check_arguments",
    "describe",
    "error_name",
    "follow",
    "make_ui",
    "make_workflow",
    "run_workflow",
    "start_arguments",
]

LIVE_TICK = 0.1  # seconds between redraws of the status on a terminal
PLAIN_TICK = 1.0  # seconds between progress lines elsewhere
MAX_SHOWN = 300  # characters of an event or result printed
JOURNAL_TURNS = 5  # event-loop turns to wait for a request's record to be written


class UsageError(Exception):
    """The command line itself is wrong (exit status 2)."""


def start_arguments(pairs: list[str], json_args: str | None) -> dict[str, Any]:
    """Return the StartEvent fields from ``--json-args`` and ``--arg key=value`` pairs.

    A value that parses as JSON (``3``, ``true``, ``[1, 2]``, ``"x"``) is
    that value; anything else is the plain string.
    """
    kwargs: dict[str, Any] = {}
    if json_args is not None:
        try:
            loaded = json.loads(json_args)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--json-args is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--json-args must be a JSON object, got {type(loaded).__name__}")
        kwargs.update(loaded)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--arg needs key=value with a Python name as key, got {pair!r}")
        if key in kwargs:
            raise UsageError(f"argument {key!r} is given twice")
        kwargs[key] = _value(text)
    return kwargs


def check_arguments(wf: Workflow, kwargs: dict[str, Any]) -> None:
    """Refuse a start argument that `wf`'s typed StartEvent has no field for.

    Events keep extra fields, so a misspelt ``--arg`` would otherwise reach
    the run unnoticed. A plain StartEvent (no declared fields) takes any name.
    """
    starts = type(wf).graph().start_types
    fields = starts[0].model_fields if len(starts) == 1 else {}
    unknown = [key for key in kwargs if key not in fields]
    if fields and unknown:
        listed = ", ".join(fields)
        raise UsageError(
            f"unknown start argument {unknown[0]!r}: {starts[0].__name__} has the fields {listed}"
        )


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def make_workflow(
    target: type[Workflow] | Workflow, timeout: float | None, verbose: bool
) -> Workflow:
    """Return the workflow to run, with `timeout` (0: no limit; None: its own) and `verbose`."""
    limit = None if timeout == 0 else timeout
    if isinstance(target, Workflow):
        if timeout is not None:
            target.timeout = limit
        target.verbose = target.verbose or verbose
        return target
    settings: dict[str, Any] = {"verbose": True} if verbose else {}
    if timeout is not None:
        settings["timeout"] = limit
    return target(**settings)


class Ui:
    """Where a run's progress, streamed events and result are shown."""

    def __init__(self, out: TextIO, err: TextIO, *, live: bool, quiet: bool = False) -> None:
        self.err = err
        self.progress = Progress()
        # Counts a run started here from the engine's hooks (see `listen`).
        self.listener = ProgressListener(self.progress)
        self.heard = False
        self.view = LiveView(self.progress, err) if live and not quiet else None
        # Above is a text stream in all but typeshed's name for it.
        self.out: TextIO = cast(TextIO, Above(out, self.view)) if self.view else out
        self.quiet = quiet
        self.seen = 0

    def listen(self) -> contextlib.AbstractContextManager[None]:
        """Count the next run started in this process from its hooks, not its records."""
        return _listening(self)

    def update(self, store: Store, run_id: str) -> bool:
        """Count the run's records written since the last update; return whether any were.

        A run counted from its hooks (`listen`) needs no reading: return True.
        """
        if self.heard and self.listener.run_id == run_id:
            return True
        try:
            records = store.records(run_id)
        except KeyError:
            return False
        fresh, self.seen = records[self.seen :], len(records)
        return self.progress.add(fresh)

    async def watch(self, store: Store, run_id: str) -> None:
        """Show progress until cancelled: redrawn in place live, as plain lines otherwise."""
        tick = LIVE_TICK if self.view else PLAIN_TICK
        last = Progress().lines()  # nothing counted: not worth a line
        if self.view is not None:
            self.view.start()
        while True:
            await asyncio.sleep(tick)
            changed = self.update(store, run_id)
            if self.quiet:
                continue
            if self.view is not None:
                self.view.update()
                continue
            lines = self.progress.lines()
            changed, last = changed and lines != last, lines
            if changed:
                print("progress: " + " | ".join(self.progress.lines()), file=self.err)

    def event(self, event: Event) -> None:
        """Print one streamed event."""
        print(f"event: {describe(event)}", file=self.out, flush=True)

    def capture_stdout(self) -> contextlib.AbstractContextManager[Any]:
        """Send what the run prints (``verbose``, steps' own prints) above the live status."""
        if self.view is None:
            return contextlib.nullcontext()
        return contextlib.redirect_stdout(self.out)

    def finish(self, store: Store, run_id: str) -> None:
        """Erase the live status and print the final counts."""
        self.update(store, run_id)
        if self.view is not None:
            self.view.stop()
        if not self.quiet:
            for line in self.progress.lines()[1:]:
                print(line, file=self.err)


@contextlib.contextmanager
def _listening(ui: Ui) -> Iterator[None]:
    add_listener(ui.listener)
    ui.heard = True
    try:
        yield
    finally:
        remove_listener(ui.listener)


@dataclass
class Inputs:
    """What to do when a followed run asks for input (an InputRequiredEvent on its stream)."""

    detach: bool = False  # leave the run waiting in its store instead of reading stdin
    db: str = ""  # the " --db URL" that the printed ``fanflow runs send`` command needs
    answered: list[Event] = field(default_factory=list)  # asked again on resume, answered already
    workflow: Workflow | None = None  # whose event types an answer is looked up among


def make_ui(progress: str) -> Ui:
    """Return the `Ui` on stdout and stderr for a ``--progress`` mode (auto, live, plain, none)."""
    mode = progress
    if mode == "auto":
        mode = "live" if sys.stderr.isatty() else "plain"
    return Ui(sys.stdout, sys.stderr, live=mode == "live", quiet=mode == "none")


async def run_workflow(
    wf: Workflow,
    kwargs: dict[str, Any],
    ui: Ui,
    *,
    inputs: Inputs | None = None,
    debug: bool = False,
) -> int:
    """Run `wf` with `kwargs` on its store, showing it on `ui`; return the exit status.

    The run's id is printed first (on stderr); see `follow` for the rest.
    """
    with ui.listen():
        handler = wf.run(**kwargs)
    print(f"run {handler.run_id}", file=ui.err, flush=True)
    inputs = replace(inputs or Inputs(), workflow=wf)
    return await follow(handler, wf.store, ui, inputs=inputs, debug=debug)


async def follow(
    handler: WorkflowHandler,
    store: Store,
    ui: Ui,
    *,
    inputs: Inputs | None = None,
    debug: bool = False,
) -> int:
    """Show the run of `handler` (recording to `store`) on `ui` until it ends; return the status.

    0: it ended with a StopEvent, whose result is printed. 1: it failed; one
    line names the error and the step (with `debug`, after the traceback).
    3: it asked for input and ``inputs.detach`` left it waiting in `store`;
    the command that answers it is printed.
    """
    inputs = inputs or Inputs()
    left: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    watcher = asyncio.create_task(ui.watch(store, handler.run_id))
    streamer = asyncio.create_task(_stream(handler, store, ui, inputs, left))
    try:
        await asyncio.wait([handler, left], return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        handler.cancel_run()  # Ctrl-C ends the run, as cancelling ``await handler`` did
        _outcome(handler)
        raise
    finally:
        watcher.cancel()
        detached = not handler.done()
        if detached:
            handler.detach()
            # Detaching settles once the journal has written the run's records
            # and released its lease: only then may another process take it.
            await asyncio.wait([handler])
        else:
            await asyncio.wait([streamer], timeout=1.0)
        streamer.cancel()
        ui.finish(store, handler.run_id)
    if detached:
        _print_answer_hint(handler, inputs, ui.err)
        return 3
    result, error = _outcome(handler)
    if error is not None:
        if debug:
            traceback.print_exception(error, file=ui.err)
        where = _failed_step(store, handler.run_id, error)
        print(f"fanflow: run failed{where}: {error_name(error)}: {error}", file=ui.err)
        return 1
    print(f"result: {describe(result)}", file=ui.out, flush=True)
    return 0


def _outcome(handler: WorkflowHandler) -> tuple[Any, BaseException | None]:
    if handler.cancelled():
        return None, WorkflowCancelledByUser(f"run {handler.run_id} was cancelled")
    error = handler.exception()
    return (None, error) if error is not None else (handler.result(), None)


def _print_answer_hint(handler: WorkflowHandler, inputs: Inputs, err: TextIO) -> None:
    run_id = handler.run_id
    answer = answer_for(handler.records_so_far(), inputs.workflow)
    payload = {"type": answer.event_type.__name__, "data": hint_data(answer)}
    event = json.dumps(payload, ensure_ascii=False, default=str)
    print(f"fanflow: run {run_id} is waiting for input; answer it with:", file=err)
    print(
        f"    fanflow runs send {run_id} --event {shlex.quote(event)}{inputs.db}",
        file=err,
        flush=True,
    )


async def _stream(
    handler: WorkflowHandler, store: Store, ui: Ui, inputs: Inputs, left: asyncio.Future[None]
) -> None:
    try:
        async for event in handler.stream_events():
            if isinstance(event, StopEvent):
                continue
            if isinstance(event, InputRequiredEvent) and event in inputs.answered:
                inputs.answered.remove(event)  # asked again on resume; already answered
                continue
            ui.event(event)
            if isinstance(event, InputRequiredEvent):
                if inputs.detach:
                    left.set_result(None)
                    return
                await _answer(handler, store, ui, inputs, event)
    except Exception:
        pass  # the run's error reaches `follow` through the handler, which reports it


async def _answer(
    handler: WorkflowHandler, store: Store, ui: Ui, inputs: Inputs, request: Event
) -> None:
    """Read the answer's fields from stdin, a line each, and send it to the run.

    The answer has the type the run waits for (see `answer_for`); a plain
    HumanResponseEvent is asked one line, its ``response``.
    """
    records = await _records_with(handler, request)
    answer = answer_for(records, inputs.workflow, request)
    names = fields_to_ask(answer)
    while True:
        data: dict[str, Any] = dict(answer.requirements)
        for name in names:
            text = await _read_line(ui, "input> " if names == [RESPONSE] else f"{name}> ")
            if not text:
                print(
                    "fanflow: no input (stdin closed); cancelling the run "
                    "(--detach-on-input leaves it waiting instead)",
                    file=ui.err,
                )
                handler.cancel_run()
                return
            line = text.rstrip("\n")
            if line or not has_default(answer, name):  # an empty line keeps the default
                data[name] = field_value(answer, name, line)
        try:
            event = answer.event_type.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            print(f"fanflow: not a {answer.event_type.__name__}: {problems}", file=ui.err)
            continue
        handler.ctx.send_event(event)
        return


async def _records_with(handler: WorkflowHandler, request: Event) -> list[Record]:
    """Return the run's records, once the one of `request` is among them if it comes soon.

    The records so far include those not written yet; the wait's record may
    still trail the request on the stream by a loop turn or two.
    """
    records: list[Record] = []
    for _ in range(JOURNAL_TURNS):
        records = handler.records_so_far()
        if any(r.event is request or r.event == request for r in records):
            break
        await asyncio.sleep(0)
    return records


async def _read_line(ui: Ui, prompt: str) -> str:
    """Return one line of stdin ('' when it is closed), read without blocking the loop."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def deliver(text: str) -> None:
        if not line.done():
            line.set_result(text)

    def read() -> None:
        loop.call_soon_threadsafe(deliver, sys.stdin.readline())

    # A daemon thread: a run that ends while we wait must not keep the process alive.
    threading.Thread(target=read, daemon=True).start()
    print(prompt, end="", file=ui.err, flush=True)
    return await line


def _failed_step(store: Store, run_id: str, error: BaseException) -> str:
    with contextlib.suppress(KeyError):
        for record in store.records(run_id):
            if record.kind is RecordKind.STEP_FAILED and _same_error(record.error, error):
                return f" in step {record.step!r}"
    return ""


def _same_error(recorded: BaseException | None, error: BaseException) -> bool:
    if recorded is error:
        return True
    # Loaded from a database, each record has its own copy of the error.
    return (
        isinstance(recorded, RecordedError)
        and isinstance(error, RecordedError)
        and (recorded.type_name, recorded.args) == (error.type_name, error.args)
    )


def error_name(error: BaseException) -> str:
    """Return the name of `error`'s type (for an error loaded from records, the original's)."""
    if isinstance(error, RecordedError):
        return error.type_name.rpartition(".")[2]
    return type(error).__name__


def describe(value: Any) -> str:
    """Return `value` as one printable line: events as ``Name {fields}``, strings as they are."""
    if isinstance(value, Event):
        fields = json.dumps(value.model_dump(mode="json"), default=repr, ensure_ascii=False)
        text = f"{type(value).__name__} {fields}"
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "\u2026"
