"""Clifford+T programs lowered to pi/8 rotations and Pauli product measurements: the
lowered form's exact outcome distribution (dense matrices: the rotations applied to
|0...0>, then the measurements' projectors) equals the gate-level program's."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import stim

from qmk.frontends import read_program
from qmk.ft.errors import FTError
from qmk.ft.lower import Lowered, lower
from qmk.qvm.asm import assemble
from qmk.qvm.output import layout_of
from qmk.qvm.verify import verify
from support.exact import exact_distribution

PROGRAMS = Path(__file__).parent / "programs"
_PAULI = {
    "_": np.eye(2),
    "X": np.array([[0, 1], [1, 0]]),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.diag([1, -1]),
}


@functools.lru_cache(maxsize=4096)
def _matrix(pauli: str) -> np.ndarray:
    out = np.array([[1.0 + 0j]])
    for c in pauli[1:]:
        out = np.kron(out, _PAULI[c])
    return -out if pauli[0] == "-" else out


def lowered_distribution(lowered: Lowered, metadata: object) -> dict[str, float]:
    """Exact outcomes of the lowered form, by dense matrices: each branch of measurement
    outcomes carries its state and its frame (the controlled Cliffords it applied, which
    conjugate every later op's Pauli)."""
    n = len(lowered.qubits)
    start = np.zeros(2**n, dtype=complex)
    start[0] = 1.0
    branches: list[tuple[np.ndarray, dict[str, int], object]] = [(start, {}, None)]
    for op in lowered.ops:
        grown = []
        for state, outcomes, frame in branches:
            if not op.holds(outcomes):
                grown.append((state, outcomes, frame))
                continue
            if op.kind == "frame":
                grown.append((state, outcomes, op.frame if frame is None else op.frame.then(frame)))
                continue
            pauli = op.pauli if frame is None else str(frame(stim.PauliString(op.pauli)))
            p = _matrix(pauli)
            if op.kind in ("rotation", "synth"):
                angle = op.sign * math.pi / 8 if op.kind == "rotation" else op.angle
                state = math.cos(angle) * state - 1j * math.sin(angle) * (p @ state)
                grown.append((state, outcomes, frame))
            elif op.kind == "pauli":
                grown.append((p @ state, outcomes, frame))
            else:
                for bit in (0, 1):
                    part = (state + (-1) ** bit * (p @ state)) / 2
                    if np.vdot(part, part).real > 1e-14:
                        grown.append((part, {**outcomes, op.event: bit}, frame))
        branches = grown
    keys = layout_of(metadata, lowered.events)  # type: ignore[arg-type]
    out: dict[str, float] = {}
    for state, outcomes, _ in branches:
        outcome = "".join(str(outcomes.get(e, 0)) for e in lowered.events)
        key = keys.key(outcome) if keys is not None else outcome
        out[key] = out.get(key, 0.0) + float(np.vdot(state, state).real)
    return out


@pytest.mark.parametrize("name", sorted(p.name for p in PROGRAMS.iterdir()))
def test_the_lowered_form_has_the_programs_exact_distribution(name):
    graph = read_program(str(PROGRAMS / name))
    lowered = lower(verify(graph))
    expected = exact_distribution(graph)
    got = lowered_distribution(lowered, graph.metadata)
    assert got.keys() == expected.keys()
    for key, p in expected.items():
        assert got[key] == pytest.approx(p, abs=1e-9)


def test_a_toffoli_is_an_and_of_four_pi_over_8_rotations_uncomputed_by_measurement():
    graph = read_program(str(PROGRAMS / "toffoli.qasm"))
    lowered = lower(verify(graph))
    assert lowered.qubits == ("q0", "q1", "q2", "_and") and lowered.data_qubits == 3
    rotations = [op for op in lowered.ops if op.kind == "rotation"]
    assert len(rotations) == 4 + 1  # the AND's four, the T's one
    assert [op.sign for op in rotations[:4]] == [1, -1, -1, 1]
    kinds = [op.kind for op in lowered.ops]
    # the AND's X measurement, the controlled CZ(a, b) and the ancilla's reset follow
    assert kinds[4:7] == ["measure", "frame", "pauli"]
    assert str(lowered.ops[5]) == "F(CZ q0 q1) if n3.and==1"
    assert lowered.t_count == 5  # what the estimator counts: 4 per CCZ, 1 per T
    assert lowered.ppm_count == 5 + 1 + 3  # rotations, the AND's X, the measurements


def _asm(body: str) -> str:
    return (
        ".version 0.2\n.caps CAP_ALLOC CAP_MAGIC\n.vqs a b\n.events m m2\n"
        "al: ALLOC_LQ vq:a, vq:b, n=2\n" + body + "\n"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("x: MEASURE_Z vq:a, out:m\nr: APPLY_T vq:b when ev:m == 1", "QP103"),
        ("x: MEASURE_Z vq:a, out:m\nr: MEASURE_Z vq:b, out:m2 when ev:m == 1", "QP103"),
        ("x: MEASURE_BELL vq:a, vq:b, out:m, out:m2", "QP101"),
        ("x: MEASURE_ANGLE vq:a, out:m, angle=0.5", "QP101"),
    ],
)
def test_ops_with_no_pauli_product_form_are_refused_with_a_code(body, code):
    with pytest.raises(FTError) as caught:
        lower(verify(assemble(_asm(body))))
    assert caught.value.code == code


def test_controlled_paulis_and_cliffords_cost_no_ppm():
    lowered = lower(
        verify(
            assemble(
                _asm(
                    "h: APPLY_H vq:a\nx: MEASURE_Z vq:b, out:m\ny: MEASURE_Z vq:a, out:m2\n"
                    "p: APPLY_X vq:a when ev:m == 1\ns: APPLY_S vq:b when ev:m == 0\n"
                    'c: COND_PAULI vq:b, in:m, in:m2, mask="Z"'
                )
            )
        )
    )
    assert [str(op) for op in lowered.ops] == [
        "M(+_Z) -> m",
        "M(+X_) -> m2",  # Z on a, seen through the frame's H
        "P(+Z_) if m==1",  # X on a, likewise
        "F(S b) if m==0",
        "P(+_Z) if m^m2==1",
    ]
    assert lowered.ppm_count == 2 and lowered.t_count == 0


def test_a_rotation_by_another_angle_is_one_synthesised_rotation():
    lowered = lower(verify(assemble(_asm("r: APPLY_RZ vq:a, theta=0.3"))))
    assert [str(op) for op in lowered.ops] == ["R(+Z_, 0.15)"]
    assert lowered.rotation_count == 1 and lowered.t_count == 0 and lowered.ppm_count == 0


def test_a_quarter_turn_rotation_is_a_clifford_and_needs_no_magic_state():
    lowered = lower(verify(assemble(_asm("r: APPLY_RZ vq:a, theta=1.5707963267948966"))))
    assert lowered.t_count == 0 and lowered.cliffords == 1
