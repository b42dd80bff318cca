"""Find the workflow a command line names: ``path/to/file.py:Flow`` or ``package.module:Flow``.

Every way this can go wrong (no such file, a syntax error, a name that is
missing or not a workflow) is a `TargetError` whose message is the one line
the CLI prints.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

from fanflow.workflow import Workflow

__all__ = ["TargetError", "file_source", "load_target"]

Target = type[Workflow] | Workflow


class TargetError(Exception):
    """The command line's target cannot be loaded; the message says why, in one line."""


def load_target(target: str) -> Target:
    """Return the Workflow subclass (or instance) `target` names.

    Without ``:Name`` the file or module must define exactly one Workflow subclass.
    """
    where, name = _split(target)
    module = _load_file(Path(where)) if _is_path(where) else _load_module(where)
    return _pick(module, name, where)


def file_source(target: str, loaded: Target) -> str | None:
    """Return ``/abs/path/file.py:Name`` for a file `target`, None for a module.

    A run records where its workflow came from, so that ``fanflow runs
    resume`` can load it again from any folder; a file loaded by the command
    line is recorded by its absolute path, not by the module name it got.
    """
    where, name = _split(target)
    if not _is_path(where):
        return None
    if not name:
        name = loaded.__name__ if isinstance(loaded, type) else type(loaded).__name__
    return f"{Path(where).resolve()}:{name}"


def _split(target: str) -> tuple[str, str]:
    where, sep, name = target.rpartition(":")
    # "C:\flows\f.py" and "dir/f.py" have no ":Name" part.
    if not sep or not name or any(c in name for c in "/\\") or name.endswith(".py"):
        return target, ""
    return where, name


def _is_path(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where or Path(where).is_file()


def _load_file(path: Path) -> ModuleType:
    if not path.exists():
        raise TargetError(f"file not found: {path}")
    if not path.is_file():
        raise TargetError(f"{path} is not a file; name a .py file (or a module with dots)")
    name = _module_name(path)
    loaded = sys.modules.get(name)
    if loaded is not None and _same_file(getattr(loaded, "__file__", None), path):
        return loaded  # imported already (by the workflow's own code): one module per file
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    # Like `python path/to/file.py`: the file's folder is importable, so its
    # sibling modules are too.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module  # pydantic looks annotations up through sys.modules
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise TargetError(
            f"syntax error in {exc.filename or path}, line {exc.lineno}: {exc.msg}"
        ) from exc
    except Exception as exc:
        del sys.modules[name]
        raise TargetError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _module_name(path: Path) -> str:
    """Return the module name to load `path` under: its stem, as `python -m` would give it.

    A class's default ``workflow_name`` is ``module.Qualname``, so every
    process that loads the same file must give it the same module name:
    ``flows/app.py`` is ``app``, as ``import app`` from its folder would
    name it. Only when ``sys.modules`` holds a different module under that
    name (a file called ``json.py``; an ``app`` from another folder) does
    the file get ``fanflow_target_<stem>`` instead: replacing the module
    already there would break whatever imported it.
    """
    stem = re.sub(r"\W", "_", path.stem)
    if not stem.isidentifier():
        return f"fanflow_target_{stem}"
    taken = sys.modules.get(stem)
    if taken is None or _same_file(getattr(taken, "__file__", None), path):
        return stem
    return f"fanflow_target_{stem}"


def _same_file(where: str | None, path: Path) -> bool:
    try:
        return where is not None and Path(where).resolve() == path.resolve()
    except OSError:
        return False


def _load_module(dotted: str) -> ModuleType:
    # Like `python -m`: modules in the current folder are importable.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        if exc.name and (dotted == exc.name or dotted.startswith(exc.name + ".")):
            raise TargetError(f"no module named {dotted!r} and no file {dotted!r}") from exc
        raise TargetError(f"importing {dotted} failed: {type(exc).__name__}: {exc}") from exc
    except SyntaxError as exc:
        raise TargetError(f"syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}") from exc
    except Exception as exc:
        raise TargetError(f"importing {dotted} failed: {type(exc).__name__}: {exc}") from exc


def _pick(module: ModuleType, name: str, where: str) -> Target:
    defined = _workflows(module)
    if not name:
        if len(defined) == 1:
            return defined[0]
        if not defined:
            raise TargetError(f"{where} defines no Workflow subclass")
        listed = ", ".join(cls.__name__ for cls in defined)
        raise TargetError(
            f"{where} defines several workflows ({listed}); name one: {where}:{defined[0].__name__}"
        )
    found = getattr(module, name, _MISSING)
    if found is _MISSING:
        listed = ", ".join(cls.__name__ for cls in defined) or "none"
        raise TargetError(f"{where} has no name {name!r} (workflows defined there: {listed})")
    if isinstance(found, type) and issubclass(found, Workflow) and found is not Workflow:
        return found
    if isinstance(found, Workflow):
        return found
    raise TargetError(f"{where}:{name} is {_describe(found)}, not a Workflow subclass")


_MISSING = object()


def _workflows(module: ModuleType) -> list[type[Workflow]]:
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Workflow)
        and value is not Workflow
        and value.__module__ == module.__name__
    ]


def _describe(obj: object) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__name__}"
    if isinstance(obj, ModuleType):
        return f"the module {obj.__name__}"
    kind = type(obj).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"{article} {kind} ({getattr(obj, '__name__', None) or repr(obj):.40})"
