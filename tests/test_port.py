"""``fanflow port``: imports of LlamaIndex Workflows rewritten to fanflow, formatting kept."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from fanflow.cli import main
from fanflow.cli._port import new_module


def write(folder: Path, source: str, name: str = "prog.py") -> Path:
    """Write a small program and return its path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def port(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """Run ``fanflow port argv``; return its exit status, stdout and stderr."""
    status = main(["port", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("workflows", "fanflow"),
        ("workflows.events", "fanflow.events"),
        ("workflows.context.state_store", "fanflow.context.state_store"),
        ("llama_index.core.workflow", "fanflow"),
        ("llama_index.core.workflow.retry_policy", "fanflow.retry_policy"),
        ("llama_index.utils.workflow", "fanflow"),
        ("workflowsx", None),
        ("llama_index.core.llms", None),
    ],
)
def test_module_mapping(old: str, new: str | None) -> None:
    """Each workflows module maps to the fanflow module of the same submodule name."""
    assert new_module(old) == new


def test_from_imports_keep_names_aliases_and_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``from m import a, b as c`` changes only the module; layout and comments stay."""
    path = write(
        tmp_path,
        """\
        from workflows import Context, Workflow as Flow  # engine
        from workflows.events import (
            StartEvent,   # in
            StopEvent,
        )
        """,
    )
    status, out, _ = port(capsys, path)
    assert status == 0
    assert path.read_text(encoding="utf-8") == textwrap.dedent(
        """\
        from fanflow import Context, Workflow as Flow  # engine
        from fanflow.events import (
            StartEvent,   # in
            StopEvent,
        )
        """
    )
    assert out.splitlines()[0] == (
        f"ported {path}: from workflows -> from fanflow; from workflows.events -> "
        "from fanflow.events"
    )


def test_plain_import_rewrites_dotted_uses_but_not_a_local_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After ``import workflows`` its uses follow; a parameter of that name is left alone."""
    path = write(
        tmp_path,
        """\
        import workflows
        import workflows.events

        def pick(workflows):
            return workflows.first

        class Flow(workflows.Workflow):
            stop = workflows.events.StopEvent
        """,
    )
    assert port(capsys, path)[0] == 0
    assert path.read_text(encoding="utf-8") == textwrap.dedent(
        """\
        import fanflow
        import fanflow.events

        def pick(workflows):
            return workflows.first

        class Flow(fanflow.Workflow):
            stop = fanflow.events.StopEvent
        """
    )


def test_import_as_changes_only_the_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``import m as a`` keeps the alias, so the code using it needs no change."""
    path = write(tmp_path, "import workflows.events as ev\nx = ev.StopEvent\n")
    assert port(capsys, path)[0] == 0
    assert path.read_text(encoding="utf-8") == "import fanflow.events as ev\nx = ev.StopEvent\n"


def test_llama_index_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """llama_index.core.workflow and its submodules, and the drawing helpers, become fanflow."""
    path = write(
        tmp_path,
        """\
        import llama_index.core.workflow
        from llama_index.core.workflow.context import Context
        from llama_index.utils.workflow import draw_all_possible_flows
        from llama_index.core.llms import ChatMessage

        ev = llama_index.core.workflow.StartEvent()
        """,
    )
    assert port(capsys, path)[0] == 0
    assert path.read_text(encoding="utf-8") == textwrap.dedent(
        """\
        import fanflow
        from fanflow.context import Context
        from fanflow import draw_all_possible_flows
        from llama_index.core.llms import ChatMessage

        ev = fanflow.StartEvent()
        """
    )


def test_folders_are_searched_and_each_file_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder ports every *.py below it, skipping hidden folders; each file gets a line."""
    flows = write(tmp_path, "from workflows import step\n", "pkg/flows.py")
    other = write(tmp_path, "from .flows import step\nimport os\n", "pkg/sub/other.py")
    hidden = write(tmp_path, "import workflows\n", ".venv/lib.py")
    status, out, _ = port(capsys, tmp_path)
    assert status == 0
    assert out.splitlines() == [
        f"ported {flows}: from workflows -> from fanflow",
        f"unchanged {other}",
        "ported 1 of 2 file(s) (1 unchanged, 0 failed)",
    ]
    assert hidden.read_text(encoding="utf-8") == "import workflows\n"


def test_diff_prints_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--diff prints a unified diff on stdout and leaves the file as it was."""
    path = write(tmp_path, "from workflows import step\n")
    status, out, err = port(capsys, "--diff", path)
    assert status == 0
    assert out == (
        f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n"
        "-from workflows import step\n+from fanflow import step\n"
    )
    assert f"would port {path}: from workflows -> from fanflow" in err
    assert path.read_text(encoding="utf-8") == "from workflows import step\n"


def test_unparsable_file_fails_and_the_rest_are_ported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file with a syntax error is an error line and status 1; the other files are ported."""
    bad = write(tmp_path, "def broken(:\n", "a_bad.py")
    good = write(tmp_path, "import workflows\n", "b_good.py")
    status, _, err = port(capsys, tmp_path)
    assert status == 1
    assert f"fanflow: error: cannot parse {bad}, line 1:" in err
    assert good.read_text(encoding="utf-8") == "import fanflow\n"
    assert bad.read_text(encoding="utf-8") == "def broken(:\n"


def test_missing_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path that cannot be read is one error line and status 1."""
    status, _, err = port(capsys, tmp_path / "nope.py")
    assert status == 1
    assert f"fanflow: error: cannot read {tmp_path / 'nope.py'}: No such file or directory" in err


def test_a_name_fanflow_lacks_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An imported name that fanflow's module does not have is reported, the import ported."""
    path = write(tmp_path, "from workflows.events import StopEvent, NoSuchEvent\n")
    status, out, _ = port(capsys, path)
    assert status == 0
    assert f"warning: {path}: fanflow.events has no name 'NoSuchEvent'" in out


def test_missing_extra_names_the_pip_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without libcst the command fails with the exact pip install line."""
    monkeypatch.setitem(sys.modules, "libcst", None)
    monkeypatch.delitem(sys.modules, "fanflow.cli._port", raising=False)
    status, _, err = port(capsys, write(tmp_path, "import workflows\n"))
    assert (status, err) == (
        1,
        "fanflow: error: fanflow port needs libcst: pip install 'fanflow[port]'\n",
    )


def test_ported_program_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small LlamaIndex Workflows program runs on fanflow once ported."""
    path = write(
        tmp_path,
        """\
        import llama_index.core.workflow
        from workflows import Context, Workflow, step
        from workflows.events import Event, StartEvent, StopEvent


        class Half(Event):
            n: int


        class Halve(Workflow):
            @step
            async def start(self, ctx: Context, ev: StartEvent) -> Half:
                return Half(n=ev.n // 2)

            @step
            async def done(self, ev: Half) -> llama_index.core.workflow.StopEvent:
                return StopEvent(result=ev.n)
        """,
        "halve.py",
    )
    assert port(capsys, path)[0] == 0
    monkeypatch.setenv("FANFLOW_DB", f"sqlite:///{tmp_path}/runs.db")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "halve", raising=False)
    status = main(["run", str(path), "--arg", "n=42", "--progress", "none"])
    assert (status, capsys.readouterr().out) == (0, "result: 21\n")
    sys.modules.pop("halve", None)
