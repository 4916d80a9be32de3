"""Render the generated parts of ``docs/qvm.md`` from the op, code and profile tables.

The spec is written by hand except for the regions of :data:`PAGE`, which
``python -m qmk.docgen --write`` refreshes (see :mod:`qmk.docgen`).

>>> text = "intro\\n<!-- BEGIN GENERATED: caps -->\\nstale\\n<!-- END GENERATED: caps -->\\n"
>>> print(PAGE.update(text, regions=("caps",)))  # doctest: +ELLIPSIS
intro
<!-- BEGIN GENERATED: caps -->
| Capability | Allows | Needed by |
|---|---|---|
| `CAP_ALLOC` | allocate logical qubits (ALLOC_LQ) | `ALLOC_LQ` |
...
<!-- END GENERATED: caps -->
<BLANKLINE>
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from qmk.docgen import (
    NO,
    REGENERATE,
    Page,
    begin_marker,
    cell,
    end_marker,
    replace_region,
    table,
)
from qmk.docgen import errors as error_doc
from qmk.estimate.tallies import TALLIES
from qmk.qec.logical import op_cycles
from qmk.qvm.expansions import expansion_text
from qmk.qvm.ops import CAPABILITIES, OPS, ArgSpec, ArgType, OpSpec
from qmk.qvm.profiles import FAMILIES


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def describe_arg(spec: ArgSpec) -> str:
    """One argument as documentation: name, type, range, choices, required or default.

    Args:
        spec: the argument's record from the op table.

    Returns:
        Markdown text for a table cell.

    >>> from qmk.qvm.ops import OPS
    >>> describe_arg(OPS["APPLY_RX"].args[0])
    '`theta`: number, required'
    >>> describe_arg(OPS["ALLOC_LQ"].args[0])
    '`n`: integer ≥ 1, equal to the number of vqs'
    """
    parts = [f"`{spec.name}`: {spec.type.value}"]
    if spec.minimum is not None and spec.maximum is not None:
        parts[0] += f" in [{_number(spec.minimum)}, {_number(spec.maximum)}]"
    elif spec.minimum is not None:
        parts[0] += f" ≥ {_number(spec.minimum)}"
    elif spec.maximum is not None:
        parts[0] += f" ≤ {_number(spec.maximum)}"
    if spec.choices:
        parts.append("one of " + ", ".join(f"`{choice}`" for choice in spec.choices))
    if spec.type is ArgType.PROFILE:
        parts.append("`logical:FAMILY(d=N)`")
    if spec.equals_count_of is not None:
        parts.append(f"equal to the number of {spec.equals_count_of}")
    if spec.required:
        parts.append("required")
    elif spec.default is not None:
        parts.append(f"default `{json.dumps(spec.default)}`")
    text = ", ".join(parts)
    if spec.fields:
        text += " with " + "; ".join(describe_arg(field) for field in spec.fields)
    return text


def describe_inverse(spec: OpSpec) -> str:
    """The op's inverse as documentation, with negated arguments: ``APPLY_RX(-theta)``.

    >>> from qmk.qvm.ops import OPS
    >>> describe_inverse(OPS["APPLY_RZ"]), describe_inverse(OPS["APPLY_S"])
    ('APPLY_RZ(-theta)', 'APPLY_SDG')
    >>> describe_inverse(OPS["MEASURE_Z"])
    '—'
    """
    if spec.inverse is None:
        return NO
    if spec.inverse_negates:
        return f"{spec.inverse}({', '.join('-' + name for name in spec.inverse_negates)})"
    return spec.inverse


def render_op_table() -> str:
    """The op table as markdown: one row per op, in table order.

    >>> render_op_table().splitlines()[0]  # doctest: +ELLIPSIS
    '| Op | Category | vqs | chs | inputs | produces | Args | Capability | Unitary | ...'
    """
    header = (
        "Op",
        "Category",
        "vqs",
        "chs",
        "inputs",
        "produces",
        "Args",
        "Capability",
        "Unitary",
        "Clifford",
        "Inverse",
        "Description",
    )
    rows = (
        (
            f"`{spec.name}`",
            spec.category.value,
            str(spec.vqs),
            str(spec.chs),
            str(spec.inputs),
            str(spec.produces),
            "<br>".join(cell(describe_arg(arg)) for arg in spec.args) or NO,
            f"`{spec.cap}`" if spec.cap else NO,
            "yes" if spec.unitary else "no",
            spec.clifford.value,
            describe_inverse(spec),
            cell(spec.description),
        )
        for spec in OPS.values()
    )
    return table(header, rows)


def render_op_execution() -> str:
    """How each op runs and what it costs: executor kind, engine gate or basis, the steps
    a composite stands for, the estimator's tally, logical cycles and the other names it
    loads by.

    >>> render_op_execution().splitlines()[2]
    '| `ALLOC_LQ` | alloc | — | — | alloc | 1 | — |'
    >>> [row for row in render_op_execution().splitlines() if "INJECT_T_STATE" in row]
    ['| `INJECT_T_STATE` | inject_t | — | reset q0; h q0; t q0 | t | 1 | — |']
    """
    header = (
        "Op",
        "Executor",
        "Engine gate / basis",
        "Expands to",
        "Estimator counts",
        "Logical cycles",
        "Aliases",
    )
    rows = (
        (
            f"`{spec.name}`",
            spec.kind.value,
            f"`{spec.gate}`" if spec.gate else (f"basis {spec.basis}" if spec.basis else NO),
            cell(expansion_text(spec.name)) or NO,
            TALLIES[spec.name].value,
            f"{op_cycles(spec.name):g}",
            ", ".join(f"`{alias}`" for alias in spec.aliases) or NO,
        )
        for spec in OPS.values()
    )
    return table(header, rows)


def render_codes_table() -> str:
    """Every code of the QVM layer as markdown: code, name, severity, meaning, what to do.

    >>> render_codes_table().splitlines()[2]
    '| `QF001` | `unreadable-file` | error | the file cannot be opened or read | check the path |'
    """
    return error_doc.render_codes(
        ("QF", "QA", "QV"), ("Code", "Name", "Severity", "What it means", "What to do")
    )


def render_capabilities() -> str:
    """The capabilities as markdown: what each allows and which ops need it.

    >>> [row for row in render_capabilities().splitlines() if "CAP_LINK" in row]
    ['| `CAP_LINK` | open entanglement channels (OPEN_CHAN) | `OPEN_CHAN` |']
    """
    rows = []
    for cap, allows in CAPABILITIES.items():
        users = ", ".join(f"`{spec.name}`" for spec in OPS.values() if spec.cap == cap)
        rows.append((f"`{cap}`", cell(allows), users or NO))
    return table(("Capability", "Allows", "Needed by"), rows)


def render_families() -> str:
    """The code families a profile may name, as markdown.

    >>> render_families().splitlines()[2]  # doctest: +ELLIPSIS
    '| `surface_code` | `surface`, `rotated_surface_code`, ... | rotated planar surface code |'
    """
    rows = (
        (
            f"`{family.name}`",
            ", ".join(f"`{alias}`" for alias in family.aliases) or NO,
            cell(family.description),
        )
        for family in FAMILIES.values()
    )
    return table(("Family", "Also accepted", "Description"), rows)


_ROLE = re.compile(r":(?:func|class|data|mod|meth|attr):`~?([^`]+)`")


def _rst_inline(line: str) -> str:
    """Docstring inline markup as Markdown: ``x`` and :func:`x` become `x`."""
    line = _ROLE.sub(lambda m: f"`{m.group(1)}`", line)
    return line.replace("``", "`")


def rst_to_markdown(text: str, *, level: int = 3) -> str:
    r"""The subset of reStructuredText our docstrings use, as Markdown.

    Handles ``Title`` lines underlined with ``=``, ``::`` literal blocks,
    definition lists (a term line, then its text indented by four spaces),
    bullets and inline literals/roles.

    >>> text = "Title\n=====\n\nUse ``x``::\n\n    code\n\n``.t``\n    what"
    >>> print(rst_to_markdown(text), end="")
    ### Title
    <BLANKLINE>
    Use `x`:
    <BLANKLINE>
    ```text
    code
    ```
    <BLANKLINE>
    - `.t`: what
    """
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and nxt.strip() and set(nxt.strip()) == {"="}:
            out.append(f"{'#' * level} {line.strip()}")
            i += 2
            continue
        if line.rstrip().endswith("::"):
            intro = line.rstrip()[:-2].rstrip()
            if intro:
                out.extend([_rst_inline(intro) + ":", ""])
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            block = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                block.append(lines[i][4:])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            out.extend(["```text", *block, "```", ""])
            continue
        if line.strip() and not line.startswith(" ") and nxt.startswith("    "):
            body = []
            i += 1
            while i < len(lines) and lines[i].startswith("    "):
                body.append(lines[i].strip())
                i += 1
            out.append(f"- {_rst_inline(line.strip())}: {_rst_inline(' '.join(body))}")
            continue
        out.append(_rst_inline(line))
        i += 1
    return "\n".join(out).strip() + "\n"


def render_asm_reference() -> str:
    """The assembly-language reference, from the docstring of :mod:`qmk.qvm.asm`."""
    from qmk.qvm import asm

    doc = asm.__doc__ or ""
    start = doc.index("\nLines\n=====")
    return rst_to_markdown(doc[start:]).rstrip("\n")


#: Each generated region of the doc, by marker name, with its renderer.
RENDERERS: dict[str, Callable[[], str]] = {
    "ops": render_op_table,
    "op-execution": render_op_execution,
    "codes": render_codes_table,
    "caps": render_capabilities,
    "families": render_families,
    "asm": render_asm_reference,
}

#: docs/qvm.md.
PAGE = Page(name="qvm.md", renderers=RENDERERS, tables="op/code tables")


__all__ = [
    "PAGE",
    "REGENERATE",
    "RENDERERS",
    "begin_marker",
    "end_marker",
    "replace_region",
]
