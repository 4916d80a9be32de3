"""Render ``docs/errors.md`` from :data:`qmk.errors.REGISTRY`: every code, grouped by
family, and the exception tree.

The families register their codes when their modules are imported;
:func:`load_families` imports each module :data:`qmk.errors.FAMILIES` names, so the
registry is whole before anything is rendered. The other pages' code tables
(``docs/qvm.md``, ``docs/qec.md``, ``docs/qsyscall.md``) are rendered by
:func:`render_codes` from the same registry.

>>> render_codes(("QE",), ("Code", "Name", "What it means")).splitlines()[2]
'| `QE101` | `engine-unknown` | no engine of that name |'
>>> print(render_tree().splitlines()[0])
QMKError                       qmk.errors
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module

from qmk.docgen import Page, cell, table
from qmk.errors import FAMILIES, REGISTRY, ErrorCode, QMKError


def load_families() -> None:
    """Import the module of every family, so that every code is registered."""
    for family in FAMILIES.values():
        import_module(family.module)


def _class(entry: ErrorCode) -> str:
    return f"`{entry.exception.__name__}`"


#: Each column a code table may show, by header, with how it renders an entry.
COLUMNS: Mapping[str, Callable[[ErrorCode], str]] = {
    "Code": lambda e: f"`{e.code}`",
    "Name": lambda e: f"`{e.name}`",
    "Severity": lambda e: e.severity.value if e.severity else "—",
    "Exit": lambda e: str(e.exit_status),
    "What it means": lambda e: cell(e.summary),
    "What to do": lambda e: cell(e.fix),
    "Class": _class,
    "`error.code`": lambda e: str(e.rpc_code),
    "`error.data.name`": lambda e: f"`{e.name}`",
    "`data.code`": lambda e: f"`{e.code}`",
}


def render_codes(prefixes: Sequence[str], columns: Sequence[str]) -> str:
    """The codes of the families ``prefixes`` as a markdown table of ``columns``.

    Args:
        prefixes: family prefixes, e.g. ``("QF", "QA", "QV")``.
        columns: headers, each a key of :data:`COLUMNS`.
    """
    load_families()
    entries = REGISTRY.family(*prefixes).values()
    return table(columns, ([COLUMNS[c](e) for c in columns] for e in entries))


def _codes_of(cls: type) -> list[str]:
    return sorted(e.code for e in REGISTRY if e.exception is cls)


def _order(cls: type) -> tuple[int, str, str]:
    """Classes in family order, by their first code (their descendants' for a base)."""
    order = {prefix: index for index, prefix in enumerate(FAMILIES)}
    codes = [e.code for e in REGISTRY if issubclass(e.exception, cls)]
    if not codes:
        return (len(order), "", cls.__name__)
    first = min(codes, key=lambda code: (order[code[:2]], code))
    return (order[first[:2]], first, cls.__name__)


def _children(cls: type) -> list[type]:
    subclasses: list[type] = cls.__subclasses__()
    return sorted((sub for sub in subclasses if sub.__module__.startswith("qmk.")), key=_order)


def render_tree() -> str:
    """QMK's exception tree, one class a line: its name, module and codes.

    The drawing in :mod:`qmk.errors`'s docstring is this text; a test keeps them equal.
    """
    load_families()
    rows: list[tuple[str, str, str]] = [(QMKError.__name__, QMKError.__module__, "")]

    def walk(cls: type, indent: str) -> None:
        children = _children(cls)
        for index, child in enumerate(children):
            last = index == len(children) - 1
            codes = _codes_of(child)
            shown = f"{codes[0]}..{codes[-1]} ({len(codes)})" if len(codes) > 1 else "".join(codes)
            rows.append((f"{indent} +-- {child.__name__}", child.__module__, shown))
            walk(child, indent + ("     " if last else " |   "))

    walk(QMKError, "")
    name_width = max(len(name) for name, _, _ in rows) + 2
    module_width = max(len(module) for _, module, _ in rows) + 2
    return "\n".join(
        f"{name:<{name_width}}{module:<{module_width}}{codes}".rstrip()
        for name, module, codes in rows
    )


def render_families() -> str:
    """The families: prefix, what they are about, how many codes, where they are declared."""
    load_families()
    rows = []
    for family in FAMILIES.values():
        codes = REGISTRY.family(family.prefix)
        rows.append(
            (
                f"[`{family.prefix}`](#{family.prefix.lower()})",
                cell(family.title),
                str(len(codes)),
                f"`{family.module}`",
            )
        )
    rows.append(("", "**all**", str(len(REGISTRY)), ""))
    return table(("Family", "About", "Codes", "Declared in"), rows)


def render_all_codes() -> str:
    """Every code, a section per family: name, exit status, meaning, remedy, class."""
    load_families()
    sections = []
    for family in FAMILIES.values():
        entries = REGISTRY.family(family.prefix).values()
        columns = ["Code", "Name", "Exit", "What it means", "What to do", "Class"]
        if any(e.severity is not None for e in entries):
            columns.insert(2, "Severity")
        if any(e.rpc_code is not None for e in entries):
            columns.insert(2, "`error.code`")
        modules = sorted({e.exception.__module__ for e in entries})
        where = ", ".join(f"`{m}`" for m in modules)
        sections.append(
            f'<a id="{family.prefix.lower()}"></a>\n\n'
            f"### {family.prefix}: {family.title}\n\n"
            f"Classes in {where}.\n\n" + render_codes((family.prefix,), columns)
        )
    return "\n\n".join(sections)


def render_tree_block() -> str:
    """The exception tree as a fenced block."""
    return f"```text\n{render_tree()}\n```"


#: Each generated region of docs/errors.md, by marker name, with its renderer.
RENDERERS: dict[str, Callable[[], str]] = {
    "error-families": render_families,
    "error-tree": render_tree_block,
    "error-codes": render_all_codes,
}

#: docs/errors.md.
PAGE = Page(name="errors.md", renderers=RENDERERS, tables="error registry")
