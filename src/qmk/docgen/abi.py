"""Render the generated tables of ``docs/qsyscall.md`` from the method and error tables.

The page is hand-written except for the regions of :data:`PAGE`, which
``python -m qmk.docgen --write`` refreshes (see :mod:`qmk.docgen`).

>>> render_methods().splitlines()[0]
'| Method | Params | Returns | What it does |'
>>> render_errors().splitlines()[2]  # doctest: +ELLIPSIS
'| -32700 | `parse-error` | `QR32700` | `ParseError` | The line is not valid UTF-8 JSON. | ...'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from qmk.abi.errors import RPC_ERRORS
from qmk.abi.methods import METHODS, SOCKET_METHODS, MethodSpec, ParamSpec
from qmk.docgen import NO, Page, cell, table
from qmk.docgen.errors import COLUMNS
from qmk.errors import REGISTRY, SYSCALL_ERRORS


def describe_param(param: ParamSpec) -> str:
    """One param as documentation: name, JSON type, required or default, meaning.

    >>> describe_param(METHODS["q_wait"].param("timeout_ms"))
    '`timeout_ms`: integer, default `30000`: longest wait in ms'
    """
    text = f"`{param.name}`: {param.type_text()}"
    if param.required:
        text += ", required"
    else:
        default = list(param.default) if isinstance(param.default, tuple) else param.default
        text += f", default `{json.dumps(default)}`"
    return f"{text}: {param.doc}"


def _method_table(specs: Iterable[MethodSpec]) -> str:
    rows = (
        (
            f"`{spec.name}`",
            "<br>".join(cell(describe_param(p)) for p in spec.params) or NO,
            cell(spec.returns),
            cell(spec.doc),
        )
        for spec in specs
    )
    return table(("Method", "Params", "Returns", "What it does"), rows)


def render_methods() -> str:
    """The qSyscall methods as a markdown table, in table order."""
    return _method_table(METHODS.values())


def render_socket_methods() -> str:
    """The methods only a JSON-RPC socket connection answers (watches)."""
    return _method_table(SOCKET_METHODS.values())


def render_errors() -> str:
    """Every error code a kernel sends: JSON-RPC's own, then the kernel's refusals.

    The families' base classes (``QR32000``, ``QS1000``) are left out: a kernel never
    sends them; a client raises them for a code it does not know (``docs/errors.md``).
    """
    classes = [*RPC_ERRORS.values(), *(cls for _, cls in sorted(SYSCALL_ERRORS.items()))]
    by_class = {entry.exception: entry for entry in REGISTRY.family("QR", "QS").values()}
    columns = (
        "`error.code`",
        "`error.data.name`",
        "`data.code`",
        "Class",
        "What it means",
        "What to do",
    )
    rows = ([COLUMNS[c](by_class[cls]) for c in columns] for cls in classes)
    return table(columns, rows)


#: Each generated region of docs/qsyscall.md, by marker name, with its renderer.
RENDERERS: dict[str, Callable[[], str]] = {
    "qsyscall-methods": render_methods,
    "qsyscall-socket-methods": render_socket_methods,
    "qsyscall-errors": render_errors,
}

#: docs/qsyscall.md.
PAGE = Page(name="qsyscall.md", renderers=RENDERERS, tables="qSyscall method and error tables")
