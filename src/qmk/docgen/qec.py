"""Render the generated tables of ``docs/qec.md`` from the qubit, scheme and op-cycle tables.

The page is hand-written except for the regions of :data:`PAGE`, which
``python -m qmk.docgen --write`` refreshes (see :mod:`qmk.docgen`).

>>> text = "a\\n<!-- BEGIN GENERATED: qec-codes -->\\nold\\n<!-- END GENERATED: qec-codes -->\\n"
>>> print(replace_region(text, "qec-codes", render_codes()))  # doctest: +ELLIPSIS
a
<!-- BEGIN GENERATED: qec-codes -->
| Code | Name | What it means | What to do |
|---|---|---|---|
| `QC101` | `unknown-qubit-params` | ...
...
<!-- END GENERATED: qec-codes -->
<BLANKLINE>
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qmk.docgen import NO, REGENERATE, Page, cell, replace_region, table
from qmk.docgen import errors as error_doc
from qmk.qec.codes import SCHEMES
from qmk.qec.errors import QECError
from qmk.qec.logical import DEFAULT_PROFILE, OP_CYCLES, logical_model
from qmk.qec.params import QUBIT_PARAMS, QubitParams
from qmk.qvm.profiles import Profile, parse_profile

#: The distance of the worked examples: the default profile's.
EXAMPLE_DISTANCE = parse_profile(DEFAULT_PROFILE).distance


def _ns(value: int | None) -> str:
    return NO if value is None else f"{value:,} ns"


def _rate(value: float | None) -> str:
    return NO if value is None else f"{value:g}"


def _measure_rate(process: float | None, readout: float | None) -> str:
    if process is None:
        return NO
    if readout is None or readout == process:
        return _rate(process)
    return f"{_rate(process)} (readout {_rate(readout)})"


def render_qubit_params() -> str:
    """The six predefined qubit parameter sets, one row each, with their p.

    >>> render_qubit_params().splitlines()[2]  # doctest: +ELLIPSIS
    '| `qubit_gate_ns_e3` | gate_based | 100 ns | 50 ns | 50 ns | — | 50 ns | 0.001 | ...'
    """
    header = (
        "Name",
        "Instruction set",
        "1q measurement time",
        "1q gate time",
        "2q gate time",
        "2q joint measurement time",
        "T gate time",
        "1q measurement error",
        "1q gate error",
        "2q gate error",
        "2q joint measurement error",
        "T gate error",
        "Idle error",
        "p (QEC formula)",
    )

    def row(q: QubitParams) -> tuple[str, ...]:
        return (
            f"`{q.name}`",
            q.instruction_set,
            _ns(q.one_qubit_measurement_time),
            _ns(q.one_qubit_gate_time),
            _ns(q.two_qubit_gate_time),
            _ns(q.two_qubit_joint_measurement_time),
            _ns(q.t_gate_time),
            _measure_rate(q.one_qubit_measurement_error_rate, q.one_qubit_measurement_readout_rate),
            _rate(q.one_qubit_gate_error_rate),
            _rate(q.two_qubit_gate_error_rate),
            _measure_rate(
                q.two_qubit_joint_measurement_error_rate, q.two_qubit_joint_measurement_readout_rate
            ),
            _rate(q.t_gate_error_rate),
            _rate(q.idle_error_rate),
            _rate(q.physical_error_rate),
        )

    return table(header, (row(q) for q in QUBIT_PARAMS.values()))


def render_schemes() -> str:
    """Every QEC scheme: family, qubits, a, p*, formulas, rounds, max distance, origin.

    >>> render_schemes().splitlines()[2]  # doctest: +ELLIPSIS
    '| `surface_code` | gate_based | 0.03 | 0.01 | `(4 * twoQubitGateTime + ...'
    """
    header = (
        "Family",
        "Qubits",
        "a",
        "p*",
        "Logical cycle time (ns)",
        "Physical qubits per logical qubit",
        "Syndrome rounds per cycle",
        "Max d",
        "Origin",
    )
    rows = (
        (
            f"`{s.family}`",
            s.instruction_set,
            f"{s.crossing_prefactor:g}",
            f"{s.error_correction_threshold:g}",
            f"`{s.logical_cycle_time}`",
            f"`{s.physical_qubits_per_logical_qubit}`",
            f"`{s.syndrome_rounds}`",
            str(s.max_distance),
            "QRE predefined" if s.qre else "QMK assumption",
        )
        for variants in SCHEMES.values()
        for s in variants.values()
    )
    return table(header, rows)


def render_sources() -> str:
    """The sources and reasoning of every scheme, as a bullet list."""
    lines = []
    for variants in SCHEMES.values():
        for s in variants.values():
            lines.append(f"- **`{s.family}` on {s.instruction_set} qubits.** {s.notes}")
            lines.extend(f"  - {source}" for source in s.sources)
    return "\n".join(lines)


def render_examples() -> str:
    """Every scheme on every predefined qubit set it fits, at the default distance.

    >>> render_examples().splitlines()[2]
    '| `surface_code` | `qubit_gate_ns_e3` | 9 | 0.001 | 3.000e-07 | 3,600 ns | 162 | 9 |'
    """
    header = (
        "Family",
        "Qubit parameters",
        "d",
        "p",
        "P_L per cycle",
        "Logical cycle time",
        "Physical qubits per logical qubit",
        "Decoder rounds per cycle",
    )
    rows: list[tuple[str, ...]] = []
    for family, variants in SCHEMES.items():
        for qubit in QUBIT_PARAMS.values():
            if qubit.instruction_set not in variants:
                continue
            try:
                m = logical_model(Profile(family=family, distance=EXAMPLE_DISTANCE), qubit)
            except QECError as exc:
                rows.append((f"`{family}`", f"`{qubit.name}`", str(EXAMPLE_DISTANCE), exc.name))
                continue
            rows.append(
                (
                    f"`{family}`",
                    f"`{qubit.name}`",
                    str(m.distance),
                    f"{m.physical_error_rate:g}",
                    f"{m.logical_error_per_cycle:.3e}",
                    f"{m.cycle_time_ns:,} ns",
                    f"{m.physical_qubits_per_logical:,}",
                    str(m.decoder_rounds_per_cycle),
                )
            )
    return table(header, rows)


def render_op_cycles() -> str:
    """The op-cycle table: key, cycles, QVM ops, reasoning.

    >>> render_op_cycles().splitlines()[2]
    '| `alloc` | 1 | `ALLOC_LQ` | prepare the patch and establish its stabilizers: d rounds |'
    """
    rows = (
        (
            f"`{entry.key}`",
            f"{entry.cycles:g}",
            ", ".join(f"`{op}`" for op in entry.qvm_ops),
            cell(entry.why),
        )
        for entry in OP_CYCLES.values()
    )
    return table(("Key", "Logical cycles", "QVM ops", "Why"), rows)


def render_codes() -> str:
    """The QC error codes."""
    return error_doc.render_codes(("QC",), ("Code", "Name", "What it means", "What to do"))


#: Each generated region of docs/qec.md, by marker name, with its renderer.
RENDERERS: Mapping[str, Callable[[], str]] = {
    "qubit-params": render_qubit_params,
    "qec-schemes": render_schemes,
    "qec-sources": render_sources,
    "qec-examples": render_examples,
    "op-cycles": render_op_cycles,
    "qec-codes": render_codes,
}

#: docs/qec.md.
PAGE = Page(name="qec.md", renderers=RENDERERS, tables="qubit/scheme/op-cycle tables")


__all__ = ["PAGE", "REGENERATE", "RENDERERS", "replace_region"]
