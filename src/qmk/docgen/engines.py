"""Render the generated tables of ``docs/engines.md`` from the engine registry and the
gate records.

The page is hand-written except for the regions of :data:`PAGE`, which
``python -m qmk.docgen --write`` refreshes (see :mod:`qmk.docgen`). The tables show the
registry's static facts (:data:`qmk.engines.registry.SPECS`), never what one machine has
installed: ``qmk engines`` says that; and QMK's own gate records (:data:`qmk.gates.GATES`).

>>> print(render_engines().splitlines()[2])  # doctest: +ELLIPSIS
| `statevector` | built in | all 17 | native | — | double, single | pauli | — | QMK's ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qmk.docgen import NO, REGENERATE, Page, cell, replace_region, table
from qmk.engines.registry import SPECS
from qmk.gates import BUILT_IN, GATES, LANGUAGES, Gate


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
    """One row per engine: its cost model's figures and its packages' footprint (and a
    row for the fallback of an engine with compiled kernels, and one for the density
    matrix its batch sampler holds)."""
    header = (
        "Engine",
        "Scales with",
        "Import",
        "Setup",
        "Per gate",
        "Per element: dense / diagonal / permutation / 3-qubit gate, fused block",
        "Per segment (call / element)",
        "Sample (element / shot)",
        "Footprint (address / resident)",
    )

    def row(name: str, cost: Any, import_s: float, footprint: Any) -> tuple[str, ...]:
        notes = [f"single x{cost.single:g}"] if cost.single != 1 else []
        notes += ["/ threads"] if cost.parallel else []
        kinds = (cost.element_s, cost.diagonal_s, cost.permutation_s, cost.wide_s, cost.block_s)
        return (
            name,
            cost.representation,
            f"{import_s:g} s" if import_s else NO,
            f"{cost.setup_s:g} s",
            f"{cost.gate_s:g} s",
            " / ".join(f"{k:g}" for k in kinds)
            + " s"
            + (f" ({', '.join(notes)})" if notes else ""),
            f"{cost.segment_s:g} / {cost.round_trip_s:g} s",
            f"{cost.sample_s:g} / {cost.shot_s:g} s",
            f"{footprint.address_mib} / {footprint.resident_mib} MiB"
            + (" + a stack per thread" if footprint.threaded else ""),
        )

    rows = []
    for e in SPECS:
        kernels = e.compiled
        if kernels is None:
            rows.append(row(f"`{e.name}`", e.cost, e.import_s, e.footprint))
        else:
            on, off = (
                f"`{e.name}` ({kernels.option}={value})" for value in (kernels.on, kernels.off)
            )
            rows.append(row(on, e.cost, kernels.import_s, kernels.footprint))
            rows.append(row(off, kernels.fallback, 0.0, e.footprint))
        if e.density is not None:
            rows.append(row(f"`{e.name}` (density matrix)", e.density, 0.0, e.footprint))
    return table(header, rows)


def render_gates() -> str:
    """One row per gate record of QMK's own: its arity, flags, inverse and names.

    >>> print(render_gates().splitlines()[3])  # doctest: +ELLIPSIS
    | `x` | 1 | — | Clifford, Pauli | `x` | `x` | `x` | `x__body` | `X` | ...
    """
    header = (
        "Gate",
        "Qubits",
        "Parameters",
        "Kind",
        "Inverse",
        "OpenQASM 2",
        "OpenQASM 3",
        "QIR",
        "stim",
        "Qiskit",
        "Cirq",
        "PennyLane",
        "Braket",
        "QuTiP",
    )

    def names(gate: Gate, language: str) -> str:
        spelled = gate.names.of(language)
        if language == "stim" and gate.names.stim_quarter:
            spelled = (f"{'/'.join(gate.names.stim_quarter)} at 0..3 quarter turns",)
        if language == "qasm3" and gate.names.qasm3_definition:
            spelled = (f"{spelled[0]} (defined by the writer)",)
        return ", ".join(f"`{n}`" for n in spelled) or NO

    rows = []
    for name in sorted(BUILT_IN, key=list(GATES).index):
        gate = GATES[name]
        kind = [
            label
            for flag, label in (
                (gate.clifford, "Clifford"),
                (gate.quarter_turn, "Clifford at quarter turns"),
                (gate.diagonal, "diagonal"),
                (gate.pauli, "Pauli"),
            )
            if flag
        ]
        rows.append(
            (
                f"`{name}`",
                str(gate.qubits),
                ", ".join(gate.params) or NO,
                ", ".join(kind) or NO,
                f"`{gate.adjoint(tuple(0.0 for _ in gate.params))[0]}`"
                + (" (angle negated)" if gate.params else ""),
                *(names(gate, language) for language in LANGUAGES),
            )
        )
    return table(header, rows)


#: The generated regions of ``docs/engines.md``, by marker name.
RENDERERS: Mapping[str, Callable[[], str]] = {
    "engines-table": render_engines,
    "engines-costs": render_costs,
    "gate-records": render_gates,
}

PAGE = Page(name="engines.md", renderers=RENDERERS, tables="the engine registry")


__all__ = ["PAGE", "REGENERATE", "RENDERERS", "replace_region"]
