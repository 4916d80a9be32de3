"""A plan's steps are made from its nodes when read (``PlanSteps``): each read, the
columns a bulk run reads instead, equality and pickling give what one ``lower_step``
a node gives."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from qmk.execution.executor import DEFAULT_QUBIT, load_program
from qmk.execution.plan import PlanSteps, build_plan, gate_codes, lower_step
from qmk.frontends import read_program
from qmk.qvm.asm import assemble
from qmk.qvm.ops import Exec
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
def test_every_read_of_a_step_is_the_step_its_node_lowers_to(name: str) -> None:
    program = _program(name)
    steps = build_plan(program, noise=False, qubit=DEFAULT_QUBIT, default_profile=PROFILE).steps
    nodes = program.graph.nodes
    expected = tuple(lower_step(k, node) for k, node in enumerate(nodes))
    assert isinstance(steps, PlanSteps) and len(steps) == len(nodes) > 0
    # one at a time before any iteration, from either end
    assert [steps[k] for k in range(len(nodes))] == list(expected)
    assert steps[-1] == expected[-1] and steps[-len(nodes)] == expected[0]
    for bad in (len(nodes), -len(nodes) - 1):
        with pytest.raises(IndexError):
            steps[bad]
    assert steps.kinds == tuple(step.kind for step in expected)
    assert steps == expected and steps == PlanSteps(nodes, program.graph.resources.vqs)
    assert steps[1:3] == expected[1:3] and tuple(steps) == expected
    assert steps[2] is steps[2]  # kept once all were made
    assert pickle.loads(pickle.dumps(steps)) == steps


def test_gate_codes_are_the_gate_steps_gates_and_parameters() -> None:
    graph = _program("rotations").graph
    steps = PlanSteps(graph.nodes, graph.resources.vqs)
    gates = np.array([kind is Exec.GATE for kind in steps.kinds])
    codes, table = gate_codes(steps, gates)
    expected = [(step.gate, step.params) for step in steps if step.kind is Exec.GATE]
    assert [table[c] for c in codes.tolist()] == expected
    assert expected == [("rz", (0.25,)), ("h", ()), ("rx", (-1.5,)), ("cx", ())]
    # without any parameter, a code is an op's: H and CX
    plain = gates & np.array([not step.params for step in steps])
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
    # few runs picked are gathered by their positions, most by a mask of the values:
    # both give the runs a loop over them gives
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
