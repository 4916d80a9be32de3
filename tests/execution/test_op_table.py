"""The op table agrees with every table derived from it or beside it.

``qvm/ops.py`` is the one list of ops; the executor, the engines' gate table, the QEC
layer's cycle costs, the estimator's counter and the front-ends' gate set read it.
These tests walk the whole table, so an op added there is checked everywhere at once
(they replace the import-time ``assert``s that ``python -O`` strips).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from qmk.engines.gates import GATES
from qmk.estimate.counts import count_nodes
from qmk.execution.executor import run
from qmk.execution.plan import BASIS_OF, BOOKKEEPING, GATE_OF
from qmk.frontends import decompose
from qmk.frontends.builder import GATE_OPS
from qmk.qec.logical import OP_CYCLES, op_cycles, op_key
from qmk.qvm.graph import from_json
from qmk.qvm.ops import OP_ALIASES, OPS, Clifford, Exec, OpSpec, Tally

GATE_SPECS = [spec for spec in OPS.values() if spec.gate is not None]
ANGLES = (0.0, math.pi / 2, 0.3, -1.1)


def _params(spec: OpSpec, angle: float) -> tuple[float, ...]:
    return tuple(angle for _ in spec.args)


@pytest.mark.parametrize("spec", GATE_SPECS, ids=lambda s: s.name)
def test_an_op_and_its_engine_gate_agree_on_arity_parameters_and_clifford_ness(spec: OpSpec):
    gate = GATES[spec.gate]  # type: ignore[index]
    assert gate.qubits == spec.vqs.low == spec.vqs.high
    assert gate.params == tuple(arg.name for arg in spec.args)
    assert spec.unitary
    for angle in ANGLES:
        params = _params(spec, angle)
        op_clifford = spec.clifford is Clifford.YES or (
            spec.clifford is Clifford.QUARTER_TURN and abs(angle / (math.pi / 2) % 1) < 1e-12
        )
        assert gate.is_clifford(params) == op_clifford, (spec.name, angle)


@pytest.mark.parametrize("spec", GATE_SPECS, ids=lambda s: s.name)
def test_an_ops_inverse_is_the_adjoint_of_its_engine_gate(spec: OpSpec):
    assert spec.inverse is not None
    inverse = OPS[spec.inverse]
    assert inverse.gate is not None
    for angle in ANGLES:
        params = _params(spec, angle)
        negated = tuple(-p for p in params) if spec.inverse_negates else params
        product = GATES[inverse.gate].matrix(negated) @ GATES[spec.gate].matrix(params)  # type: ignore[index]
        assert np.allclose(product, np.eye(product.shape[0])), (spec.name, angle)


def test_the_front_ends_gate_set_and_inverses_come_from_the_op_table():
    assert dict(GATE_OPS) == {gate: name for name, gate in GATE_OF.items()}
    for gate, op in GATE_OPS.items():
        inverse_gate = OPS[OPS[op].inverse].gate  # type: ignore[index]
        params = (0.3,) if GATES[gate].params else ()
        low = decompose.Lowered(
            num_qubits=GATES[gate].qubits,
            ops=((gate, tuple(range(GATES[gate].qubits)), params),),
            phase=0.0,
        )
        (name, _, got) = decompose.inverse(low).ops[0]
        assert name == inverse_gate
        assert got == ((-0.3,) if params else ())


def test_every_executor_kind_is_used_and_its_operands_are_filled():
    assert {spec.kind for spec in OPS.values()} == set(Exec)
    for name, spec in OPS.items():
        if spec.kind is Exec.GATE:
            assert name in GATE_OF
        if spec.kind is Exec.MEASURE:
            assert BASIS_OF[name] in ("X", "Y", "Z")
        assert (name in BOOKKEEPING) == (spec.kind is Exec.NONE)


def test_every_op_has_a_cycle_cost_listed_under_its_key():
    for name, spec in OPS.items():
        assert op_cycles(name) == spec.cycles
        assert name in OP_CYCLES[op_key(name)].qvm_ops
    assert sorted(op for entry in OP_CYCLES.values() for op in entry.qvm_ops) == sorted(OPS)


def test_an_alias_names_its_op_everywhere():
    assert OP_ALIASES["APPLY_CX"] == "APPLY_CNOT"
    for alias, name in OP_ALIASES.items():
        assert alias not in OPS
        assert op_key(alias) == op_key(name)


def _program_using(spec: OpSpec) -> dict[str, Any]:
    """A smallest valid program that runs ``spec`` once (and a measurement to see it)."""
    nodes: list[dict[str, Any]] = [
        {"id": "alloc", "op": "ALLOC_LQ", "args": {"n": 3}, "vqs": ["q0", "q1", "q2"]},
        {"id": "m0", "op": "MEASURE_Z", "vqs": ["q0"], "produces": ["e0"]},
    ]
    events = ["e0"]
    chs: list[str] = []
    if spec.chs.low and spec.name != "OPEN_CHAN":
        nodes.append({"id": "open", "op": "OPEN_CHAN", "vqs": ["q1", "q2"], "chs": ["c0"]})
        chs = ["c0"]
    node: dict[str, Any] = {"id": "op", "op": spec.name}
    node["vqs"] = ["q0", "q1", "q2"][: spec.vqs.low]
    if spec.chs.low:
        node["chs"] = ["c0"]
        chs = ["c0"]
    node["inputs"] = ["e0"] * spec.inputs.low
    node["produces"] = [f"p{i}" for i in range(spec.produces.low)]
    events += node["produces"]
    required = {"theta": 0.3, "angle": 0.3, "mask": "X"}
    node["args"] = {arg.name: required[arg.name] for arg in spec.args if arg.required}
    nodes.append(node)
    if chs and spec.name != "CLOSE_CHAN":
        nodes.append({"id": "close", "op": "CLOSE_CHAN", "chs": chs})
    nodes.append({"id": "m1", "op": "MEASURE_Z", "vqs": ["q1"], "produces": ["e1"]})
    events.append("e1")
    nodes.append({"id": "free", "op": "FREE_LQ", "vqs": ["q0", "q1", "q2"]})
    caps = {"CAP_ALLOC", "CAP_LINK"} if chs else {"CAP_ALLOC"}
    if spec.cap:
        caps.add(spec.cap)
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": ["q0", "q1", "q2"], "chs": chs, "events": events},
        "caps": sorted(caps),
    }


@pytest.mark.parametrize(
    "spec",
    [s for s in OPS.values() if s.name not in ("ALLOC_LQ", "FREE_LQ")],
    ids=lambda s: s.name,
)
def test_every_op_of_the_table_runs_on_the_executor_and_is_counted(spec: OpSpec):
    graph = from_json(_program_using(spec))
    result = run(graph, shots=8, seed=11)
    assert sum(result.counts.values()) == 8
    counts = count_nodes(graph.nodes)
    assert counts.num_qubits == 3
    assert (counts.t_count >= 1) == (spec.tally is Tally.T)
    assert (counts.ccz_count == 1) == (spec.tally is Tally.CCZ)


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("cnot", "cx"),
        ("measure_z", "measure"),
        ("measure_x", "measure"),
        ("measure_y", "measure"),
        ("m", "measure"),
        ("mz", "measure"),
        ("mx", "measure"),
        ("my", "measure"),
        ("rotation", "rz"),
        ("sdag", "sdg"),
        ("tdag", "tdg"),
        ("toffoli", "ccx"),
        ("APPLY_CX", "cx"),
        ("ALLOC_LQ", "alloc"),
    ],
)
def test_every_spelling_the_cycle_lookup_took_before_the_table_still_resolves(spelling, key):
    assert op_key(spelling) == key


@pytest.mark.parametrize("gate", list(GATES.values()), ids=lambda g: g.name)
def test_an_engine_gates_adjoint_undoes_it(gate) -> None:
    for angle in ANGLES:
        params = tuple(angle for _ in gate.params)
        name, inverse = gate.adjoint(params)
        product = GATES[name].matrix(inverse) @ gate.matrix(params)
        assert np.allclose(product, np.eye(product.shape[0])), (gate.name, angle)


@pytest.mark.parametrize("spec", GATE_SPECS, ids=lambda s: s.name)
def test_an_ops_inverse_and_its_engine_gates_adjoint_are_the_same_gate(spec: OpSpec) -> None:
    inverse = OPS[spec.inverse]  # type: ignore[index]
    assert GATES[spec.gate].adjoint(_params(spec, 0.3))[0] == inverse.gate  # type: ignore[index]
