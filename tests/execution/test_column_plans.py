"""A program verified on its columns is planned off its columns (op codes, kinds, qubits
and the schedule of its gates read from the arrays): the very plan the node walk makes of
its graph, field for field, under noise or none, on any profile; and the run of either
samples alike at a seed."""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np
import pytest

from qmk.execution import trajectories
from qmk.execution.batch import lower
from qmk.execution.executor import execute
from qmk.execution.plan import Plan, build_plan
from qmk.execution.request import RunRequest
from qmk.execution.trajectories import NoiselessOps
from qmk.qvm.columns import OP_CODES, Columns, verified
from qmk.qvm.verify import verify
from support.micro_ops import node_ops

ALLOC, FREE, FENCE, MZ = (
    OP_CODES[op] for op in ("ALLOC_LQ", "FREE_LQ", "FENCE_EPOCH", "MEASURE_Z")
)


def random_columns(seed: int, rows: int, *, clifford: bool, profile: str | None) -> Columns:
    """A seeded clean column program: qubits in a few allocations, gates of one to three
    qubits, measurements, fences, frees in groups."""
    rng = np.random.default_rng(seed)
    names = ["APPLY_H", "APPLY_S", "APPLY_CNOT", "APPLY_CZ", "APPLY_SWAP", "APPLY_RZ"]
    names += [] if clifford else ["APPLY_T", "APPLY_CCX", "APPLY_RX"]
    width = {"APPLY_CNOT": 2, "APPLY_CZ": 2, "APPLY_SWAP": 2, "APPLY_CCX": 3}
    n = int(rng.integers(3, 9))
    cuts = sorted({0, n, int(rng.integers(1, n))})
    table: list[tuple[int, tuple[int, ...], float]] = [
        (ALLOC, (a, b), np.nan) for a, b in itertools.pairwise(cuts)
    ]
    for _ in range(rows):
        r = rng.random()
        if r < 0.03:
            table.append((FENCE, (), np.nan))
        elif r < 0.12:
            table.append((MZ, (int(rng.integers(n)),), np.nan))
        else:
            name = str(rng.choice(names))
            qubits = tuple(rng.choice(n, size=width.get(name, 1), replace=False).tolist())
            angle = np.nan
            if name in ("APPLY_RZ", "APPLY_RX"):
                angle = float(np.pi / 2 * rng.integers(-3, 4)) if clifford else 0.3
            table.append((OP_CODES[name], qubits, angle))
    frees = sorted({0, n, int(rng.integers(1, n))})
    table += [(FREE, (a, b), np.nan) for a, b in itertools.pairwise(frees)]
    qubits = np.full((len(table), 3), -1, dtype=np.int16)
    for k, (_, qs, _) in enumerate(table):
        qubits[k, : len(qs)] = qs
    return Columns(
        ops=np.array([t[0] for t in table], dtype=np.int16),
        qubits=qubits,
        theta=np.array([t[2] for t in table]),
        lines=np.arange(1, len(table) + 1, dtype=np.int32),
        source="p.qasm",
        profile=profile,
    )


def assert_same_plan(mine: Plan, theirs: Plan) -> None:
    for field in dataclasses.fields(Plan):
        if field.name == "program":
            continue
        a, b = getattr(mine, field.name), getattr(theirs, field.name)
        if field.name == "steps":
            assert a.op_codes[1] == b.op_codes[1]
            assert np.array_equal(a.op_codes[0], b.op_codes[0])
            assert a.kinds == b.kinds
            assert all(
                np.array_equal(x, y) for x, y in zip(a.qubit_columns, b.qubit_columns, strict=True)
            )
            assert a == b
        else:
            assert a == b, field.name


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("noise", [True, False])
def test_a_program_verified_on_its_columns_is_planned_as_its_graph(seed: int, noise: bool):
    profile = None if seed % 3 else "logical:surface_code(d=7)"
    columns = random_columns(seed, 300, clifford=seed % 2 == 0, profile=profile)
    program = verified(columns)
    assert program is not None
    graph_program = verify(columns.to_graph())
    for qubit, default in (("qubit_gate_ns_e3", "logical:surface_code(d=9)"),
                           ("qubit_maj_ns_e4", "logical:floquet_code(d=5)")):  # fmt: skip
        keywords = {"noise": noise, "qubit": qubit, "default_profile": default}
        assert_same_plan(build_plan(program, **keywords), build_plan(graph_program, **keywords))


@pytest.mark.parametrize("seed", range(3))
def test_a_clifford_program_planned_off_its_columns_samples_as_its_graph(seed: int):
    columns = random_columns(10 + seed, 400, clifford=True, profile=None)
    program = verified(columns)
    assert program is not None
    request = RunRequest(program_digest="ab" * 32, shots=2000, seed=seed)
    mine = execute(program, request)
    theirs = execute(verify(columns.to_graph()), request)
    assert mine.telemetry.mode == "stim-batch"
    assert mine.counts == theirs.counts
    assert mine.telemetry.injected_logical_errors == theirs.telemetry.injected_logical_errors


@pytest.mark.parametrize("seed", range(4))
def test_a_machine_runs_waits_on_a_column_program_are_planned_as_on_its_graph(seed: int):
    # a kernel job's waits on the shared machine (build_plan's idle, by node id) keep a
    # column program on its columns, with the same rows as the node walk of its graph
    columns = random_columns(seed, 200, clifford=seed % 2 == 0, profile=None)
    program = verified(columns)
    assert program is not None and program.columns is not None
    graph_program = verify(columns.to_graph())
    assert graph_program.columns is None
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(columns), size=12, replace=False).tolist()
    idle = {f"n{row}": float(rng.integers(1, 50)) for row in rows} | {"n99999": 7.0, "x": 3.0}
    keywords = {"qubit": "qubit_gate_ns_e3", "default_profile": "logical:surface_code(d=9)"}
    mine = build_plan(program, noise=True, idle=idle, **keywords)
    assert_same_plan(mine, build_plan(graph_program, noise=True, idle=idle, **keywords))
    assert mine.noise != build_plan(program, noise=True, **keywords).noise  # the waits count


def test_a_column_program_longer_than_a_schedule_block_is_planned_as_its_graph():
    # the gates' schedule reads the columns a block of rows at a time (in Python), or
    # compiled past COMPILED_ROWS: a program whose run of gates between two allocations,
    # frees or fences (here: none) is longer than a block keeps the node walk's clocks
    # across the block's edge
    from qmk.execution.asap import _BLOCK as _SCHEDULE_BLOCK

    rows = random_columns(21, _SCHEDULE_BLOCK + 5000, clifford=False, profile=None)
    kept = rows.ops != FENCE
    columns = Columns(
        ops=rows.ops[kept],
        qubits=rows.qubits[kept],
        theta=rows.theta[kept],
        lines=rows.lines[kept],
        source=rows.source,
    )
    program = verified(columns)
    assert program is not None
    keywords = {"qubit": "qubit_gate_ns_e3", "default_profile": "logical:surface_code(d=9)"}
    mine = build_plan(program, noise=False, **keywords)
    assert_same_plan(mine, build_plan(verify(columns.to_graph()), noise=False, **keywords))
    assert len(mine.timing) > _SCHEDULE_BLOCK


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("noise", [True, False])
def test_a_guarded_column_program_is_planned_as_its_graph(seed: int, noise: bool):
    # a guarded row is walked a node at a time (its guard's events' times count), and
    # then so is every measurement; the plan is the graph's and says it is guarded
    plain = random_columns(30 + seed, 300, clifford=seed % 2 == 0, profile=None)
    measured = np.cumsum(plain.ops == MZ) - (plain.ops == MZ)
    gate = ~np.isin(plain.ops, [ALLOC, FREE, FENCE, MZ]) & (measured > 0)
    rows = np.flatnonzero(gate)[::7]
    rng = np.random.default_rng(seed)
    events = (rng.random(len(rows)) * measured[rows]).astype(np.int64)
    terms = np.stack([rows, events, rng.integers(2, size=len(rows)), rows % 2], axis=1)
    columns = dataclasses.replace(plain, guards=terms.astype(np.int32))
    program, unguarded = verified(columns), verified(plain)
    assert program is not None and program.columns is not None and unguarded is not None
    keywords = {
        "noise": noise,
        "qubit": "qubit_gate_ns_e3",
        "default_profile": "logical:surface_code(d=9)",
    }
    mine = build_plan(program, **keywords)
    assert mine.guarded and not build_plan(unguarded, **keywords).guarded
    assert_same_plan(mine, build_plan(verify(columns.to_graph()), **keywords))


@pytest.mark.parametrize("seed", range(4))
def test_a_column_programs_gate_codes_are_read_off_its_angles_as_off_its_nodes(seed: int):
    # the batch lowering's table of (gate, parameters): from the angle column, the same
    # codes and table (order first met, angle first met) as from the nodes
    from qmk.execution.plan import PlanSteps, gate_codes
    from qmk.qvm.ops import Exec

    plain = random_columns(40 + seed, 400, clifford=seed % 2 == 0, profile=None)
    rng = np.random.default_rng(seed)
    angled = ~np.isnan(plain.theta)
    theta = plain.theta.copy()
    theta[angled] = rng.choice([0.3, 0.0, -0.0, 1.25, np.pi], size=int(angled.sum()))
    columns = dataclasses.replace(plain, theta=theta)
    program = verified(columns)
    assert program is not None
    graph = program.graph
    mine = PlanSteps.of_columns(graph.nodes, graph.resources.vqs, columns)
    theirs = PlanSteps(tuple(columns.to_graph().nodes), graph.resources.vqs)
    gates = np.array([kind is Exec.GATE for kind in theirs.kinds])
    for picked in (gates, gates & (rng.random(len(gates)) < 0.5)):
        codes, table = gate_codes(mine, picked)
        expected_codes, expected = gate_codes(theirs, picked)
        assert table == expected and codes.tolist() == expected_codes.tolist()
        assert [str(math.copysign(1, p[0])) for _, p in table if p] == [
            str(math.copysign(1, p[0])) for _, p in expected if p
        ]  # -0.0 kept as first met


# A column program's run reads its measurements off the columns, without making their
# steps: the router's micro-op columns and the batch lowering are those its graph's nodes
# give one by one (mid-circuit measurements, guards; noise as sites, heralds, channels).
PLANNED = {"qubit": "qubit_gate_ns_e3", "default_profile": "logical:surface_code(d=9)"}


def _lowering_programs(seed: int, *, guarded: bool) -> tuple[Any, Any]:
    """A seeded Clifford column program verified on its columns, and its graph verified
    node by node (guarded: some gates after a measurement read its event)."""
    columns = random_columns(seed, 300, clifford=True, profile=None)
    if guarded:
        measured = np.cumsum(columns.ops == MZ) - (columns.ops == MZ)
        gate = ~np.isin(columns.ops, [ALLOC, FREE, FENCE, MZ]) & (columns.qubits[:, 1] < 0)
        rows = np.flatnonzero(gate & (measured > 0))[::5]
        ops = columns.ops.copy()
        ops[rows] = OP_CODES["APPLY_X"]  # (a batch circuit controls a Pauli on one bit)
        theta = columns.theta.copy()
        theta[rows] = np.nan
        rng = np.random.default_rng(seed)
        events = (rng.random(len(rows)) * measured[rows]).astype(np.int64)
        terms = np.stack([rows, events, rng.integers(2, size=len(rows)), 0 * rows], axis=1)
        columns = dataclasses.replace(columns, ops=ops, theta=theta, guards=terms.astype(np.int32))
    program = verified(columns)
    assert program is not None and program.columns is not None
    graph_program = verify(columns.to_graph())
    assert graph_program.columns is None
    return program, graph_program


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("guarded", [False, True])
@pytest.mark.parametrize("few_other_steps", [4096, 0])
def test_a_column_programs_micro_op_columns_are_those_of_its_micro_ops(
    seed: int, guarded: bool, few_other_steps: int, monkeypatch: pytest.MonkeyPatch
):
    # the direct steps' micro-ops copied as runs between the other steps, or (past a
    # few other steps: here none) gathered by each micro-op's step
    monkeypatch.setattr(trajectories, "_FEW_OTHER_STEPS", few_other_steps)
    program, _ = _lowering_programs(50 + seed, guarded=guarded)
    plan = build_plan(program, noise=False, **PLANNED)
    fresh, bounds = node_ops(plan)
    made = NoiselessOps(plan)
    assert list(made.ops) == list(fresh)
    assert list(made.bounds) == bounds


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("guarded", [False, True])
@pytest.mark.parametrize("how", ["sites", "heralded", "channels"])
def test_a_column_program_lowers_to_the_batch_circuit_of_its_graph(
    seed: int, guarded: bool, how: str
):
    program, graph_program = _lowering_programs(60 + seed, guarded=guarded)
    keywords = {"heralded": how == "heralded", "channels": how == "channels"}
    mine = lower(build_plan(program, noise=True, **PLANNED), **keywords)
    theirs = lower(build_plan(graph_program, noise=True, **PLANNED), **keywords)
    assert mine is not None and theirs is not None
    assert mine.circuit.num_qubits == theirs.circuit.num_qubits
    assert mine.circuit.instructions == theirs.circuit.instructions
    assert mine == theirs
    assert any(row.kind.value == "measure" for row in mine.circuit.instructions)
