"""Write docs/reference.md from fanflow's docstrings.

    python docs/gen_reference.py           # rewrite docs/reference.md
    python docs/gen_reference.py --check   # exit 1 if docs/reference.md is stale

Documents every name in ``fanflow.__all__`` plus the names of
``fanflow.events`` and ``fanflow.errors``: its signature, its docstring and,
for a class, its public methods and properties. Names are grouped by the
module that defines them; a module not listed in `SECTIONS` (a new one) gets
a section named after it, so adding a name to ``__all__`` only needs a rerun.
"""

from __future__ import annotations

import enum
import inspect
import re
import sys
from pathlib import Path
from typing import Any, ForwardRef

from pydantic import BaseModel

import fanflow
import fanflow.errors
import fanflow.events

OUTPUT = Path(__file__).resolve().parent / "reference.md"

# Defining module -> section title, in reading order.
SECTIONS = {
    "fanflow.workflow": "Workflows",
    "fanflow.step": "Steps",
    "fanflow.context": "Context",
    "fanflow.handler": "Handler",
    "fanflow.events": "Events",
    "fanflow._runtime.state": "State",
    "fanflow.retry": "Retries",
    "fanflow.errors": "Errors",
    "fanflow.clock": "Clocks",
    "fanflow._runtime.records": "Records and stores",
    "fanflow.stores.memory": "Records and stores",
    "fanflow.graph": "Graph",
}
# An object's default repr carries its address, which changes on every run.
ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def public_names() -> dict[str, Any]:
    """Return every documented name and its object, top-level names first."""
    names: dict[str, Any] = {name: getattr(fanflow, name) for name in fanflow.__all__}
    for module in (fanflow.events, fanflow.errors):
        for name in module.__all__:
            names.setdefault(name, getattr(module, name))
    return names


def module_of(obj: Any) -> str:
    """Return the name of the module that defines `obj`."""
    module = getattr(obj, "__module__", None)
    return module if module in sys.modules else "fanflow"


def section_title(module: str) -> str:
    """Return the section for `module`: from `SECTIONS`, else its first name after ``fanflow``."""
    if module in SECTIONS:
        return SECTIONS[module]
    parts = module.split(".")[1:]
    return parts[0].lstrip("_").replace("_", " ").capitalize() if parts else "Other"


def import_line(name: str) -> str:
    """Return the shortest import of `name`."""
    if name in fanflow.__all__:
        return f"from fanflow import {name}"
    module = "fanflow.events" if name in fanflow.events.__all__ else "fanflow.errors"
    return f"from {module} import {name}"


def clean(text: str) -> str:
    """Replace object addresses, which differ between runs, with ``...``."""
    return ADDRESS.sub("...", text)


def docstring(obj: Any) -> str:
    """Return the object's own docstring, dedented ('' when it has none)."""
    doc = obj.__doc__ if isinstance(obj, type) else inspect.getdoc(obj)
    return inspect.cleandoc(doc) if doc else ""


class _Raw(str):
    """An annotation already written out; repr() shows it unquoted."""

    def __repr__(self) -> str:
        return str(self)


def _annotation(annotation: Any) -> Any:
    """Return `annotation` as it reads in source (``from __future__`` keeps them strings)."""
    if annotation is inspect.Parameter.empty:
        return annotation
    if isinstance(annotation, ForwardRef):
        return _Raw(annotation.__forward_arg__)
    if isinstance(annotation, str):
        return _Raw(annotation)
    return _Raw(inspect.formatannotation(annotation).replace("typing.", ""))


def parameters(fn: Any, *, drop_self: bool = False, drop_return: bool = False) -> str:
    """Return ``(params) -> return`` for `fn` with unquoted annotations."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if drop_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    sig = sig.replace(
        parameters=[p.replace(annotation=_annotation(p.annotation)) for p in params],
        return_annotation=(
            inspect.Signature.empty if drop_return else _annotation(sig.return_annotation)
        ),
    )
    return clean(str(sig))


def signature(obj: Any, name: str) -> str:
    """Return the Python signature of a class (its constructor) or function."""
    if isinstance(obj, type):
        bases = ", ".join(b.__name__ for b in obj.__bases__ if b is not object)
        head = f"class {name}({bases})" if bases else f"class {name}"
        if issubclass(obj, (enum.Enum, BaseException)) or _is_protocol(obj):
            return head
        if issubclass(obj, BaseModel):
            return f"{head}\n{name}({model_params(obj)})"
        try:
            return f"{head}\n{name}{parameters(obj, drop_return=True)}"
        except (TypeError, ValueError):
            return head
    try:
        params = parameters(obj)
    except (TypeError, ValueError):
        return f"{name} = {clean(repr(obj))}"
    prefix = "async def" if inspect.iscoroutinefunction(obj) else "def"
    return f"{prefix} {name}{params}"


def model_params(model: type[BaseModel]) -> str:
    """Return a pydantic model's constructor parameters, read from its own fields."""
    params = []
    for field_name, field in model.model_fields.items():
        param = f"{field_name}: {_annotation(field.annotation)}"
        params.append(param if field.is_required() else f"{param} = {field.default!r}")
    extra = ["**extra: Any"] if model.model_config.get("extra") == "allow" else []
    return ", ".join([*(["*", *params] if params else []), *extra])


def _is_protocol(cls: type) -> bool:
    return bool(getattr(cls, "_is_protocol", False))


def members(cls: type, documented: set[str]) -> list[tuple[str, Any]]:
    """Return the public methods and properties `cls` defines, in source order.

    Members of a fanflow base class that is not documented itself (a private
    Protocol, say) are listed too.
    """
    own = [
        base
        for base in reversed(cls.__mro__)
        if base is cls
        or (base.__module__.startswith("fanflow") and base.__name__ not in documented)
    ]
    found: dict[str, Any] = {}
    for base in own:
        for attr, value in vars(base).items():
            if attr.startswith("_"):
                continue
            if isinstance(value, (classmethod, property)) or inspect.isfunction(value):
                found[attr] = value
            elif isinstance(value, staticmethod):
                found[attr] = value.__func__
    return list(found.items())


def member_block(owner: str, attr: str, value: Any) -> list[str]:
    """Render one method or property of a class."""
    decorator = ""
    if isinstance(value, property):
        fget = value.fget
        returns = inspect.signature(fget).return_annotation if fget else inspect.Signature.empty
        kind = "" if returns is inspect.Signature.empty else f": {_annotation(returns)}"
        head = f"{owner}.{attr}{kind}  # property"
        doc = docstring(fget) if fget else ""
    else:
        if isinstance(value, classmethod):
            decorator, value = "@classmethod\n", value.__func__
        wrapped = getattr(value, "__wrapped__", None)
        if wrapped is not None and inspect.isasyncgenfunction(wrapped):
            decorator = "@asynccontextmanager\n"
        prefix = "async def" if inspect.iscoroutinefunction(value) else "def"
        head = f"{decorator}{prefix} {owner}.{attr}{parameters(value, drop_self=True)}"
        doc = docstring(value)
    return [f"#### `{owner}.{attr}`", "", "```python", head, "```", "", doc or "(undocumented)", ""]


def entry(name: str, obj: Any, documented: set[str]) -> list[str]:
    """Render one public name: heading, import, signature, docstring, members."""
    lines = [f"### `{name}`", "", "```python", import_line(name), signature(obj, name), "```", ""]
    lines += [docstring(obj) or "(undocumented)", ""]
    if isinstance(obj, type) and issubclass(obj, enum.Enum):
        lines += ["Members:", ""]
        lines += [f"- `{m.name}` = `{m.value!r}`" for m in obj]
        lines.append("")
    elif isinstance(obj, type):
        for attr, value in members(obj, documented):
            lines += member_block(name, attr, value)
    return lines


def render() -> str:
    """Return the full text of docs/reference.md."""
    names = public_names()
    documented = set(names)
    known = list(SECTIONS)
    modules: dict[str, list[str]] = {}
    for name in sorted(names, key=str.lower):
        modules.setdefault(module_of(names[name]), []).append(name)
    ordered = [m for m in known if m in modules] + sorted(m for m in modules if m not in known)
    sections: dict[str, list[str]] = {}
    for module in ordered:
        sections.setdefault(section_title(module), []).append(module)
    lines = [
        "# API reference",
        "",
        "<!-- Generated by docs/gen_reference.py from the docstrings; do not edit. -->",
        "",
        docstring(fanflow),
        "",
    ]
    lines += [f"- [{title}](#{_anchor(title)})" for title in sections]
    lines.append("")
    for title, section_modules in sections.items():
        lines += [f"## {title}", ""]
        for module in section_modules:
            intro = docstring(sys.modules[module])
            if intro:
                lines += [intro, ""]
        for name in sorted((n for m in section_modules for n in modules[m]), key=str.lower):
            lines += entry(name, names[name], documented)
    return "\n".join(lines).rstrip() + "\n"


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def main(argv: list[str]) -> int:
    """Write the reference, or with ``--check`` report whether it is stale."""
    text = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is stale; run: python docs/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
