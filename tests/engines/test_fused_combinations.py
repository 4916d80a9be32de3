"""A segment that touches, without a mixing gate, a qubit that reads a combination of
variables (after a cx between superposed qubits) is fused by a change of variables, with
no new axis; a copy (a GHZ qubit) still keeps the segment gate by gate. The gate-by-gate
path (``max_fused=1``) is the reference; seeds are fixed."""

from __future__ import annotations

import numpy as np

from qmk.engines.statevector import StatevectorEngine

PREPARE = [("h", [0], ()), ("h", [1], ()), ("h", [2], ()), ("cx", [0, 1], ()), ("ry", [3], (0.3,))]
#: h and ry mix q0 and q3; q1 (x0 ^ x1 after the cx) is touched by cz only.
SEGMENT = [("h", [0], ()), ("ry", [3], (0.8,)), ("cz", [1, 3], ()), ("t", [1], ())]


def engines(prepare: list) -> tuple[StatevectorEngine, StatevectorEngine]:
    out = []
    for max_fused in (4, 1):
        engine = StatevectorEngine(seed=0, fused_min_qubits=0, max_fused=max_fused)
        for _ in range(4):
            engine.allocate()
        for gate, qubits, params in prepare:
            engine.apply(gate, qubits, params)
        out.append(engine)
    return out[0], out[1]


def test_a_qubit_reading_a_combination_is_fused_without_a_new_axis() -> None:
    fused, reference = engines(PREPARE)
    assert fused._rows[1] and not fused._owns_axis(1, fused._columns())  # a combination
    joining = sum(1 for q in (0, 3) if not fused._rows[q])  # mixing classical qubits join
    axes = fused._psi.ndim
    assert fused._fusable([fused.check_gate(g, q, p) for g, q, p in SEGMENT])
    fused.apply_segment(SEGMENT)
    reference.apply_segment(SEGMENT)
    assert fused._psi.ndim == axes + joining  # none for q1
    assert np.allclose(fused.state_vector([0, 1, 2, 3]), reference.state_vector([0, 1, 2, 3]))


def test_a_segment_touching_a_copy_stays_gate_by_gate() -> None:
    ghz = [("h", [0], ()), ("cx", [0, 1], ()), ("cx", [1, 2], ()), ("ry", [3], (0.3,))]
    fused, reference = engines(ghz)
    assert not fused._fusable([fused.check_gate(g, q, p) for g, q, p in SEGMENT])
    fused.apply_segment(SEGMENT)
    reference.apply_segment(SEGMENT)
    assert np.allclose(fused.state_vector([0, 1, 2, 3]), reference.state_vector([0, 1, 2, 3]))
