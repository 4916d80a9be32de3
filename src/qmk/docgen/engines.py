"""Render the generated tables of ``docs/engines.md`` from the engine registry.

The page is hand-written except for the regions of :data:`PAGE`, which
``python -m qmk.docgen --write`` refreshes (see :mod:`qmk.docgen`). The tables show the
registry's static facts (:data:`qmk.engines.registry.SPECS`), never what one machine has
installed: ``qmk engines`` says that.

>>> print(render_engines().splitlines()[2])  # doctest: +ELLIPSIS
| `statevector` | built in | all 17 | native | — | double, single | pauli | — | QMK's ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qmk.docgen import NO, REGENERATE, Page, cell, replace_region, table
from qmk.engines.gates import GATES
from qmk.engines.registry import SPECS


def render_engines() -> str:
    """One row per engine: where it comes from and what it can do."""
    header = (
        "Engine",
        "Extra",
        "Gates",
        "State between calls",
        "Density matrix",
        "Precisions",
        "Noise channels",
        "GPU",
        "What it is",
    )
    rows = []
    for entry in SPECS:
        gates = (
            f"Clifford angles of {len(entry.gates)}"
            if entry.clifford_only
            else (
                f"all {len(entry.gates)}"
                if len(entry.gates) == len(GATES)
                else str(len(entry.gates))
            )
        )
        rows.append(
            (
                f"`{entry.name}`",
                f"`{entry.extra}`" if entry.extra else "built in",
                gates,
                entry.state,
                "yes" if entry.density_matrix else NO,
                ", ".join(entry.precisions),
                ", ".join(entry.noise_channels),
                "yes" if entry.gpu else NO,
                cell(entry.summary),
            )
        )
    return table(header, rows)


def render_costs() -> str:
    """One row per engine: its cost model's figures."""
    header = (
        "Engine",
        "Scales with",
        "Import",
        "Setup",
        "Per gate",
        "Per element",
        "Per segment",
        "Per shot",
    )
    rows = [
        (
            f"`{e.name}`",
            e.cost.representation,
            f"{e.import_s:g} s" if e.import_s else NO,
            f"{e.cost.setup_s:g} s",
            f"{e.cost.gate_s:g} s",
            f"{e.cost.element_s:g} s"
            + (f" (single x{e.cost.single:g})" if e.cost.single != 1 else ""),
            f"{e.cost.segment_s:g} s",
            f"{e.cost.shot_s:g} s",
        )
        for e in SPECS
    ]
    return table(header, rows)


#: The generated regions of ``docs/engines.md``, by marker name.
RENDERERS: Mapping[str, Callable[[], str]] = {
    "engines-table": render_engines,
    "engines-costs": render_costs,
}

PAGE = Page(name="engines.md", renderers=RENDERERS, tables="the engine registry")


def update(text: str) -> str:
    """``docs/engines.md`` with every generated region refreshed."""
    return PAGE.update(text)


__all__ = ["PAGE", "REGENERATE", "RENDERERS", "replace_region", "update"]
