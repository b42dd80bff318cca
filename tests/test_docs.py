"""Keep the docs true: generated reference, docstrings, runnable snippets, links, names."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import fanflow

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# Markdown files whose ```python blocks are complete programs, run by these tests.
RUNNABLE = [ROOT / "README.md", DOCS / "tutorial.md", DOCS / "migration.md"]
MARKDOWN = [ROOT / "README.md", ROOT / "examples" / "README.md", *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def load_generator() -> types.ModuleType:
    """Import docs/gen_reference.py as a module."""
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_is_up_to_date() -> None:
    """docs/reference.md is what docs/gen_reference.py generates from the docstrings now."""
    expected = load_generator().render()
    actual = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/reference.md is stale; run: python docs/gen_reference.py"


def test_reference_documents_every_public_name() -> None:
    """Each name in fanflow.__all__ has its own heading in the reference."""
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    missing = [name for name in fanflow.__all__ if f"### `{name}`" not in text]
    assert missing == []


@pytest.mark.parametrize("name", fanflow.__all__)
def test_public_name_has_docstring(name: str) -> None:
    """Every name in fanflow.__all__ carries a docstring of its own."""
    obj = getattr(fanflow, name)
    doc = (obj.__doc__ or "").strip()
    # A dataclass without a docstring gets its signature as __doc__.
    assert doc and not doc.startswith(f"{getattr(obj, '__name__', name)}("), f"{name}: no docstring"


@dataclass(frozen=True)
class Snippet:
    """A ```python block of a markdown file and the ```text block right after it, if any."""

    path: Path
    line: int
    code: str
    output: str | None

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def snippets(path: Path) -> list[Snippet]:
    """Return the python blocks of `path`, each with its expected output."""
    text = path.read_text(encoding="utf-8")
    blocks = list(FENCE.finditer(text))
    found = []
    for index, block in enumerate(blocks):
        if block.group(1) != "python":
            continue
        after = blocks[index + 1] if index + 1 < len(blocks) else None
        output = None
        if after and after.group(1) == "text" and not text[block.end() : after.start()].strip():
            output = after.group(2)
        line = text.count("\n", 0, block.start()) + 1
        found.append(Snippet(path, line, block.group(2), output))
    return found


ALL_SNIPPETS = [s for path in RUNNABLE for s in snippets(path)]


def matches(expected: str, actual: str) -> bool:
    """Compare output; ``...`` in `expected` stands for any text within one line."""
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def run_snippet(snippet: Snippet) -> str:
    """Run `snippet` as a fresh module and return what it printed."""
    name = f"docs_snippet_{snippet.path.stem}_{snippet.line}"
    module = types.ModuleType(name)
    module.__file__ = str(snippet.path)
    sys.modules[name] = module  # pydantic resolves annotations through the module
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(snippet.code, snippet.id, "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return out.getvalue()


def test_docs_have_snippets() -> None:
    """The runnable docs do contain python blocks (the parser found them)."""
    assert len(ALL_SNIPPETS) >= 10
    assert all(s.output is not None for s in ALL_SNIPPETS if s.path.name == "tutorial.md")


@pytest.mark.parametrize("snippet", ALL_SNIPPETS, ids=lambda s: s.id)
def test_snippet_runs_and_prints_what_the_doc_says(snippet: Snippet) -> None:
    """Each python block runs as written and prints the text block that follows it."""
    printed = run_snippet(snippet)
    if snippet.output is not None:
        assert matches(snippet.output, printed), f"printed:\n{printed}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """Return the heading anchors of a markdown file, as GitHub derives them."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    """Every relative link points at an existing file (and heading, if it names one)."""
    broken = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        missing_anchor = anchor and linked.suffix == ".md" and anchor not in anchors(linked)
        if not linked.exists() or missing_anchor:
            broken.append(target)
    assert broken == []


DOTTED = re.compile(r"`(fanflow(?:\.[A-Za-z_]\w*)+)`")


def resolve(dotted: str) -> object:
    """Import the longest module prefix of `dotted`, then get the remaining attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_fanflow_names_in_docs_exist(path: Path) -> None:
    """Every `fanflow.x.y` the docs name in backticks can be imported."""
    missing = []
    for dotted in sorted(set(DOTTED.findall(path.read_text(encoding="utf-8")))):
        try:
            resolve(dotted)
        except (ImportError, AttributeError):
            missing.append(dotted)
    assert missing == []
