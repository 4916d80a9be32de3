"""Micro-ops as columns (:mod:`qmk.execution.microcode`): the rows a reader gives back are
the micro-ops written, chunk boundaries and spliced Paulis included."""

from __future__ import annotations

import random

import pytest

from qmk.execution import microcode
from qmk.execution.microcode import CHUNK, MicroOp, Ops, Reader, Spliced
from qmk.qvm.graph import Guard, GuardTerm


def _rows(count: int, seed: int) -> list[MicroOp]:
    """``count`` micro-ops of every kind, with guards, parameters and rare fields."""
    rng = random.Random(seed)
    names = [f"q{k}" for k in range(6)]
    guard = Guard(terms=(GuardTerm(event="m", equals=1),))
    out: list[MicroOp] = []
    for k in range(count):
        pick = rng.random()
        qubits = tuple(rng.sample(names, rng.choice((1, 2))))
        if pick < 0.5:
            out.append(
                MicroOp(
                    "gate", qubits, gate=rng.choice(("h", "cx", "rz")), params=(0.5, k)[: k % 3]
                )
            )
        elif pick < 0.6:
            out.append(MicroOp("meas", qubits[:1], guard, basis=rng.choice("ZXY"), event=k % 7))
        elif pick < 0.7:
            out.append(MicroOp("cond", qubits[:1], gate="x", inputs=(1, 2)))
        elif pick < 0.75:
            out.append(MicroOp("werner", qubits[:1], fidelity=0.9))
        elif pick < 0.8:
            out.append(MicroOp("fence", (), epoch=k))
        elif pick < 0.85:
            out.append(MicroOp("halt", (), guard, note=f"node #{k}"))
        else:
            out.append(MicroOp(rng.choice(("alloc", "free", "reset")), qubits[:1]))
    return out


def test_a_reader_gives_back_every_micro_op_written_across_chunks() -> None:
    rows = _rows(2 * CHUNK + 17, seed=3)
    ops = Ops.of(rows)
    assert len(ops) == len(rows) and list(ops) == rows
    reader = Reader(ops)
    for i in (0, CHUNK - 1, CHUNK, 2 * CHUNK + 16, 5, CHUNK + 1):  # back and forth
        assert reader[i] == rows[i]
    assert list(reader.span(CHUNK - 3, CHUNK + 3)) == rows[CHUNK - 3 : CHUNK + 3]
    assert ops.rows(10, 20) == rows[10:20] and ops.rows(len(rows), len(rows) + 5) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spliced_paulis_read_as_the_list_with_them_inserted(seed: int) -> None:
    rng = random.Random(seed)
    rows = _rows(300, seed=seed)
    base = Ops.of(rows)
    at = sorted([*rng.choices(range(len(rows) + 1), k=12), 0, 0, len(rows)])
    qubits = [rng.choice(("q0", "q5", "new")) for _ in at]
    paulis = [rng.choice("xyz") for _ in at]
    expected = list(rows)
    for k, (a, q, p) in enumerate(zip(at, qubits, paulis, strict=True)):
        expected.insert(a + k, MicroOp("gate", (q,), gate=p))
    spliced = Spliced(base, at, qubits, paulis)
    assert len(spliced) == len(expected) and list(spliced) == expected
    assert [spliced.row(i) for i in range(len(expected))] == expected


def test_a_kind_or_basis_not_of_the_tables_is_refused() -> None:
    writer = microcode.Writer()
    with pytest.raises(KeyError):
        writer.add("teleport", ("q",))
    with pytest.raises(KeyError):
        writer.add("meas", ("q",), basis="W")


def test_a_run_keeps_no_row_of_its_plans_micro_ops_when_it_ends() -> None:
    import numpy as np

    from qmk.engines.statevector import StatevectorEngine
    from qmk.execution import executor
    from qmk.execution.trajectories import Observed, Runner
    from qmk.qec.noise import Depolarizing
    from support import workloads

    n = 4
    graph = workloads.graph_of(n, workloads.random_gates(n, 3, seed=2), fence_after=5)
    plan = workloads.noisy_plan(graph, "logical:surface_code(d=3)", Depolarizing(p=5e-3))
    streams = np.random.SeedSequence(3).spawn(3)
    groups, _ = executor.sample_error_patterns(plan, 300, np.random.default_rng(streams[1]))
    observed = Observed(plan)
    work = [(observed.with_errors(executor._pattern_errors(plan, p)), m) for p, m in groups.items()]
    assert len(work) > 1
    runner = Runner(
        plan, lambda: StatevectorEngine(seed=0), work, 300, streams[2], base=observed.ops
    )
    runner.run()
    assert observed.ops.kept == 0
    assert len(list(observed.ops)) == len(observed.ops)  # (rows are made again on demand)
    assert observed.ops.kept > 0  # a read keeps its rows until the next forget
