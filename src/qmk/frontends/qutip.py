"""QuTiP-qip's ``QubitCircuit`` into a QVM graph.

``from_qutip(circuit)`` allocates the circuit's ``N`` qubits in order. Gates, exactly:

- a gate on one target and no controls through its matrix (``get_compact_qobj()``,
  phase kept): ``X``, ``H``, ``RX``, ``PHASEGATE``, ``SQRTNOT``, ``QASMU``, user gates...;
- the gates of :data:`NAMED` through the shared decomposition table
  (:mod:`qmk.frontends.decompose`), each tested against QuTiP's matrix;
- any other gate with controls and one target (``CRX``, ``CS``, ``CT``, controlled user
  gates, any ``control_value``) as its target block under those controls;
- ``GLOBALPHASE`` and ``IDLE`` change no measured outcome and are skipped; a gate on two
  or more targets that :data:`NAMED` does not list (``SQRTSWAP``, ``BERKELEY``,
  ``SWAPALPHA``, ``MS``) is QL104 naming it.

``Measurement`` (Z basis) writes its ``classical_store`` bit; a gate's
``classical_controls`` with ``classical_control_value`` guard it as QuTiP's simulator
reads them (the value's binary digits, most significant first, against the listed
bits). The result key is the classical bits in order, bit 0 leftmost (as QuTiP lists
``cbits``); a bit never written reads 0.

>>> from qutip_qip.circuit import QubitCircuit
>>> qc = QubitCircuit(2, num_cbits=2)
>>> qc.add_gate("SNOT", targets=[0])
>>> qc.add_gate("CNOT", controls=[0], targets=[1])
>>> qc.add_measurement("M0", targets=[0], classical_store=0)
>>> qc.add_measurement("M1", targets=[1], classical_store=1)
>>> [n.op for n in from_qutip(qc).nodes]
['ALLOC_LQ', 'APPLY_H', 'APPLY_CNOT', 'MEASURE_Z', 'MEASURE_Z', 'FREE_LQ']
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from qmk.frontends import conditions, decompose
from qmk.frontends.builder import GATE_OPS, ProgramBuilder, guard_of
from qmk.frontends.errors import FrontendError
from qmk.gates import GATES
from qmk.qvm.graph import Graph

#: QuTiP-qip's multi-qubit gate names and the decomposition table's, with the wire order
#: (controls first, then targets) that the table's qubit arguments take: the QuTiP names
#: of the op table's multi-qubit gate records, then of gates written in them. A one-qubit
#: gate is read by its matrix.
NAMED: Mapping[str, str] = MappingProxyType(
    {
        **{
            name: gate
            for gate in GATE_OPS
            if GATES[gate].qubits > 1
            for name in GATES[gate].names.of("qutip")
        },
        "CY": "cy",
        "CPHASE": "cp",
        "ISWAP": "iswap",
        "FREDKIN": "cswap",
    }
)
#: Gates that change no measured outcome.
SKIPPED = frozenset({"GLOBALPHASE", "IDLE"})


def from_qutip(circuit: Any, *, profile: str | None = None, name: str = "qutip") -> Graph:
    """Lower a ``qutip_qip.circuit.QubitCircuit``.

    Raises:
        FrontendError: not a circuit (QL107), a gate QMK cannot lower (QL104), a
            condition on a classical bit out of range (QL107), each naming gate #k.
    """
    try:
        from qutip_qip.circuit import QubitCircuit
        from qutip_qip.operations import Measurement
    except ImportError:  # pragma: no cover - qutip-qip is an optional extra
        raise FrontendError.of(
            "missing-extra", "from_qutip needs qutip-qip: pip install 'qmk[qutip]'"
        ) from None
    if not isinstance(circuit, QubitCircuit):
        raise FrontendError.of(
            "bad-value", f"from_qutip takes a QubitCircuit, got {type(circuit).__name__}"
        )
    if any(d != 2 for d in circuit.dims):
        raise FrontendError.of("unsupported", f"{name}: qudits (dims {circuit.dims})")
    builder = ProgramBuilder(profile=profile, source=name, description=name)
    qubits = builder.allocate(circuit.N) if circuit.N else []
    cbits: list[str | None] = [None] * circuit.num_cbits
    for k, gate in enumerate(circuit.gates):
        where = f"{name}#{k}"
        if isinstance(gate, Measurement):
            store = gate.classical_store
            if store is None or not 0 <= store < len(cbits):
                raise _error("bad-value", where, f"measurement into classical bit {store}")
            cbits[store] = builder.measure(qubits[gate.targets[0]], where=where)
            continue
        cond = _condition(gate, cbits, where)
        if gate.name in SKIPPED:
            continue
        low = _lowered(gate, where)
        wires = [qubits[w] for w in (gate.controls or [])] + [qubits[w] for w in gate.targets]
        for terms in cond:
            guard = guard_of(list(terms.items()))
            for op, qs, params in low.ops:
                builder.gate(op, [wires[q] for q in qs], params, guard=guard, where=where)
    output = [[cbits[k] for k in range(len(cbits))]] if cbits else []
    return builder.build(output=output, metadata={"language": "qutip"})


def _error(kind: str, where: str, message: str) -> FrontendError:
    return FrontendError.of(kind, f"{where}: {message}", source=where)


def _condition(gate: Any, cbits: list[str | None], where: str) -> conditions.Cond:
    """The guard QuTiP's simulator applies: listed bits spell the value, first bit most
    significant."""
    controls = gate.classical_controls
    if not controls:
        return conditions.TRUE
    for bit in controls:
        if not 0 <= bit < len(cbits):
            raise _error("bad-value", where, f"a condition on classical bit {bit}")
    events = [cbits[bit] for bit in controls]
    return conditions.equals(list(reversed(events)), int(gate.classical_control_value))


def _matrix(gate: Any) -> np.ndarray:
    """The gate's matrix on its controls then targets, in QMK's order (the first of them
    the least significant bit; QuTiP makes it the most significant)."""
    return decompose.little_endian(gate.get_compact_qobj().full())


def _lowered(gate: Any, where: str) -> decompose.Lowered:
    controls = list(gate.controls or [])
    targets = list(gate.targets)
    if gate.name in NAMED:
        params = () if gate.arg_value is None else (float(gate.arg_value),)
        low = decompose.lower_gate(NAMED[gate.name], params)
        if not np.allclose(decompose.matrix_of(low), _matrix(gate), atol=1e-9):
            raise _error("unsupported", where, f"gate {gate.name} with these arguments")
        return low
    if not controls and len(targets) == 1:
        return decompose.unitary(_matrix(gate))
    if len(targets) == 1:
        return _controlled(gate, len(controls), where)
    raise _error("unsupported", where, f"gate {gate.name} on {len(targets)} targets")


def _controlled(gate: Any, n_controls: int, where: str) -> decompose.Lowered:
    """A gate that is the identity unless its controls read ``control_value``: its target
    block under those controls."""
    u = _matrix(gate)
    value = 2**n_controls - 1 if gate.control_value is None else int(gate.control_value)
    # QuTiP's control_value reads the controls with the first most significant
    state = int(format(value, f"0{n_controls}b")[::-1], 2)
    dim = 2**n_controls
    block = np.zeros((2, 2), dtype=complex)
    for a in range(2):
        for b in range(2):
            block[a, b] = u[state + dim * a, state + dim * b]
    expected = np.eye(2 * dim, dtype=complex)
    for a in range(2):
        for b in range(2):
            expected[state + dim * a, state + dim * b] = block[a, b]
    if not np.allclose(expected, u, atol=1e-9):
        raise _error("unsupported", where, f"gate {gate.name} is not a controlled one-qubit gate")
    return decompose.controlled(decompose.unitary(block), n_controls, state)
