"""The target protocol: the table of targets, the logical machine as a target (the same
counts as the executor at every seed), and the footprint it reports, checked against the
plan's own schedule and the estimator's T-state count."""

from __future__ import annotations

from pathlib import Path

import pytest

from qmk.estimate.counts import count_graph
from qmk.estimate.estimator import estimate
from qmk.estimate.params import JobParams
from qmk.execution import target as targets
from qmk.execution.executor import plan_for
from qmk.execution.logical import LogicalTarget
from qmk.execution.runs import build_request, run
from qmk.execution.target import TARGETS, Executable, Target, TargetError
from qmk.frontends import read_program
from qmk.qvm.asm import assemble

ROOT = Path(__file__).parents[2]
FT_PROGRAMS = Path(__file__).parents[1] / "ft" / "programs"


def test_every_target_in_the_table_loads_and_meets_the_protocol() -> None:
    for name, entry in TARGETS.items():
        target = targets.get(name)
        assert isinstance(target, Target) and target.name == name == entry.name
    assert next(iter(TARGETS)) == "logical"  # the default first


def test_an_unknown_target_is_a_coded_error_naming_the_closest() -> None:
    with pytest.raises(TargetError) as caught:
        targets.spec("logicla")
    assert caught.value.code == "QM101"
    assert "did you mean 'logical'" in caught.value.message


def test_the_logical_target_gives_the_executors_counts_at_every_seed() -> None:
    target = LogicalTarget()
    for path in ("examples/teleport_guards.qvm.json", "examples/t_gate_injection.qvm.json"):
        program = target.read(str(ROOT / path))
        request = build_request(program, shots=500, seed=11)
        executable = target.compile(program, request)
        assert isinstance(executable, Executable)
        for seed in (11, 12):
            got = executable.run(500, seed)
            want = run(program, shots=500, seed=seed)
            assert got.counts == want.counts and got.engine == want.engine


def test_the_logical_target_refuses_target_options() -> None:
    target = LogicalTarget()
    program = target.read(str(ROOT / "examples/bell.qvm.json"))
    request = build_request(program, shots=10, seed=1)
    import msgspec

    with pytest.raises(TargetError) as caught:
        target.compile(program, msgspec.structs.replace(request, target_options={"block": "fast"}))
    assert caught.value.code == "QM102" and "block" in caught.value.message


@pytest.mark.parametrize(
    "path",
    [
        "examples/ghz.qvm.json",
        "examples/teleport_guards.qvm.json",
        "examples/linked_modules.qvm.json",
        "examples/rev_segment.qvm.json",
        "tests/ft/programs/toffoli.qasm",
        "tests/ft/programs/qft3.qasm",
    ],
)
def test_the_logical_footprint_spans_the_plans_cycles_and_counts_its_t_states(path) -> None:
    target = LogicalTarget()
    program = target.read(str(ROOT / path))
    request = build_request(program, shots=1, seed=1, noise=False)
    fp = target.compile(program, request).footprint
    plan = plan_for(program, request)
    assert fp.target == "logical"
    assert fp.duration_cycles == plan.logical_cycles
    assert fp.logical_qubits == plan.peak_logical_qubits
    assert fp.fences == sum(1 for node in program.graph.nodes if node.op == "FENCE_EPOCH")
    assert fp.measurements == sum(
        len(node.produces) for node in program.graph.nodes if node.op.startswith("MEASURE")
    )
    counts = count_graph(program.graph)
    if counts.t_count or counts.ccz_count or counts.rotation_count:
        report = estimate(counts, JobParams.from_json({}))
        assert fp.t_states == report["physicalCounts"]["breakdown"]["numTstates"]
    else:
        assert fp.t_states == 0
    assert fp.tiles == 2 * fp.logical_qubits + fp.routing_tiles
    assert fp.code_distance == 9  # the default profile's


def test_a_teleported_cnot_draws_a_bell_pair_and_routes() -> None:
    program = LogicalTarget().read(
        assemble(
            """
            .caps CAP_ALLOC CAP_TELEPORT
            a: ALLOC_LQ vq:q0, vq:q1
            t: TELEPORT_CNOT vq:q0, vq:q1
            m: MEASURE_Z vq:q1, out:m
            """
        )
    )
    request = build_request(program, shots=1, seed=1, noise=False)
    fp = LogicalTarget().compile(program, request).footprint
    (teleport,) = [s for s in fp.steps if s.kind == "teleport"]
    assert teleport.bell_pairs == 1 and teleport.routed and teleport.node == "t"
    assert fp.bell_pairs == 1


def test_a_program_read_from_qasm_runs_as_a_graph_does() -> None:
    graph = read_program(str(FT_PROGRAMS / "qft2.qasm"))
    target = LogicalTarget()
    program = target.read(graph)
    request = build_request(program, shots=200, seed=3)
    assert (
        target.compile(program, request).run(200, 3).counts == run(graph, shots=200, seed=3).counts
    )
