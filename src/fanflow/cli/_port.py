"""``fanflow port PATH...``: point a LlamaIndex Workflows program's imports at fanflow.

Rewrites, with libcst so that formatting and comments stay as they were:

    workflows, workflows.X                  -> fanflow, fanflow.X
    llama_index.core.workflow, ....X        -> fanflow, fanflow.X
    llama_index.utils.workflow (drawing)    -> fanflow

in ``import m``, ``import m as a``, ``from m import a, b as c`` and
``from m.sub import ...``. After a plain ``import m`` the code names the
module by its dotted path (``workflows.Workflow``), so those references are
rewritten too; scope analysis leaves a local variable of the same name alone.
This module needs libcst (``pip install 'fanflow[port]'``); the command line
imports it only when ``fanflow port`` runs.
"""

from __future__ import annotations

import difflib
import importlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import ImportAssignment, MetadataWrapper, ScopeProvider

__all__ = ["PortError", "Ported", "new_module", "port_paths", "port_source", "python_files"]

# Longest first: "llama_index.core.workflow" before any shorter prefix.
PREFIXES = ("llama_index.utils.workflow", "llama_index.core.workflow", "workflows")
FLAT = ("llama_index.utils.workflow",)  # its drawing helpers are top-level names in fanflow
SKIPPED_DIRS = ("__pycache__", "node_modules", "site-packages")


class PortError(Exception):
    """A file that cannot be read or parsed; the message names it and says why."""


def new_module(dotted: str) -> str | None:
    """Return the fanflow module that replaces `dotted`, or None if it is not a workflows one."""
    for old in PREFIXES:
        if dotted == old or dotted.startswith(old + "."):
            rest = dotted[len(old) :]
            return "fanflow" if old in FLAT else "fanflow" + rest
    return None


@dataclass
class Ported:
    """One file's new text and what changed in it."""

    path: Path
    before: bytes
    after: bytes
    encoding: str
    changes: list[str] = field(default_factory=list)  # "workflows -> fanflow", in order
    warnings: list[str] = field(default_factory=list)  # names fanflow does not have

    def summary(self) -> str:
        """Return the changes as one line: ``import workflows -> import fanflow; ...``."""
        counted = Counter(self.changes)
        return "; ".join(
            change if n == 1 else f"{change} ({n} uses)" for change, n in counted.items()
        )

    def diff(self) -> str:
        """Return the unified diff from the old text to the new one ('' when unchanged)."""
        old = self.before.decode(self.encoding).splitlines(keepends=True)
        new = self.after.decode(self.encoding).splitlines(keepends=True)
        name = str(self.path)
        return "".join(difflib.unified_diff(old, new, f"a/{name}", f"b/{name}"))


def port_paths(paths: Sequence[Path], *, diff: bool, out: TextIO, err: TextIO) -> int:
    """Port every Python file of `paths` in place (or print the diff); return the exit status.

    Each file gets one line saying what changed (on `out`, or on `err` when
    `out` carries the diff); a file that cannot be read or parsed is an
    error line on `err`, the rest go on, and the status is then 1.
    """
    report = err if diff else out  # with --diff, stdout is the diff alone
    counts: Counter[str] = Counter()
    for path in python_files(paths):
        try:
            ported = port_file(path)
        except PortError as exc:
            print(f"fanflow: error: {exc}", file=err)
            counts["failed"] += 1
            continue
        if ported.after == ported.before:
            print(f"unchanged {path}", file=report)
            counts["unchanged"] += 1
            continue
        if diff:
            out.write(ported.diff())
        else:
            path.write_bytes(ported.after)
        print(f"{'would port' if diff else 'ported'} {path}: {ported.summary()}", file=report)
        for warning in ported.warnings:
            print(f"warning: {path}: {warning}", file=report)
        counts["ported"] += 1
    verb = "would port" if diff else "ported"
    total = sum(counts.values())
    print(
        f"{verb} {counts['ported']} of {total} file(s) "
        f"({counts['unchanged']} unchanged, {counts['failed']} failed)",
        file=report,
    )
    return 1 if counts["failed"] else 0


def python_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Yield each file of `paths`, and every ``*.py`` below each folder, in sorted order.

    Hidden folders (``.venv``, ``.git``) and caches are skipped. A path that
    does not exist is yielded as it is, so reading it reports the error.
    """
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        for found in sorted(path.rglob("*.py")):
            parts = found.relative_to(path).parts[:-1]
            if not any(p.startswith(".") or p in SKIPPED_DIRS for p in parts):
                yield found


def port_file(path: Path) -> Ported:
    """Return the ported text of the file at `path`; PortError if it cannot be read or parsed."""
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise PortError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return port_source(source, path)


def port_source(source: bytes, path: Path) -> Ported:
    """Return `source` (the text of `path`) with its workflows imports pointed at fanflow."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        raise PortError(
            f"cannot parse {path}, line {exc.raw_line}: {exc.message}; it is left unchanged"
        ) from exc
    except UnicodeDecodeError as exc:
        raise PortError(
            f"cannot read {path}: not text in its declared encoding ({exc.reason})"
        ) from exc
    wrapper = MetadataWrapper(module)
    rewriter = _Rewriter(_references(wrapper))
    ported = wrapper.module.visit(rewriter)
    result = Ported(path, source, ported.bytes, module.encoding, rewriter.changes)
    result.warnings = [w for m, n in rewriter.imported_names if (w := _missing(m, n))]
    return result


def _references(wrapper: MetadataWrapper) -> dict[cst.CSTNode, str]:
    """Return each use of a module bound by a plain ``import workflows...``, with its new name."""
    found: dict[cst.CSTNode, str] = {}
    for scope in set(wrapper.resolve(ScopeProvider).values()):
        if scope is None:
            continue
        for assignment in scope.assignments:
            if not isinstance(assignment, ImportAssignment):
                continue
            new = new_module(assignment.name)
            if new is None or _aliased(assignment):
                continue
            for access in assignment.references:
                found[access.node] = new
    return found


def _aliased(assignment: ImportAssignment) -> bool:
    # `import workflows as wf` binds `wf`: its uses need no change.
    node = assignment.node
    if not isinstance(node, cst.Import):
        return True
    return any(
        alias.asname is not None and get_full_name_for_node(alias.name) == assignment.name
        for alias in node.names
    )


class _Rewriter(cst.CSTTransformer):
    def __init__(self, references: dict[cst.CSTNode, str]) -> None:
        super().__init__()
        self.references = references
        self.changes: list[str] = []
        self.imported_names: list[tuple[str, str]] = []  # (fanflow module, name) to check

    def leave_Import(self, original_node: cst.Import, updated_node: cst.Import) -> cst.Import:
        names = []
        for alias in updated_node.names:
            old = get_full_name_for_node(alias.name) or ""
            new = new_module(old)
            if new is not None:
                self.changes.append(f"import {old} -> import {new}")
                alias = alias.with_changes(name=_dotted(new))
            names.append(alias)
        return updated_node.with_changes(names=names)

    def leave_ImportFrom(
        self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom
    ) -> cst.ImportFrom:
        if updated_node.relative or updated_node.module is None:
            return updated_node
        old = get_full_name_for_node(updated_node.module) or ""
        new = new_module(old)
        if new is None:
            return updated_node
        self.changes.append(f"from {old} -> from {new}")
        if not isinstance(updated_node.names, cst.ImportStar):
            for alias in updated_node.names:
                self.imported_names.append((new, get_full_name_for_node(alias.name) or ""))
        return updated_node.with_changes(module=_dotted(new))

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
        return self._renamed(original_node, updated_node)

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> cst.BaseExpression:
        return self._renamed(original_node, updated_node)

    def _renamed(self, original: cst.CSTNode, updated: cst.BaseExpression) -> cst.BaseExpression:
        new = self.references.get(original)
        if new is None:
            return updated
        self.changes.append(f"{get_full_name_for_node(original)} -> {new}")
        return _dotted(new)


def _dotted(name: str) -> cst.Attribute | cst.Name:
    head, *rest = name.split(".")
    node: cst.Attribute | cst.Name = cst.Name(head)
    for part in rest:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


def _missing(module: str, name: str) -> str | None:
    """Return a warning if fanflow's `module` has no `name` (or no such module), else None."""
    try:
        found = importlib.import_module(module)
    except ImportError:
        return f"fanflow has no module {module}"
    if hasattr(found, name):
        return None
    try:
        importlib.import_module(f"{module}.{name}")  # `from fanflow import events`
    except ImportError:
        return f"{module} has no name {name!r}"
    return None
