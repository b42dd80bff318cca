"""The ``fanflow`` command line: run, check, draw, and one-line errors for bad targets."""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanflow import Record, RecordKind, StartEvent
from fanflow.cli import _run, main
from fanflow.cli._progress import Progress
from fanflow.cli._target import load_target

HERE = Path(__file__).parent
ROOT = HERE.parent
FLOWS = str(HERE / "flows_for_tests.py")


@pytest.fixture(autouse=True)
def _restore_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Forget the target files a test loaded (and the folders it made importable)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        # Only the test's own files: a C extension (igraph) cannot be imported twice.
        where = getattr(sys.modules[name], "__file__", None) or ""
        if where.startswith((str(tmp_path), str(HERE))):
            del sys.modules[name]


@pytest.fixture(autouse=True)
def _run_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Journal each test's runs in a database of its own, not in the working folder."""
    monkeypatch.setenv("FANFLOW_DB", f"sqlite:///{tmp_path}/runs.db")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``fanflow argv``; return its exit status, stdout and stderr."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def write(tmp_path: Path, source: str, name: str = "flow.py") -> str:
    """Write a flow file and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return str(path)


HEADER = """\
    import asyncio
    from fanflow import (Context, Event, HumanResponseEvent, InputRequiredEvent, StartEvent,
                         StopEvent, Workflow, step)
"""


@pytest.mark.parametrize("command", [[], ["run"], ["check"], ["draw"], ["port"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` works on the program and on each command."""
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: fanflow" in capsys.readouterr().out


# ---------------------------------------------------------------- run


def test_run_prints_result_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """A successful run prints its result on stdout, the step and event counts on stderr."""
    status, out, err = cli(capsys, "run", f"{FLOWS}:ConcurrentFlow")
    assert status == 0
    assert out == "result: Done\n"
    assert "done:    start 1, step_two 3, step_three 3" in err
    assert "events:  StartEvent 1, StepTwoEvent 3, StepThreeEvent 3, StopEvent 1" in err


def test_run_passes_arguments_and_prints_streamed_events(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--arg and --json-args build the StartEvent; streamed events are printed in order."""
    status, out, _ = cli(
        capsys, "run", f"{FLOWS}:StreamingFlow", "--arg", "a=2", "--json-args", '{"b": 5}'
    )
    assert status == 0
    assert out.splitlines() == [
        'event: Event {"msg": "adding"}',
        'event: CheckEvent {"value": 2}',
        "result: 7",
    ]


def test_failed_run_exits_1_with_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A step's exception ends the command with status 1 and one line naming the step."""
    status, out, err = cli(capsys, "run", f"{FLOWS}:FailingFlow")
    assert status == 1
    assert "result" not in out
    assert "fanflow: run failed in step 'check': ValueError: value 2 is not allowed" in err
    assert "Traceback" not in err


def test_debug_adds_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """With --debug a failed run also prints where the error was raised."""
    status, _, err = cli(capsys, "run", f"{FLOWS}:FailingFlow", "--debug")
    assert status == 1
    assert "Traceback" in err and 'raise ValueError("value 2 is not allowed")' in err


def test_verbose_prints_each_step(capsys: pytest.CaptureFixture[str]) -> None:
    """--verbose turns on the workflow's own step lines."""
    status, out, _ = cli(capsys, "run", f"{FLOWS}:ParellelFlow", "--verbose")
    assert status == 0
    assert "Running step start\nStep start produced no event\n" in out


def test_timeout_ends_a_slow_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--timeout limits the run; the timeout is a failed run."""
    path = write(
        tmp_path,
        HEADER
        + """
    class Slow(Workflow):
        @step
        async def wait(self, ev: StartEvent) -> StopEvent:
            await asyncio.sleep(30)
            return StopEvent()
    """,
    )
    status, _, err = cli(capsys, "run", path, "--timeout", "0.05")
    assert status == 1
    assert "WorkflowTimeoutError" in err and "timed out after 0.05 s" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arg", "x"], "--arg needs key=value"),
        (["--arg", "a=1", "--arg", "a=2"], "argument 'a' is given twice"),
        (["--json-args", "[1]"], "--json-args must be a JSON object, got list"),
        (["--json-args", "{"], "--json-args is not valid JSON"),
    ],
)
def test_bad_run_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed start arguments are a usage error, said in one line."""
    status, _, err = cli(capsys, "run", f"{FLOWS}:StreamingFlow", *args)
    assert status == 2
    assert err == f"fanflow: error: {err.split('error: ', 1)[1]}"
    assert message in err and err.count("\n") == 1


def test_arguments_that_do_not_fit_the_start_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typed StartEvent's validation error is reported in one line with status 1."""
    path = write(
        tmp_path,
        HEADER
        + """
    class Numbers(StartEvent):
        n: int

    class Typed(Workflow):
        @step
        async def go(self, ev: Numbers) -> StopEvent:
            return StopEvent(result=ev.n * 2)
    """,
    )
    assert cli(capsys, "run", path, "--arg", "n=21")[:2] == (0, "result: 42\n")
    status, _, err = cli(capsys, "run", path, "--arg", "n=abc")
    assert status == 1
    assert "StartEventError" in err and "n:" in err and err.count("\n") == 1


def test_input_required_reads_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An InputRequiredEvent is answered with a line of stdin, sent as a HumanResponseEvent."""
    path = write(
        tmp_path,
        HEADER
        + """
    class Ask(Workflow):
        @step
        async def ask(self, ev: StartEvent) -> InputRequiredEvent:
            return InputRequiredEvent(prefix="name? ")

        @step
        async def answer(self, ev: HumanResponseEvent) -> StopEvent:
            return StopEvent(result="hello " + ev.response)
    """,
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("Ada\n"))
    status, out, _ = cli(capsys, "run", path)
    assert status == 0
    assert out.splitlines()[-1] == "result: hello Ada"


def test_unknown_start_argument_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An --arg the typed StartEvent has no field for is one line naming it and the fields."""
    path = write(
        tmp_path,
        HEADER
        + """
    class Numbers(StartEvent):
        n: int
        label: str = "x"

    class Typed(Workflow):
        @step
        async def go(self, ev: Numbers) -> StopEvent:
            return StopEvent(result=ev.n)
    """,
    )
    status, _, err = cli(capsys, "run", path, "--arg", "nn=3")
    assert (status, err) == (
        2,
        "fanflow: error: unknown start argument 'nn': Numbers has the fields n, label\n",
    )


ANSWER_FLOWS = """
    class Name(HumanResponseEvent):
        name: str
        age: int
        title: str = "Dr"

    class Waits(Workflow):
        @step
        async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
            got = await ctx.wait_for_event(Name, waiter_event=InputRequiredEvent(prefix="who?"))
            return StopEvent(result=f"{got.title} {got.name} {got.age + 1}")

    class Reply(HumanResponseEvent):
        text: str

    class Accepts(Workflow):
        @step
        async def ask(self, ev: StartEvent) -> InputRequiredEvent:
            return InputRequiredEvent(prefix="say")

        @step
        async def answer(self, ev: Reply) -> StopEvent:
            return StopEvent(result="got " + ev.text)
"""


def test_input_answers_the_awaited_subclass_field_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wait for a HumanResponseEvent subclass is answered with it, a line per field."""
    path = write(tmp_path, HEADER + ANSWER_FLOWS)
    monkeypatch.setattr(sys, "stdin", io.StringIO("Ada\n36\n\n"))
    status, out, err = cli(capsys, "run", f"{path}:Waits", "--progress", "none")
    assert (status, out.splitlines()[-1]) == (0, "result: Dr Ada 37")
    assert "name> age> title> " in err


def test_input_answers_the_subclass_a_step_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request answered by a step that accepts a HumanResponseEvent subclass gets that type."""
    path = write(tmp_path, HEADER + ANSWER_FLOWS)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi there\n"))
    status, out, _ = cli(capsys, "run", f"{path}:Accepts", "--progress", "none")
    assert (status, out.splitlines()[-1]) == (0, "result: got hi there")


def test_input_that_does_not_validate_is_asked_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer its type refuses is reported and asked for again."""
    path = write(tmp_path, HEADER + ANSWER_FLOWS)
    monkeypatch.setattr(sys, "stdin", io.StringIO("Ada\nold\n\nAda\n36\nMx\n"))
    status, out, err = cli(capsys, "run", f"{path}:Waits", "--progress", "none")
    assert (status, out.splitlines()[-1]) == (0, "result: Mx Ada 37")
    assert "fanflow: not a Name: age: Input should be a valid integer" in err


def test_detached_hint_names_the_awaited_subclass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--detach-on-input prints a runs send line with the awaited type and its required fields."""
    path = write(tmp_path, HEADER + ANSWER_FLOWS)
    status, _, err = cli(capsys, "run", f"{path}:Waits", "--progress", "none", "--detach-on-input")
    assert status == 3
    assert """--event '{"type": "Name", "data": {"name": "...", "age": "..."}}'""" in err


def test_runs_list_refuses_an_unknown_status(capsys: pytest.CaptureFixture[str]) -> None:
    """``runs list --status bogus`` is a usage error listing the valid statuses."""
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", "list", "--status", "bogus"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'bogus' (choose from 'running', 'ok'" in capsys.readouterr().err


def _readme_runs() -> list[str]:
    """Return the ``fanflow run`` commands of examples/README.md's shell block."""
    text = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith("fanflow run ")]


def test_examples_readme_lists_a_run_for_every_example() -> None:
    """examples/README.md shows a ``fanflow run`` line for each example file."""
    named = {shlex.split(line)[2] for line in _readme_runs()}
    assert named == {f"examples/{p.name}" for p in (ROOT / "examples").glob("*.py")}


@pytest.mark.parametrize("line", _readme_runs())
def test_examples_readme_runs_succeed(
    line: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ``fanflow run`` line of examples/README.md works as written (its --arg included)."""
    monkeypatch.chdir(ROOT)
    status, out, err = cli(capsys, *shlex.split(line)[1:], "--progress", "none")
    assert status == 0, err
    assert out.splitlines()[-1].startswith("result: ")


# ---------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.py:Flow", "file not found: missing.py"),
        ("{syntax}:Flow", "syntax error in {syntax}, line 2"),
        (f"{FLOWS}:not_a_workflow", "not_a_workflow is an int (42), not a Workflow subclass"),
        (f"{FLOWS}:StepTwoEvent", "is the class StepTwoEvent, not a Workflow subclass"),
        (f"{FLOWS}:Nope", "has no name 'Nope' (workflows defined there: ParellelFlow,"),
        (FLOWS, "defines several workflows (ParellelFlow,"),
        ("no_such_module_here:Flow", "no module named 'no_such_module_here'"),
        ("{broken_import}:Flow", "ModuleNotFoundError: No module named 'not_a_real_module_x'"),
    ],
)
@pytest.mark.parametrize("command", ["run", "check", "draw"])
def test_unloadable_targets_are_one_line(
    command: str,
    target: str,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each way a target can be wrong is one clear line, status 2, and no traceback."""
    files = {
        "syntax": write(tmp_path, "from fanflow import Workflow\nclass Flow(Workflow:\n", "syn.py"),
        "broken_import": write(tmp_path, "import not_a_real_module_x\n", "imp.py"),
    }
    status, _, err = cli(capsys, command, target.format(**files))
    assert status == 2
    assert message.format(**files) in err
    assert err.startswith("fanflow: error: ") and err.count("\n") == 1


def test_module_path_target(capsys: pytest.CaptureFixture[str]) -> None:
    """``package.module:Flow`` imports the module (the current folder is importable)."""
    assert cli(capsys, "check", "flows_for_tests:ParellelFlow")[:2] == (
        0,
        "ParellelFlow: ok (2 steps, 3 event types)\n",
    )


def test_file_with_one_workflow_needs_no_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ':Name' the file's only Workflow subclass is taken."""
    path = write(
        tmp_path,
        HEADER
        + """
    class Only(Workflow):
        @step
        async def go(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result="only")
    """,
    )
    assert cli(capsys, "run", path)[:2] == (0, "result: only\n")


def test_file_is_imported_under_its_stem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """flows/app.py is the module ``app``, so its classes' names agree across processes."""
    path = write(tmp_path, HEADER + ANSWER_FLOWS, "app.py")
    loaded = load_target(f"{path}:Waits")
    assert isinstance(loaded, type) and loaded.__module__ == "app"
    assert load_target(f"{path}:Waits") is loaded  # the same file again: the same module


def test_file_whose_stem_is_taken_gets_another_name(tmp_path: Path) -> None:
    """A file named like a module already imported (json.py) leaves that module alone."""
    path = write(tmp_path, HEADER + ANSWER_FLOWS, "json.py")
    loaded = load_target(f"{path}:Waits")
    assert isinstance(loaded, type) and loaded.__module__ == "fanflow_target_json"
    assert sys.modules["json"].__file__ != path


def test_debug_shows_the_traceback_of_a_load_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``fanflow --debug`` prints the traceback before the one-line error."""
    path = write(tmp_path, "import not_a_real_module_x\n", "imp.py")
    status, _, err = cli(capsys, "--debug", "check", f"{path}:Flow")
    assert status == 2
    assert "Traceback" in err and err.endswith("No module named 'not_a_real_module_x'\n")


# ---------------------------------------------------------------- check


def test_check_prints_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    """Each validation problem is one line on stdout; the status is 1."""
    status, out, err = cli(capsys, "check", f"{FLOWS}:BrokenFlow")
    assert status == 1
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.startswith("problem: ") for line in lines)
    assert "StepTwoEvent is produced by step 'start' but no step accepts it" in out
    assert "StepThreeEvent is accepted by step 'orphan' but no step produces it" in out
    assert "BrokenFlow: 2 problem(s)" in err


def test_check_reports_a_sound_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    """A sound workflow passes with status 0 and a one-line summary."""
    assert cli(capsys, "check", f"{FLOWS}:MultipleEventTypesFlow")[:2] == (
        0,
        "MultipleEventTypesFlow: ok (5 steps, 8 event types)\n",
    )


def test_check_reports_a_broken_step_definition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A step that fails its own definition is a problem of the workflow (status 1)."""
    path = write(
        tmp_path,
        HEADER
        + """
    class Bad(Workflow):
        @step
        async def go(self, ev: StartEvent):
            return StopEvent()
    """,
    )
    status, out, _ = cli(capsys, "check", f"{path}:Bad")
    assert status == 1
    assert out.startswith("problem: step 'go'") and "has no return annotation" in out


# ---------------------------------------------------------------- draw


def test_draw_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``draw -o out.html`` writes the self-contained page and prints its name."""
    target = tmp_path / "out.html"
    status, out, _ = cli(capsys, "draw", f"{FLOWS}:ConcurrentFlow", "-o", str(target))
    assert (status, out) == (0, f"{target}\n")
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_draw_text_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Mermaid goes to stdout without -o; the format also follows the output's suffix."""
    status, out, _ = cli(capsys, "draw", f"{FLOWS}:ConcurrentFlow", "--format", "mermaid")
    assert status == 0 and out.startswith("flowchart TD\n")
    dot = tmp_path / "flow.dot"
    assert cli(capsys, "draw", f"{FLOWS}:ConcurrentFlow", "-o", str(dot))[0] == 0
    assert dot.read_text(encoding="utf-8").startswith('digraph "ConcurrentFlow" {')


# ---------------------------------------------------------------- progress


def _record(seq: int, kind: RecordKind, step: str | None = None, inv: int | None = None) -> Record:
    event = StartEvent() if kind is RecordKind.EVENT_EMITTED else None
    return Record("r", seq, kind, 0.0, step, inv, None, event)


def test_progress_counts_running_done_and_events() -> None:
    """Running invocations, finished ones (and failed attempts) and events per type."""
    progress = Progress()
    assert progress.add(
        [
            _record(1, RecordKind.EVENT_EMITTED),
            _record(2, RecordKind.STEP_STARTED, "a", 1),
            _record(3, RecordKind.STEP_STARTED, "a", 2),
            _record(4, RecordKind.STEP_FINISHED, "a", 1),
            _record(5, RecordKind.STEP_FAILED, "a", 2),
            _record(6, RecordKind.STEP_STARTED, "a", 2),
        ]
    )
    assert progress.lines() == [
        "running: a \u00d71",
        "done:    a 1 (1 failed)",
        "events:  StartEvent 1",
    ]
    progress.add([_record(7, RecordKind.RUN_FINISHED)])
    assert progress.lines()[0] == "running: -"


@pytest.mark.parametrize("live", [True, False])
def test_progress_is_shown_while_a_run_lasts(
    live: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run longer than a tick shows its status: redrawn live, or as plain lines."""
    monkeypatch.setattr(_run, "LIVE_TICK", 0.01)
    monkeypatch.setattr(_run, "PLAIN_TICK", 0.01)
    path = write(
        tmp_path,
        HEADER
        + """
    class Pause(Workflow):
        @step
        async def pause(self, ev: StartEvent) -> StopEvent:
            await asyncio.sleep(0.1)
            return StopEvent(result="ok")
    """,
    )
    mode = "live" if live else "plain"
    status, out, err = cli(capsys, "run", path, "--progress", mode)
    assert status == 0 and out == "result: ok\n"
    if live:
        # The rich table (tests/test_progress.py), redrawn with escape codes.
        assert "pause" in err and "p50" in err and "\x1b[" in err
    else:
        assert "progress: running: pause \u00d71 | done:    - | events:  StartEvent 1" in err


def test_console_script_is_installed() -> None:
    """The ``fanflow`` entry point runs (installed with the package)."""
    script = Path(sys.executable).parent / "fanflow"
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable}; pip install -e . first")
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("fanflow ")


def test_python_m_runs_the_command() -> None:
    """``python -m fanflow.cli`` is the same command, for when the script is not on PATH."""
    done = subprocess.run(
        [sys.executable, "-m", "fanflow.cli", "check", f"{FLOWS}:ParellelFlow"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "ParellelFlow: ok (2 steps, 3 event types)\n")
