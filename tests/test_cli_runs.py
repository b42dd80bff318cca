"""``fanflow run`` journaling and ``fanflow runs list|show|resume|send``."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanflow import HumanResponseEvent, Record, RecordKind, RunInfo
from fanflow.cli import main
from fanflow.cli._run import UsageError
from fanflow.cli._runs import event_from_text
from fanflow.cli._show import duration_text, runs_table
from fanflow.cli._target import load_target
from fanflow.serialize import Unjournaled
from fanflow.stores import SqliteStore

HERE = Path(__file__).parent
FLOWS = str(HERE / "cli_runs_flows.py")
ANSWER = '{"type": "HumanResponseEvent", "data": {"response": "Ada"}}'


@pytest.fixture(autouse=True)
def _in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Run in an empty folder with the default database; forget the flow files loaded."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FANFLOW_DB", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        where = getattr(sys.modules[name], "__file__", None) or ""
        if where.startswith((str(tmp_path), str(HERE))):
            del sys.modules[name]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``fanflow argv`` in this process; return its exit status, stdout and stderr."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def fanflow(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m fanflow.cli argv`` in a new process in `cwd`, stdin closed."""
    env = {k: v for k, v in os.environ.items() if k != "FANFLOW_DB"}
    return subprocess.run(
        [sys.executable, "-m", "fanflow.cli", *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_id_of(err: str) -> str:
    """Return the id from the ``run <id>`` line a run prints on stderr."""
    lines = [line for line in err.splitlines() if line.startswith("run ")]
    return lines[0].split()[1]


def errors(err: str) -> list[str]:
    """Return the lines of `err` other than the ``fanflow: importing ...`` notice."""
    return [line for line in err.splitlines() if not line.startswith("fanflow: importing ")]


def listed(capsys: pytest.CaptureFixture[str], *options: str) -> dict[str, list[str]]:
    """Return ``fanflow runs list`` as {run id: [workflow, status, ...]}."""
    status, out, _ = cli(capsys, "runs", "list", *options)
    assert status == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    return {row[0]: row[1:] for row in rows}


@pytest.mark.parametrize(
    "command", [["runs"], ["runs", "list"], ["runs", "show"], ["runs", "resume"], ["runs", "send"]]
)
def test_every_runs_command_has_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--help`` works on ``runs`` and each of its commands."""
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: fanflow runs" in capsys.readouterr().out


def test_run_is_journaled_in_the_default_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``fanflow run`` prints the run id; ``runs list`` then shows the run with status ok."""
    status, out, err = cli(capsys, "run", f"{FLOWS}:Count")
    assert (status, out) == (0, "result: 3 items\n")
    run_id = run_id_of(err)
    assert (tmp_path / "fanflow-runs.db").exists()
    runs = listed(capsys)
    assert runs[run_id][:2] == ["cli_runs_flows.Count", "ok"]


def test_list_is_a_table_newest_first_with_status_and_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Runs are listed newest first; --status filters and --limit cuts."""
    first = run_id_of(cli(capsys, "run", f"{FLOWS}:Count")[2])
    failed = run_id_of(cli(capsys, "run", f"{FLOWS}:Fail")[2])
    status, out, _ = cli(capsys, "runs", "list")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"]
    assert [row.split()[0] for row in rows] == [failed, first]
    assert list(listed(capsys, "--status", "failed")) == [failed]
    status, out, err = cli(capsys, "runs", "list", "--limit", "1")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [failed]
    assert err == "(the newest 1; --limit 0 lists all)\n"


def test_list_json_is_one_object_per_run_for_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    """``runs list --json``: one JSON line per run with status, result or error, and times."""
    ok = run_id_of(cli(capsys, "run", f"{FLOWS}:Count")[2])
    failed = run_id_of(cli(capsys, "run", f"{FLOWS}:Fail")[2])
    status, out, _ = cli(capsys, "runs", "list", "--json")
    assert status == 0
    rows = {row["run_id"]: row for row in map(json.loads, out.splitlines())}
    assert set(rows) == {ok, failed}
    assert (rows[ok]["status"], rows[ok]["result"], rows[ok]["error"]) == ("ok", "3 items", None)
    assert rows[failed]["status"] == "failed" and rows[failed]["error"]
    assert rows[ok]["finished_at"] >= rows[ok]["started_at"] > 0
    assert set(rows[ok]) >= {"workflow", "worker"}


def test_show_prints_one_line_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    """``runs show`` prints each record: seq, offset, kind, step#invocation and details."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Count")[2])
    status, out, _ = cli(capsys, "runs", "show", run_id)
    assert status == 0
    lines = out.splitlines()
    with SqliteStore("fanflow-runs.db") as store:
        assert len(lines) == len(store.records(run_id))
    assert lines[0].split()[:4] == ["1", "+0.000s", "run_started", "-"]
    assert f"Count from {FLOWS}:Count" in lines[0]
    assert any("event_emitted  start#" in line and 'Item {"n": 2}' in line for line in lines)
    assert any("collected" in line and "took #" in line for line in lines)
    assert lines[-1].split()[2:5] == ["run_finished", "-", "ok,"]


def test_show_of_a_failed_run_names_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A failed step's record shows the error's type and message."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Fail")[2])
    out = cli(capsys, "runs", "show", run_id)[1]
    assert "step_failed    boom#1" in out and "error ValueError: no luck" in out


def test_a_prefix_of_the_id_names_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Any prefix of one run's id works in place of the id."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Count")[2])
    status, out, _ = cli(capsys, "runs", "resume", run_id[:6])
    assert (status, out) == (0, "result: 3 items\n")


@pytest.mark.parametrize("command", ["show", "resume", "send"])
def test_unknown_run_id_is_one_line(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An id that names no run is one line saying where it looked, status 2."""
    cli(capsys, "run", f"{FLOWS}:Count")
    extra = ["--event", ANSWER] if command == "send" else []
    status, _, err = cli(capsys, "runs", command, "nope", *extra)
    assert status == 2
    assert err == "fanflow: error: no run 'nope' in sqlite:///fanflow-runs.db; " + (
        "'fanflow runs list' shows the runs there\n"
    )


def test_missing_database_is_one_line_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading runs from a database that does not exist says so; no empty file is made."""
    status, _, err = cli(capsys, "runs", "list", "--db", "sqlite:///missing.db")
    assert status == 2
    assert err.startswith("fanflow: error: no run database at ") and err.count("\n") == 1
    assert not (tmp_path / "missing.db").exists()


def test_resume_of_a_finished_run_prints_its_result(capsys: pytest.CaptureFixture[str]) -> None:
    """``runs resume`` of a run that ended prints its recorded result, status 0."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Count")[2])
    status, out, err = cli(capsys, "runs", "resume", run_id)
    assert (status, out) == (0, "result: 3 items\n")
    assert f"run {run_id} had finished: ok" in err


def test_resume_of_a_failed_run_names_the_step(capsys: pytest.CaptureFixture[str]) -> None:
    """``runs resume`` of a failed run exits 1 with the recorded error and its step."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Fail")[2])
    status, _, err = cli(capsys, "runs", "resume", run_id)
    assert status == 1
    assert err.endswith("fanflow: run failed in step 'boom': ValueError: no luck\n")


def test_detached_run_is_answered_in_this_process_too(capsys: pytest.CaptureFixture[str]) -> None:
    """--detach-on-input releases the run's lease: ``runs send`` works at once, even here."""
    status, out, err = cli(capsys, "run", f"{FLOWS}:Greet", "--detach-on-input")
    assert status == 3
    assert out == 'event: InputRequiredEvent {"prefix": "name?"}\n'
    run_id = run_id_of(err)
    assert f"fanflow runs send {run_id} --event '" in err
    assert listed(capsys)[run_id][1] == "running"
    status, out, _ = cli(capsys, "runs", "send", run_id[:8], "--event", ANSWER)
    assert (status, out) == (0, "result: hello Ada\n")
    assert listed(capsys)[run_id][1] == "ok"


@pytest.mark.parametrize("durability", ["sync", "batched", "exit"])
def test_each_durability_leaves_a_run_that_can_be_answered(
    durability: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever --durability, a detached run's records are in the database when it exits."""
    err = cli(capsys, "run", f"{FLOWS}:Greet", "--detach-on-input", "--durability", durability)[2]
    run_id = run_id_of(err)
    assert cli(capsys, "runs", "send", run_id, "--event", ANSWER)[:2] == (0, "result: hello Ada\n")


def test_human_input_across_processes(tmp_path: Path) -> None:
    """One process leaves a run waiting for input (status 3); another answers and finishes it."""
    first = fanflow("run", f"{FLOWS}:Greet", "--detach-on-input", cwd=tmp_path)
    assert first.returncode == 3, first.stderr
    assert first.stdout == 'event: InputRequiredEvent {"prefix": "name?"}\n'
    run_id = run_id_of(first.stderr)
    hint = f"fanflow runs send {run_id} --event "
    assert (
        hint + """'{"type": "HumanResponseEvent", "data": {"response": "..."}}'""" in first.stderr
    )

    second = fanflow("runs", "send", run_id, "--event", ANSWER, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "result: hello Ada\n"

    listing = fanflow("runs", "list", cwd=tmp_path)
    row = next(line.split() for line in listing.stdout.splitlines() if line.startswith(run_id))
    assert row[1:3] == ["cli_runs_flows.Greet", "ok"]


def test_resume_reads_a_line_for_a_waiting_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runs resume`` of a run waiting for input asks again and takes a line of stdin."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Greet", "--detach-on-input")[2])
    monkeypatch.setattr(sys, "stdin", io.StringIO("Grace\n"))
    status, out, _ = cli(capsys, "runs", "resume", run_id)
    assert status == 0
    assert out.splitlines() == [
        'event: InputRequiredEvent {"prefix": "name?"}',
        "result: hello Grace",
    ]


def test_send_to_a_run_held_by_a_live_process_names_the_holder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A run whose lease another live process holds is refused in one line naming it."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Greet", "--detach-on-input")[2])
    holder = f"{socket.gethostname()}:{os.getpid()}"
    with SqliteStore("fanflow-runs.db") as store:
        store.acquire_lease(run_id, "abcdef0123456789", 60)
        status, _, err = cli(capsys, "runs", "send", run_id, "--event", ANSWER)
    assert status == 1
    assert errors(err) == [
        f"fanflow: error: LeaseError: run {run_id} is held by {holder} (lease abcdef01) for "
        + errors(err)[0].split(" for ", 1)[1]
    ]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("{", "--event is not valid JSON"),
        ("[1]", '--event needs a JSON object with a "type"'),
        ('{"type": "Nope"}', "unknown event type 'Nope': no Event class of that name in"),
        ('{"type": "HumanResponseEvent", "data": 3}', '--event "data" must be a JSON object'),
        ('{"type": "HumanResponseEvent", "x": 1}', '--event takes "type" and "data" only'),
        ('{"type": "Item", "data": {"n": "many"}}', "--event: Item does not validate: n:"),
    ],
)
def test_bad_events_are_one_line(
    event: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed --event JSON, an unknown type or invalid data: status 2, one line."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Greet", "--detach-on-input")[2])
    status, _, err = cli(capsys, "runs", "send", run_id, "--event", event)
    assert status == 2
    assert message in err and len(errors(err)) == 1


def test_send_to_a_finished_run_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Sending to a run that has ended is one line naming how it ended."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Count")[2])
    status, _, err = cli(capsys, "runs", "send", run_id, "--event", ANSWER)
    assert status == 1
    assert f"run {run_id} has already finished (ok)" in err and len(errors(err)) == 1


def test_event_types_by_bare_or_qualified_name() -> None:
    """A bare name is found in the workflow's module or fanflow.events; module:Name anywhere."""
    target = load_target(f"{FLOWS}:Count")
    wf = target() if isinstance(target, type) else target
    answer = event_from_text("HumanResponseEvent", {"response": "Ada"}, wf)
    assert type(answer) is HumanResponseEvent and answer.response == "Ada"
    qualified = event_from_text("fanflow.events:HumanResponseEvent", {}, wf)
    assert type(qualified) is HumanResponseEvent
    item = event_from_text("Item", {"n": 1}, wf)
    assert type(item).__module__ == type(wf).__module__
    with pytest.raises(UsageError, match="unknown event type 'Nope'"):
        event_from_text("Nope", {}, wf)


def test_resume_with_workflow_option_and_a_moved_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A workflow file that moved is named with --workflow; without it the error says so."""
    flows = tmp_path / "moved.py"
    flows.write_text(Path(FLOWS).read_text(encoding="utf-8"), encoding="utf-8")
    run_id = run_id_of(cli(capsys, "run", f"{flows}:Greet", "--detach-on-input")[2])
    flows.rename(tmp_path / "elsewhere.py")
    status, _, err = cli(capsys, "runs", "send", run_id, "--event", ANSWER)
    assert status == 2
    assert "file not found" in err and "pass --workflow" in err and len(errors(err)) == 1
    status, out, _ = cli(
        capsys, "runs", "send", run_id, "--event", ANSWER, "--workflow", "elsewhere.py:Greet"
    )
    assert (status, out) == (0, "result: hello Ada\n")


def test_db_option_and_environment_pick_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--db names the database; FANFLOW_DB is the default when --db is not given."""
    mine = f"sqlite:///{tmp_path}/mine.db"
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Count", "--db", mine)[2])
    assert run_id in listed(capsys, "--db", mine)
    assert not (tmp_path / "fanflow-runs.db").exists()
    monkeypatch.setenv("FANFLOW_DB", mine)
    assert run_id in listed(capsys)


def test_table_and_durations() -> None:
    """The run table aligns its columns; durations read as s, min or h."""
    infos = [RunInfo("abc", "Flow", "running", 0.0, None), RunInfo("d", "F", "ok", 0.0, 65.2)]
    header, first, second = runs_table(infos)
    assert header.index("WORKFLOW") == first.index("Flow") == second.index("F ")
    assert first.endswith("-") and second.endswith("1 min 05 s")
    assert [duration_text(s) for s in (0.123, 12.34, 7322.0)] == ["0.12 s", "12.3 s", "2 h 02 min"]


def test_run_output_json_of_send_hint_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """The printed ``runs send`` command carries JSON that ``--event`` accepts."""
    err = cli(capsys, "run", f"{FLOWS}:Greet", "--detach-on-input")[2]
    quoted = err.split("--event '", 1)[1].split("'", 1)[0]
    assert json.loads(quoted) == {"type": "HumanResponseEvent", "data": {"response": "..."}}


# ---------------------------------------------------------------- untrusted and read-only databases

NOISY = """
import pathlib
with open(pathlib.Path(__file__).with_name("imported.log"), "a") as log:
    log.write("imported\\n")
from fanflow import StartEvent, StopEvent, Workflow, step, Event

class Note(Event):
    text: str

class Noisy(Workflow):
    @step
    async def only(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result="quiet")
"""


def test_list_and_show_import_nothing_resume_says_what_it_imports(tmp_path: Path) -> None:
    """``runs list`` and ``show`` never import the recorded file; ``resume`` names it first."""
    (tmp_path / "noisy.py").write_text(NOISY, encoding="utf-8")
    log = tmp_path / "imported.log"
    first = fanflow("run", "noisy.py:Noisy", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_id = run_id_of(first.stderr)
    log.unlink()
    for command in (["runs", "list"], ["runs", "show", run_id]):
        shown = fanflow(*command, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert not log.exists(), command
    resumed = fanflow("runs", "resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    notice = f"fanflow: importing {tmp_path / 'noisy.py'}:Noisy (as run {run_id} recorded it)"
    assert resumed.stderr.splitlines()[0] == notice
    assert log.read_text() == "imported\n"


def test_show_prints_events_whose_types_are_not_imported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An event type nobody imported is shown by its name and fields, not refused."""
    with SqliteStore("fanflow-runs.db") as store:
        store.write([Record("r1", 1, RecordKind.RUN_STARTED, 1.0, data={"workflow": "W"})])
    with sqlite3.connect("fanflow-runs.db") as conn:
        conn.execute(
            "INSERT INTO fanflow_records (run_id, seq, kind, at, event_id, event) "
            "VALUES ('r1', 2, 'event_emitted', 2.0, 1, ?)",
            ('{"type": "evil.module:Payload", "data": {"x": {"$t": "decimal", "v": "1.5"}}}',),
        )
    conn.close()
    status, out, err = cli(capsys, "runs", "show", "r1")
    assert (status, err) == (0, "")
    assert 'Payload {"x": "Decimal(\'1.5\')"}' in out.splitlines()[1]
    assert "evil" not in sys.modules and "evil.module" not in sys.modules


def test_a_malformed_row_is_one_line_naming_run_and_seq(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``runs show`` of a run with a broken row says which run and record, status 1."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Count")[2])
    with sqlite3.connect("fanflow-runs.db") as conn:
        conn.execute(
            "UPDATE fanflow_records SET data = ? WHERE run_id = ? AND seq = 3",
            ("[" * 200_000, run_id),
        )
    conn.close()
    status, _, err = cli(capsys, "runs", "show", run_id)
    assert status == 1
    assert f"SerializationError: run {run_id} record 3: malformed record" in err
    assert err.count("\n") == 1


def test_resume_of_a_run_that_is_not_resumable_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    """A run whose state held a value that was not journaled is refused, before any import."""
    records = [
        Record("r1", 1, RecordKind.RUN_STARTED, 1.0, data={"workflow": "Greet", "source": FLOWS}),
        Record(
            "r1", 2, RecordKind.STATE_CHANGED, 1.0, "ask", 1, data=("db", Unjournaled("a lock"))
        ),
    ]
    with SqliteStore("fanflow-runs.db") as store:
        store.write(records)
    status, _, err = cli(capsys, "runs", "resume", "r1")
    assert status == 1
    assert err.startswith("fanflow: error: WorkflowRuntimeError: run r1 cannot be resumed: ")
    assert "state db held a lock" in err and "Resource" in err and "importing" not in err


def _as_non_root(argv: list[str]) -> list[str]:
    """Return `argv` run so that file permissions bind (root ignores them)."""
    if os.getuid() != 0:
        return argv
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: a read-only file would still be writable")
    probe = subprocess.run(["unshare", "-U", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"running as root and unshare -U fails: {probe.stderr.decode().strip()}")
    return ["unshare", "-U", *argv]


def test_list_and_show_work_on_a_read_only_database(tmp_path: Path) -> None:
    """``runs list`` and ``show`` read a chmod 444 file in a read-only folder, changing nothing."""
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "runs.db"
    made = fanflow("run", f"{FLOWS}:Count", "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    run_id = run_id_of(made.stderr)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        for command in (["runs", "list"], ["runs", "show", run_id]):
            argv = _as_non_root([sys.executable, "-m", "fanflow.cli", *command, "--db", str(db)])
            done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert run_id in done.stdout or "run_finished" in done.stdout
        assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)


def follower(run_id: str, cwd: Path) -> subprocess.Popen[str]:
    """Start ``fanflow runs show RUN_ID --follow`` in a new process in `cwd`."""
    env = {k: v for k, v in os.environ.items() if k != "FANFLOW_DB"}
    return subprocess.Popen(
        [sys.executable, "-m", "fanflow.cli", "runs", "show", run_id, "--follow"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_lines(stream: Any, count: int) -> list[str]:
    """Read `count` lines of `stream`, failing the test if they do not come within 30 s."""
    lines: list[str] = []
    reading = threading.Thread(target=lambda: lines.extend(stream.readline() for _ in range(count)))
    reading.start()
    reading.join(30)
    assert not reading.is_alive(), f"got {len(lines)} of {count} lines within 30 s"
    return [line.rstrip("\n") for line in lines]


def test_show_follow_of_a_finished_run_prints_show_and_exits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``runs show --follow`` of a run that has ended prints what ``show`` does, then exits 0."""
    run_id = run_id_of(cli(capsys, "run", f"{FLOWS}:Count")[2])
    shown = cli(capsys, "runs", "show", run_id)
    assert cli(capsys, "runs", "show", run_id[:8], "--follow") == shown


def test_show_follow_tails_a_run_another_process_drives(tmp_path: Path) -> None:
    """``--follow`` prints the records so far, then those another process commits, to the end."""
    waiting = fanflow("run", f"{FLOWS}:Greet", "--detach-on-input", cwd=tmp_path)
    assert waiting.returncode == 3, waiting.stderr
    run_id = run_id_of(waiting.stderr)
    with SqliteStore("fanflow-runs.db", readonly=True) as store:
        before = len(store.records(run_id))
    tail = follower(run_id, tmp_path)
    try:
        assert tail.stdout is not None
        first = read_lines(tail.stdout, before)
        assert tail.poll() is None  # still following the unfinished run
        answered = fanflow("runs", "send", run_id, "--event", ANSWER, cwd=tmp_path)
        assert answered.returncode == 0, answered.stderr
        rest, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.communicate()
    assert (tail.returncode, err) == (0, "")
    shown = fanflow("runs", "show", run_id, cwd=tmp_path).stdout.splitlines()
    assert first + rest.splitlines() == shown
    assert "run_resumed" in shown[before] and "run_finished" in shown[-1]


def test_show_follow_stops_quietly_on_ctrl_c(tmp_path: Path) -> None:
    """SIGINT ends ``--follow`` with status 130 and nothing on stderr (no traceback)."""
    waiting = fanflow("run", f"{FLOWS}:Greet", "--detach-on-input", cwd=tmp_path)
    run_id = run_id_of(waiting.stderr)
    tail = follower(run_id, tmp_path)
    try:
        assert read_lines(tail.stdout, 1)[0].split()[2] == "run_started"
        tail.send_signal(signal.SIGINT)
        _, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.communicate()
    assert (tail.returncode, err) == (130, "")
