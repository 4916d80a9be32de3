"""Render the generated tables of ``docs/qsyscall.md`` from the method and error tables.

Like :mod:`qmk.docgen.qvm`, the page is hand-written except for regions between
``<!-- BEGIN GENERATED: NAME -->`` and ``<!-- END GENERATED: NAME -->``.
``python -m qmk.docgen.abi --write docs/qsyscall.md`` refreshes them in place;
``--check`` exits 1 when the page drifted from the tables.

>>> render_methods().splitlines()[0]
'| Method | Params | Returns | What it does |'
>>> render_errors().splitlines()[2]  # doctest: +ELLIPSIS
'| -32700 | `parse-error` | `QR32700` | `ParseError` | The line is not valid UTF-8 JSON. |'
"""

from __future__ import annotations

import json
from collections.abc import Callable

from qmk.abi.errors import RPC_ERRORS
from qmk.abi.methods import METHODS, ParamSpec
from qmk.docgen.qvm import cell, doc_main, replace_region, table
from qmk.errors import SYSCALL_ERRORS


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


def render_methods() -> str:
    """The qSyscall methods as a markdown table, in table order."""
    rows = (
        (
            f"`{spec.name}`",
            "<br>".join(cell(describe_param(p)) for p in spec.params) or "—",
            cell(spec.returns),
            cell(spec.doc),
        )
        for spec in METHODS.values()
    )
    return table(("Method", "Params", "Returns", "What it does"), rows)


def _summary(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0].replace("``", "`")


def render_errors() -> str:
    """Every error code on the wire: JSON-RPC's own, then the kernel's."""
    rows = [
        (str(code), f"`{cls.error_name}`", f"`QR{-code}`", f"`{cls.__name__}`", cell(_summary(cls)))
        for code, cls in RPC_ERRORS.items()
    ]
    rows += [
        (str(code), f"`{cls.error_name}`", f"`QS{code}`", f"`{cls.__name__}`", cell(_summary(cls)))
        for code, cls in sorted(SYSCALL_ERRORS.items())
    ]
    return table(("`error.code`", "`error.data.name`", "`data.code`", "Class", "Meaning"), rows)


#: Each generated region of docs/qsyscall.md, by marker name, with its renderer.
RENDERERS: dict[str, Callable[[], str]] = {
    "qsyscall-methods": render_methods,
    "qsyscall-errors": render_errors,
}


def update(text: str) -> str:
    """``text`` with every generated region refreshed."""
    for name, render in RENDERERS.items():
        text = replace_region(text, name, render())
    return text


def main(argv: list[str] | None = None) -> int:
    """``python -m qmk.docgen.abi (--write | --check) PATH``."""
    return doc_main(
        argv,
        prog="python -m qmk.docgen.abi",
        description="Refresh the generated tables of docs/qsyscall.md.",
        refresh=update,
        tables="qSyscall method and error tables",
    )


if __name__ == "__main__":
    raise SystemExit(main())
