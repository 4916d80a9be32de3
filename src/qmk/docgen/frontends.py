"""Render the generated table of ``docs/frontends.md``: what the OpenQASM 3 writer
(:mod:`qmk.frontends.qasm3_out`) makes of every op, from its ``LOWERINGS`` table.

The page is hand-written except for the region of :data:`PAGE`, which
``python -m qmk.docgen --write`` refreshes (see :mod:`qmk.docgen`).

>>> print(render_lowerings().splitlines()[2])
| `ALLOC_LQ` | a comment naming the handles' slots of `q` (declared qubits start in `\\|0>`) |
"""

from __future__ import annotations

from qmk.docgen import Page, cell, table
from qmk.frontends.qasm3_out import LOWERINGS


def render_lowerings() -> str:
    """One row per op of the op table, in its order: the OpenQASM 3 it becomes."""
    rows = [(f"`{op}`", cell(low.text).replace("&lt;", "<")) for op, low in LOWERINGS.items()]
    return table(("Op", "OpenQASM 3"), rows)


PAGE = Page(
    name="frontends.md",
    renderers={"qasm3-lowerings": render_lowerings},
    tables="OpenQASM 3 writer's lowerings (qmk.frontends.qasm3_out.LOWERINGS)",
)
