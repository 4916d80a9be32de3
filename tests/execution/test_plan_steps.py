"""A plan's steps are columns of its nodes (``PlanSteps``), with no object a step:
their kinds by the op table, their ops as codes, their qubits as indices, the gate
steps' gates and parameters; equal by their nodes, and picklable."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from qmk.execution.executor import DEFAULT_QUBIT, load_program
from qmk.execution.plan import PlanSteps, build_plan, gate_codes, gate_of
from qmk.frontends import read_program
from qmk.qvm.asm import assemble
from qmk.qvm.ops import OPS, Exec
from qmk.qvm.verify import VerifiedProgram, verify
from support.paths import EXAMPLES

PROFILE = "logical:surface_code(d=9)"

#: A rotation (a gate with a parameter), a guard, a teleport and a measurement.
PROGRAMS = ["teleport_guards.qvm.json", "t_gate_injection.qvm.json", "rev_segment.qvm.json"]
ROTATIONS = """
.caps CAP_ALLOC
a: ALLOC_LQ vq:p, vq:q
r: APPLY_RZ vq:p, theta=0.25
h: APPLY_H vq:q
x: APPLY_RX vq:q, theta=-1.5
c: APPLY_CNOT vq:p, vq:q
m: MEASURE_Z vq:p, out:m
f: FREE_LQ vq:p, vq:q
"""


def _program(name: str) -> VerifiedProgram:
    if name == "rotations":
        return verify(assemble(ROTATIONS))
    return load_program(read_program(EXAMPLES / name))


@pytest.mark.parametrize("name", [*PROGRAMS, "rotations"])
def test_each_steps_kind_is_its_nodes_ops_by_the_op_table(name: str) -> None:
    program = _program(name)
    steps = build_plan(program, noise=False, qubit=DEFAULT_QUBIT, default_profile=PROFILE).steps
    nodes = program.graph.nodes
    expected = tuple(OPS[node.op].kind for node in nodes)
    assert isinstance(steps, PlanSteps) and len(steps) == len(nodes) > 0
    assert steps.kinds == expected
    fresh = PlanSteps(nodes, program.graph.resources.vqs)  # one at a time, off the codes
    assert tuple(fresh.kind(k) for k in range(len(nodes))) == expected
    assert steps == fresh and steps != PlanSteps(nodes[1:], program.graph.resources.vqs)
    assert pickle.loads(pickle.dumps(steps)) == steps


def test_gate_codes_are_the_gate_steps_gates_and_parameters() -> None:
    graph = _program("rotations").graph
    steps = PlanSteps(graph.nodes, graph.resources.vqs)
    gates = np.array([kind is Exec.GATE for kind in steps.kinds])
    codes, table = gate_codes(steps, gates)
    expected = [gate_of(node) for node, gate in zip(graph.nodes, gates, strict=True) if gate]
    assert [table[c] for c in codes.tolist()] == expected
    assert expected == [("rz", (0.25,)), ("h", ()), ("rx", (-1.5,)), ("cx", ())]
    # without any parameter, a code is an op's: H and CX
    plain = gates & np.array([not node.args for node in graph.nodes])
    codes, table = gate_codes(steps, plain)
    assert [table[c] for c in codes.tolist()] == [("h", ()), ("cx", ())]
    op_codes, ops = steps.op_codes
    assert [ops[c] for c in op_codes.tolist()] == [node.op for node in graph.nodes]


@pytest.mark.parametrize(
    ("guarded", "expected"),
    [
        ("", False),
        ("x: APPLY_X vq:q when ev:m == 1", True),  # a gate: the walk's own loop
        ("x: INJECT_T_STATE vq:q when ev:m == 1", True),  # a magic state: _Walk.step
    ],
)
def test_a_plan_knows_whether_any_step_has_a_guard(guarded: str, expected: bool) -> None:
    text = f"""
.caps CAP_ALLOC CAP_MAGIC
a: ALLOC_LQ vq:p, vq:q
m: MEASURE_Z vq:p, out:m
{guarded}
f: FREE_LQ vq:p, vq:q
"""
    plan = build_plan(
        verify(assemble(text)), noise=False, qubit=DEFAULT_QUBIT, default_profile=PROFILE
    )
    assert plan.guarded is expected
    assert plan.guarded == any(node.guard is not None for node in plan.steps.nodes)


@pytest.mark.parametrize("name", [*PROGRAMS, "rotations"])
def test_the_qubit_columns_index_each_steps_qubits_among_the_programs(name: str) -> None:
    graph = _program(name).graph
    steps = PlanSteps(graph.nodes, graph.resources.vqs)
    sizes, qubits = steps.qubit_columns
    assert sizes.tolist() == [len(node.vqs) for node in graph.nodes]
    names = graph.resources.vqs
    assert [names[q] for q in qubits.tolist()] == [q for node in graph.nodes for q in node.vqs]
    assert not sizes.flags.writeable and not qubits.flags.writeable


@pytest.mark.parametrize("name", [*PROGRAMS, "rotations"])
def test_the_qubits_of_picked_steps_are_those_steps_qubits_in_order(name: str) -> None:
    graph = _program(name).graph
    steps = PlanSteps(graph.nodes, graph.resources.vqs)
    picked = np.array([k % 3 != 1 and bool(node.vqs) for k, node in enumerate(graph.nodes)])
    names = graph.resources.vqs
    expected = [q for node, p in zip(graph.nodes, picked, strict=True) if p for q in node.vqs]
    assert [names[q] for q in steps.qubits_of(picked).tolist()] == expected
    assert steps.qubits_of(np.zeros(len(graph.nodes), dtype=bool)).tolist() == []


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("share", [0.01, 0.5, 0.99, 1.0])
def test_picked_runs_are_the_picked_runs_one_after_another_whether_few_or_most(
    seed: int, share: float
) -> None:
    # few runs picked are gathered by their positions, all but a few by a mask less the
    # others' positions, the rest by a mask of the values: each gives the runs a loop
    # over them gives
    from qmk.execution.plan import picked_runs

    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 4, size=500)
    values = rng.integers(0, 1000, size=int(sizes.sum()))
    picked = rng.random(500) < share
    starts = np.cumsum(sizes) - sizes
    expected = [
        v
        for k in np.flatnonzero(picked).tolist()
        for v in values[starts[k] : starts[k] + sizes[k]].tolist()
    ]
    assert picked_runs(values, sizes, picked).tolist() == expected
