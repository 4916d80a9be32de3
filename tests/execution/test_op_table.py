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

from qmk import defaults
from qmk.engines import EngineError
from qmk.engines.gates import GATES, unitary
from qmk.estimate.counts import count_nodes
from qmk.estimate.tallies import TALLIES, Tally
from qmk.execution.plan import (
    BASIS_OF,
    BOOKKEEPING,
    GATE_OF,
    build_plan,
    expand,
    gate_of,
)
from qmk.execution.runs import run
from qmk.execution.trajectories import NoiselessOps
from qmk.frontends import decompose
from qmk.frontends.builder import GATE_OPS
from qmk.qec.logical import OP_CYCLES, op_cycles, op_key
from qmk.qvm.expansions import EXPANSIONS, Micro
from qmk.qvm.graph import Node, from_json
from qmk.qvm.ops import OP_ALIASES, OPS, Clifford, Exec, OpSpec
from qmk.qvm.verify import is_clifford_node, verify

GATE_SPECS = [spec for spec in OPS.values() if spec.gate is not None]
QUBIT, PROFILE = defaults.QUBIT, defaults.PROFILE
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


def step_is_clifford(node: Node, kind: Exec) -> bool:
    """Whether a stabilizer engine can run the step exactly, by its engine gates."""
    if kind == "gate":
        gate, params = gate_of(node)
        return GATES[gate].is_clifford(params)
    return all(GATES[c.gate].is_clifford(c.params) for c in expand(node) if c.kind is Micro.GATE)


@pytest.mark.parametrize(  # (every such program allocates and frees its qubits; NOISE
    # has no plan: test_every_op_of_the_table_runs_on_the_executor_and_is_counted)
    "spec",
    [s for s in OPS.values() if s.name not in ("ALLOC_LQ", "FREE_LQ", "NOISE", "NOISY_MEASURE")],
    ids=lambda s: s.name,
)
def test_the_plan_and_the_verifier_agree_on_which_nodes_are_clifford(spec: OpSpec):
    # the plan finds its first non-Clifford step by the verifier's rule (the op table):
    # each step's engine gates (its own, or its composite's calls) agree with it
    for angle in ANGLES:
        graph = _program_using(spec)
        for node in graph["program"]["nodes"]:
            for name in ("theta", "angle"):
                if name in node.get("args", {}):
                    node["args"][name] = angle
        program = verify(from_json(graph))
        plan = build_plan(program, noise=False, qubit=QUBIT, default_profile=PROFILE)
        steps = list(enumerate(zip(plan.steps.nodes, plan.steps.kinds, strict=True)))
        for _, (node, kind) in steps:
            assert step_is_clifford(node, kind) == is_clifford_node(OPS[node.op], node), (
                node,
                angle,
            )
        first = next((k for k, (node, kind) in steps if not step_is_clifford(node, kind)), None)
        assert plan.first_non_clifford == first and program.is_clifford == (first is None)


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
    for name in OPS:
        assert op_cycles(name) >= 0
        assert name in OP_CYCLES[op_key(name)].qvm_ops
    assert sorted(op for entry in OP_CYCLES.values() for op in entry.qvm_ops) == sorted(OPS)


def test_every_op_has_one_tally_and_an_op_counted_as_t_is_tallied_as_one() -> None:
    assert list(TALLIES) == list(OPS)
    for name, spec in OPS.items():
        assert ("t" in spec.counts_as) == (name in ("APPLY_T", "APPLY_TDG")), name
        if "t" in spec.counts_as:
            assert TALLIES[name] is Tally.T


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
    required = {
        "theta": 0.3,
        "angle": 0.3,
        "mask": "X",
        "type": "bool",
        "expr": "True",
        "message": "stop here",
        "coords": [1.0, 2.0],
        "rec": [-1],
        "index": 0,
        "channel": "X_ERROR",
        "p": [0.25],
        "instruction": "MR",
    }
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
    if spec.kind is Exec.HALT:  # it runs by stopping the run, with its code
        with pytest.raises(EngineError, match=r"QE115 halted: .*stop here"):
            run(graph, shots=8, seed=11)
        return
    if spec.name in ("NOISE", "NOISY_MEASURE"):  # a stim circuit's noise: the stim target's
        with pytest.raises(EngineError, match=rf"QE110 .*{spec.name}.*target stim"):
            run(graph, shots=8, seed=11)
        return
    result = run(graph, shots=8, seed=11)
    assert sum(result.counts.values()) == 8
    counts = count_nodes(graph.nodes)
    assert counts.num_qubits == 3
    assert (counts.t_count >= 1) == (TALLIES[spec.name] is Tally.T)
    assert (counts.ccz_count == 1) == (TALLIES[spec.name] is Tally.CCZ)


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


# --------------------------------------------------------------------------- expansions

COMPOSITES = [spec for spec in OPS.values() if spec.name in EXPANSIONS]


def _node(spec: OpSpec, **args: Any) -> Node:
    return Node(
        id="n",
        op=spec.name,
        vqs=tuple(f"q{i}" for i in range(spec.vqs.low)),
        chs=("c",) * spec.chs.low,
        produces=tuple(f"e{i}" for i in range(spec.produces.low)),
        args=args,
    )


@pytest.mark.parametrize("spec", COMPOSITES, ids=lambda s: s.name)
def test_an_expansions_gates_are_engine_gates_on_as_many_qubits(spec: OpSpec):
    for step in EXPANSIONS[spec.name]:
        if step.gate is not None:
            gate = GATES[step.gate]
            assert gate.qubits == len(step.qubits), str(step)
            assert len(gate.params) == (step.arg is not None), str(step)


def _before_measuring(calls) -> np.ndarray:
    """The unitary of a composite's gates before its first measurement (after resets)."""
    names = sorted({q for c in calls for q in c.qubits})
    gates = [
        (c.gate, [names.index(q) for q in c.qubits], c.params)
        for c in calls
        if c.kind is Micro.GATE and not c.undo
    ]
    return unitary(gates, len(names))


@pytest.mark.parametrize("angle", ANGLES)
def test_measure_angles_expansion_turns_its_plus_state_to_zero(angle: float):
    calls = expand(_node(OPS["MEASURE_ANGLE"], angle=angle))
    plus = np.array([1, np.exp(1j * angle)]) / math.sqrt(2)
    assert abs((_before_measuring(calls) @ plus)[0]) == pytest.approx(1.0)


def test_measure_bells_expansion_turns_phi_plus_to_two_zero_outcomes():
    calls = expand(_node(OPS["MEASURE_BELL"]))
    phi_plus = np.array([1, 0, 0, 1]) / math.sqrt(2)
    assert abs((_before_measuring(calls) @ phi_plus)[0]) == pytest.approx(1.0)
    assert [c.event for c in calls if c.kind is Micro.MEASURE] == ["e0", "e1"]


def test_inject_t_states_expansion_prepares_t_plus_from_a_reset_qubit():
    calls = expand(_node(OPS["INJECT_T_STATE"]))
    assert calls[0].kind is Micro.RESET
    t_plus = GATES["t"].matrix() @ np.array([1, 1]) / math.sqrt(2)
    assert np.allclose(_before_measuring(calls)[:, 0], t_plus)


def test_open_chans_expansion_prepares_phi_plus_with_its_werner_noise_on_the_second():
    calls = expand(_node(OPS["OPEN_CHAN"], opts={"fidelity": 0.9}))
    phi_plus = np.array([1, 0, 0, 1]) / math.sqrt(2)
    assert np.allclose(_before_measuring(calls)[:, 0], phi_plus)
    werner = [c for c in calls if c.kind is Micro.WERNER]
    assert [(c.qubits, c.fidelity) for c in werner] == [(("q1",), 0.9)]


def test_teleport_cnots_expansion_is_the_gate_it_acts_as():
    spec = OPS["TELEPORT_CNOT"]
    assert np.allclose(_before_measuring(expand(_node(spec))), GATES[spec.gate].matrix())  # type: ignore[index]


@pytest.mark.parametrize("spec", COMPOSITES, ids=lambda s: s.name)
def test_the_plan_and_the_trajectories_run_a_composite_as_its_expansion(spec: OpSpec):
    program = verify(from_json(_program_using(spec)))
    plan = build_plan(program, noise=False, qubit=QUBIT, default_profile=PROFILE)
    at = next(k for k, node in enumerate(plan.steps.nodes) if node.id == "op")
    calls = expand(plan.steps.nodes[at])
    assert calls
    noiseless = NoiselessOps(plan)
    start, end = noiseless.bounds[at]
    micro = {Micro.GATE: "gate", Micro.MEASURE: "meas", Micro.RESET: "reset"}
    expected = [(micro[c.kind], c.qubits, c.gate, c.params) for c in calls if c.kind in micro]
    rows = noiseless.ops.rows(start, end)
    assert [(op.kind, op.qubits, op.gate, op.params) for op in rows] == expected
