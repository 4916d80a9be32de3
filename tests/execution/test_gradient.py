"""A program's gradient through the target protocol: the logical executable's exact
values and derivatives by every gate angle, checked against the parameter-shift rule on
final states the executor computes (``run(..., final_state="amplitudes")``), and its
refusals with codes."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from qmk.engines import EngineError
from qmk.engines.observables import PauliSum, expectation_values
from qmk.engines.state_io import Amplitudes
from qmk.execution import target as targets
from qmk.execution.runs import build_request, run
from qmk.execution.target import Differentiable, TargetError
from qmk.frontends.builder import ProgramBuilder

SEED = 20261126
_ROTATIONS = ("rx", "ry", "rz")


def _program(angles: list[float], n: int = 4, seed: int = SEED):
    """A layered circuit: a rotation per angle (cycling X, Y, Z over the qubits), CX and
    CZ rings between layers, an H and a T on the way."""
    rng = np.random.default_rng(seed)
    builder = ProgramBuilder()
    qubits = builder.allocate(n)
    builder.gate("h", [qubits[0]])
    for k, angle in enumerate(angles):
        builder.gate(_ROTATIONS[k % 3], [qubits[k % n]], [angle])
        if k % n == n - 1:
            for q in range(n):
                two = "cx" if rng.random() < 0.5 else "cz"
                builder.gate(two, [qubits[q], qubits[(q + 1) % n]])
            builder.gate("t", [qubits[int(rng.integers(n))]])
    return builder.build()


def _values(angles, observables, n=4):
    state = run(_program(angles, n), shots=1, seed=0, noise=False, final_state="amplitudes")
    return expectation_values(state.final_state, observables)


def _gradient(graph, observables, **request):
    target = targets.get("logical")
    program = target.read(graph)
    executable = target.compile(program, build_request(program, shots=1, seed=0, **request))
    return targets.differentiable(executable, "logical").gradient(observables)


def test_the_gradient_equals_the_parameter_shift_rule_on_the_executors_states():
    rng = np.random.default_rng(SEED)
    angles = list(rng.uniform(-math.pi, math.pi, 12))
    observables = [
        PauliSum.of([(1.0, {0: "Z", 1: "Z"}), (0.3, {2: "X"})]),
        PauliSum.of([(-0.5, {3: "Y", 0: "X"})]),
    ]
    out = _gradient(_program(angles), observables, noise=False)
    assert len(out.nodes) == len(angles) and out.jacobian.shape == (2, len(angles))
    np.testing.assert_allclose(out.values, _values(angles, observables), atol=1e-12)
    for k in range(len(angles)):
        plus, minus = list(angles), list(angles)
        plus[k] += math.pi / 2
        minus[k] -= math.pi / 2
        shift = (_values(plus, observables) - _values(minus, observables)) / 2
        np.testing.assert_allclose(out.jacobian[:, k], shift, atol=1e-10)


def test_the_columns_name_the_rotation_nodes_in_program_order():
    graph = _program([0.1, 0.2, 0.3])
    rotations = [n.id for n in graph.nodes if n.op in ("APPLY_RX", "APPLY_RY", "APPLY_RZ")]
    assert _gradient(graph, [], noise=False).nodes == tuple(rotations)


def test_an_initial_state_starts_the_program_and_its_gradient():
    builder = ProgramBuilder()
    (q,) = builder.allocate(1)
    builder.gate("rx", [q], [0.7])
    program = targets.get("logical").read(builder.build())
    request = build_request(program, shots=1, seed=0, noise=False)
    plus = Amplitudes(qubits=("a",), amplitudes=np.array([1, 1]) / math.sqrt(2))
    executable = targets.get("logical").compile(program, request, initial_state=plus)
    out = executable.gradient([PauliSum.of([(1.0, {0: "Y"})]), PauliSum.of([(1.0, {0: "Z"})])])
    # rx(t)|+> = |+> up to a phase: no Y or Z whatever t
    np.testing.assert_allclose(out.values, [0, 0], atol=1e-12)
    np.testing.assert_allclose(out.jacobian, [[0], [0]], atol=1e-12)


@pytest.mark.parametrize("what", ["measure", "reset", "noise"])
def test_a_program_without_one_pure_final_state_is_refused_naming_why(what):
    builder = ProgramBuilder()
    (q,) = builder.allocate(1)
    builder.gate("rx", [q], [0.3])
    if what == "measure":
        builder.measure(q)
    if what == "reset":
        builder.reset(q)
        builder.gate("ry", [q], [0.3])
    with pytest.raises(EngineError) as caught:
        _gradient(builder.build(), [PauliSum.of([(1.0, {0: "Z"})])], noise=what == "noise")
    assert caught.value.code == "QE113"
    assert {"measure": "measures", "reset": "not a unitary", "noise": "noise"}[what] in str(
        caught.value
    )


def test_an_observable_on_a_qubit_the_program_lacks_is_refused_with_a_code():
    with pytest.raises(EngineError) as caught:
        _gradient(_program([0.2]), [PauliSum.of([(1.0, {4: "Z"})])], noise=False)
    assert caught.value.code == "QE105"


def test_a_target_without_an_exact_final_state_refuses_the_gradient_with_qm102():
    target = targets.get("lattice-surgery")
    program = target.read(_program([0.2]))
    request = build_request(program, target="lattice-surgery", shots=1, seed=0, noise=False)
    executable = target.compile(program, request)
    assert not isinstance(executable, Differentiable)
    with pytest.raises(TargetError) as caught:
        targets.differentiable(executable, "lattice-surgery")
    assert caught.value.code == "QM102" and "gradient" in str(caught.value)


def test_the_requests_shots_change_nothing():
    graph = _program([0.5, -0.25, 1.5])
    observables = [PauliSum.of([(1.0, {0: "Z"})])]
    one = _gradient(graph, observables, noise=False)
    many = _gradient(graph, observables, noise=False)
    target = targets.get("logical")
    program = target.read(graph)
    request = msgspec.structs.replace(
        build_request(program, shots=1, seed=0, noise=False), shots=5000
    )
    big = target.compile(program, request).gradient(observables)
    np.testing.assert_array_equal(one.jacobian, many.jacobian)
    np.testing.assert_allclose(big.jacobian, one.jacobian, atol=0)


def test_the_forward_sweep_on_a_named_engine_gives_the_same_gradient():
    # quarter turns: the stabilizer engine runs the program, its state exported as
    # amplitudes; the statevector's small state is swept by the gradient's own passes
    builder = ProgramBuilder()
    a, b, c = builder.allocate(3)
    builder.gate("h", [a])
    builder.gate("rx", [a], [math.pi / 2])
    builder.gate("cx", [a, b])
    builder.gate("ry", [c], [math.pi])
    builder.gate("rz", [b], [-math.pi / 2])
    builder.gate("cz", [b, c])
    graph = builder.build()
    observables = [PauliSum.of([(1.0, {0: "Y", 1: "X"}), (0.5, {2: "Z"})])]
    dense = _gradient(graph, observables, noise=False)
    tableau = _gradient(graph, observables, noise=False, engine="stabilizer")
    np.testing.assert_allclose(tableau.values, dense.values, atol=1e-12)
    np.testing.assert_allclose(tableau.jacobian, dense.jacobian, atol=1e-12)
